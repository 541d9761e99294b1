"""Cardiac and respiratory motion of the scene over time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Breathing moves the heart mostly towards the feet, a little forwards and to the left.
_RESPIRATORY_DIRECTION = np.array([0.1, 1.0, 0.25]) / np.linalg.norm([0.1, 1.0, 0.25])
_HEART_RADIUS_MM = 60.0  # contraction fades out beyond the heart


@dataclass(frozen=True)
class Motion:
    """Periodic motion of one scene.

    Attributes:
        heart_hz, respiratory_hz: frequencies, Hz.
        cardiac_phase, respiratory_phase: cycle fraction at t = 0, in [0, 1).
        cardiac_mm, respiratory_mm: peak displacements, mm.
    """

    heart_hz: float
    respiratory_hz: float
    cardiac_phase: float
    respiratory_phase: float
    cardiac_mm: float
    respiratory_mm: float

    def contraction(self, t: float) -> float:
        """Cardiac contraction in [0, 1] at time ``t`` s: a short systolic pulse per beat."""
        phase = (self.heart_hz * t + self.cardiac_phase) % 1.0
        wrapped = (phase - 0.25 + 0.5) % 1.0 - 0.5
        return float(np.exp(-((wrapped / 0.13) ** 2)))

    def inspiration(self, t: float) -> float:
        """Breathing state in [0, 1] at time ``t`` s (0 = end of expiration)."""
        return float(
            0.5 - 0.5 * np.cos(2 * np.pi * (self.respiratory_hz * t + self.respiratory_phase))
        )

    def respiratory_shift(self, t: float, weight: float = 1.0) -> np.ndarray:
        """(3,) rigid breathing displacement in mm of a structure that follows it by ``weight``."""
        return weight * self.respiratory_mm * self.inspiration(t) * _RESPIRATORY_DIRECTION

    def displace(
        self, points_mm: np.ndarray, t: float, cardiac_weight: float, respiratory_weight: float
    ) -> np.ndarray:
        """Move heart-frame points (N, 3) mm to time ``t``; returns a new (N, 3) array.

        Contraction pulls points towards the heart centre, strongest around it; breathing
        translates everything that follows it.
        """
        moved = points_mm + self.respiratory_shift(t, respiratory_weight)
        squeeze = cardiac_weight * self.cardiac_mm * self.contraction(t)
        if squeeze > 0.0:
            falloff = np.exp(-np.sum(points_mm**2, axis=1) / (2 * _HEART_RADIUS_MM**2))
            moved -= (squeeze / _HEART_RADIUS_MM * 1.6 * falloff)[:, None] * points_mm
        return moved
