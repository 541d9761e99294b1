"""`cathtrack eval` end to end on a small synthetic COCO set written by `cathtrack synth`."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cathtrack import device
from cathtrack.checkpoint import save_model
from cathtrack.cli import main
from cathtrack.cli.eval import CONTRACT_KEYS
from cathtrack.model import ModelConfig, build_model


@pytest.fixture(scope="module")
def dataset_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    assert (
        main(
            [
                "synth",
                "--out",
                str(root / "data"),
                "--n",
                "6",
                "--size",
                "96",
                "--seed",
                "11",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    model = build_model(ModelConfig(backbone="resnet18", width=0.25))
    save_model(root / "run" / "checkpoints" / "best", model, input_size=64)
    return root


def test_eval_writes_the_contract_keys_and_recomputable_detections(dataset_and_model, capsys):
    root = dataset_and_model
    out_json, detections = root / "eval.json", root / "detections.json"
    code = main(
        ["eval", str(root / "run"), str(root / "data"), "--json", str(out_json),
         "--detections", str(detections), "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "electrode AP@[.5:.95]" in printed and "mean J" in printed
    metrics = json.loads(out_json.read_text())
    for key in CONTRACT_KEYS:
        assert key in metrics
    assert metrics["fps"] > 0 and 0 <= metrics["mean_j"] <= 1
    assert metrics["input_size"] == 64 and metrics["frames"] == 6
    # The detections are in the dataset's own image ids and pixels: pycocotools on the
    # dataset's annotation file gives the same AP.
    records = json.loads(detections.read_text())
    assert records and {"image_id", "category_id", "bbox", "score"} <= set(records[0])
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "data" / "annotations.json"))
        direct = COCOeval(gt, gt.loadRes(str(detections)), "bbox")
        direct.params.catIds = [2]
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
    assert metrics["ap"] == pytest.approx(max(direct.stats[0], 0.0), abs=1e-12)
    assert metrics["ap50"] == pytest.approx(max(direct.stats[1], 0.0), abs=1e-12)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing_model", "data"], "no model found"),
        (["run", "missing_data"], "no such file or folder"),
        (["run", "data", "--device", "tpu"], "--device"),
        (["run", "data", "--batch", "0"], "--batch"),
    ],
)
def test_eval_bad_input_gives_one_clear_line(dataset_and_model, capsys, arguments, message):
    root = dataset_and_model
    resolved = [
        str(root / a) if a in ("run", "data", "missing_model", "missing_data") else a
        for a in arguments
    ]
    assert main(["eval", *resolved]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_eval_half_runs_a_bfloat16_network_on_the_cpu_or_says_why_not(
    dataset_and_model, capsys, monkeypatch
):
    root = dataset_and_model
    arguments = ["eval", str(root / "run"), str(root / "data"), "--device", "cpu", "--half"]
    if device.cpu_has_native_bfloat16():
        full, half = root / "full.json", root / "half.json"
        assert main(arguments[:-1] + ["--json", str(full)]) == 0
        assert main(arguments + ["--json", str(half)]) == 0
        full_metrics, half_metrics = json.loads(full.read_text()), json.loads(half.read_text())
        assert (full_metrics["dtype"], half_metrics["dtype"]) == ("float32", "bfloat16")
        assert half_metrics["dice"] == pytest.approx(full_metrics["dice"], abs=0.02)
    capsys.readouterr()
    monkeypatch.setattr(device, "cpu_has_native_bfloat16", lambda: False)
    assert main(arguments) == 2
    assert "native bfloat16" in capsys.readouterr().err
