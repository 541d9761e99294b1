"""Implanted hardware, never labelled: pacemaker / ICD generators with the pocket loops of their
leads, prosthetic valve rings and surgical clips.

The intravascular part of a pacing lead is the catalogue's ``pacing_lead`` (a target, with its
electrodes) and starts at the vein entry ``lm["subclavian"]``; what lies outside the vein, in
the pocket, is drawn here as ``implant_lead`` and is not a catheter (docs/synthetic.md).
"""

from __future__ import annotations

import numpy as np

from .curves import circle_arc, orthonormal_basis, smooth_curve
from .distractors import STEEL_MU
from .landmarks import MIDLINE_X_MM, MITRAL_NORMAL
from .objects import Plate, Tube

_POCKET_DEPTH_MM = 55.0  # subcutaneous pocket in front of the pectoral muscle (z, patient mm)


def _superellipse(
    centre: np.ndarray, e1: np.ndarray, e2: np.ndarray, half: tuple[float, float], power: float
) -> np.ndarray:
    """(48, 3) outline of a rounded rectangle (``power`` 2 = ellipse, large = rectangle)."""
    angles = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    c, s = np.cos(angles), np.sin(angles)
    u = half[0] * np.sign(c) * np.abs(c) ** (2.0 / power)
    v = half[1] * np.sign(s) * np.abs(s) ** (2.0 / power)
    return centre + np.outer(u, e1) + np.outer(v, e2)


def generator(
    rng: np.random.Generator, lm: dict[str, np.ndarray], step_mm: float
) -> tuple[list[Plate], list[Tube]]:
    """A pacemaker (70%) or ICD can in a left (85%) or right infraclavicular pocket.

    The can is titanium around a battery (denser) and circuits, with an epoxy header holding
    the lead connectors; 1-3 leads loop once around the can and run to the vein entry.
    """
    icd = rng.random() < 0.3
    half = (rng.uniform(30.0, 35.0), rng.uniform(25.0, 29.0)) if icd else (
        rng.uniform(20.0, 26.0), rng.uniform(19.0, 24.0))  # fmt: skip
    side = 1.0 if rng.random() < 0.85 else -1.0
    centre = np.array(
        [
            MIDLINE_X_MM + side * rng.uniform(70.0, 110.0),
            rng.uniform(-150.0, -100.0),
            _POCKET_DEPTH_MM,
        ]
    )
    normal = np.array([side * rng.uniform(0.1, 0.5), rng.uniform(-0.2, 0.2), 1.0])
    tilt = np.radians(rng.uniform(-35.0, 35.0))
    e1, e2 = orthonormal_basis(normal, np.array([np.cos(tilt), np.sin(tilt), 0.0]))
    if e2[1] < 0.0:
        e2 = -e2  # e2 points to the feet: the header sits on top, towards the clavicle
    can = rng.uniform(1.2, 2.2)
    plates = [
        Plate(_superellipse(centre, e1, e2, half, rng.uniform(2.5, 4.5)), can),
        # Battery: the lower, denser part of the can.
        Plate(
            _superellipse(centre + 0.3 * half[1] * e2, e1, e2, (0.8 * half[0], 0.5 * half[1]), 6.0),
            rng.uniform(0.3, 0.7),
        ),
    ]
    header_height = rng.uniform(9.0, 14.0)
    header_centre = centre - (half[1] + 0.45 * header_height) * e2
    plates.append(
        Plate(
            _superellipse(header_centre, e1, e2, (0.65 * half[0], 0.5 * header_height), 8.0),
            rng.uniform(0.08, 0.15),
        )
    )
    n_leads = int(rng.integers(1, 4))
    offsets = np.linspace(-0.35, 0.35, n_leads) * half[0] if n_leads > 1 else np.zeros(1)
    for offset in offsets:  # connector blocks: set screws and contact rings
        plates.append(
            Plate(
                _superellipse(
                    header_centre + offset * e1, e1, e2, (2.0, 0.35 * header_height), 8.0
                ),
                rng.uniform(0.8, 1.5),
            )
        )
    entry = lm["subclavian"].copy()
    if side < 0:
        entry[0] = 2 * MIDLINE_X_MM - entry[0]
    leads = []
    for offset in offsets:
        start = header_centre + offset * e1
        radius = max(half) * rng.uniform(1.05, 1.35)
        sweep = np.linspace(0.0, rng.uniform(1.2, 2.0) * np.pi, 12)
        loop = circle_arc(centre, -e2, e1 * rng.choice([-1.0, 1.0]), radius, sweep)
        control = np.concatenate(
            [
                [start, start - 8.0 * e2],
                loop,
                [entry + rng.normal(0.0, 5.0, 3), entry + [0.0, 0.0, -25.0]],
            ]
        )
        leads.append(
            Tube(
                kind="implant_lead",
                points_mm=smooth_curve(control, step_mm)[::-1],
                step_mm=step_mm,
                radius_mm=rng.uniform(0.8, 1.1),
                shaft_mu=rng.uniform(0.45, 0.7),
                target=False,
                cardiac_weight=0.0,
                respiratory_weight=0.3,
            )
        )
    return plates, leads


def valve_rings(rng: np.random.Generator, lm: dict[str, np.ndarray], step_mm: float) -> list[Tube]:
    """Prosthetic rings at the mitral, aortic and/or tricuspid planes (at least one).

    Mitral and tricuspid: annuloplasty rings (closed, or open C bands); aortic: the sewing ring
    of a mechanical valve (with its two leaflets seen as bars) or of a bioprosthesis (with three
    stent posts).
    """
    chosen = rng.random(3) < (0.55, 0.45, 0.2)
    if not chosen.any():
        chosen[rng.integers(3)] = True
    tubes: list[Tube] = []
    mu, core = rng.uniform(0.8, 2.2), rng.uniform(0.5, 0.9)

    def ring(centre, normal, radius, sweep_deg, flatten=1.0) -> tuple[np.ndarray, np.ndarray]:
        e1, e2 = orthonormal_basis(normal, rng.normal(size=3))
        angles = np.radians(np.linspace(0.0, sweep_deg, 40))
        points = centre + radius * (
            np.outer(np.cos(angles), e1) + flatten * np.outer(np.sin(angles), e2)
        )
        return points, np.array([e1, e2])

    def add(points, kind="valve_ring", radius=core, attenuation=mu) -> None:
        tubes.append(
            Tube(kind, smooth_curve(points, step_mm), step_mm, radius, attenuation, target=False)
        )

    if chosen[0]:
        normal = MITRAL_NORMAL + rng.normal(0.0, 0.1, 3)
        sweep = 360.0 if rng.random() < 0.6 else rng.uniform(240.0, 300.0)
        points, _ = ring(
            lm["mitral"], normal, rng.uniform(13.0, 18.0), sweep, rng.uniform(0.7, 1.0)
        )
        add(points)
    if chosen[1]:
        centre = lm["aortic_root"]
        normal = lm["ascending_aorta"] - centre
        radius = rng.uniform(10.0, 13.5)
        points, (e1, e2) = ring(centre, normal, radius, 360.0)
        add(points)
        axis = normal / np.linalg.norm(normal)
        if rng.random() < 0.5:  # bileaflet mechanical valve: two dense leaflets, nearly edge-on
            for sign in (-1.0, 1.0):
                chord = centre + sign * 0.3 * radius * e2
                half = np.sqrt(radius**2 - (0.3 * radius) ** 2)
                add(np.array([chord - half * e1, chord + half * e1]), radius=0.6, attenuation=1.0)
        else:  # bioprosthesis: three stent posts along the valve axis
            for angle in np.radians([0.0, 120.0, 240.0]) + rng.uniform(0.0, 2 * np.pi):
                foot = centre + radius * (np.cos(angle) * e1 + np.sin(angle) * e2)
                add(np.array([foot, foot + rng.uniform(12.0, 16.0) * axis]), radius=0.4)
    if chosen[2]:
        normal = lm["rv_apex"] - lm["tricuspid"]
        points, _ = ring(
            lm["tricuspid"], normal, rng.uniform(14.0, 17.0), rng.uniform(260.0, 320.0)
        )
        add(points)
    return tubes


def surgical_clips(
    rng: np.random.Generator, count: int, lm: dict[str, np.ndarray], step_mm: float
) -> list[Tube]:
    """Haemostatic clips (small steel V's) along the internal mammary artery bed of a bypass
    patient, from under the left clavicle down to the front of the heart."""
    top = np.array([MIDLINE_X_MM + rng.uniform(25.0, 45.0), -170.0, 55.0])
    bottom = lm["rv_apex"] + np.array([-10.0, -20.0, 15.0]) + rng.normal(0.0, 10.0, 3)
    clips = []
    for _ in range(count):
        apex = top + rng.uniform(0.0, 1.0) * (bottom - top) + rng.normal(0.0, 6.0, 3)
        direction = rng.normal(size=3)
        e1, e2 = orthonormal_basis(direction, rng.normal(size=3))
        length, spread = rng.uniform(4.0, 7.0), np.radians(rng.uniform(8.0, 20.0))
        legs = [
            apex + length * (np.cos(spread) * e1 + sign * np.sin(spread) * e2) for sign in (-1, 1)
        ]
        clips.append(
            Tube(
                kind="surgical_clip",
                points_mm=smooth_curve(np.array([legs[0], apex, legs[1]]), step_mm),
                step_mm=step_mm,
                radius_mm=rng.uniform(0.3, 0.45),
                shaft_mu=STEEL_MU,
                target=False,
                cardiac_weight=0.5,
                respiratory_weight=0.6,
            )
        )
    return clips
