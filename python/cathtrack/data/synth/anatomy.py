"""The patient: procedural chest anatomy as a log-attenuation layer.

Structures are placed in 3D (heart frame of :mod:`.landmarks`) and projected with the scene's
C-arm view, so the spine slides sideways with LAO/RAO and ribs change shape with the angle;
they are drawn on a coarse grid (anatomy is blurry) and upsampled, which keeps this cheap.
Values are line integrals relative to the mean soft tissue (lungs negative, bone positive).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .geometry import CArmView
from .landmarks import MIDLINE_X_MM, SPINE_Z_MM
from .motion import Motion

GRID_MAX = 128  # anatomy is drawn at most this many pixels wide, then upsampled
_SHIFT = 4  # cv2 drawing with 1/16 pixel precision
_VERTEBRA_PITCH_MM = 28.0
_RIB_PITCH_MM = 30.0


@dataclass(frozen=True)
class Anatomy:
    """The random parameters of one patient (line integrals are dimensionless).

    Attributes:
        contrast: global scale of all line integrals.
        lung_air: (2,) line integral removed by the right and left lung.
        lung_centres_mm: (2, 3) lung centres; lung_axes_mm: (2, 2) semi-axes x, y.
        heart_axes_mm: (2,) semi-axes of the heart shadow; heart_angle_deg: its tilt in the image.
        heart_density: line integral added by the heart over the lungs.
        dome_apex_mm: (2, 3) right and left diaphragm dome tops; dome_radius_mm: their curvature.
        abdomen_density: line integral added below the diaphragm.
        vertebra_density, rib_density: line integrals of bone.
        rib_offset_mm: cranio-caudal phase of the rib cage.
        texture_low, texture_mid: (k, k) float32 random grids of the soft-tissue texture.
    """

    contrast: float
    lung_air: np.ndarray
    lung_centres_mm: np.ndarray
    lung_axes_mm: np.ndarray
    heart_axes_mm: np.ndarray
    heart_angle_deg: float
    heart_density: float
    dome_apex_mm: np.ndarray
    dome_radius_mm: float
    abdomen_density: float
    vertebra_density: float
    rib_density: float
    rib_offset_mm: float
    texture_low: np.ndarray
    texture_mid: np.ndarray


def sample_anatomy(rng: np.random.Generator, contrast: float) -> Anatomy:
    """Draw one patient's anatomy around the nominal adult chest."""
    return Anatomy(
        contrast=contrast,
        lung_air=rng.uniform(0.35, 0.65, 2),
        lung_centres_mm=np.array([[-115.0, -25.0, -10.0], [65.0, -20.0, -10.0]])
        + rng.normal(0.0, 6.0, (2, 3)),
        lung_axes_mm=np.array([[65.0, 125.0], [60.0, 120.0]]) * rng.uniform(0.85, 1.15, (2, 1)),
        heart_axes_mm=np.array([78.0, 60.0]) * rng.uniform(0.85, 1.15, 2),
        heart_angle_deg=rng.uniform(20.0, 45.0),
        heart_density=rng.uniform(0.25, 0.45),
        dome_apex_mm=np.array([[-85.0, 62.0, 0.0], [55.0, 80.0, 0.0]])
        + rng.normal(0.0, 8.0, (2, 3)),
        dome_radius_mm=rng.uniform(70.0, 110.0),
        abdomen_density=rng.uniform(0.5, 0.9),
        vertebra_density=rng.uniform(0.35, 0.6),
        rib_density=rng.uniform(0.05, 0.1),
        rib_offset_mm=rng.uniform(0.0, _RIB_PITCH_MM),
        texture_low=rng.normal(0.0, 1.0, (6, 6)).astype(np.float32),
        texture_mid=rng.normal(0.0, 1.0, (24, 24)).astype(np.float32),
    )


class _Canvas:
    """A coarse drawing grid tied to the view: projects patient mm to grid pixels."""

    def __init__(self, view: CArmView, grid: int):
        self.view, self.grid = view, grid
        self.scale = grid / view.size

    def project(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uv, px_per_mm = self.view.project(np.atleast_2d(points_mm))
        return (uv + 0.5) * self.scale - 0.5, px_per_mm * self.scale

    def ellipse(
        self, image: np.ndarray, centre_mm, axes_mm, angle_deg: float, value: float
    ) -> None:
        uv, px_per_mm = self.project(centre_mm)
        centre = tuple(int(round(c * (1 << _SHIFT))) for c in uv[0])
        axes = tuple(max(1, int(round(a * px_per_mm[0] * (1 << _SHIFT)))) for a in axes_mm)
        cv2.ellipse(image, centre, axes, angle_deg, 0, 360, value, -1, cv2.LINE_8, _SHIFT)


def _texture(grid_values: np.ndarray, grid: int) -> np.ndarray:
    return cv2.resize(grid_values, (grid, grid), interpolation=cv2.INTER_CUBIC)


def _diaphragm(canvas: _Canvas, anatomy: Anatomy, shift_mm: np.ndarray) -> np.ndarray:
    """Abdomen below the two domes: (grid, grid) float32 in [0, 1] with a soft upper edge."""
    apex_uv, px_per_mm = canvas.project(anatomy.dome_apex_mm + shift_mm)
    u = np.arange(canvas.grid, dtype=np.float32)
    radius = anatomy.dome_radius_mm * px_per_mm[:, None]
    dome_v = np.min(apex_uv[:, 1:2] + (u[None, :] - apex_uv[:, 0:1]) ** 2 / (2 * radius), axis=0)
    edge = 3.0 * px_per_mm[0]
    v = u[:, None]
    # 1 / (1 + exp(-(v - dome_v) / edge)) in one float64 array, in place.
    logistic = np.subtract(v, dome_v[None, :])
    np.negative(logistic, out=logistic)
    logistic /= edge
    np.exp(logistic, out=logistic)
    logistic += 1.0
    np.divide(1.0, logistic, out=logistic)
    return logistic.astype(np.float32)


def _draw_spine(canvas: _Canvas, bone: np.ndarray, anatomy: Anatomy) -> None:
    half_field = 0.75 * canvas.view.size * canvas.view.pixel_mm
    ys = np.arange(-half_field, half_field, _VERTEBRA_PITCH_MM) + canvas.view.isocentre_mm[1]
    bodies = np.column_stack([np.full_like(ys, MIDLINE_X_MM), ys, np.full_like(ys, SPINE_Z_MM)])
    # Per vertebra: body, its cortical rim, two pedicles (dense rings seen end-on), spinous process.
    parts = [
        ((0.0, 0.0, 0.0), (21.0, 11.0), 0.7, -1),
        ((0.0, 0.0, 0.0), (21.0, 11.0), 0.3, 2),
        ((-14.0, -4.0, -20.0), (4.5, 6.0), 0.5, -1),
        ((14.0, -4.0, -20.0), (4.5, 6.0), 0.5, -1),
        ((0.0, 6.0, -45.0), (3.0, 7.0), 0.4, -1),
    ]
    for offset, axes_mm, share, thickness in parts:
        uv, px_per_mm = canvas.project(bodies + np.asarray(offset))
        seen = (uv[:, 1] > -10) & (uv[:, 1] < canvas.grid + 10)
        # Fixed-point centres and semi-axes of all vertebrae at once (np.round rounds half to
        # even like Python's round).
        centres = np.round(uv[seen] * 16).astype(np.int64).tolist()
        axes = np.maximum(
            np.round(px_per_mm[seen, None] * np.asarray(axes_mm) * 16).astype(np.int64), 1
        ).tolist()
        value = share * anatomy.vertebra_density
        for centre, axis in zip(centres, axes, strict=True):
            cv2.ellipse(
                bone, tuple(centre), tuple(axis), 0.0, 0, 360, value, thickness, cv2.LINE_8, _SHIFT
            )
    # Paravertebral column: the spine is a band, not only separate blocks.
    ends, px_per_mm = canvas.project(
        np.array([[MIDLINE_X_MM, -400.0, SPINE_Z_MM], [MIDLINE_X_MM, 400.0, SPINE_Z_MM]])
    )
    top, bottom = (tuple(int(round(c * 16)) for c in end) for end in ends)
    width = max(1, int(round(40.0 * px_per_mm[0])))
    cv2.line(bone, top, bottom, 0.2 * anatomy.vertebra_density, width, cv2.LINE_8, _SHIFT)


def _rib_shape() -> tuple[np.ndarray, ...]:
    """The same for every patient, in mm, (2, 18) for the right then the left side, from the
    spine round to the costal cartilage: x, the rise and the fall of y from the rib's start
    (posterior ribs rise a little from the spine, then fall steeply towards the front), z."""
    theta = np.linspace(0.1, 2.4, 18)
    x = MIDLINE_X_MM + np.array([[-1.0], [1.0]]) * 135.0 * np.sin(theta)
    rise, fall, z = 12.0 * np.sin(theta), 70.0 * (theta / 2.4) ** 2, -10.0 - 95.0 * np.cos(theta)
    return x, *np.broadcast_arrays(rise, fall, z, x)[:3]


_RIB_SHAPE = _rib_shape()


def _draw_ribs(canvas: _Canvas, bone: np.ndarray, anatomy: Anatomy, shift_mm: np.ndarray) -> None:
    """Each rib: an arc around the chest, sloping down towards the front, drawn where bony."""
    x, rise, fall, z = _RIB_SHAPE
    y0 = np.arange(-6, 7) * _RIB_PITCH_MM + anatomy.rib_offset_mm - 60.0
    ribs = np.empty((len(y0), 2, x.shape[1], 3))  # rib k, side, point along the rib, xyz
    ribs[..., 0] = x
    ribs[..., 1] = y0[:, None, None] - rise + fall
    ribs[..., 2] = z
    uv, px_per_mm = canvas.project(ribs.reshape(-1, 3) + shift_mm)
    uv = uv.reshape(-1, x.shape[1], 2)  # one row per rib
    seen = (uv[..., 1].max(axis=1) > -5) & (uv[..., 1].min(axis=1) < canvas.grid + 5)
    polylines = list(np.round(uv[seen] * (1 << _SHIFT)).astype(np.int32))
    width = max(1, int(round(10.0 * px_per_mm.mean())))
    cv2.polylines(bone, polylines, False, anatomy.rib_density, width, cv2.LINE_8, _SHIFT)


def render_anatomy(
    anatomy: Anatomy, view: CArmView, motion: Motion, t: float, out: np.ndarray | None = None
) -> np.ndarray:
    """Line integrals of the patient at time ``t`` s -> (size, size) float32, view resolution.

    Written into ``out`` ((size, size) float32, C-contiguous) when given.
    """
    grid = min(view.size, GRID_MAX)
    canvas = _Canvas(view, grid)
    breath = motion.respiratory_shift(t)
    soft = np.zeros((grid, grid), np.float32)
    for i in range(2):
        canvas.ellipse(
            soft,
            anatomy.lung_centres_mm[i] + 0.5 * breath,
            anatomy.lung_axes_mm[i],
            0.0,
            -anatomy.lung_air[i],
        )
    squeeze = 1.0 - 0.04 * motion.contraction(t)
    heart_centre = np.array([8.0, 12.0, 0.0]) + breath
    canvas.ellipse(
        soft,
        heart_centre,
        anatomy.heart_axes_mm * squeeze,
        anatomy.heart_angle_deg,
        anatomy.heart_density,
    )
    # The atria bulge above and right of the ventricles: the heart is not an ellipse.
    atria = heart_centre + np.array([-25.0, -35.0, -20.0])
    canvas.ellipse(
        soft,
        atria,
        0.6 * anatomy.heart_axes_mm,
        -anatomy.heart_angle_deg,
        0.5 * anatomy.heart_density,
    )
    # Mediastinum: the soft tissue between the lungs above the heart.
    canvas.ellipse(soft, np.array([MIDLINE_X_MM, -110.0, 0.0]), (38.0, 110.0), 0.0, 0.35)
    _, px_per_mm = canvas.project(np.zeros(3))
    sigma_soft = 14.0 * px_per_mm[0]
    soft = cv2.GaussianBlur(soft, (0, 0), sigma_soft)

    bone = np.zeros((grid, grid), np.float32)
    _draw_spine(canvas, bone, anatomy)
    _draw_ribs(canvas, bone, anatomy, 0.3 * breath)
    bone = cv2.GaussianBlur(bone, (0, 0), max(0.5, 1.5 * px_per_mm[0]))

    abdomen = anatomy.abdomen_density * _diaphragm(canvas, anatomy, breath)
    texture = 0.06 * _texture(anatomy.texture_low, grid) + 0.03 * _texture(
        anatomy.texture_mid, grid
    )
    total = anatomy.contrast * (soft + bone + abdomen + texture)
    if grid == view.size:
        if out is None:
            return total
        out[...] = total
        return out
    return cv2.resize(total, (view.size, view.size), dst=out, interpolation=cv2.INTER_LINEAR)
