"""`cathtrack eval` end to end on a small synthetic COCO set written by `cathtrack synth`."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cathtrack import device
from cathtrack.checkpoint import save_model
from cathtrack.cli import main
from cathtrack.cli.eval import CONTRACT_KEYS, format_table
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
    # Every AP from the files written beside detections.json with plain pycocotools, as in
    # docs/metrics.md, equals what eval printed and wrote.
    assert_recomputed(metrics, printed, root)


def assert_recomputed(metrics, printed, folder):
    for key, value in recompute_aps(folder, sigma=metrics["point_oks_sigma"]).items():
        assert metrics[key] == pytest.approx(max(value, 0.0), abs=1e-12), key
        row = next(line for line in printed.splitlines() if line.startswith(TABLE_ROWS[key]))
        assert row.split()[-1] == f"{max(value, 0.0):.4f}", key


def test_eval_files_reproduce_every_ap_with_plain_pycocotools(
    dataset_and_model, capsys, monkeypatch, tmp_path
):
    """The untrained model's APs are mostly 0: here the pipeline returns the labels, moved and
    with false positives, so every AP is non-trivial; --limit leaves frames out."""
    import cathtrack.pipeline
    from cathtrack.data.coco import CocoReader
    from cathtrack.prediction import Prediction

    root = dataset_and_model
    reader = CocoReader(root / "data")
    frames = iter(reader[i] for i in range(len(reader)))
    rng = np.random.default_rng(7)

    def labels_moved(model, images, size, settings, device):
        predictions = []
        for image in images:
            sample = next(frames)
            n = len(sample.electrodes)
            moved = sample.electrodes + rng.normal(0, 0.5, (n, 2))
            sizes = sample.boxes[:, 2:] * rng.uniform(0.7, 1.4, (n, 2))
            extra = rng.uniform(0, min(image.shape) - 1, (4, 2))  # false positives
            predictions.append(
                Prediction(
                    electrodes=np.concatenate([moved, extra]).astype(np.float32),
                    scores=rng.uniform(0.05, 1.0, n + 4).astype(np.float32),
                    sizes=np.concatenate([sizes, np.full((4, 2), 3.0)]).astype(np.float32),
                    mask=np.zeros(image.shape, np.float32),
                )
            )
        return predictions

    monkeypatch.setattr(cathtrack.pipeline, "predict", labels_moved)
    out_json, detections = tmp_path / "eval.json", tmp_path / "detections.json"
    code = main(
        ["eval", str(root / "run"), str(root / "data"), "--json", str(out_json),
         "--detections", str(detections), "--device", "cpu", "--limit", "4"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    metrics = json.loads(out_json.read_text())
    for key in TABLE_ROWS:
        assert 0.01 < metrics[key] < 0.98, key
    assert metrics["point_ap_2px"] > 3 * metrics["ap50"]  # footprint IoU punishes 1 px offsets
    truth = json.loads((tmp_path / "ground_truth_points.json").read_text())
    assert [image["id"] for image in truth["images"]] == reader.image_ids[:4]
    assert_recomputed(metrics, printed, tmp_path)


TABLE_ROWS = {  # metric key -> its row in the printed table
    "ap": "electrode AP@[.5:.95]",
    "ap50": "electrode AP50",
    "point_ap": "point AP OKS[.5:.95]",
    "point_ap_2px": "point AP @2px (OKS .5)",
    "box8_ap": "8px-box AP@[.5:.95]",
    "box8_ap50": "8px-box AP50",
}


def recompute_aps(folder, sigma):
    """The recipe of docs/metrics.md on the files `--detections folder/detections.json` wrote."""

    def run(kind, iou_type, truth):
        gt = COCO(str(folder / f"ground_truth_{truth}.json"))
        evaluation = COCOeval(gt, gt.loadRes(str(folder / f"detections{kind}.json")), iou_type)
        evaluation.params.catIds = [2]
        if iou_type == "keypoints":
            evaluation.params.kpt_oks_sigmas = np.array([sigma])
            evaluation.params.maxDets = [100]
        evaluation.evaluate()
        evaluation.accumulate()
        return evaluation

    with contextlib.redirect_stdout(io.StringIO()):
        footprint = run("", "bbox", "footprint")
        footprint.summarize()
        box8 = run("_box8", "bbox", "box8")
        box8.summarize()
        points = run("_points", "keypoints", "points")
    precision = points.eval["precision"][:, :, 0, 0, 0]  # [OKS threshold, recall] at "all", 100
    return {
        "ap": footprint.stats[0],
        "ap50": footprint.stats[1],
        "point_ap": precision[precision > -1].mean(),
        "point_ap_2px": precision[0][precision[0] > -1].mean(),
        "box8_ap": box8.stats[0],
        "box8_ap50": box8.stats[1],
    }


def test_eval_table_shows_every_ap():
    metrics = dict.fromkeys(CONTRACT_KEYS, 0.5) | {"mae_mm": float("nan")}
    table = format_table(metrics | {"type_accuracy_by_type": {}})
    for row in TABLE_ROWS.values():
        assert row in table


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["missing_model", "data"], "no model found"),
        (["run", "missing_data"], "no such file or folder"),
        (["run", "data", "--device", "tpu"], "--device"),
        (["run", "data", "--batch", "0"], "--batch"),
        (["run", "data", "--score-threshold", "2"], "--score-threshold must be in"),
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
