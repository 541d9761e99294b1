"""Smooth 3D curves through control points, sampled at a fixed arc-length step."""

from __future__ import annotations

import numpy as np

_SAMPLES_PER_SPAN = 24


def catmull_rom(control: np.ndarray) -> np.ndarray:
    """Centripetal Catmull-Rom spline through all control points.

    Args:
        control: (K, D) control points, K >= 2.
    Returns:
        (M, D) float64 densely sampled curve from control[0] to control[-1].
    """
    control = np.asarray(control, np.float64)
    # Mirror the end points so the spline passes through the first and last control points.
    padded = np.concatenate(
        [2 * control[:1] - control[1:2], control, 2 * control[-1:] - control[-2:-1]]
    )
    p0, p1, p2, p3 = padded[:-3], padded[1:-2], padded[2:-1], padded[3:]

    def knot_step(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sqrt(np.linalg.norm(b - a, axis=1)).clip(1e-6)[:, None, None]

    t0 = np.zeros_like(knot_step(p0, p1))
    t1 = t0 + knot_step(p0, p1)
    t2 = t1 + knot_step(p1, p2)
    t3 = t2 + knot_step(p2, p3)
    u = np.linspace(0.0, 1.0, _SAMPLES_PER_SPAN, endpoint=False)[None, :, None]
    t = t1 + u * (t2 - t1)
    P0, P1, P2, P3 = (p[:, None, :] for p in (p0, p1, p2, p3))
    a1 = (t1 - t) / (t1 - t0) * P0 + (t - t0) / (t1 - t0) * P1
    a2 = (t2 - t) / (t2 - t1) * P1 + (t - t1) / (t2 - t1) * P2
    a3 = (t3 - t) / (t3 - t2) * P2 + (t - t2) / (t3 - t2) * P3
    b1 = (t2 - t) / (t2 - t0) * a1 + (t - t0) / (t2 - t0) * a2
    b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
    curve = (t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2
    return np.concatenate([curve.reshape(-1, control.shape[1]), control[-1:]])


def resample(points: np.ndarray, step: float) -> np.ndarray:
    """Resample a polyline at a constant arc-length step, starting at its first point.

    Args:
        points: (M, D) polyline.
        step: arc length between output points (same unit as points).
    Returns:
        (N, D) float64 points; the last one lies within ``step`` of the polyline's end.
    """
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    s = np.arange(0.0, arc[-1] + 1e-9, step)
    return np.stack([np.interp(s, arc, points[:, d]) for d in range(points.shape[1])], axis=1)


def smooth_curve(control: np.ndarray, step: float) -> np.ndarray:
    """Catmull-Rom through ``control`` (K, 3), resampled every ``step`` mm -> (N, 3) float64."""
    return resample(catmull_rom(control), step)


def circle_arc(
    centre: np.ndarray,
    e1: np.ndarray,
    e2: np.ndarray,
    radius: np.ndarray | float,
    angles: np.ndarray,
) -> np.ndarray:
    """Points ``centre + radius * (cos a * e1 + sin a * e2)`` for each angle -> (len(angles), 3)."""
    radius = np.broadcast_to(np.asarray(radius, np.float64), angles.shape)
    return centre + radius[:, None] * (np.cos(angles)[:, None] * e1 + np.sin(angles)[:, None] * e2)


def orthonormal_basis(normal: np.ndarray, hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane orthogonal to ``normal``; e1 is ``hint`` projected."""
    normal = normal / np.linalg.norm(normal)
    e1 = hint - np.dot(hint, normal) * normal
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(normal, e1)
