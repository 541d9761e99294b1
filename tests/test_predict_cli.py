"""`cathtrack predict` on a folder of mixed inputs: overlays, results.jsonl, errors, exit codes,
per-frame isolation of failures, and SIGTERM/SIGINT finalising the overlays."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from cathtrack.cli import main
from cathtrack.data.synth import preset, render_sequence
from cathtrack.tracker import Tracker

FRAME_SIZE = 128
VIDEO_FRAMES = 3
CORPUS = Path(__file__).resolve().parent / "data" / "malformed"


@pytest.fixture(scope="module")
def tracker() -> Tracker:
    return Tracker()  # the shipped model through the native engine, as predict uses it


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with an 8-bit PNG, a 16-bit PNG, a 3-frame AVI and a corrupt PNG."""
    folder = tmp_path_factory.mktemp("inputs")
    images = [s.image for s in render_sequence(preset("clinical", size=FRAME_SIZE), 5, 5)]
    cv2.imwrite(str(folder / "a_gray8.png"), np.rint(images[0] * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "b_gray16.png"), np.rint(images[1] * 65535).astype(np.uint16))
    writer = cv2.VideoWriter(
        str(folder / "c_run.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (FRAME_SIZE, FRAME_SIZE)
    )
    for image in images[2:]:
        writer.write(cv2.cvtColor(np.rint(image * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    writer.release()
    (folder / "d_broken.png").write_bytes(b"this is not a PNG file")
    return folder


@pytest.fixture(scope="module")
def prediction(inputs, tmp_path_factory, tracker):
    """Runs predict once; returns (exit code, output folder, stderr, results lines)."""
    out = tmp_path_factory.mktemp("predict_out")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["predict", str(inputs), "--out", str(out)])
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    lines = [r for r in records if "error" not in r]
    return code, out, stderr.getvalue(), lines, [r for r in records if "error" in r]


def test_readable_frames_get_results_and_overlays(prediction):
    code, out, _, lines, _ = prediction
    assert code == 1  # the corrupt file failed, the rest was processed
    assert len(lines) == 2 + VIDEO_FRAMES
    assert [(r["source"].rsplit("/", 1)[1], r["frame"]) for r in lines] == [
        ("a_gray8.png", 0),
        ("b_gray16.png", 0),
        ("c_run.avi", 0),
        ("c_run.avi", 1),
        ("c_run.avi", 2),
    ]
    assert all(r["image_size"] == [FRAME_SIZE, FRAME_SIZE] for r in lines)
    for name in ("a_gray8.png", "b_gray16.png"):  # one PNG overlay per single image
        overlay = cv2.imread(str(out / name))
        assert overlay.shape == (FRAME_SIZE, FRAME_SIZE, 3)
    video = cv2.VideoCapture(str(out / "c_run.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    video.release()
    assert frames == VIDEO_FRAMES


def test_corrupt_file_is_reported_on_one_line_and_in_the_results(prediction, inputs):
    _, _, stderr, _, errors = prediction
    mentions = [line for line in stderr.replace("\r", "\n").splitlines() if "d_broken.png" in line]
    assert len(mentions) == 1
    assert "not a readable image" in mentions[0]
    assert errors == [
        {
            "source": str(inputs / "d_broken.png"),
            "frame": None,
            "error": "not a readable image (corrupt or unsupported encoding)",
        }
    ]


def test_results_equal_a_direct_tracker_call(prediction, inputs, tracker):
    _, _, _, lines, _ = prediction
    image16 = cv2.imread(str(inputs / "b_gray16.png"), cv2.IMREAD_UNCHANGED)
    assert image16.dtype == np.uint16
    video = cv2.VideoCapture(str(inputs / "c_run.avi"))
    video.read()
    second_video_frame = video.read()[1]
    video.release()
    for line, image in ((lines[1], image16), (lines[3], second_video_frame)):
        direct = tracker(image)
        assert len(direct.electrodes) > 0
        np.testing.assert_array_equal(np.float32(line["electrodes"]), direct.electrodes)
        np.testing.assert_array_equal(np.float32(line["scores"]), direct.scores)
        assert [c["type"] for c in line["catheters"]] == [c.type for c in direct.catheters]


def test_missing_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "nope.png" in error


def test_bad_backend_is_exit_2(inputs, tmp_path, capsys):
    arguments = ["predict", str(inputs), "--out", str(tmp_path), "--backend", "java"]
    assert main(arguments) == 2
    assert "backend" in capsys.readouterr().err


def test_video_format_png_writes_one_png_per_frame(inputs, tmp_path):
    video = str(inputs / "c_run.avi")
    arguments = ["--out", str(tmp_path), "--backend", "python", "--video-format", "png"]
    assert main(["predict", video, *arguments]) == 0
    frames = sorted(path.name for path in (tmp_path / "c_run").iterdir())
    assert frames == [f"frame_{k:05d}.png" for k in range(VIDEO_FRAMES)]


# ---------------------------------------------------------------- failures stay with their frame


@pytest.fixture(scope="session")
def tiny_ts(tmp_path_factory) -> Path:
    """The malformed corpus's tiny model as TorchScript: quick to export and to run."""
    from cathtrack.export import export_model

    path = tmp_path_factory.getbasetemp() / "corpus-tiny.ts"
    if not path.is_file():
        export_model(CORPUS / "models" / "tiny.safetensors", path, "ts")
    return path


def _predict(inputs, out: Path, model: Path, capsys, *options: str):
    """Runs predict in this process; (exit code, stderr lines, tracked records, error records)."""
    arguments = ["predict", *map(str, inputs), "--out", str(out), "--model", str(model)]
    code = main([*arguments, "--device", "cpu", *options])
    err = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return (
        code,
        err,
        [r for r in records if "error" not in r],
        [r for r in records if "error" in r],
    )


def test_a_frame_the_tracker_refuses_is_recorded_and_the_batch_goes_on(tiny_ts, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    cv2.imwrite(str(folder / "a.png"), image)
    cv2.imwrite(str(folder / "b_wide.png"), np.full((1, 70000), 128, np.uint8))  # side > 65536
    cv2.imwrite(str(folder / "c.png"), image)
    code, err, tracked, errors = _predict([folder], tmp_path / "out", tiny_ts, capsys)
    assert code == 1
    assert [Path(r["source"]).name for r in tracked] == ["a.png", "c.png"]
    assert errors == [
        {
            "source": str(folder / "b_wide.png"),
            "frame": 0,
            "error": "frame is too large (a side over 65536 pixels)",
        }
    ]
    mentions = [line for line in err if "b_wide.png" in line]
    assert mentions == [f"cathtrack predict: {folder / 'b_wide.png'} frame 0: {errors[0]['error']}"]
    assert not (tmp_path / "out" / "b_wide.png").exists()
    assert (tmp_path / "out" / "c.png").is_file()


def test_out_naming_an_existing_file_is_one_line(tiny_ts, tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    frame = CORPUS / "frames" / "big_endian.dcm"
    assert main(["predict", str(frame), "--out", str(taken), "--model", str(tiny_ts)]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"cathtrack predict: error: --out {taken}: exists and is not a folder "
        "(give a folder for the results)"
    )
    assert taken.read_text() == "not a folder"


def _frame_count(path: Path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_a_tiff_whose_pages_differ_in_size_keeps_every_page(tiny_ts, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, tracked, errors = _predict([CORPUS / "frames" / "mixed_sizes.tif"], out, tiny_ts,
                                        capsys)  # fmt: skip
    assert code == 0 and errors == []
    assert [(r["frame"], r["image_size"]) for r in tracked] == [
        (0, [64, 64]), (1, [48, 48]), (2, [64, 64])
    ]  # fmt: skip
    assert _frame_count(out / "mixed_sizes.mp4") == 3  # the 48x48 page is scaled in, not dropped
    assert {r["overlay"] for r in tracked} == {str(out / "mixed_sizes.mp4")}  # frame 0's too
    assert not (out / "mixed_sizes.png").exists()


def test_a_truncated_avi_says_how_many_frames_it_gave(tiny_ts, tmp_path, capsys):
    avi = CORPUS / "frames" / "truncated.avi"
    code, err, tracked, errors = _predict([avi], tmp_path / "out", tiny_ts, capsys)
    assert code == 1
    assert [r["frame"] for r in tracked] == list(range(12))  # what could be read is kept
    assert [e["error"] for e in errors] == [
        "truncated or damaged video: decoded 12 of 20 frames (the frames before the damage "
        "were read)"
    ]
    assert len([line for line in err if "truncated.avi" in line]) == 1
    assert _frame_count(tmp_path / "out" / "truncated.mp4") == 12


def test_a_dicom_with_a_nan_rescale_is_refused_on_one_line(tiny_ts, tmp_path, capsys):
    dicom = CORPUS / "frames" / "rescale_nan.dcm"
    code, err, tracked, errors = _predict([dicom], tmp_path / "out", tiny_ts, capsys)
    assert code == 1 and tracked == []
    assert errors[0]["error"].startswith("RescaleSlope is 'NaN', not a finite number")
    assert len([line for line in err if "rescale_nan.dcm" in line]) == 1


def test_a_big_endian_dicom_is_tracked_like_its_native_order_copy(tiny_ts, tmp_path, capsys):
    import pydicom

    stored = pydicom.dcmread(CORPUS / "frames" / "big_endian.dcm").pixel_array
    native = tmp_path / "native.png"
    cv2.imwrite(str(native), stored.astype(np.uint16))
    code, _, tracked, errors = _predict(
        [CORPUS / "frames" / "big_endian.dcm", native], tmp_path / "out", tiny_ts, capsys,
        "--score-threshold", "0.05",
    )  # fmt: skip
    assert code == 0 and errors == []
    dicom, png = tracked
    for key in ("electrodes", "scores", "image_size"):
        assert dicom[key] == png[key]


# ---------------------------------------------------------------- signals


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "long.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (96, 96))
    rng = np.random.default_rng(3)
    for _ in range(3000):
        writer.write(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finalises_the_video_being_written(tiny_ts, long_video, tmp_path, signum):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cathtrack.cli", "predict", str(long_video), "--out",
               str(out), "--model", str(tiny_ts), "--device", "cpu"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if results.is_file() and results.read_text().count("\n") >= 20:
            break
        time.sleep(0.02)
    assert process.poll() is None, "predict ended before it could be signalled"
    os.kill(process.pid, signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    expected = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    assert len(lines) == 1 and expected in lines[0], stderr
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert 20 <= len(records) < 3000
    # the MP4 got its index: every frame with a result is in it, and no temporary is left
    assert _frame_count(out / "long.mp4") == len(records)
    assert sorted(p.name for p in out.iterdir()) == ["long.mp4", "results.jsonl"]


# ---------------------------------------------------------------- files of every frame


def _multi_frame_inputs(folder: Path) -> Path:
    """A single PNG, a 3-page TIFF and a 3-frame DICOM of 64x64 noise."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_io import _write_dicom

    folder.mkdir()
    rng = np.random.default_rng(4)
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 255, (64, 64), dtype=np.uint8))
    pages = [rng.integers(0, 255, (64, 64), dtype=np.uint8) for _ in range(3)]
    assert cv2.imwritemulti(str(folder / "b_stack.tif"), pages)
    _write_dicom(folder / "c_run.dcm", rng.integers(0, 4095, (3, 64, 64)).astype(np.uint16))
    return folder


@pytest.mark.parametrize("video_format", ["mp4", "png"])
def test_every_record_names_the_overlay_and_mask_its_frame_went_to(
    tiny_ts, tmp_path, capsys, video_format
):
    folder = _multi_frame_inputs(tmp_path / "in")
    out = tmp_path / "out"
    code, _, tracked, errors = _predict([folder], out, tiny_ts, capsys, "--save-mask",
                                        "--video-format", video_format)  # fmt: skip
    assert code == 0 and errors == []
    assert [(Path(r["source"]).name, r["frame"]) for r in tracked] == [
        ("a.png", 0), *[("b_stack.tif", k) for k in range(3)], *[("c_run.dcm", k) for k in range(3)]
    ]  # fmt: skip
    expected = {("a.png", 0): (out / "a.png", out / "a_mask.png")}
    for stem, suffix in (("b_stack", "tif"), ("c_run", "dcm")):
        for k in range(3):
            overlay = (
                out / f"{stem}.mp4" if video_format == "mp4" else out / stem / f"frame_{k:05d}.png"
            )
            expected[(f"{stem}.{suffix}", k)] = (
                overlay,
                out / f"{stem}_mask" / f"frame_{k:05d}.png",
            )
    for record in tracked:  # frame 0 of a multi-frame file too
        overlay, mask = expected[(Path(record["source"]).name, record["frame"])]
        assert (record["overlay"], record["mask_png"]) == (str(overlay), str(mask))
        assert overlay.is_file() and mask.is_file()
    if video_format == "mp4":
        assert _frame_count(out / "b_stack.mp4") == _frame_count(out / "c_run.mp4") == 3
    assert not (out / "b_stack.png").exists() and not (out / "c_run.png").exists()


def test_mask_png_is_the_binary_mask_of_a_direct_tracker_call(tracker, inputs, tmp_path):
    out = tmp_path / "out"
    image = inputs / "a_gray8.png"
    assert main(["predict", str(image), "--out", str(out), "--save-mask"]) == 0
    expected = tracker(cv2.imread(str(image), cv2.IMREAD_UNCHANGED)).binary
    assert expected.any()
    written = cv2.imread(str(out / "a_gray8_mask.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 255}
    np.testing.assert_array_equal(written == 255, expected)


# ---------------------------------------------------------------- temporal tracking


@pytest.fixture(scope="module")
def sequence_video(tmp_path_factory) -> Path:
    """An 8-frame synthetic sequence (heart beat, breathing) as an MJPG AVI, twice."""
    folder = tmp_path_factory.mktemp("sequence")
    images = [s.image for s in render_sequence(preset("clinical", size=FRAME_SIZE), 8, 8)]
    writer = cv2.VideoWriter(
        str(folder / "run1.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 15, (FRAME_SIZE, FRAME_SIZE)
    )
    for image in images:
        writer.write(cv2.cvtColor(np.rint(image * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    writer.release()
    (folder / "run2.avi").write_bytes((folder / "run1.avi").read_bytes())
    return folder


def test_temporal_tracks_each_video_as_a_temporal_tracker_does(sequence_video, tmp_path):
    out = tmp_path / "out"
    assert main(["predict", str(sequence_video), "--out", str(out), "--temporal"]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 16
    temporal = Tracker(temporal=True, threads=1)
    capture = cv2.VideoCapture(str(sequence_video / "run1.avi"))
    expected = []
    while (frame := capture.read())[0]:
        expected.append(temporal(frame[1]))
    capture.release()
    for first, second, result in zip(records[:8], records[8:], expected, strict=True):
        # the second file starts a new sequence: the same ids again
        for record in (first, second):
            assert record["electrode_track_ids"] == [int(i) for i in result.electrode_track_ids]
            assert [c["track_id"] for c in record["catheters"]] == [
                c.track_id for c in result.catheters
            ]
            np.testing.assert_allclose(np.float32(record["electrodes"]), result.electrodes,
                                       atol=1e-4)  # fmt: skip
    assert any(i >= 0 for i in records[7]["electrode_track_ids"])  # tracks were confirmed
    # without --temporal no ids are given
    plain = tmp_path / "plain"
    assert main(["predict", str(sequence_video / "run1.avi"), "--out", str(plain)]) == 0
    first = json.loads((plain / "results.jsonl").read_text().splitlines()[-1])
    assert "electrode_track_ids" not in first
    assert all(c["track_id"] == -1 for c in first["catheters"])


# ---------------------------------------------------------------- MP4 codecs


def _ffmpeg_probe(path: Path) -> str:
    import imageio_ffmpeg

    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    return done.stderr


def test_mp4_overlays_are_h264_that_browsers_play(tiny_ts, sequence_video, tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg", reason="the optional extra cathtrack[video]")
    out = tmp_path / "out"
    code, err, tracked, _ = _predict([sequence_video / "run1.avi"], out, tiny_ts, capsys)
    assert code == 0 and not [line for line in err if "warning" in line]
    video = out / "run1.mp4"
    probe = _ffmpeg_probe(video)
    assert "Video: h264" in probe and "yuv420p" in probe, probe
    data = video.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # index first: plays while loading
    assert _frame_count(video) == len(tracked) == 8


def test_without_the_packaged_ffmpeg_mp4v_is_written_with_a_warning(
    tiny_ts, sequence_video, tmp_path, capsys, monkeypatch
):
    import cathtrack.video

    monkeypatch.setattr(cathtrack.video, "h264_available", lambda: False)
    monkeypatch.setattr(cathtrack.video, "_warned", False)
    out = tmp_path / "out"
    code, err, tracked, _ = _predict([sequence_video], out, tiny_ts, capsys)
    assert code == 0
    warnings_ = [line for line in err if "warning" in line]
    assert len(warnings_) == 1  # once per run, not once per video
    assert warnings_[0].startswith("cathtrack predict: warning: ")
    assert "mp4v" in warnings_[0] and "cathtrack[video]" in warnings_[0]
    capture = cv2.VideoCapture(str(out / "run1.mp4"))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    capture.release()
    assert fourcc in ("mp4v", "FMP4")  # MPEG-4 Part 2, as FFmpeg names it when reading
    assert _frame_count(out / "run2.mp4") == 8


# ---------------------------------------------------------------- threads and half precision


def test_default_threads_leave_busy_cores_alone(monkeypatch):
    from cathtrack.cli.predict import default_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    for load, expected in ((0.0, 4), (0.6, 4), (1.2, 3), (2.6, 2), (3.9, 1), (9.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert default_threads() == expected


def test_threads_below_one_are_refused_on_one_line(tiny_ts, tmp_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((32, 32), np.uint8))
    assert main(["predict", str(image), "--out", str(tmp_path / "o"), "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "cathtrack predict: error: --threads must be >= 1, got 0"
    )


def test_half_runs_a_16_bit_network_or_says_why_not(tmp_path, capsys):
    from cathtrack.device import cpu_has_native_bfloat16

    checkpoint = CORPUS / "models" / "tiny.safetensors"
    image = tmp_path / "a.png"
    frame = np.random.default_rng(5).integers(0, 255, (64, 64), dtype=np.uint8)
    cv2.imwrite(str(image), frame)
    arguments = ["predict", str(image), "--out", str(tmp_path / "o"), "--model", str(checkpoint),
                 "--backend", "python", "--device", "cpu", "--half", "--threads", "1"]  # fmt: skip
    code = main(arguments)
    err = capsys.readouterr().err.strip()
    if not cpu_has_native_bfloat16():
        assert code == 2 and "bfloat16" in err and "\n" not in err
        return
    assert code == 0, err
    import torch

    record = json.loads((tmp_path / "o" / "results.jsonl").read_text())
    half = Tracker(checkpoint, device="cpu", backend="python", half=True)
    assert half._reference.dtype == torch.bfloat16  # noqa: SLF001 (the network's own type)
    np.testing.assert_array_equal(np.float32(record["scores"]), half(frame).scores)


# ---------------------------------------------------------------- pre-annotations


def test_coco_names_frames_by_their_path_in_the_input_folder(tiny_ts, tmp_path, capsys):
    from pycocotools.coco import COCO

    from cathtrack.data.readers import open_reader

    folder = _multi_frame_inputs(tmp_path / "in")
    (folder / "sub").mkdir()
    (folder / "a.png").rename(folder / "sub" / "a.png")
    coco_file = tmp_path / "pre" / "predictions.json"
    code, _, tracked, _ = _predict([folder], tmp_path / "out", tiny_ts, capsys,
                                   "--coco", str(coco_file), "--score-threshold", "0.05")  # fmt: skip
    assert code == 0
    coco = COCO(str(coco_file))
    names = [coco.imgs[i]["file_name"] for i in sorted(coco.imgs)]
    assert names == [
        *[f"b_stack/frame_{k:06d}.png" for k in range(3)],
        *[f"c_run/frame_{k:06d}.png" for k in range(3)],
        "sub/a.png",
    ]
    electrodes = coco.loadAnns(coco.getAnnIds(catIds=[2]))
    assert len(electrodes) == sum(len(r["electrodes"]) for r in tracked) > 0
    # the single image reads back through cathtrack's loader from its own folder
    assert main(["predict", str(folder / "sub"), "--out", str(tmp_path / "o2"), "--model",
                 str(tiny_ts), "--device", "cpu", "--score-threshold", "0.05",
                 "--coco", str(folder / "sub" / "pre.json")]) == 0  # fmt: skip
    record = json.loads((tmp_path / "o2" / "results.jsonl").read_text())
    sample = open_reader(folder / "sub" / "pre.json")[0]
    np.testing.assert_allclose(sample.electrodes, np.float32(record["electrodes"]).reshape(-1, 2),
                               atol=1e-3)  # fmt: skip


def test_coco_style_label_studio_writes_keypoints_and_polygons(tiny_ts, tmp_path, capsys):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.random.default_rng(6).integers(0, 255, (64, 64), dtype=np.uint8))
    coco_file = tmp_path / "ls.json"
    code, _, _, _ = _predict([image], tmp_path / "out", tiny_ts, capsys, "--coco", str(coco_file),
                             "--coco-style", "label-studio", "--score-threshold", "0.05")  # fmt: skip
    assert code == 0
    document = json.loads(coco_file.read_text())
    assert "label-studio" in document["info"]["description"]
    electrodes = [a for a in document["annotations"] if a["category_id"] == 2]
    assert electrodes and all("bbox" not in a for a in electrodes)
