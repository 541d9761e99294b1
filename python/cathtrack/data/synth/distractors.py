"""Unlabelled look-alikes: ECG snaps and leads, sternal wires, guidewires, temperature and TEE
probes.

They are rendered like the targets but never enter the mask or the electrode labels, as in the
paper's data where a clinician removed everything outside the heart.
"""

from __future__ import annotations

import numpy as np

from .curves import circle_arc, orthonormal_basis, smooth_curve
from .geometry import CArmView
from .landmarks import MIDLINE_X_MM, OESOPHAGUS_XZ_MM, STERNUM_Z_MM
from .objects import Disc, Tube

STEEL_MU = 2.2  # stainless steel at fluoroscopy energies, 1/mm
CHEST_FRONT_DEPTH_MM = 110.0  # skin surfaces along the beam from the isocentre
CHEST_BACK_DEPTH_MM = -120.0


def ecg_snap(
    rng: np.random.Generator, view: CArmView, step_mm: float, with_wire: bool
) -> tuple[list[Disc], list[Tube]]:
    """A 10 mm electrode with a metal stud on the skin, optionally with its lead wire."""
    uv = rng.uniform(-0.05, 1.05, 2) * view.size
    depth = CHEST_FRONT_DEPTH_MM if rng.random() < 0.6 else CHEST_BACK_DEPTH_MM
    centre = view.unproject(uv, depth)[0]
    discs = [
        Disc(centre, rng.uniform(4.5, 6.0), rng.uniform(0.15, 0.4)),
        Disc(centre, rng.uniform(1.5, 2.5), rng.uniform(1.0, 2.0)),
    ]
    if not with_wire:
        return discs, []
    # The lead wanders off across the skin with some persistence of direction.
    heading = rng.uniform(0.0, 2 * np.pi)
    points = [uv]
    for _ in range(7):
        heading += rng.normal(0.0, 0.5)
        points.append(
            points[-1]
            + rng.uniform(25.0, 45.0) / view.pixel_mm * np.array([np.cos(heading), np.sin(heading)])
        )
    control = view.unproject(np.asarray(points), depth)
    wire = Tube(
        kind="ecg_lead",
        points_mm=smooth_curve(control, step_mm),
        step_mm=step_mm,
        radius_mm=rng.uniform(0.6, 1.0),
        shaft_mu=rng.uniform(0.4, 0.9),
        target=False,
        cardiac_weight=0.0,
        respiratory_weight=0.3,
    )
    return discs, [wire]


def sternal_wires(rng: np.random.Generator, count: int, step_mm: float) -> list[Tube]:
    """Twisted steel loops around the sternum, stacked from the manubrium down."""
    wires = []
    y = rng.uniform(-130.0, -90.0)
    for _ in range(count):
        centre = np.array([MIDLINE_X_MM + rng.normal(0.0, 3.0), y, STERNUM_Z_MM])
        half_width, half_depth = rng.uniform(10.0, 16.0), rng.uniform(5.0, 9.0)
        angles = np.linspace(0.0, 2 * np.pi, 20)
        loop = centre + np.column_stack(
            [half_width * np.cos(angles), rng.normal(0.0, 0.7, 20), half_depth * np.sin(angles)]
        )
        # The twisted knot: a short tight helix leaving the front of the loop.
        twist_dir = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-0.5, 0.5), 1.0])
        twist_dir /= np.linalg.norm(twist_dir)
        e1, e2 = orthonormal_basis(twist_dir, np.array([0.0, 1.0, 0.0]))
        t = np.linspace(0.0, 1.0, 16)
        start = centre + np.array([0.0, 0.0, half_depth])
        knot = (
            start
            + np.outer(t * rng.uniform(6.0, 12.0), twist_dir)
            + circle_arc(np.zeros(3), e1, e2, 0.8, t * 6 * np.pi)
        )
        wires.append(
            Tube(
                kind="sternal_wire",
                points_mm=smooth_curve(np.concatenate([loop, knot]), step_mm),
                step_mm=step_mm,
                radius_mm=0.5,
                shaft_mu=STEEL_MU,
                target=False,
                cardiac_weight=0.0,
                respiratory_weight=0.4,
            )
        )
        y += rng.uniform(18.0, 28.0)
    return wires


def guidewire(rng: np.random.Generator, lm: dict[str, np.ndarray], step_mm: float) -> Tube:
    """A 0.035" wire from the femoral vein to the SVC, a pulmonary vein or the RV, J tip."""
    route = [lm["ivc_low"], lm["ivc"], lm["ra_floor"]]
    end = lm[rng.choice(["svc", "lspv", "ripv", "rv_apex", "hra"])]
    direction = end - lm["ra_floor"]
    direction /= np.linalg.norm(direction)
    e1, e2 = orthonormal_basis(direction, rng.normal(size=3))
    j_radius = rng.uniform(2.5, 5.0)
    j_tip = circle_arc(end + e1 * j_radius, -e1, direction, j_radius, np.linspace(0.3, np.pi, 5))
    return Tube(
        kind="guidewire",
        points_mm=smooth_curve(np.concatenate([route, [end], j_tip]), step_mm),
        step_mm=step_mm,
        radius_mm=0.45,
        shaft_mu=STEEL_MU,
        target=False,
    )


def temperature_probe(rng: np.random.Generator, step_mm: float, band_mu: float) -> Tube:
    """Oesophageal probe behind the left atrium; its sensor bands look like electrodes."""
    x, z = OESOPHAGUS_XZ_MM
    tip_y = rng.uniform(-15.0, 40.0)
    ys = np.linspace(tip_y, -260.0, 6)
    control = np.column_stack([x + rng.normal(0.0, 4.0, 6), ys, z + rng.normal(0.0, 3.0, 6)])
    n_bands = int(rng.integers(3, 13))
    length = rng.uniform(1.5, 3.0)
    starts = rng.uniform(1.0, 4.0) + np.arange(n_bands) * rng.uniform(5.0, 10.0)
    return Tube(
        kind="temperature_probe",
        points_mm=smooth_curve(control, step_mm),
        step_mm=step_mm,
        radius_mm=rng.uniform(1.5, 2.2),
        shaft_mu=rng.uniform(0.03, 0.08),
        bands_mm=np.column_stack([starts, starts + length]),
        band_mu=band_mu,
        target=False,
        cardiac_weight=0.3,
        respiratory_weight=0.8,
    )


def tee_probe(rng: np.random.Generator, step_mm: float) -> list[Tube]:
    """Transoesophageal echo probe behind the heart: a thick flexible shaft with two steering
    cables and a dense rectangular head whose transducer array is denser still."""
    x, z = OESOPHAGUS_XZ_MM
    tip_y = rng.uniform(-20.0, 50.0)
    ys = np.linspace(tip_y, -300.0, 7)
    control = np.column_stack([x + rng.normal(0.0, 5.0, 7), ys, z + rng.normal(0.0, 4.0, 7)])
    axis = smooth_curve(control, step_mm)
    head_length = rng.uniform(35.0, 45.0)
    split = int(head_length / step_mm)
    common = dict(target=False, cardiac_weight=0.2, respiratory_weight=0.8)
    head = Tube(
        kind="tee_probe",
        points_mm=axis[: split + 1],
        step_mm=step_mm,
        radius_mm=rng.uniform(6.0, 7.5),
        shaft_mu=rng.uniform(0.12, 0.2),
        bands_mm=np.array([[rng.uniform(3.0, 8.0), rng.uniform(18.0, 24.0)]]),
        band_mu=rng.uniform(0.25, 0.4),
        **common,
    )
    shaft = Tube(
        kind="tee_probe",
        points_mm=axis[split:],
        step_mm=step_mm,
        radius_mm=rng.uniform(4.5, 5.5),
        shaft_mu=rng.uniform(0.05, 0.09),
        **common,
    )
    tangent = np.gradient(axis[split:], axis=0)
    side = np.cross(tangent, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    cables = [
        Tube(
            kind="tee_probe",
            points_mm=axis[split:] + sign * rng.uniform(1.5, 2.5) * side,
            step_mm=step_mm,
            radius_mm=0.3,
            shaft_mu=STEEL_MU,
            **common,
        )
        for sign in (-1.0, 1.0)
    ]
    return [head, shaft, *cables]
