"""Smooth 3D curves through control points, sampled at a fixed arc-length step."""

from __future__ import annotations

import numpy as np

_SAMPLES_PER_SPAN = 24
_SPAN_FRACTIONS = np.linspace(0.0, 1.0, _SAMPLES_PER_SPAN, endpoint=False)[None, :, None]


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
    p0, p1, p2, p3 = (padded[i : len(padded) - 3 + i, None, :] for i in range(4))
    # Knot steps sqrt(|p_{i+1} - p_i|), at least 1e-6, of all segments at once: the three steps
    # of a span are consecutive ones. Knots per span are t0 = 0, t1, t2, t3, so the textbook
    # t - t0, t1 - t0 and t2 - t0 are exactly t, t1 and t2.
    steps = np.maximum(np.sqrt(_lengths(padded[1:] - padded[:-1])), 1e-6)[:, None, None]
    t1 = steps[:-2]
    t2 = t1 + steps[1:-1]
    t3 = t2 + steps[2:]
    d21, d32, d31 = t2 - t1, t3 - t2, t3 - t1
    t = t1 + _SPAN_FRACTIONS * d21  # (spans, samples, 1)
    to1, to2, to3 = t1 - t, t2 - t, t3 - t  # t_i - t
    from1, from2 = t - t1, t - t2  # t - t_i
    # Barry-Goldman pyramid; each weight is computed as in the textbook form, the common ones
    # once.
    w2_21, w1_21 = to2 / d21, from1 / d21
    a1 = to1 / t1 * p0 + t / t1 * p1
    a2 = w2_21 * p1 + w1_21 * p2
    a3 = to3 / d32 * p2 + from2 / d32 * p3
    b1 = to2 / t2 * a1 + t / t2 * a2
    b2 = to3 / d31 * a2 + from1 / d31 * a3
    curve = w2_21 * b1 + w1_21 * b2
    return np.concatenate([curve.reshape(-1, control.shape[1]), control[-1:]])


def _lengths(vectors: np.ndarray) -> np.ndarray:
    """Euclidean norms of the rows of (N, D) ``vectors``: ``np.linalg.norm(vectors, axis=1)``
    (the same arithmetic) without its dispatch overhead, which dominates for short curves."""
    return np.sqrt(np.add.reduce(vectors * vectors, axis=1))


def resample(points: np.ndarray, step: float) -> np.ndarray:
    """Resample a polyline at a constant arc-length step, starting at its first point.

    Args:
        points: (M, D) polyline.
        step: arc length between output points (same unit as points).
    Returns:
        (N, D) float64 points; the last one lies within ``step`` of the polyline's end.
    """
    arc = np.empty(len(points))
    arc[0] = 0.0
    np.cumsum(_lengths(points[1:] - points[:-1]), out=arc[1:])
    s = np.arange(0.0, arc[-1] + 1e-9, step)
    resampled = np.empty((len(s), points.shape[1]))
    for d in range(points.shape[1]):
        resampled[:, d] = np.interp(s, arc, points[:, d])
    return resampled


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
