"""Multi-object tracking metrics for points: MOTA, IDF1, identity switches, MAE and jitter.

Each frame is a :class:`TrackFrame` of ground-truth points with their identities and predicted
points with theirs. Per frame, predictions are matched to the ground truth within ``radius`` px by
``scipy.optimize.linear_sum_assignment`` on the Euclidean distance.

- MOTA (CLEAR MOT, Bernardin & Stiefelhagen 2008) = 1 - (FN + FP + IDSW) / GT, where IDSW counts
  the frames in which a ground-truth identity is matched to a predicted identity different from
  the one it was last matched to.
- IDF1 (Ristani et al. 2016) = 2 IDTP / (GT + predictions): IDTP is the largest total number of
  frames in which a true identity and its predicted identity lie within ``radius`` of each other,
  over one-to-one pairings of whole identities (the global bipartite match).
- MAE: mean distance of the per-frame matches, px.
- Jitter: standard deviation of (predicted displacement - true displacement) over the x and y
  components, for every true identity matched in two consecutive frames.

Sequences are scored together: identities of different sequences never meet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["TrackFrame", "tracking_metrics"]


class TrackFrame(NamedTuple):
    """One frame: ground truth (G, 2) points and (G,) ids; predictions (P, 2) and (P,) ids."""

    true_points: np.ndarray
    true_ids: np.ndarray
    pred_points: np.ndarray
    pred_ids: np.ndarray


def _match(true: np.ndarray, pred: np.ndarray, radius: float) -> list[tuple[int, int]]:
    if len(true) == 0 or len(pred) == 0:
        return []
    d = np.linalg.norm(true[:, None, :] - pred[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(np.where(d <= radius, d, 1e9))
    return [(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True) if d[r, c] <= radius]


def tracking_metrics(sequences: Sequence[Sequence[TrackFrame]], radius: float = 2.0) -> dict:
    """MOTA, IDF1, identity switches, MAE (px) and jitter (px) over sequences of frames.

    Returns a dict with ``mota``, ``idf1``, ``id_switches``, ``mae_px``, ``jitter_px`` (NaN when
    undefined) and the counts ``gt``, ``predictions``, ``false_negatives``, ``false_positives``.
    """
    n_true = n_pred = misses = false_pos = switches = 0
    distances: list[float] = []
    residuals: list[np.ndarray] = []
    overlap: dict[tuple, int] = {}
    for s, frames in enumerate(sequences):
        last_pred: dict = {}  # true id -> predicted id it was last matched to
        previous: dict = {}  # true id -> (true point, predicted point) in the previous frame
        for frame in frames:
            true = np.asarray(frame.true_points, np.float64).reshape(-1, 2)
            pred = np.asarray(frame.pred_points, np.float64).reshape(-1, 2)
            true_ids = [(s, i) for i in np.asarray(frame.true_ids).tolist()]
            pred_ids = [(s, i) for i in np.asarray(frame.pred_ids).tolist()]
            n_true, n_pred = n_true + len(true), n_pred + len(pred)
            if len(true) and len(pred):
                d = np.linalg.norm(true[:, None, :] - pred[None, :, :], axis=2)
                for g, q in zip(*np.nonzero(d <= radius), strict=True):
                    key = (true_ids[g], pred_ids[q])
                    overlap[key] = overlap.get(key, 0) + 1
            pairs = _match(true, pred, radius)
            misses += len(true) - len(pairs)
            false_pos += len(pred) - len(pairs)
            current = {}
            for g, q in pairs:
                tid, pid = true_ids[g], pred_ids[q]
                if tid in last_pred and last_pred[tid] != pid:
                    switches += 1
                last_pred[tid] = pid
                distances.append(float(np.linalg.norm(true[g] - pred[q])))
                current[tid] = (true[g], pred[q])
                if tid in previous:
                    t0, p0 = previous[tid]
                    residuals.append((pred[q] - p0) - (true[g] - t0))
            previous = current
    idtp = 0
    if overlap:
        rows = {i: k for k, i in enumerate(sorted({i for i, _ in overlap}))}
        cols = {j: k for k, j in enumerate(sorted({j for _, j in overlap}))}
        matrix = np.zeros((len(rows), len(cols)))
        for (i, j), count in overlap.items():
            matrix[rows[i], cols[j]] = count
        r, c = linear_sum_assignment(-matrix)
        idtp = int(matrix[r, c].sum())
    nan = float("nan")
    return {
        "mota": 1.0 - (misses + false_pos + switches) / n_true if n_true else nan,
        "idf1": 2.0 * idtp / (n_true + n_pred) if n_true + n_pred else nan,
        "id_switches": switches,
        "mae_px": float(np.mean(distances)) if distances else nan,
        "jitter_px": float(np.std(np.concatenate(residuals))) if residuals else nan,
        "gt": n_true,
        "predictions": n_pred,
        "false_negatives": misses,
        "false_positives": false_pos,
    }
