"""Accuracy metrics of the paper, computed the same way for every model and strategy.

- Electrode AP@[.5:.95] and AP50: COCO bounding-box evaluation by pycocotools (not a
  hand-written AP) on electrode boxes = predicted centre +- predicted size / 2, category 2
  ("electrode") only. Anyone can recompute them from the files ``cathtrack eval`` writes:
  ``COCOeval(COCO(annotations.json), COCO.loadRes(detections.json), "bbox")`` with
  ``params.catIds = [2]``.
- Distance-matched precision / recall / F1 at ``radius`` px (2 px by default) and the mean
  absolute localisation error (px, and mm where the pixel spacing is known) of matched pairs.
  Matching is greedy by descending score: each prediction takes the nearest still unmatched
  ground-truth electrode within the radius.
- Segmentation mean J (Jaccard, IoU) and Dice, averaged over images (an image where both masks
  are empty scores 1).
- Catheter type accuracy: a ground-truth target catheter counts as correct when the predicted
  catheter holding most of its matched electrodes has its type; a catheter none of whose
  electrodes was matched counts as wrong.

Only images whose labels for a task exist (``Sample.available``, the paper's delta) enter that
task's metrics.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cathtrack.data.sample import Sample
from cathtrack.prediction import Prediction

ELECTRODE_CATEGORY = 2


def coco_detections(predictions: Sequence[Prediction], image_ids: Sequence[int]) -> list[dict]:
    """Electrode detections in the COCO results format (bbox [x, y, w, h], score)."""
    results = []
    for image_id, prediction in zip(image_ids, predictions, strict=True):
        for (x, y), (w, h), score in zip(
            prediction.electrodes, prediction.sizes, prediction.scores, strict=True
        ):
            box = [float(x - w / 2), float(y - h / 2), float(w), float(h)]
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": ELECTRODE_CATEGORY,
                    "bbox": [round(v, 4) for v in box],
                    "score": round(float(score), 6),
                }
            )
    return results


def coco_ground_truth(samples: Sequence[Sample], image_ids: Sequence[int]) -> dict:
    """Electrode ground truth of the samples whose detection labels exist, as a COCO dict."""
    images, annotations = [], []
    for image_id, sample in zip(image_ids, samples, strict=True):
        if not sample.available.get("detection", False):
            continue
        height, width = sample.image.shape[:2]
        images.append({"id": int(image_id), "width": int(width), "height": int(height)})
        for box in sample.boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": int(image_id),
                    "category_id": ELECTRODE_CATEGORY,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": ELECTRODE_CATEGORY, "name": "electrode"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def electrode_ap(ground_truth: COCO | dict, detections: list[dict]) -> tuple[float, float]:
    """(AP@[.5:.95], AP50) of the electrode category by pycocotools; NaN without ground truth."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        if isinstance(ground_truth, dict):
            gt = COCO()
            gt.dataset = ground_truth
            gt.createIndex()
        else:
            gt = ground_truth
        gt_ids = set(gt.getAnnIds(catIds=[ELECTRODE_CATEGORY]))
        if not gt_ids:
            return float("nan"), float("nan")
        if not detections:
            return 0.0, 0.0
        evaluation = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluation.params.catIds = [ELECTRODE_CATEGORY]
        evaluation.params.imgIds = sorted({d["image_id"] for d in detections} | set(gt.getImgIds()))
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


def match_electrodes(
    predicted: np.ndarray, scores: np.ndarray, truth: np.ndarray, radius: float
) -> list[tuple[int, int, float]]:
    """Greedy matching by descending score within ``radius`` px.

    Returns (prediction index, truth index, distance) per matched pair.
    """
    if len(predicted) == 0 or len(truth) == 0:
        return []
    distance = np.linalg.norm(predicted[:, None, :] - truth[None, :, :], axis=2)
    taken = np.zeros(len(truth), bool)
    pairs = []
    for p in np.argsort(-scores, kind="stable"):
        candidates = np.where(~taken & (distance[p] <= radius))[0]
        if len(candidates):
            t = candidates[np.argmin(distance[p, candidates])]
            taken[t] = True
            pairs.append((int(p), int(t), float(distance[p, t])))
    return pairs


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def evaluate(
    samples: Sequence[Sample],
    predictions: Sequence[Prediction],
    image_ids: Sequence[int] | None = None,
    *,
    ground_truth: COCO | dict | None = None,
    radius: float = 2.0,
    score_threshold: float = 0.3,
    mask_threshold: float = 0.5,
) -> dict:
    """All metrics for a set of frames.

    Args:
        samples: ground truth, one per frame.
        predictions: one per frame, same order.
        image_ids: COCO image ids of the frames (default 1..N); give the dataset's ids so the
            detections can be checked against its annotation file.
        ground_truth: a COCO index of the electrode ground truth (e.g. ``CocoReader.coco``);
            built from the samples when None.
        radius: matching distance in pixels for precision/recall/F1/MAE.
        score_threshold: predictions below it are ignored for the distance metrics (AP uses
            every prediction, ranked by score).
        mask_threshold: probability above which a pixel is catheter.

    Returns:
        dict with ``ap``, ``ap50``, ``precision_2px``, ``recall_2px``, ``f1_2px``, ``mae_px``,
        ``mae_mm`` (NaN without pixel spacing), ``mean_j``, ``dice``, ``type_accuracy``,
        ``type_accuracy_by_type`` and the counts behind them. (The ``_2px`` names are the
        contract's; they hold the values at ``radius``.)
    """
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    ids = list(range(1, len(samples) + 1)) if image_ids is None else list(image_ids)
    detection_frames = [i for i, s in enumerate(samples) if s.available.get("detection", False)]
    truth = ground_truth if ground_truth is not None else coco_ground_truth(samples, ids)
    ap, ap50 = electrode_ap(
        truth,
        coco_detections(
            [predictions[i] for i in detection_frames], [ids[i] for i in detection_frames]
        ),
    )

    matched = predicted_count = truth_count = 0
    errors_px, errors_mm = [], []
    type_hits: Counter = Counter()
    type_totals: Counter = Counter()
    for i in detection_frames:
        sample, prediction = samples[i], predictions[i]
        keep = prediction.scores >= score_threshold
        kept_index = np.nonzero(keep)[0]
        pairs = match_electrodes(
            prediction.electrodes[keep], prediction.scores[keep], sample.electrodes, radius
        )
        matched += len(pairs)
        predicted_count += int(keep.sum())
        truth_count += len(sample.electrodes)
        errors_px += [d for _, _, d in pairs]
        if sample.pixel_spacing_mm:
            errors_mm += [d * sample.pixel_spacing_mm for _, _, d in pairs]
        _score_types(sample, prediction, kept_index, pairs, type_hits, type_totals)

    intersections_over_union, dices = [], []
    for sample, prediction in zip(samples, predictions, strict=True):
        if not sample.available.get("segmentation", False) or sample.mask is None:
            continue
        if prediction.mask is None:
            raise ValueError("a prediction has no mask but the frame has segmentation labels")
        iou, dice = mask_overlap(prediction.mask > mask_threshold, sample.mask > 0)
        intersections_over_union.append(iou)
        dices.append(dice)

    precision = _ratio(matched, predicted_count)
    recall = _ratio(matched, truth_count)
    return {
        "ap": ap,
        "ap50": ap50,
        "precision_2px": precision,
        "recall_2px": recall,
        "f1_2px": _ratio(2 * precision * recall, precision + recall) if matched else 0.0,
        "mae_px": float(np.mean(errors_px)) if errors_px else float("nan"),
        "mae_mm": float(np.mean(errors_mm)) if errors_mm else float("nan"),
        "mean_j": float(np.mean(intersections_over_union)) if dices else float("nan"),
        "dice": float(np.mean(dices)) if dices else float("nan"),
        "type_accuracy": _ratio(sum(type_hits.values()), sum(type_totals.values())),
        "type_accuracy_by_type": {t: type_hits[t] / n for t, n in sorted(type_totals.items())},
        "frames": len(samples),
        "electrodes_true": truth_count,
        "electrodes_predicted": predicted_count,
        "electrodes_matched": matched,
    }


def mask_overlap(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(IoU, Dice) of two binary masks; 1.0 each when both are empty."""
    if predicted.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {predicted.shape} vs {truth.shape}")
    intersection = float(np.logical_and(predicted, truth).sum())
    total = float(predicted.sum() + truth.sum())
    if total == 0:
        return 1.0, 1.0
    return intersection / (total - intersection), 2 * intersection / total


def _score_types(
    sample: Sample,
    prediction: Prediction,
    kept_index: np.ndarray,
    pairs: list[tuple[int, int, float]],
    hits: Counter,
    totals: Counter,
) -> None:
    """Adds this frame's catheter type decisions to the running counts."""
    owner_of_prediction = {}
    for catheter_index, (_type, members) in enumerate(prediction.catheters):
        for member in np.asarray(members, np.int64):
            owner_of_prediction[int(member)] = catheter_index
    votes: dict[int, Counter] = defaultdict(Counter)
    for p, t, _ in pairs:
        owner = owner_of_prediction.get(int(kept_index[p]))
        if owner is not None:
            votes[int(sample.electrode_catheter[t])][owner] += 1
    for catheter in sample.catheters:
        if not catheter.target or not np.any(sample.electrode_catheter == catheter.id):
            continue
        totals[catheter.type] += 1
        if votes[catheter.id]:
            best = votes[catheter.id].most_common(1)[0][0]
            hits[catheter.type] += prediction.catheters[best][0] == catheter.type
