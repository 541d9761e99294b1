"""Temporal tracking across frames: stable ids for catheters and electrodes, Kalman smoothing.

:class:`SequenceTracker` is a thin step after the per-frame engine (pure Python + numpy + scipy's
assignment solver). Each frame it takes the detections (electrode positions and, per catheter,
centerline, type and electrode indices distal first) and returns track ids and smoothed positions.
See docs/tracking.md for the design and the measured behaviour.

1. Catheters are associated first. Cost between a catheter track and a detected catheter =
   mean symmetric distance between the two centerlines resampled to ``resample_points`` points
   (px; the track's centerline is shifted by its last centroid velocity), + ``type_cost`` when both
   types are known and differ, + ``count_cost`` x |electrode count difference|. Pairs above
   ``catheter_gate`` are forbidden; the remaining lowest total cost assignment is found with
   ``scipy.optimize.linear_sum_assignment`` (optimal, so it is at least as good as greedy;
   ~10 us for the <= 10 catheters of a scene).
2. Electrodes: one constant-velocity Kalman filter per track, state (x, y, vx, vy) in pixels and
   pixels per frame. Cost = squared Mahalanobis distance of the detection to the track's predicted
   position (innovation covariance S = H P H^T + R), gated at ``electrode_gate`` (chi-square, 2
   degrees of freedom), minus ``slot_bonus`` when the detection has the same catheter track and the
   same index from the tip as the track had in its last update. Optimal assignment as above. A
   detection whose innovation exceeds the gate of every track starts a new tentative track.
   The heart beat moves electrodes by about their own spacing per frame at 15 fps, so a track
   whose catheter was matched with the same part of it in view (same electrode count, centerline
   length within 10 %) is predicted by that catheter's centroid shift, not its own velocity.
3. Life cycle (catheter and electrode tracks alike): born tentative; confirmed after
   ``confirm_hits`` hits within its first ``confirm_window`` frames, otherwise deleted; a
   confirmed track is deleted after ``max_missed`` consecutive frames without a detection.
   Only confirmed tracks are reported: tentative ones (flickering distractors) get id -1.
4. Reported electrode positions are the Kalman posterior of confirmed tracks (no lag for
   constant-velocity motion; the raw detection for id -1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from cathtrack.catheters import UNKNOWN_TYPE

__all__ = ["TrackingParams", "CatheterDetection", "FrameTracks", "SequenceTracker"]

_FORBIDDEN = 1e9  # cost of a gated-out pair


@dataclass(frozen=True)
class TrackingParams:
    """Parameters of :class:`SequenceTracker` (pixels and frames).

    Attributes:
        catheter_gate: largest catheter association cost (mean symmetric centerline distance, px,
            plus the type and count terms).
        type_cost: added when the two catheter types are known and differ.
        count_cost: added per electrode of difference in the catheter electrode counts.
        resample_points: centerlines are resampled to this many points for the distance.
        electrode_gate: gate on the squared Mahalanobis distance of an electrode detection
            (chi-square, 2 dof: 13.8 keeps 99.9 % of true associations).
        slot_bonus: subtracted from the squared Mahalanobis distance when the detection has the
            track's catheter track and index from the tip (ties broken toward the same slot).
        measurement_sigma: electrode detection noise, px (R = sigma^2 I).
        acceleration_sigma: white-noise acceleration, px / frame^2 (process noise Q).
        initial_velocity_sigma: velocity uncertainty of a new track, px / frame.
        confirm_hits: hits needed to confirm a track ...
        confirm_window: ... within its first this many frames.
        max_missed: a confirmed track dies after this many consecutive missed frames.
    """

    catheter_gate: float = 12.0
    type_cost: float = 4.0
    count_cost: float = 0.5
    resample_points: int = 16
    electrode_gate: float = 13.8
    slot_bonus: float = 2.0
    measurement_sigma: float = 0.5
    acceleration_sigma: float = 0.5
    initial_velocity_sigma: float = 1.0
    # 3 hits in 4 frames: with 2 in 3, two flickering false detections landing within one gate
    # in consecutive frames (~1 in 120 frames of the hard preset) made a confirmed track.
    confirm_hits: int = 3
    confirm_window: int = 4
    max_missed: int = 3


@dataclass(frozen=True)
class CatheterDetection:
    """One detected catheter of a frame.

    Attributes:
        centerline: (M, 2) x, y pixels, distal tip first.
        type: catheter type name (``UNKNOWN_TYPE`` when not classified).
        electrodes: (K,) indices into the frame's electrode array, distal first.
    """

    centerline: np.ndarray
    type: str
    electrodes: np.ndarray


@dataclass(frozen=True)
class FrameTracks:
    """What :meth:`SequenceTracker.update` returns for one frame.

    Attributes:
        electrodes: (N, 2) float32: Kalman posterior for confirmed tracks, else the detection.
        electrode_track_ids: (N,) int64 track id per detected electrode, -1 when its track is
            tentative (not reported).
        catheter_track_ids: (C,) int64 track id per detected catheter, -1 when tentative.
    """

    electrodes: np.ndarray
    electrode_track_ids: np.ndarray
    catheter_track_ids: np.ndarray


@dataclass
class _Life:
    """Life cycle of one track."""

    id: int
    age: int = 1
    hits: int = 1
    missed: int = 0
    confirmed: bool = False

    def hit(self, params: TrackingParams) -> None:
        self.hits += 1
        self.missed = 0
        if not self.confirmed and self.hits >= params.confirm_hits:
            self.confirmed = True

    def alive(self, params: TrackingParams) -> bool:
        if self.confirmed:
            return self.missed < params.max_missed
        return self.age < params.confirm_window or self.hits >= params.confirm_hits


@dataclass
class _CatheterTrack:
    life: _Life
    line: np.ndarray  # (resample_points, 2)
    type: str
    count: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))


def _length(line: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())


def resample_polyline(line: np.ndarray, n: int) -> np.ndarray:
    """``n`` points equally spaced in arc length along a polyline (a point repeated if M == 1)."""
    line = np.asarray(line, np.float64).reshape(-1, 2)
    if len(line) == 1:
        return np.repeat(line, n, axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    queries = np.linspace(0.0, arc[-1], n)
    return np.column_stack([np.interp(queries, arc, line[:, d]) for d in range(2)])


def symmetric_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean symmetric closest-point distance (px) between every polyline of ``a`` (T, K, 2) and
    every polyline of ``b`` (D, K, 2): (T, D), in one vectorised pass."""
    d = np.linalg.norm(a[:, None, :, None, :] - b[None, :, None, :, :], axis=-1)  # (T, D, K, K)
    return 0.5 * (d.min(axis=3).mean(axis=2) + d.min(axis=2).mean(axis=2))


def _assign(cost: np.ndarray, gate: float) -> list[tuple[int, int]]:
    """Lowest total cost pairs (row, column) among those with cost <= gate."""
    if cost.size == 0:
        return []
    masked = np.where(cost <= gate, cost, _FORBIDDEN)
    rows, cols = linear_sum_assignment(masked)
    return [(r, c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True) if cost[r, c] <= gate]


class SequenceTracker:
    """Tracks catheters and electrodes over the frames of one sequence (see the module doc).

    Example::

        tracker = SequenceTracker()
        for electrodes, catheters in detections:
            out = tracker.update(electrodes, catheters)
            out.electrode_track_ids, out.electrodes  # ids (-1: not confirmed), smoothed positions
    """

    def __init__(self, params: TrackingParams | None = None) -> None:
        self.params = params or TrackingParams()
        p = self.params
        self._F = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
        q = p.acceleration_sigma**2
        block = np.array([[0.25, 0.5], [0.5, 1.0]]) * q  # white-noise acceleration, dt = 1
        self._Q = np.zeros((4, 4))
        self._Q[np.ix_([0, 2], [0, 2])] = block
        self._Q[np.ix_([1, 3], [1, 3])] = block
        self._R = np.eye(2) * p.measurement_sigma**2
        self._P0 = np.diag([p.measurement_sigma**2] * 2 + [p.initial_velocity_sigma**2] * 2).astype(
            np.float64
        )
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new sequence starts); ids restart at 0."""
        self._next_id = 0
        self._catheters: list[_CatheterTrack] = []
        self._x = np.zeros((0, 4))
        self._P = np.zeros((0, 4, 4))
        self._lives: list[_Life] = []
        self._slots = np.zeros((0, 2), np.int64)  # (catheter track id, index from the tip)

    @property
    def n_tracks(self) -> tuple[int, int]:
        """Live (catheter, electrode) tracks, tentative ones included."""
        return len(self._catheters), len(self._lives)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def update(
        self, electrodes: np.ndarray, catheters: list[CatheterDetection] | None = None
    ) -> FrameTracks:
        """Advances one frame with this frame's detections.

        Args:
            electrodes: (N, 2) x, y pixels of the detected electrodes.
            catheters: the detected catheters (their ``electrodes`` index ``electrodes``).
        """
        electrodes = np.asarray(electrodes, np.float64).reshape(-1, 2)
        catheter_ids, shifts = self._update_catheters(catheters or [])
        slots = np.full((len(electrodes), 2), -1, np.int64)
        for c, catheter in enumerate(catheters or []):
            for k, e in enumerate(np.asarray(catheter.electrodes, np.int64)):
                slots[e] = (catheter_ids[c], k)
        track_of = self._update_electrodes(electrodes, slots, shifts)
        out = electrodes.astype(np.float32)
        ids = np.full(len(electrodes), -1, np.int64)
        for e, t in enumerate(track_of):
            if t >= 0 and self._lives[t].confirmed:
                ids[e] = self._lives[t].id
                out[e] = self._x[t, :2]
        self._prune_electrodes()
        reported = {t.life.id for t in self._catheters if t.life.confirmed}
        return FrameTracks(
            electrodes=out,
            electrode_track_ids=ids,
            catheter_track_ids=np.array(
                [i if i in reported else -1 for i in catheter_ids], np.int64
            ),
        )

    def _update_catheters(
        self, detections: list[CatheterDetection]
    ) -> tuple[list[int], dict[int, np.ndarray]]:
        """Associates the catheters; returns the (internal) track id of each detection and the
        centroid shift of every matched catheter track since its last update."""
        p = self.params
        lines = [resample_polyline(d.centerline, p.resample_points) for d in detections]
        tracks = self._catheters
        cost = np.zeros((len(tracks), len(detections)))
        if tracks and detections:
            predicted = np.stack([t.line + t.velocity for t in tracks])
            cost = symmetric_distances(predicted, np.stack(lines))
            for i, track in enumerate(tracks):
                for j, d in enumerate(detections):
                    differ = track.type != d.type and UNKNOWN_TYPE not in (track.type, d.type)
                    cost[i, j] += p.type_cost * differ + p.count_cost * abs(
                        track.count - len(d.electrodes)
                    )
        for track in self._catheters:
            track.life.age += 1
            track.life.missed += 1
        ids, shifts = [-1] * len(detections), {}
        for i, j in _assign(cost, p.catheter_gate):
            track = self._catheters[i]
            track.life.hit(p)
            track.velocity = lines[j].mean(axis=0) - track.line.mean(axis=0)
            # The centroid moves with the catheter only while the same part of it is in view: a
            # catheter sliding across the border (or losing an electrode) shifts its centroid
            # without moving its electrodes, so their own velocities predict them then.
            same_view = track.count == len(detections[j].electrodes) and abs(
                _length(lines[j]) - _length(track.line)
            ) <= 0.1 * max(_length(track.line), 1.0)
            if same_view:
                shifts[track.life.id] = track.velocity
            track.line, track.type = lines[j], detections[j].type
            track.count = len(detections[j].electrodes)
            ids[j] = track.life.id
        self._catheters = [t for t in self._catheters if t.life.alive(p)]
        for j, d in enumerate(detections):
            if ids[j] < 0:
                life = _Life(self._new_id())
                self._catheters.append(_CatheterTrack(life, lines[j], d.type, len(d.electrodes)))
                ids[j] = life.id
        return ids, shifts

    def _update_electrodes(
        self, z: np.ndarray, slots: np.ndarray, shifts: dict[int, np.ndarray]
    ) -> list[int]:
        """Kalman predict, associate, update, birth; returns the track row of each detection.

        The electrodes of a catheter move together (the heart beat moves them by about their own
        spacing within one frame at 15 fps): a track whose catheter track was matched this frame
        is predicted by that catheter's centroid shift instead of its own velocity."""
        p = self.params
        moved = np.array([int(c) in shifts for c in self._slots[:, 0]], bool)
        if moved.any():
            shift = np.array([shifts[int(c)] for c in self._slots[moved, 0]])
            self._x[moved, 2:] = shift
        self._x = self._x @ self._F.T
        self._P = self._F @ self._P @ self._F.T + self._Q
        S = self._P[:, :2, :2] + self._R
        det = S[:, 0, 0] * S[:, 1, 1] - S[:, 0, 1] * S[:, 1, 0]
        inv = np.stack([S[:, 1, 1], -S[:, 0, 1], -S[:, 1, 0], S[:, 0, 0]], 1).reshape(-1, 2, 2)
        inv /= det[:, None, None]
        r = z[None, :, :] - self._x[:, None, :2]  # (T, N, 2)
        cost = np.einsum("tni,tij,tnj->tn", r, inv, r)
        same = (self._slots[:, None, 0] == slots[None, :, 0]) & (
            self._slots[:, None, 1] == slots[None, :, 1]
        )
        same &= slots[None, :, 0] >= 0
        gated = np.where(cost <= p.electrode_gate, cost - p.slot_bonus * same, np.inf)
        for life in self._lives:
            life.age += 1
            life.missed += 1
        track_of = [-1] * len(z)
        pairs = _assign(gated, p.electrode_gate)
        if pairs:
            t, n = (np.array(v) for v in zip(*pairs, strict=True))
            K = self._P[t][:, :, :2] @ inv[t]  # (k, 4, 2): P H^T S^-1
            self._x[t] += np.einsum("kij,kj->ki", K, r[t, n])
            self._P[t] -= K @ self._P[t][:, :2, :]
            self._slots[t] = slots[n]
            for ti, ni in pairs:
                self._lives[ti].hit(p)
                track_of[ni] = ti
        born = [n for n in range(len(z)) if track_of[n] < 0]
        if born:
            first = len(self._lives)
            x0 = np.zeros((len(born), 4))
            x0[:, :2] = z[born]
            self._x = np.concatenate([self._x, x0])
            self._P = np.concatenate([self._P, np.repeat(self._P0[None], len(born), axis=0)])
            self._slots = np.concatenate([self._slots, slots[born]])
            for k, n in enumerate(born):
                self._lives.append(_Life(self._new_id()))
                track_of[n] = first + k
        return track_of

    def _prune_electrodes(self) -> None:
        keep = np.array([life.alive(self.params) for life in self._lives], bool)
        if keep.all():
            return
        self._x, self._P, self._slots = self._x[keep], self._P[keep], self._slots[keep]
        self._lives = [life for life, k in zip(self._lives, keep, strict=True) if k]


def simulate_detections(
    sample,
    rng: np.random.Generator,
    *,
    noise_px: float = 0.5,
    drop: float = 0.1,
    false_positives: int = 2,
) -> tuple[np.ndarray, list[CatheterDetection], np.ndarray]:
    """Per-frame detections made from a labelled :class:`cathtrack.data.sample.Sample`, the
    input of tests and benchmarks of the tracker when no model is good enough.

    Electrodes get Gaussian noise of ``noise_px``, each is dropped with probability ``drop``, and
    ``false_positives`` points are added uniformly over the frame (a new place every frame: a
    flickering distractor). Catheters are the target ones with their kept electrodes, distal first.

    Returns:
        electrodes (N, 2), catheters, and (N,) true ids ``1000 * catheter + index`` (-1 for false
        positives).
    """
    keep = rng.random(len(sample.electrodes)) >= drop
    points = sample.electrodes[keep] + rng.normal(0.0, noise_px, (int(keep.sum()), 2))
    owners, indices = sample.electrode_catheter[keep], sample.electrode_index[keep]
    catheters = []
    for label in sample.catheters:
        if not label.target or len(label.centerline) < 2:
            continue
        mine = np.flatnonzero(owners == label.id)
        catheters.append(
            CatheterDetection(label.centerline, label.type, mine[np.argsort(indices[mine])])
        )
    height, width = sample.image.shape[:2]
    extra = rng.uniform(0.0, 1.0, (false_positives, 2)) * (width - 1, height - 1)
    ids = np.concatenate([1000 * owners + indices, np.full(false_positives, -1)])
    return np.concatenate([points, extra]).astype(np.float32), catheters, ids.astype(np.int64)
