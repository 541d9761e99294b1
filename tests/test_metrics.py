"""Metrics: hand-computed values, and every AP equal to a direct pycocotools run on written files."""

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
from cathtrack.metrics import (
    BOX_SIDE,
    MAX_DETECTIONS,
    POINT_SIGMA,
    coco_detections,
    evaluate,
    evaluation_files,
    mask_overlap,
    match_electrodes,
    oks_distance,
)
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
        "point_ap",
        "point_ap_2px",
        "box8_ap",
        "box8_ap50",
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


def test_catheter_count_accuracy_counts_frames_with_the_right_number():
    rng = np.random.default_rng(4)
    samples = [make_sample(rng, f"f{i}") for i in range(4)]
    predictions = [perfect(sample) for sample in samples]
    first, second = predictions[1].catheters  # frame 1: one catheter split in two fragments
    predictions[1].catheters = [first, (second[0], second[1][:2]), ("unknown", second[1][2:])]
    predictions[2].catheters = [first]  # frame 2: a catheter missed
    predictions[3].scores[predictions[3].catheters[1][1]] = 0.1  # frame 3: below the threshold
    predictions[3].catheters.append(("unknown", np.zeros(0, np.int64)))  # no electrodes: ignored
    result = evaluate(samples, predictions, score_threshold=0.3)
    assert result["catheter_count_accuracy"] == pytest.approx(1 / 4)
    assert evaluate(samples[:1], predictions[:1])["catheter_count_accuracy"] == 1.0


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


# --- point (OKS) and fixed-box AP -------------------------------------------------------------

THRESHOLDS = np.linspace(0.5, 0.95, 10)


def single(truth, predicted, scores=None, available=True, size=64):
    """One frame: true electrode centres and predicted centres (footprints 3 px)."""
    truth = np.asarray(truth, np.float32).reshape(-1, 2)
    predicted = np.asarray(predicted, np.float32).reshape(-1, 2)
    if scores is None:
        scores = np.linspace(0.9, 0.5, max(len(predicted), 1))[: len(predicted)]
    sample = Sample(
        image=np.zeros((size, size), np.float32),
        electrodes=truth,
        boxes=np.concatenate([truth - 1.5, np.full_like(truth, 3.0)], axis=1),
        electrode_catheter=np.ones(len(truth), np.int64),
        electrode_index=np.arange(len(truth)),
        available={"segmentation": False, "detection": available},
    )
    prediction = Prediction(
        electrodes=predicted,
        scores=np.asarray(scores, np.float32),
        sizes=np.full((len(predicted), 2), 3.0, np.float32),
    )
    return sample, prediction


def fraction_passed(value):
    """The COCO AP of one true/predicted pair of similarity ``value``: thresholds passed / 10."""
    return float(np.mean(THRESHOLDS <= value))


def test_oks_of_pycocotools_is_two_to_the_minus_half_distance_squared():
    assert oks_distance(0.5) == pytest.approx(2.0)
    assert oks_distance(0.95) == pytest.approx(0.5441, abs=1e-4)
    sample, prediction = single([[20.0, 30.0]], [[20.0, 30.0]])
    files = evaluation_files([sample], [prediction])
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = files["ground_truth_points"]
        gt.createIndex()
        distances = [0.0, 0.5, 1.0, 2.0, 3.0]
        detections = [
            {"image_id": 1, "category_id": 2, "keypoints": [20.0 + d, 30.0, 1], "score": 0.5}
            for d in distances
        ]
        evaluation = COCOeval(gt, gt.loadRes(detections), "keypoints")
        evaluation.params.kpt_oks_sigmas = np.array([POINT_SIGMA])
        evaluation.params.maxDets = [MAX_DETECTIONS]
        evaluation.evaluate()
    oks = evaluation.ious[1, 2][:, 0]
    np.testing.assert_allclose(oks, 2.0 ** -((np.array(distances) / 2) ** 2), rtol=1e-12)


@pytest.mark.parametrize("offset", [0.0, 0.5, 1.0, 1.5, 1.99, 2.01, 3.0])
@pytest.mark.parametrize("direction", [(1.0, 0.0), (0.6, -0.8)])
def test_point_ap_for_known_offsets(offset, direction):
    dx, dy = offset * np.array(direction)
    sample, prediction = single([[30.0, 30.0]], [[30.0 + dx, 30.0 + dy]])
    result = evaluate([sample], [prediction])
    oks = 2.0 ** -((offset / 2) ** 2)
    assert result["point_ap_2px"] == pytest.approx(1.0 if offset <= 2 else 0.0)
    assert result["point_ap"] == pytest.approx(fraction_passed(oks))
    # OKS 0.5:0.95 <-> 2 px ... 0.544 px
    assert result["point_ap"] == pytest.approx(
        np.mean([offset <= oks_distance(t) for t in THRESHOLDS])
    )


@pytest.mark.parametrize("offset", [0.0, 0.5, 1.0, 1.5, 2.5, 3.0])
def test_box8_ap_for_known_offsets(offset):
    sample, prediction = single([[30.0, 30.0]], [[30.0 + offset, 30.0]])
    result = evaluate([sample], [prediction])
    iou = (BOX_SIDE - offset) / (BOX_SIDE + offset)  # two 8 px boxes offset along x
    assert result["box8_ap"] == pytest.approx(fraction_passed(iou))
    assert result["box8_ap50"] == pytest.approx(1.0 if iou >= 0.5 else 0.0)


def test_box8_ap_on_a_diagonal_offset():
    # offset (a, a): IoU = (8 - a)^2 / (128 - (8 - a)^2); 0.5 at a = 1.47 (d = 2.08 px)
    for a, passes in ((1.4, True), (1.55, False)):
        sample, prediction = single([[30.0, 30.0]], [[30.0 + a, 30.0 + a]])
        result = evaluate([sample], [prediction])
        assert result["box8_ap50"] == pytest.approx(1.0 if passes else 0.0), a


@pytest.mark.parametrize("false_positive_first, expected", [(True, 0.5), (False, 1.0)])
def test_a_false_positive_lowers_every_ap_only_when_ranked_above(false_positive_first, expected):
    scores = [0.9, 0.4] if false_positive_first else [0.4, 0.9]
    sample, prediction = single([[30.0, 30.0]], [[50.0, 10.0], [30.0, 30.0]], scores)
    result = evaluate([sample], [prediction])
    for key in ("ap", "ap50", "point_ap", "point_ap_2px", "box8_ap", "box8_ap50"):
        assert result[key] == pytest.approx(expected), key


def test_aps_leave_out_frames_without_detection_labels_and_count_missed_electrodes():
    found = single([[30.0, 30.0]], [[30.0, 30.0]])
    unlabelled = single([[10.0, 10.0]], [[50.0, 50.0]], [0.99], available=False)
    result = evaluate([found[0], unlabelled[0]], [found[1], unlabelled[1]])
    for key in ("ap", "point_ap", "point_ap_2px", "box8_ap", "box8_ap50"):
        assert result[key] == pytest.approx(1.0), key
    missed = single([[30.0, 30.0]], [])  # labelled, nothing predicted: recall 1/2
    result = evaluate([found[0], missed[0]], [found[1], missed[1]])
    for key in ("ap", "point_ap", "point_ap_2px", "box8_ap", "box8_ap50"):
        assert result[key] == pytest.approx(51 / 101), key  # precision 1 up to recall 0.5
    nothing = single(np.zeros((0, 2)), [[30.0, 30.0]])
    assert np.isnan(evaluate([nothing[0]], [nothing[1]])["point_ap"])  # no electrodes: NaN
    assert evaluate([missed[0]], [missed[1]])["point_ap"] == 0.0  # no detections: 0


def test_point_ap_ranks_up_to_100_detections_per_frame_not_pycocotools_keypoint_20():
    truth = np.stack(np.meshgrid(np.arange(5, 60, 10.0), np.arange(5, 60, 10.0)), -1).reshape(-1, 2)
    sample, prediction = single(truth, truth + 0.3)  # 36 electrodes, all found
    assert evaluate([sample], [prediction])["point_ap"] == pytest.approx(1.0)
    files = evaluation_files([sample], [prediction])
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' defaults cap at 20
        gt = COCO()
        gt.dataset = files["ground_truth_points"]
        gt.createIndex()
        capped = COCOeval(gt, gt.loadRes(files["detections_points"]), "keypoints")
        capped.params.kpt_oks_sigmas = np.array([POINT_SIGMA])
        capped.evaluate()
        capped.accumulate()
        capped.summarize()
    assert capped.stats[0] < 0.6


def test_point_and_box8_ap_equal_plain_pycocotools_runs_on_the_written_files(tmp_path):
    rng = np.random.default_rng(5)
    samples = [make_sample(rng, f"frame{i}") for i in range(6)]
    samples[2].available = {"segmentation": True, "detection": False}
    predictions = [noisy(s, rng) for s in samples]  # 11 detections per frame (< 20)
    ours = evaluate(samples, predictions)
    files = evaluation_files(samples, predictions)
    for name, content in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "ground_truth_points.json"))
        points = COCOeval(gt, gt.loadRes(str(tmp_path / "detections_points.json")), "keypoints")
        points.params.kpt_oks_sigmas = np.array([POINT_SIGMA])
        points.evaluate()  # pycocotools' keypoint defaults (maxDets 20: enough here)
        points.accumulate()
        points.summarize()
        gt = COCO(str(tmp_path / "ground_truth_box8.json"))
        boxes = COCOeval(gt, gt.loadRes(str(tmp_path / "detections_box8.json")), "bbox")
        boxes.evaluate()
        boxes.accumulate()
        boxes.summarize()
    assert 0.05 < points.stats[0] < 0.95 and 0.05 < boxes.stats[0] < 0.95
    assert ours["point_ap"] == pytest.approx(points.stats[0], abs=1e-12)
    assert ours["point_ap_2px"] == pytest.approx(points.stats[1], abs=1e-12)
    assert ours["box8_ap"] == pytest.approx(boxes.stats[0], abs=1e-12)
    assert ours["box8_ap50"] == pytest.approx(boxes.stats[1], abs=1e-12)
    assert {a["image_id"] for a in files["detections_points"]} == {1, 2, 4, 5, 6}


def test_footprint_ap_with_a_dataset_index_counts_only_the_frames_scored(tmp_path):
    rng = np.random.default_rng(6)
    samples = [make_sample(rng, f"frame{i}") for i in range(6)]
    write_coco(tmp_path, samples)
    reader = CocoReader(tmp_path)
    image_ids = reader.image_ids
    predictions = [noisy(s, rng) for s in samples]
    first = evaluate(samples[:3], predictions[:3], image_ids[:3], ground_truth=reader.coco)
    built = evaluate(samples[:3], predictions[:3], image_ids[:3])
    assert first["ap"] == pytest.approx(built["ap"], abs=1e-12)
    assert first["ap50"] == pytest.approx(built["ap50"], abs=1e-12)
    truth = evaluation_files(samples[:3], predictions[:3], image_ids[:3], ground_truth=reader.coco)
    assert [i["id"] for i in truth["ground_truth_footprint"]["images"]] == image_ids[:3]
