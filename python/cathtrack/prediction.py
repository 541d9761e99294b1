"""What a model predicted for one frame, before it becomes a user-facing ``Result``.

The reference pipeline (:mod:`cathtrack.pipeline`) produces it and the metrics
(:mod:`cathtrack.metrics`) score it; it lives here so that inference does not import the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Prediction:
    """What a model predicted for one frame (the metric-relevant part of a tracking result).

    Attributes:
        electrodes: (N, 2) float32 x, y centres in pixels.
        scores: (N,) float32 confidence.
        sizes: (N, 2) float32 box width, height in pixels.
        mask: (H, W) catheter probability in [0, 1] (or binary); None if not predicted.
        catheters: (type, electrode indices) per predicted catheter.
        centerlines: (M, 2) float32 polyline per predicted catheter, tip first.
        type_scores: score of each catheter's type match (0 for "unknown").
    """

    electrodes: np.ndarray
    scores: np.ndarray
    sizes: np.ndarray
    mask: np.ndarray | None = None
    catheters: list[tuple[str, np.ndarray]] = field(default_factory=list)
    centerlines: list[np.ndarray] = field(default_factory=list)
    type_scores: list[float] = field(default_factory=list)
