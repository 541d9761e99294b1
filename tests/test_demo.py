"""`cathtrack demo` end to end on a tiny sequence: files, frame counts, and printed accuracy."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as rle

from cathtrack.cli import main
from cathtrack.data.synth import preset, render_sequence
from cathtrack.metrics import evaluate
from cathtrack.prediction import Prediction

FRAMES = 4
SIZE = 128
SEED = 2


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_out")
    printed = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
        arguments = ["--out", str(out), "--frames", str(FRAMES), "--size", str(SIZE)]
        code = main(["demo", *arguments, "--seed", str(SEED)])
    return code, out, printed


def test_writes_video_strip_and_results(demo):
    code, out, _ = demo
    assert code == 0
    video = cv2.VideoCapture(str(out / "overlay.mp4"))
    shapes = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        shapes.append(frame.shape)
    video.release()
    scale = 512 // SIZE
    assert shapes == [(SIZE * scale, SIZE * scale, 3)] * FRAMES
    strip = cv2.imread(str(out / "strip.png"))
    assert strip.shape == (2 * SIZE * scale, FRAMES * SIZE * scale, 3)  # truth over prediction
    assert len((out / "results.jsonl").read_text().splitlines()) == FRAMES


def _prediction(record: dict) -> Prediction:
    electrodes = np.float32(record["electrodes"]).reshape(-1, 2)
    return Prediction(
        electrodes=electrodes,
        scores=np.float32(record["scores"]),
        sizes=np.float32(record["sizes"]).reshape(-1, 2),
        mask=rle.decode({**record["mask"], "counts": record["mask"]["counts"].encode()}).astype(
            np.float32
        ),
        catheters=[(c["type"], np.int64(c["electrodes"])) for c in record["catheters"]],
        centerlines=[np.float32(c["centerline"]) for c in record["catheters"]],
    )


def test_printed_accuracy_equals_metrics_on_the_written_results(demo):
    _, out, printed = demo
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    samples = render_sequence(preset("clinical", size=SIZE), SEED, FRAMES)
    metrics = evaluate(samples, [_prediction(r) for r in records])
    assert metrics["electrodes_true"] > 0
    expected = {
        "F1 @2px": metrics["f1_2px"],
        "MAE px": metrics["mae_px"],
        "mean J": metrics["mean_j"],
        "type accuracy": metrics["type_accuracy"],
    }
    shown = dict(line.split(": ", 1) for line in printed if line.split(": ", 1)[0] in expected)
    assert shown == {name: f"{value:.4f}" for name, value in expected.items()}
    assert any("ResNet34" in line and "MODEL_CARD" in line for line in printed)
    assert any(line.startswith("frames/s end to end") for line in printed)


@pytest.mark.parametrize("arguments", [["--size", "100"], ["--frames", "0"], ["--preset", "x"]])
def test_bad_arguments_are_one_line_and_exit_2(arguments, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), *arguments]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
