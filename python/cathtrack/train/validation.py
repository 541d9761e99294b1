"""Validation during training: the reference decoding and the evaluation metrics on rank 0."""

from __future__ import annotations

import math

import numpy as np
import torch

from cathtrack.data.sample import Sample
from cathtrack.device import autocast
from cathtrack.metrics import evaluate
from cathtrack.model import CathNet
from cathtrack.pipeline import decode
from cathtrack.settings import EVAL_SCORE_THRESHOLD, DecodeSettings

VALIDATION_METRICS = (
    "ap",
    "ap50",
    "f1_2px",
    "precision_2px",
    "recall_2px",
    "mae_px",
    "mean_j",
    "dice",
)


@torch.no_grad()
def validate(
    model: CathNet,
    samples: list[Sample],
    device: torch.device,
    batch_size: int,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Validation metrics (cathtrack.metrics.evaluate) + ``mean_kpi`` = mean(AP, mean J).

    Electrodes are decoded down to :data:`~cathtrack.settings.EVAL_SCORE_THRESHOLD` (the AP
    integrates over every score), without catheter tracing. ``decode`` reads the heatmap's
    stride (4, 2 or 1) from the output shapes, so a model of any stride validates as it is.

    ``dtype``: the autocast dtype of training (:func:`cathtrack.device.autocast_dtype`), None for
    float32.

    Returns:
        dict with :data:`VALIDATION_METRICS` and ``mean_kpi`` (the paper's mean KPI, a fraction;
        a metric the validation set has no labels for is left out of the mean).
    """
    was_training = model.training
    model.eval()
    predictions = []
    settings = DecodeSettings(score_threshold=EVAL_SCORE_THRESHOLD)
    for first in range(0, len(samples), batch_size):
        chunk = samples[first : first + batch_size]
        images = torch.from_numpy(np.stack([s.image for s in chunk])[:, None]).to(device)
        with autocast(device, dtype):
            segmentation, heatmap, size = (output.float() for output in model(images))
        for i in range(len(chunk)):
            prediction = decode(segmentation[i], heatmap[i], size[i], settings, catheters=False)
            predictions.append(prediction)
    model.train(was_training)
    metrics = evaluate(samples, predictions)
    result = {name: float(metrics[name]) for name in VALIDATION_METRICS}
    present = [result[name] for name in ("ap", "mean_j") if math.isfinite(result[name])]
    result["mean_kpi"] = float(np.mean(present)) if present else math.nan
    return result
