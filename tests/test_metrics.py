"""Metrics: hand-computed values, and AP equal to a direct pycocotools run on written files."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cathtrack.data.coco import CocoReader, write_coco
from cathtrack.data.sample import CatheterLabel, Sample
from cathtrack.metrics import coco_detections, evaluate, mask_overlap, match_electrodes
from cathtrack.prediction import Prediction


def make_sample(rng, name, n_catheters=2, size=64):
    electrodes, owners, indices, catheters = [], [], [], []
    mask = np.zeros((size, size), np.uint8)
    for c in range(n_catheters):
        row = 12 + 20 * c
        mask[row - 1 : row + 2, 4:60] = 1
        catheters.append(
            CatheterLabel(
                id=c + 1,
                type=["cs_decapolar", "ablation"][c % 2],
                centerline=np.array([[59, row], [4, row]], np.float32),
            )
        )
        for k in range(4):
            electrodes.append([10 + 12 * k + rng.uniform(-0.5, 0.5), row + rng.uniform(-0.3, 0.3)])
            owners.append(c + 1)
            indices.append(k)
    xy = np.array(electrodes, np.float32)
    boxes = np.concatenate([xy - 1.5, np.full_like(xy, 3.0)], axis=1).astype(np.float32)
    image = np.where(mask, 0.3, 0.7).astype(np.float32)
    return Sample(
        image=image,
        mask=mask,
        electrodes=xy,
        boxes=boxes,
        electrode_catheter=np.array(owners, np.int64),
        electrode_index=np.array(indices, np.int64),
        catheters=catheters,
        name=name,
    )


def perfect(sample):
    groups = [np.nonzero(sample.electrode_catheter == c.id)[0] for c in sample.catheters]
    return Prediction(
        electrodes=sample.electrodes.copy(),
        scores=np.linspace(0.9, 0.8, len(sample.electrodes)).astype(np.float32),
        sizes=sample.boxes[:, 2:].copy(),
        mask=sample.mask.astype(np.float32),
        catheters=[(c.type, g) for c, g in zip(sample.catheters, groups, strict=True)],
    )


def noisy(sample, rng):
    prediction = perfect(sample)
    n = len(prediction.electrodes)
    prediction.electrodes = prediction.electrodes + rng.normal(0, 0.7, (n, 2)).astype(np.float32)
    prediction.sizes = prediction.sizes * rng.uniform(0.7, 1.4, (n, 2)).astype(np.float32)
    prediction.scores = rng.uniform(0.2, 1.0, n).astype(np.float32)
    extra = rng.uniform(0, 63, (3, 2)).astype(np.float32)  # false positives
    prediction.electrodes = np.concatenate([prediction.electrodes, extra])
    prediction.sizes = np.concatenate([prediction.sizes, np.full((3, 2), 3.0, np.float32)])
    prediction.scores = np.concatenate(
        [prediction.scores, rng.uniform(0.1, 0.9, 3).astype(np.float32)]
    )
    return prediction


def test_perfect_predictions_score_one():
    rng = np.random.default_rng(0)
    samples = [make_sample(rng, f"f{i}") for i in range(3)]
    result = evaluate(samples, [perfect(s) for s in samples])
    for key in (
        "ap",
        "ap50",
        "precision_2px",
        "recall_2px",
        "f1_2px",
        "mean_j",
        "dice",
        "type_accuracy",
    ):
        assert result[key] == pytest.approx(1.0), key
    assert result["mae_px"] == pytest.approx(0.0, abs=1e-6)


def test_ap_equals_a_direct_pycocotools_run_on_the_written_files(tmp_path):
    rng = np.random.default_rng(1)
    samples = [make_sample(rng, f"frame{i}") for i in range(6)]
    write_coco(tmp_path, samples)
    reader = CocoReader(tmp_path)
    image_ids = [image["id"] for image in reader.coco.dataset["images"]]
    predictions = [noisy(s, rng) for s in samples]
    ours = evaluate(samples, predictions, image_ids, ground_truth=reader.coco)
    ours_in_memory = evaluate(samples, predictions, image_ids)
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps(coco_detections(predictions, image_ids)))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "annotations.json"))
        direct = COCOeval(gt, gt.loadRes(str(detections)), "bbox")
        direct.params.catIds = [2]
        direct.evaluate()
        direct.accumulate()
        direct.summarize()
    assert 0.05 < direct.stats[0] < 0.95  # a real, non-trivial AP
    assert ours["ap"] == pytest.approx(direct.stats[0], abs=1e-12)
    assert ours["ap50"] == pytest.approx(direct.stats[1], abs=1e-12)
    assert ours_in_memory["ap"] == pytest.approx(direct.stats[0], abs=1e-12)


def test_distance_metrics_on_hand_computed_values():
    sample = Sample(
        image=np.zeros((64, 64), np.float32),
        electrodes=np.array([[1, 0], [10, 1.5]], np.float32),
        boxes=np.array([[0, -1, 2, 2], [9, 0.5, 2, 2]], np.float32),
        electrode_catheter=np.array([1, 1]),
        electrode_index=np.array([0, 1]),
        available={"segmentation": False, "detection": True},
    )
    prediction = Prediction(
        electrodes=np.array([[0, 0], [10, 0], [50, 50], [30, 30]], np.float32),
        scores=np.array([0.9, 0.8, 0.7, 0.1], np.float32),  # the last is below the threshold
        sizes=np.full((4, 2), 2.0, np.float32),
    )
    result = evaluate([sample], [prediction], score_threshold=0.3)
    assert result["precision_2px"] == pytest.approx(2 / 3)
    assert result["recall_2px"] == pytest.approx(1.0)
    assert result["f1_2px"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert result["mae_px"] == pytest.approx((1.0 + 1.5) / 2)
    assert np.isnan(result["mean_j"])  # no segmentation labels: no segmentation metric


def test_greedy_matching_serves_the_higher_score_first():
    truth = np.array([[0.0, 0.0]])
    predicted = np.array([[1.5, 0.0], [0.2, 0.0]])
    pairs = match_electrodes(predicted, np.array([0.9, 0.5]), truth, radius=2.0)
    assert pairs == [(0, 0, 1.5)]


def test_mask_overlap_hand_computed():
    predicted = np.zeros((4, 4), bool)
    predicted[0, :4] = True  # 4 px
    truth = np.zeros((4, 4), bool)
    truth[0, 1:4] = truth[1, 1:4] = True  # 6 px, 3 shared
    iou, dice = mask_overlap(predicted, truth)
    assert iou == pytest.approx(3 / 7) and dice == pytest.approx(6 / 10)
    assert mask_overlap(np.zeros((2, 2)), np.zeros((2, 2))) == (1.0, 1.0)


def test_type_accuracy_counts_each_target_catheter():
    rng = np.random.default_rng(2)
    sample = make_sample(rng, "f")
    prediction = perfect(sample)
    prediction.catheters[1] = ("quadripolar", prediction.catheters[1][1])  # wrong type
    result = evaluate([sample], [prediction])
    assert result["type_accuracy"] == pytest.approx(0.5)
    assert result["type_accuracy_by_type"] == {"ablation": 0.0, "cs_decapolar": 1.0}


def test_unavailable_tasks_are_left_out():
    rng = np.random.default_rng(3)
    labelled, unlabelled = make_sample(rng, "a"), make_sample(rng, "b")
    unlabelled.available = {"segmentation": False, "detection": False}
    empty = Prediction(
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.float32),
        np.zeros((0, 2), np.float32),
        np.zeros((64, 64)),
    )
    result = evaluate([labelled, unlabelled], [perfect(labelled), empty])
    assert result["recall_2px"] == pytest.approx(1.0) and result["mean_j"] == pytest.approx(1.0)
    assert result["electrodes_true"] == len(labelled.electrodes)


def test_mismatched_lengths_are_refused():
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="predictions"):
        evaluate([make_sample(rng, "a")], [])
