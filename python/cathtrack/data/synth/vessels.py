"""Contrast-filled vessel trees on the heart surface: coronary angiograms and CS venograms.

A left coronary tree (left main, LAD with diagonals and septal perforators, circumflex with
obtuse marginals, sometimes a ramus), a right one (RCA in the right AV groove with conus, sinus
node and acute marginal branches, PDA and posterolateral branch at the crux) or a coronary
sinus venogram (CS and great cardiac vein in the AV groove, anterior interventricular, middle
cardiac and lateral veins). Branches are paths in the epicardial coordinates of
:class:`.heart.HeartSurface`, tortuous, tapering, with small twigs; they move with the heart.
None of this is ever labelled: contrast is the hard negative of a catheter segmenter.
"""

from __future__ import annotations

import numpy as np

from .curves import resample, smooth_curve
from .heart import HeartSurface
from .objects import Vessel

_KNOT_SPACING_MM = 8.0  # tortuosity: one random knot per this much vessel
_LIFT_MM = 1.5  # vessels run on the epicardium, not in it
_LEG_FRACTIONS = np.linspace(0.0, 1.0, 8, endpoint=False)  # knots between two stops of a branch


class _Tree:
    """Accumulates branches (samples, radii, distance from the injection site)."""

    def __init__(self, rng: np.random.Generator, surface: HeartSurface, step_mm: float):
        self.rng, self.surface, self.step = rng, surface, step_mm
        self.points: list[np.ndarray] = []
        self.radii: list[np.ndarray] = []
        self.arcs: list[np.ndarray] = []

    def _add(self, path: np.ndarray, r0: float, r1: float, arc0: float) -> int:
        self.points.append(path)
        self.radii.append(np.linspace(r0, r1, len(path)))
        self.arcs.append(arc0 + np.arange(len(path)) * self.step)
        return len(self.points) - 1

    def _tortuous(self, control: np.ndarray, wiggle_mm: float) -> np.ndarray:
        """Smooth path along the polyline ``control`` with random knots every few mm."""
        knots = resample(control, _KNOT_SPACING_MM)
        if np.linalg.norm(knots[-1] - control[-1]) > 0.3 * _KNOT_SPACING_MM or len(knots) < 2:
            knots = np.concatenate([knots, control[-1:]])
        else:
            knots[-1] = control[-1]
        knots[1:] += self.rng.normal(0.0, wiggle_mm, knots[1:].shape)
        return smooth_curve(knots, self.step)

    def surface_branch(
        self,
        start: np.ndarray,
        s1: float,
        phi1: float,
        r0: float,
        r1: float,
        arc0: float = 0.0,
        wiggle_mm: float = 1.0,
        via: tuple[tuple[float, float], ...] = (),
    ) -> int:
        """A branch from ``start`` (3,) over the surface to (s1, phi1), through ``via`` points."""
        s0, phi0 = self.surface.coordinates(start)
        stops = [(s0, phi0), *via, (s1, phi1)]
        knots_s, knots_phi = [], []
        for (sa, pa), (sb, pb) in zip(stops, stops[1:], strict=False):
            knots_s.append(sa + _LEG_FRACTIONS * (sb - sa))
            knots_phi.append(pa + _LEG_FRACTIONS * (pb - pa))
        knots_s.append([s1])
        knots_phi.append([phi1])
        control = self.surface.point(np.concatenate(knots_s), np.concatenate(knots_phi), _LIFT_MM)
        control[0] = start
        return self._add(self._tortuous(control, wiggle_mm), r0, r1, arc0)

    def side_branch(
        self,
        parent: int,
        at: float,
        ds: float,
        dphi_deg: float,
        shrink: float,
        r_end: float,
        wiggle_mm: float = 1.5,
    ) -> int:
        """A branch leaving ``parent`` at fraction ``at`` of its length over the surface."""
        index = int(at * (len(self.points[parent]) - 1))
        start = self.points[parent][index]
        s0, phi0 = self.surface.coordinates(start)
        r0 = max(self.radii[parent][index] * shrink, r_end)
        return self.surface_branch(
            start,
            min(max(s0 + ds, -0.4), 1.0),
            phi0 + np.radians(dphi_deg),
            r0,
            r_end,
            self.arcs[parent][index],
            wiggle_mm,
        )

    def inward_branch(self, parent: int, at: float, length_mm: float, radius: float) -> int:
        """A septal perforator: from the parent straight into the heart, slightly apical."""
        index = int(at * (len(self.points[parent]) - 1))
        start = self.points[parent][index]
        s0, _ = self.surface.coordinates(start)
        centre = self.surface.base_mm + s0 * self.surface.length_mm * self.surface.axis
        inward = (centre - start) / np.linalg.norm(centre - start)
        direction = inward + 0.6 * self.surface.axis
        end = start + length_mm * direction / np.linalg.norm(direction)
        control = np.array([start, 0.5 * (start + end), end])
        path = self._tortuous(control, 0.8)
        return self._add(path, radius, 0.3, self.arcs[parent][index])

    def twigs(self, parent: int, count: int) -> None:
        """Small side branches heading towards the apex."""
        for _ in range(count):
            self.side_branch(
                parent,
                self.rng.uniform(0.1, 0.9),
                self.rng.uniform(0.08, 0.25),
                self.rng.uniform(-25.0, 25.0),
                0.5,
                0.3,
                0.7,
            )

    def vessel(self, kind: str, mu: float) -> Vessel:
        return Vessel(
            kind=kind,
            points_mm=np.concatenate(self.points),
            radius_mm=np.concatenate(self.radii),
            arc_mm=np.concatenate(self.arcs),
            step_mm=self.step,
            mu=mu,
        )


def _left_tree(tree: _Tree, lm: dict[str, np.ndarray]) -> None:
    rng, deg = tree.rng, np.radians
    junction_phi = deg(rng.uniform(15.0, 35.0))
    junction = tree.surface.point(np.array([0.02]), np.array([junction_phi]), _LIFT_MM)[0]
    r_main = rng.uniform(1.8, 2.3)
    bend = 0.5 * (lm["lm_ostium"] + junction) + rng.normal(0.0, 2.5, 3)
    trunk = tree._add(
        smooth_curve(np.array([lm["lm_ostium"], bend, junction]), tree.step), r_main, r_main, 0.0
    )
    arc = tree.arcs[trunk][-1]
    lad = tree.surface_branch(
        junction,
        rng.uniform(0.95, 1.05),
        deg(rng.uniform(-10.0, 10.0)),
        0.85 * r_main,
        rng.uniform(0.6, 0.9),
        arc,
        via=((0.5, junction_phi - deg(rng.uniform(10.0, 25.0))),),
    )
    circumflex = tree.surface_branch(
        junction,
        rng.uniform(0.0, 0.12),
        deg(rng.uniform(130.0, 200.0)),
        0.75 * r_main,
        rng.uniform(0.6, 0.9),
        arc,
        via=((0.0, junction_phi + deg(60.0)),),
    )
    if rng.random() < 0.25:  # ramus intermedius
        tree.surface_branch(junction, 0.55, junction_phi + deg(40.0), 0.55 * r_main, 0.4, arc)
    for at in np.sort(rng.uniform(0.12, 0.6, rng.integers(2, 5))):
        d = tree.side_branch(lad, at, rng.uniform(0.35, 0.65), rng.uniform(30.0, 70.0), 0.7, 0.4)
        tree.twigs(d, int(rng.integers(1, 4)))
    for at in rng.uniform(0.1, 0.5, rng.integers(2, 5)):
        tree.inward_branch(lad, at, rng.uniform(10.0, 25.0), rng.uniform(0.45, 0.7))
    for at in np.sort(rng.uniform(0.25, 0.9, rng.integers(2, 5))):
        m = tree.side_branch(
            circumflex, at, rng.uniform(0.5, 0.8), rng.uniform(-15.0, 15.0), 0.75, 0.4
        )
        tree.twigs(m, int(rng.integers(1, 4)))
    tree.twigs(lad, int(rng.integers(3, 8)))
    tree.twigs(circumflex, int(rng.integers(2, 5)))


def _right_tree(tree: _Tree, lm: dict[str, np.ndarray]) -> None:
    rng, deg = tree.rng, np.radians
    r_main = rng.uniform(1.7, 2.2)
    crux_phi = deg(rng.uniform(-195.0, -170.0))
    rca = tree.surface_branch(
        lm["rca_ostium"],
        0.02,
        crux_phi,
        r_main,
        0.7 * r_main,
        via=((0.0, deg(rng.uniform(-50.0, -35.0))), (0.02, deg(-110.0))),
    )
    tree.side_branch(rca, 0.03, 0.2, 35.0, 0.4, 0.3)  # conus branch
    tree.side_branch(rca, 0.06, -0.3, -20.0, 0.4, 0.3)  # sinus node artery
    for at in np.sort(rng.uniform(0.2, 0.8, rng.integers(2, 5))):
        m = tree.side_branch(rca, at, rng.uniform(0.4, 0.7), rng.uniform(-10.0, 10.0), 0.6, 0.35)
        tree.twigs(m, int(rng.integers(1, 3)))
    pda = tree.side_branch(rca, 1.0, rng.uniform(0.6, 0.8), rng.uniform(-10.0, 10.0), 0.7, 0.4)
    plb = tree.side_branch(rca, 1.0, rng.uniform(0.1, 0.3), -rng.uniform(20.0, 45.0), 0.7, 0.4)
    tree.twigs(pda, int(rng.integers(1, 4)))
    tree.twigs(plb, int(rng.integers(1, 3)))
    tree.twigs(rca, int(rng.integers(3, 7)))


def _venogram(tree: _Tree, lm: dict[str, np.ndarray]) -> None:
    """Balloon-occlusion CS venogram: contrast from the ostium into the CS and its tributaries."""
    rng, deg = tree.rng, np.radians
    _, phi_os = tree.surface.coordinates(lm["cs_os"])
    span = deg(rng.uniform(190.0, 240.0))
    r_cs = rng.uniform(2.5, 4.0)
    sinus = tree.surface_branch(
        lm["cs_os"], -0.03, phi_os - span, r_cs, 0.35 * r_cs, via=((-0.03, phi_os - 0.3),)
    )
    tree.side_branch(sinus, 1.0, rng.uniform(0.6, 0.85), -rng.uniform(0.0, 15.0), 0.9, 0.5)
    tree.side_branch(sinus, 0.05, rng.uniform(0.6, 0.8), rng.uniform(-20.0, 0.0), 0.45, 0.6)
    for at in np.sort(rng.uniform(0.25, 0.75, rng.integers(1, 4))):
        vein = tree.side_branch(
            sinus, at, rng.uniform(0.45, 0.8), rng.uniform(-15.0, 15.0), 0.45, 0.5
        )
        tree.twigs(vein, int(rng.integers(0, 3)))


def coronary_tree(
    rng: np.random.Generator,
    surface: HeartSurface,
    lm: dict[str, np.ndarray],
    step_mm: float,
    mu: float,
    side: str,
) -> Vessel:
    """An injected left (``side="left"``) or right coronary artery tree, filling over time."""
    tree = _Tree(rng, surface, step_mm)
    (_left_tree if side == "left" else _right_tree)(tree, lm)
    return _with_filling(rng, tree.vessel("coronary_artery", mu))


def venogram(
    rng: np.random.Generator,
    surface: HeartSurface,
    lm: dict[str, np.ndarray],
    step_mm: float,
    mu: float,
) -> Vessel:
    """A coronary sinus venogram, filling from the CS ostium."""
    tree = _Tree(rng, surface, step_mm)
    _venogram(tree, lm)
    return _with_filling(rng, tree.vessel("coronary_vein", mu))


def _with_filling(rng: np.random.Generator, vessel: Vessel) -> Vessel:
    """Injection timing: filled at t = 0 (85%, sometimes washing out) or still filling."""
    vessel.fill_start_s = -rng.uniform(0.4, 3.0) if rng.random() < 0.85 else -rng.uniform(0.0, 0.4)
    vessel.fill_speed_mm_s = rng.uniform(150.0, 400.0)
    vessel.washout_start_s = vessel.fill_start_s + rng.uniform(2.5, 5.0)
    vessel.washout_s = rng.uniform(0.8, 2.0)
    return vessel
