"""The two primitives the renderer draws: tubes (catheters, leads, wires) and discs (ECG snaps)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tube:
    """A device modelled as a swept cylinder with metal bands.

    Attributes:
        kind: catalogue type for targets, distractor name otherwise.
        points_mm: (N, 3) float64 axis in patient mm, distal tip first, one point per ``step_mm``.
        step_mm: arc length between consecutive points.
        radius_mm: outer radius of the tube.
        shaft_mu: attenuation of the tube body, 1/mm.
        bands_mm: (B, 2) arc-length [start, end] of each metal band (electrodes, sensor bands)
            measured from the distal tip, ordered distal -> proximal.
        band_mu: attenuation of the bands, 1/mm.
        target: a labelled device (inside the heart) or a distractor.
        cardiac_weight: how much it follows the heart's contraction (0 = not at all).
        respiratory_weight: how much it follows breathing.
    """

    kind: str
    points_mm: np.ndarray
    step_mm: float
    radius_mm: float
    shaft_mu: float
    bands_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    band_mu: float = 0.0
    target: bool = True
    cardiac_weight: float = 1.0
    respiratory_weight: float = 1.0


@dataclass
class Disc:
    """A flat coin facing the beam (ECG snap parts).

    Attributes:
        centre_mm: (3,) patient mm.
        radius_mm: radius of the coin.
        line_integral: attenuation through its thickness (dimensionless mu * thickness).
        respiratory_weight: how much it follows breathing.
    """

    centre_mm: np.ndarray
    radius_mm: float
    line_integral: float
    respiratory_weight: float = 0.3
