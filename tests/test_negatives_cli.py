"""`cathtrack negatives`: false-positive figures on real frames with vessel masks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from runtime_support import tiny_checkpoint

import cathtrack
from cathtrack.cli import main
from cathtrack.cli.negatives import frame_figures, summarise
from cathtrack.tracker import Result


def _result(mask: np.ndarray, electrodes: int) -> Result:
    return Result(
        mask=mask,
        electrodes=np.zeros((electrodes, 2), np.float32),
        scores=np.ones(electrodes, np.float32),
        sizes=np.ones((electrodes, 2), np.float32),
    )


def test_figures_of_a_crafted_frame():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:4, 0:10] = 255  # 20 pixels marked
    vessels = np.zeros((10, 20), bool)
    vessels[3:8, 5:9] = True  # 20 vessel pixels, 4 of them marked (row 3, columns 5..8)
    figures = frame_figures(_result(mask, 3), vessels)
    assert figures["vessel_marked"] == pytest.approx(4 / 20)
    assert figures["frame_marked"] == pytest.approx(20 / 200)
    assert figures["electrodes"] == 3 and figures["catheters"] == 0
    empty = frame_figures(_result(np.zeros((10, 20), np.uint8), 0), np.zeros((10, 20), bool))
    assert empty["vessel_marked"] == 0.0  # no vessels: nothing to mark, no division by zero
    summary = summarise([figures, empty])
    assert summary["vessel_marked_pooled"] == pytest.approx(4 / 20)
    assert summary["electrodes_mean"] == pytest.approx(1.5)
    assert summary["frames_with_electrodes"] == pytest.approx(0.5)


def test_the_command_reports_what_the_tracker_marks_on_the_angiograms(
    tmp_path_factory, angiogram_dir, tmp_path
):
    model = tiny_checkpoint(tmp_path_factory)
    out = tmp_path / "negatives.json"
    arguments = ["negatives", str(angiogram_dir / "testing"), "--model", str(model)]
    arguments += ["--backend", "python", "--device", "cpu", "--limit", "3"]
    assert main(arguments + ["--json", str(out), "--overlays", str(tmp_path / "overlays")]) == 0
    document = json.loads(out.read_text())
    assert document["summary"]["frames"] == 3 and len(document["frames"]) == 3
    tracker = cathtrack.Tracker(model, device="cpu", backend="python")
    for row in document["frames"]:
        stem = row["image"].rsplit(".", 1)[0]
        frame = cv2.imread(str(angiogram_dir / "testing" / row["image"]), cv2.IMREAD_GRAYSCALE)
        vessels = cv2.imread(str(angiogram_dir / "testing" / f"{stem}_gt.png"), 0) > 127
        result = tracker(frame)
        marked = result.binary
        assert row["vessel_marked"] == pytest.approx((marked & vessels).sum() / vessels.sum())
        assert row["frame_marked"] == pytest.approx(marked.mean())
        assert row["electrodes"] == len(result.electrodes)
        assert (tmp_path / "overlays" / f"{stem}.png").is_file()


def test_bad_arguments_are_one_line(tmp_path, capsys):
    assert main(["negatives", str(tmp_path / "absent")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["negatives", str(tmp_path), "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err
