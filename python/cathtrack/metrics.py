"""Accuracy metrics of the paper, computed the same way for every model and strategy.

Electrode detection is scored three ways, every AP by pycocotools (no hand-written AP), each
recomputable by anyone from the files ``cathtrack eval --detections`` writes (docs/metrics.md):

- Footprint-box AP@[.5:.95] and AP50 (``ap``, ``ap50``): COCO bbox evaluation on electrode
  boxes = predicted centre +- predicted size / 2 against the labelled footprint boxes. Electrodes
  are 2-4 px, where a 1 px offset or size error takes the IoU to about 0.5 or below: this AP
  stays near zero even for detections a user would call right.
- Point AP (``point_ap`` over OKS .50:.95, ``point_ap_2px`` at OKS 0.5): each electrode a
  one-keypoint object scored by COCO's OKS with every ground-truth ``area`` =
  :data:`POINT_AREA` and the keypoint sigma :data:`POINT_SIGMA`, chosen so that
  OKS = 2 ** -(d / 2) ** 2 for a distance d in pixels of the evaluated frame: OKS 0.5 <-> d = 2 px,
  OKS 0.95 <-> d = 0.544 px. At most :data:`MAX_DETECTIONS` detections per image, as the bbox AP
  (pycocotools' keypoint default is 20 and a frame may hold 40 electrodes), so the AP is read
  from the accumulated precision table (:func:`summarized_ap`), the average ``summarize`` takes.
- Fixed-box AP@[.5:.95] and AP50 (``box8_ap``, ``box8_ap50``): COCO bbox evaluation on boxes of
  side :data:`BOX_SIDE` (8 px of the evaluated frame) around the predicted and true centres;
  two such boxes offset by d along one axis have IoU (8 - d) / (8 + d), 0.5 at d = 8/3 px.
- Distance-matched precision / recall / F1 at ``radius`` px (2 px by default) and the mean
  absolute localisation error (px, and mm where the pixel spacing is known) of matched pairs.
  Matching is greedy by descending score: each prediction takes the nearest still unmatched
  ground-truth electrode within the radius.
- Segmentation mean J (Jaccard, IoU) and Dice, averaged over images (an image where both masks
  are empty scores 1).
- Catheter type accuracy: a ground-truth target catheter counts as correct when the predicted
  catheter holding most of its matched electrodes has its type; a catheter none of whose
  electrodes was matched counts as wrong.

Every distance is in pixels of the frame as evaluated (its own resolution), never rescaled.
Only images whose labels for a task exist (``Sample.available``, the paper's delta) enter that
task's metrics.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cathtrack.data.sample import Sample
from cathtrack.prediction import Prediction

ELECTRODE_CATEGORY = 2

MAX_DETECTIONS = 100
"""Detections per image that every AP ranks (COCO's bbox ``maxDets``; set for keypoints too)."""

POINT_MATCH_PX = 2.0
"""Distance (pixels of the evaluated frame) at which OKS = 0.5, the threshold of ``point_ap_2px``."""

POINT_AREA = 1.0
"""``area`` of every ground-truth point: the object scale s = 1 px, so OKS depends on d alone."""

POINT_SIGMA = POINT_MATCH_PX / math.sqrt(8.0 * math.log(2.0) * POINT_AREA)
"""Keypoint sigma, 1 / sqrt(2 ln 2) = 0.8493: pycocotools' OKS
exp(-d^2 / (2σ)^2 / (area + eps) / 2) is then 2 ** -(d / 2) ** 2, 0.5 at d = 2 px."""

BOX_SIDE = 8.0
"""Side (pixels of the evaluated frame) of the fixed boxes of ``box8_ap`` / ``box8_ap50``."""


def oks_distance(threshold: float) -> float:
    """The distance in pixels at which the electrode OKS equals ``threshold`` (2 px at 0.5)."""
    return math.sqrt(-math.log(threshold) * 8.0 * POINT_SIGMA**2 * POINT_AREA)


def _categories(points: bool = False) -> list[dict]:
    """The electrode category (with its one keypoint name for the point ground truth)."""
    category = {"id": ELECTRODE_CATEGORY, "name": "electrode"}
    return [category | {"keypoints": ["center"], "skeleton": []} if points else category]


def _detection_frames(samples: Sequence[Sample]) -> list[int]:
    return [i for i, s in enumerate(samples) if s.available.get("detection", False)]


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


def point_detections(predictions: Sequence[Prediction], image_ids: Sequence[int]) -> list[dict]:
    """Electrode centres in the COCO keypoint results format (``keypoints`` [x, y, 1], score)."""
    results = []
    for image_id, prediction in zip(image_ids, predictions, strict=True):
        for (x, y), score in zip(prediction.electrodes, prediction.scores, strict=True):
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": ELECTRODE_CATEGORY,
                    "keypoints": [round(float(x), 4), round(float(y), 4), 1],
                    "score": round(float(score), 6),
                }
            )
    return results


def box_detections(
    predictions: Sequence[Prediction], image_ids: Sequence[int], side: float = BOX_SIDE
) -> list[dict]:
    """Boxes of ``side`` px centred on the predicted electrodes, COCO results format."""
    results = []
    for image_id, prediction in zip(image_ids, predictions, strict=True):
        for (x, y), score in zip(prediction.electrodes, prediction.scores, strict=True):
            x0, y0 = round(float(x) - side / 2, 4), round(float(y) - side / 2, 4)
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": ELECTRODE_CATEGORY,
                    "bbox": [x0, y0, float(side), float(side)],
                    "score": round(float(score), 6),
                }
            )
    return results


def _images(samples: Sequence[Sample], image_ids: Sequence[int]) -> list[tuple[int, Sample]]:
    """(image id, sample) of the samples whose detection labels exist."""
    return [
        (int(image_id), sample)
        for image_id, sample in zip(image_ids, samples, strict=True)
        if sample.available.get("detection", False)
    ]


def _image_record(image_id: int, sample: Sample) -> dict:
    height, width = sample.image.shape[:2]
    return {"id": image_id, "width": int(width), "height": int(height)}


def coco_ground_truth(samples: Sequence[Sample], image_ids: Sequence[int]) -> dict:
    """Electrode ground truth of the samples whose detection labels exist, as a COCO dict."""
    images, annotations = [], []
    for image_id, sample in _images(samples, image_ids):
        images.append(_image_record(image_id, sample))
        for box in sample.boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": ELECTRODE_CATEGORY,
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": _categories()}


def point_ground_truth(samples: Sequence[Sample], image_ids: Sequence[int]) -> dict:
    """Electrode centres of the samples whose detection labels exist as one-keypoint COCO objects.

    Every object has ``keypoints`` [x, y, 2], ``num_keypoints`` 1, ``area`` :data:`POINT_AREA`
    and the 1 px square around its centre as ``bbox`` (unused by the OKS of a visible keypoint).
    """
    images, annotations = [], []
    for image_id, sample in _images(samples, image_ids):
        images.append(_image_record(image_id, sample))
        for x, y in sample.electrodes:
            x, y = float(x), float(y)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": ELECTRODE_CATEGORY,
                    "keypoints": [x, y, 2],
                    "num_keypoints": 1,
                    "bbox": [x - 0.5, y - 0.5, 1.0, 1.0],
                    "area": POINT_AREA,
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": _categories(points=True)}


def box_ground_truth(
    samples: Sequence[Sample], image_ids: Sequence[int], side: float = BOX_SIDE
) -> dict:
    """Boxes of ``side`` px centred on the true electrodes (labelled samples), as a COCO dict."""
    images, annotations = [], []
    for image_id, sample in _images(samples, image_ids):
        images.append(_image_record(image_id, sample))
        for x, y in sample.electrodes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": ELECTRODE_CATEGORY,
                    "bbox": [float(x) - side / 2, float(y) - side / 2, float(side), float(side)],
                    "area": float(side * side),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": _categories()}


def _subset(ground_truth: COCO | dict, image_ids: Sequence[int]) -> dict:
    """The electrode part of a COCO dataset restricted to ``image_ids``, as a new dict."""
    dataset = ground_truth.dataset if isinstance(ground_truth, COCO) else ground_truth
    keep = {int(i) for i in image_ids}
    categories = [c for c in dataset.get("categories", []) if c["id"] == ELECTRODE_CATEGORY]
    return {
        "images": [dict(image) for image in dataset.get("images", []) if image["id"] in keep],
        "annotations": [
            dict(a)
            for a in dataset.get("annotations", [])
            if a["image_id"] in keep and a["category_id"] == ELECTRODE_CATEGORY
        ],
        "categories": [dict(c) for c in categories] or _categories(),
    }


def evaluation_files(
    samples: Sequence[Sample],
    predictions: Sequence[Prediction],
    image_ids: Sequence[int] | None = None,
    *,
    ground_truth: COCO | dict | None = None,
) -> dict[str, dict | list]:
    """The ground truth and detections behind every AP, as the JSON ``cathtrack eval`` writes.

    Only frames whose detection labels exist are included. Keys: ``ground_truth_footprint``
    (``ground_truth`` restricted to those frames when given, else built from the samples),
    ``detections`` (footprint boxes), ``ground_truth_points``, ``detections_points``,
    ``ground_truth_box8``, ``detections_box8``.
    """
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    ids = list(range(1, len(samples) + 1)) if image_ids is None else [int(i) for i in image_ids]
    frames = _detection_frames(samples)
    labelled = [samples[i] for i in frames]
    labelled_predictions = [predictions[i] for i in frames]
    labelled_ids = [ids[i] for i in frames]
    footprint = (
        coco_ground_truth(labelled, labelled_ids)
        if ground_truth is None
        else _subset(ground_truth, labelled_ids)
    )
    return {
        "ground_truth_footprint": footprint,
        "detections": coco_detections(labelled_predictions, labelled_ids),
        "ground_truth_points": point_ground_truth(labelled, labelled_ids),
        "detections_points": point_detections(labelled_predictions, labelled_ids),
        "ground_truth_box8": box_ground_truth(labelled, labelled_ids),
        "detections_box8": box_detections(labelled_predictions, labelled_ids),
    }


def _coco_index(ground_truth: COCO | dict) -> COCO:
    """A COCO index of a dict (annotations copied: pycocotools writes into them)."""
    if isinstance(ground_truth, COCO):
        return ground_truth
    index = COCO()
    index.dataset = {
        **ground_truth,
        "annotations": [dict(a) for a in ground_truth.get("annotations", [])],
    }
    index.createIndex()
    return index


def summarized_ap(evaluation: COCOeval, threshold: float | None = None) -> float:
    """AP of an accumulated COCOeval at area "all" and its last ``maxDets``, averaged over the
    IoU/OKS thresholds (or at one): what ``COCOeval.summarize`` computes, for a ``maxDets`` its
    keypoint summary (fixed at 20) does not read. -1 when nothing was evaluated, as pycocotools."""
    params = evaluation.params
    precision = evaluation.eval["precision"]  # [threshold, recall, category, area, maxDets]
    if threshold is not None:
        precision = precision[np.where(np.isclose(params.iouThrs, threshold))[0]]
    precision = precision[:, :, :, params.areaRngLbl.index("all"), -1]
    valid = precision[precision > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _run(ground_truth: COCO | dict, detections: list[dict], iou_type: str) -> COCOeval | None:
    """A COCOeval of the electrode category, evaluated and accumulated; None without detections.

    Only the area range "all" is evaluated (the others are unused and cost time; the "all"
    figures are those of pycocotools' default parameters)."""
    gt = _coco_index(ground_truth)
    if not detections:
        return None
    evaluation = COCOeval(gt, gt.loadRes([dict(d) for d in detections]), iou_type)
    params = evaluation.params
    params.catIds = [ELECTRODE_CATEGORY]
    params.imgIds = sorted({d["image_id"] for d in detections} | set(gt.getImgIds()))
    params.areaRng, params.areaRngLbl = [[0.0, 1e5**2]], ["all"]
    if iou_type == "keypoints":
        params.kpt_oks_sigmas = np.array([POINT_SIGMA])
        params.maxDets = [MAX_DETECTIONS]
    evaluation.evaluate()
    evaluation.accumulate()
    return evaluation


def _has_ground_truth(ground_truth: COCO | dict) -> bool:
    if isinstance(ground_truth, COCO):
        return bool(ground_truth.getAnnIds(catIds=[ELECTRODE_CATEGORY]))
    return any(a["category_id"] == ELECTRODE_CATEGORY for a in ground_truth.get("annotations", []))


def electrode_ap(ground_truth: COCO | dict, detections: list[dict]) -> tuple[float, float]:
    """(AP@[.5:.95], AP50) of the electrode category by pycocotools' bbox evaluation (any boxes:
    footprint or fixed); NaN without ground truth, 0 without detections."""
    if not _has_ground_truth(ground_truth):
        return float("nan"), float("nan")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        evaluation = _run(ground_truth, detections, "bbox")
        if evaluation is None:
            return 0.0, 0.0
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


def point_ap(ground_truth: COCO | dict, detections: list[dict]) -> tuple[float, float]:
    """(AP over OKS .50:.95, AP at OKS 0.5 = 2 px) of electrode points by pycocotools' keypoint
    evaluation (:func:`point_ground_truth`, :func:`point_detections`); NaN without ground truth,
    0 without detections."""
    if not _has_ground_truth(ground_truth):
        return float("nan"), float("nan")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = _run(ground_truth, detections, "keypoints")
    if evaluation is None:
        return 0.0, 0.0
    return summarized_ap(evaluation), summarized_ap(evaluation, 0.5)


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
        ground_truth: a COCO index of the electrode ground truth (e.g. ``CocoReader.coco``)
            for the footprint-box AP, restricted to the frames scored; built from the samples
            when None. The point and fixed-box APs always use the samples' centres.
        radius: matching distance in pixels for precision/recall/F1/MAE (not for the APs,
            whose thresholds are fixed: docs/metrics.md).
        score_threshold: predictions below it are ignored for the distance metrics (every AP
            uses every prediction, ranked by score).
        mask_threshold: probability above which a pixel is catheter.

    Returns:
        dict with ``ap``, ``ap50`` (footprint boxes), ``point_ap``, ``point_ap_2px`` (OKS),
        ``box8_ap``, ``box8_ap50`` (fixed 8 px boxes), ``precision_2px``, ``recall_2px``,
        ``f1_2px``, ``mae_px``, ``mae_mm`` (NaN without pixel spacing), ``mean_j``, ``dice``,
        ``type_accuracy``, ``type_accuracy_by_type``, ``catheter_count_accuracy`` (share of the
        frames with detection labels whose number of predicted catheters holding at least one
        electrode at or above ``score_threshold`` equals the number of labelled catheters with
        electrodes) and the counts behind them. An AP is NaN
        without labelled electrodes and 0 without detections. (The ``_2px`` names of the
        distance metrics are the contract's; they hold the values at ``radius``.)
    """
    if len(samples) != len(predictions):
        raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
    detection_frames = _detection_frames(samples)
    files = evaluation_files(samples, predictions, image_ids, ground_truth=ground_truth)
    ap, ap50 = electrode_ap(files["ground_truth_footprint"], files["detections"])
    point_ap_all, point_ap_2px = point_ap(files["ground_truth_points"], files["detections_points"])
    box8_ap, box8_ap50 = electrode_ap(files["ground_truth_box8"], files["detections_box8"])

    matched = predicted_count = truth_count = 0
    errors_px, errors_mm = [], []
    type_hits: Counter = Counter()
    type_totals: Counter = Counter()
    right_counts = 0
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
        right_counts += _catheter_count(prediction, keep) == len(set(sample.electrode_catheter))

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
        "point_ap": point_ap_all,
        "point_ap_2px": point_ap_2px,
        "box8_ap": box8_ap,
        "box8_ap50": box8_ap50,
        "precision_2px": precision,
        "recall_2px": recall,
        "f1_2px": _ratio(2 * precision * recall, precision + recall) if matched else 0.0,
        "mae_px": float(np.mean(errors_px)) if errors_px else float("nan"),
        "mae_mm": float(np.mean(errors_mm)) if errors_mm else float("nan"),
        "mean_j": float(np.mean(intersections_over_union)) if dices else float("nan"),
        "dice": float(np.mean(dices)) if dices else float("nan"),
        "type_accuracy": _ratio(sum(type_hits.values()), sum(type_totals.values())),
        "type_accuracy_by_type": {t: type_hits[t] / n for t, n in sorted(type_totals.items())},
        "catheter_count_accuracy": _ratio(right_counts, len(detection_frames)),
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


def _catheter_count(prediction: Prediction, keep: np.ndarray) -> int:
    """Predicted catheters that hold at least one electrode kept by the score threshold."""
    return sum(
        bool(keep[np.asarray(members, np.int64)].any())
        for _type, members in prediction.catheters
        if len(members)
    )


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
