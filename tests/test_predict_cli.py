"""`cathtrack predict` on a folder of mixed inputs: overlays, results.jsonl, errors, exit codes."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest

from cathtrack.cli import main
from cathtrack.data.synth import preset, render_sequence
from cathtrack.tracker import Tracker

FRAME_SIZE = 128
VIDEO_FRAMES = 3


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
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return code, out, stderr.getvalue(), lines


def test_readable_frames_get_results_and_overlays(prediction):
    code, out, _, lines = prediction
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


def test_corrupt_file_is_reported_on_one_line(prediction):
    _, _, stderr, _ = prediction
    mentions = [line for line in stderr.replace("\r", "\n").splitlines() if "d_broken.png" in line]
    assert len(mentions) == 1
    assert "not a readable image" in mentions[0]


def test_results_equal_a_direct_tracker_call(prediction, inputs, tracker):
    _, _, _, lines = prediction
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
