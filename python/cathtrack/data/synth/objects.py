"""The primitives the renderer draws: tubes (catheters, leads, wires), discs (ECG snaps),
plates (flat dense shapes: pacemaker cans) and vessels (contrast-filled trees)."""

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
        inner_radius_mm: lumen radius of a hollow tube (sheaths, guiding catheters): its wall
            lies between this and ``radius_mm``; 0 = solid.
        lumen_mu: attenuation of what fills the lumen (contrast agent), 1/mm.
        bands_are_electrodes: False when the bands are radiopaque markers, never labelled.
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
    inner_radius_mm: float = 0.0
    lumen_mu: float = 0.0
    bands_are_electrodes: bool = True


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


@dataclass
class Plate:
    """A flat dense shape (parts of a pacemaker can): a planar polygon with a uniform line
    integral, seen through whatever angle the C-arm takes.

    Attributes:
        outline_mm: (K, 3) polygon in patient mm.
        line_integral: attenuation through its thickness (dimensionless).
        cardiac_weight, respiratory_weight: how much it follows the heart and breathing.
    """

    outline_mm: np.ndarray
    line_integral: float
    cardiac_weight: float = 0.0
    respiratory_weight: float = 0.3


@dataclass
class Vessel:
    """A contrast-filled vessel tree: tapered tubes whose lumen holds iodine; never labelled.

    The contrast arrives from the injection site at ``fill_speed_mm_s`` from ``fill_start_s``
    on and washes out exponentially after ``washout_start_s``.

    Attributes:
        kind: ``coronary_artery`` or ``coronary_vein``.
        points_mm: (N, 3) samples of all branches, ``step_mm`` apart along each branch.
        radius_mm: (N,) lumen radius at each sample.
        arc_mm: (N,) path length from the injection site to each sample.
        step_mm: arc length each sample stands for.
        mu: attenuation of the fully opacified lumen, 1/mm.
    """

    kind: str
    points_mm: np.ndarray
    radius_mm: np.ndarray
    arc_mm: np.ndarray
    step_mm: float
    mu: float
    fill_start_s: float = -np.inf
    fill_speed_mm_s: float = np.inf
    washout_start_s: float = np.inf
    washout_s: float = 1.0
    cardiac_weight: float = 1.0
    respiratory_weight: float = 1.0

    def opacity(self, t: float) -> np.ndarray:
        """(N,) fraction of full opacification of each sample at time ``t`` s."""
        if np.isinf(self.fill_speed_mm_s):
            front = np.full_like(self.arc_mm, np.inf)
        else:
            front = self.fill_speed_mm_s * (t - self.fill_start_s) - self.arc_mm
        arrived = np.clip(front / 15.0 + 1.0, 0.0, 1.0)  # a 15 mm soft contrast front
        return arrived * float(np.exp(-max(t - self.washout_start_s, 0.0) / self.washout_s))
