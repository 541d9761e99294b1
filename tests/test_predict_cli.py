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
