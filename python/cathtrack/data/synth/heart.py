"""The heart's outer surface, the aorta and the coronary ostia, built on the scene's landmarks.

The epicardium is modelled as a surface of revolution about the long axis (base -> apex), so a
vessel on it is a path in (s, phi): ``s`` the fraction of the base-apex length (0 = the
atrioventricular groove, 1 = the apex, negative = the atria), ``phi`` the angle about the axis
(0 = the anterior interventricular groove, +pi/2 = the lateral wall of the left ventricle,
-pi/2 = the free wall of the right ventricle, +-pi = the posterior interventricular groove at
the crux). The septum (the plane of the axis and phi = 0) is seen edge-on from about LAO 50, as in
the clinic. The aorta and the ostia are
placed relative to it, so guiding catheters and the coronary trees they inject meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ANTERIOR = np.array([0.0, 0.0, 1.0])
_LEFT = np.array([1.0, 0.0, 0.0])
_FEET = np.array([0.0, 1.0, 0.0])
_LONG_AXIS = np.array([0.6, 0.55, 0.6])  # base -> apex: left, down and forwards, about 45 deg each
_SEPTAL_BEAM = np.array([np.sin(np.radians(50.0)), 0.0, np.cos(np.radians(50.0))])  # LAO 50


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class HeartSurface:
    """Epicardial coordinates of one scene.

    Attributes:
        base_mm: (3,) centre of the atrioventricular groove.
        axis: (3,) unit vector base -> apex.
        anterior, left: (3,) unit vectors orthogonal to ``axis``: towards the anterior
            interventricular groove (phi = 0) and the left ventricle's lateral wall (pi/2).
        length_mm: base to apex distance.
        radius_mm: (2,) groove radius towards ``anterior`` and towards ``left``.
    """

    base_mm: np.ndarray
    axis: np.ndarray
    anterior: np.ndarray
    left: np.ndarray
    length_mm: float
    radius_mm: np.ndarray

    def point(self, s: np.ndarray, phi: np.ndarray, lift_mm: float = 0.0) -> np.ndarray:
        """(N, 3) surface points at fractions ``s`` and angles ``phi`` (radians), raised by
        ``lift_mm`` above the surface (a vessel runs on it, not in it)."""
        s, phi = np.broadcast_arrays(np.asarray(s, np.float64), np.asarray(phi, np.float64))
        # Atria above the groove keep its radius; the ventricles bulge, then close at the apex.
        profile = np.where(s < 0.0, 1.0, np.sqrt(np.clip(1.0 - s**2, 0.0, 1.0)) * (1.0 + 0.4 * s))
        radial = (
            np.cos(phi)[:, None] * self.anterior * (self.radius_mm[0] * profile + lift_mm)[:, None]
            + np.sin(phi)[:, None] * self.left * (self.radius_mm[1] * profile + lift_mm)[:, None]
        )
        return self.base_mm + np.outer(s * self.length_mm, self.axis) + radial

    def coordinates(self, point_mm: np.ndarray) -> tuple[float, float]:
        """(s, phi) of the surface point closest in direction to ``point_mm`` (3,)."""
        offset = np.asarray(point_mm, np.float64) - self.base_mm
        s = float(offset @ self.axis) / self.length_mm
        return s, float(np.arctan2(offset @ self.left, offset @ self.anterior))


def sample_heart(
    rng: np.random.Generator, lm: dict[str, np.ndarray]
) -> tuple[HeartSurface, dict[str, np.ndarray]]:
    """The heart surface and the arterial landmarks of a scene.

    Returns the surface and new landmarks (mm): ``aortic_root``, ``lm_ostium``, ``rca_ostium``,
    ``ascending_aorta``, ``aortic_arch``, ``descending_aorta``, ``descending_aorta_low`` (femoral
    route, far below the field), ``brachiocephalic``, ``right_subclavian_artery`` (radial
    route), ``lv_cavity`` and ``lv_apex``.
    """
    base = 0.6 * lm["mitral"] + 0.4 * lm["tricuspid"]
    axis = _unit(_LONG_AXIS + rng.normal(0.0, 0.08, 3))
    # The septal plane holds the axis and the LAO 50 beam; its normal points to the LV wall.
    left = _unit(np.cross(axis, _unit(_SEPTAL_BEAM + rng.normal(0.0, 0.05, 3))))
    if left @ (_LEFT - _ANTERIOR) < 0.0:
        left = -left
    anterior = np.cross(left, axis)
    if anterior @ (_ANTERIOR - _FEET) < 0.0:
        anterior = -anterior
    surface = HeartSurface(
        base_mm=base,
        axis=axis,
        anterior=anterior,
        left=left,
        length_mm=rng.uniform(85.0, 110.0),
        radius_mm=rng.uniform(36.0, 46.0, 2),
    )
    # The aortic valve sits in the base, anterior and right of the mitral valve; the sinuses
    # with the ostia are just above it.
    front = _unit(_ANTERIOR - (_ANTERIOR @ axis) * axis)
    side = _unit(_LEFT - (_LEFT @ axis) * axis)
    root = base - 12.0 * axis + 8.0 * front
    jitter = rng.normal(0.0, 4.0, (9, 3))
    arteries = {
        "aortic_root": root,
        "lm_ostium": root - 8.0 * axis + 10.0 * side + jitter[0] * 0.5,
        "rca_ostium": root - 6.0 * axis + 10.0 * front - 6.0 * side + jitter[1] * 0.5,
        "ascending_aorta": root + np.array([-18.0, -55.0, 8.0]) + jitter[2],
        "aortic_arch": np.array([-15.0, -105.0, -25.0]) + jitter[3],
        "descending_aorta": np.array([-5.0, -50.0, -62.0]) + jitter[4],
        "descending_aorta_low": np.array([-10.0, 240.0, -60.0]) + jitter[5],
        "brachiocephalic": np.array([-45.0, -130.0, 0.0]) + jitter[6],
        "right_subclavian_artery": np.array([-120.0, -165.0, 5.0]) + jitter[7],
        "lv_cavity": base + 0.45 * surface.length_mm * axis + 10.0 * left + jitter[8] * 0.5,
        "lv_apex": base + 0.85 * surface.length_mm * axis + 8.0 * left,
    }
    return surface, arteries
