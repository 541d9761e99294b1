"""Target catheters as 3D curves of clinical shape, with electrodes from the catalogue.

Each builder returns the device's axis as control points running proximal -> distal through
the landmarks a clinician would steer it along; :func:`build_catheter` smooths, orders it distal
first and places the electrodes of a catalogue variant (:data:`cathtrack.catheters.CATALOGUE`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cathtrack.catheters import CatheterVariant, variants_of

from .curves import circle_arc, orthonormal_basis, smooth_curve
from .landmarks import MITRAL_NORMAL, PULMONARY_VEINS
from .objects import Tube

Landmarks = dict[str, np.ndarray]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    return _unit(rng.normal(size=3))


def _femoral_route(lm: Landmarks) -> list[np.ndarray]:
    return [lm["ivc_low"], lm["ivc"], lm["ra_floor"]]


def _superior_route(lm: Landmarks) -> list[np.ndarray]:
    return [lm["svc_high"], lm["svc"]]


def _deflected_tip(
    rng: np.random.Generator, start: np.ndarray, direction: np.ndarray, reach_mm: float
) -> list[np.ndarray]:
    """Control points of a straight run then a bend of random radius, angle and plane."""
    straight_end = start + direction * reach_mm
    bend_radius = rng.uniform(10.0, 22.0)
    bend_angle = np.radians(rng.uniform(30.0, 170.0))
    side = _unit(np.cross(direction, _random_unit(rng)))
    centre = straight_end + side * bend_radius
    angles = np.linspace(0.0, bend_angle, 6)[1:]
    # Arc starting at straight_end tangent to `direction`, curling towards `side`.
    arc = circle_arc(centre, -side, direction, bend_radius, angles)
    return [straight_end, *arc]


def _coronary_sinus(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """Up the IVC (or down the SVC), hook into the CS ostium, then along the AV groove."""
    normal = _unit(MITRAL_NORMAL + rng.normal(0.0, 0.15, 3))
    e1, e2 = orthonormal_basis(normal, np.array([1.0, 0.0, 0.0]))  # e1 lateral, e2 inferior
    radius = rng.uniform(24.0, 34.0)
    ostium_angle = np.radians(rng.uniform(125.0, 155.0))
    span = np.radians(rng.uniform(140.0, 210.0))
    centre = lm["cs_os"] - radius * (np.cos(ostium_angle) * e1 + np.sin(ostium_angle) * e2)
    angles = np.linspace(ostium_angle, ostium_angle - span, 12)
    spiral = radius * (1.0 + np.linspace(0.0, rng.uniform(-0.15, 0.15), len(angles)))
    groove = circle_arc(centre, e1, e2, spiral, angles)
    route = _femoral_route(lm) if rng.random() < 0.7 else _superior_route(lm)
    return [*route, lm["ra"], *groove]


def _ablation(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """Femoral, across the septum into the left atrium, deflected tip towards the wall."""
    target = lm[PULMONARY_VEINS[rng.integers(4)]] * rng.uniform(0.4, 0.9) + lm["la"] * 0.3
    direction = _unit(target - lm["fossa"] + rng.normal(0.0, 8.0, 3))
    tip = _deflected_tip(rng, lm["fossa"] + direction * 5.0, direction, rng.uniform(5.0, 20.0))
    return [*_femoral_route(lm), lm["fossa"] - np.array([12.0, -5.0, 0.0]), lm["fossa"], *tip]


def _circular_mapping(
    rng: np.random.Generator, lm: Landmarks, variant: CatheterVariant
) -> list[np.ndarray]:
    """Transseptal to a pulmonary vein ostium; the loop faces into the vein."""
    vein = lm[PULMONARY_VEINS[rng.integers(4)]]
    axis = _unit(vein - lm["la"] + rng.normal(0.0, 6.0, 3))
    radius = 0.5 * rng.uniform(*variant.loop_diameter_mm)
    e1, e2 = orthonormal_basis(axis, _random_unit(rng))
    centre = vein - axis * rng.uniform(0.0, 6.0)
    sweep = np.radians(rng.uniform(300.0, 345.0))
    angles = np.linspace(0.0, sweep, 24)
    # A lasso is a slight helix: the free end sits a few mm deeper in the vein.
    loop = circle_arc(centre, e1, e2, radius, angles) + np.outer(
        np.linspace(0.0, rng.uniform(1.0, 4.0), len(angles)), axis
    )
    elbow = centre - axis * rng.uniform(8.0, 14.0)
    return [*_femoral_route(lm), lm["fossa"], lm["la"] * 0.5 + elbow * 0.5, elbow, *loop]


def _quadripolar(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """Femoral to the His bundle, the RV apex or the high right atrium."""
    site = rng.choice(["his", "rv_apex", "hra"], p=[0.4, 0.4, 0.2])
    if site == "rv_apex":
        return [
            *_femoral_route(lm),
            lm["ra"] * 0.5 + lm["tricuspid"] * 0.5,
            lm["tricuspid"],
            lm["rv_apex"],
        ]
    return [*_femoral_route(lm), lm["ra"] * 0.6 + lm[site] * 0.4, lm[site]]


def _pacing_lead(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """From the pocket under the left clavicle down the SVC to the RV apex or RA appendage."""
    path = [lm["subclavian"], lm["innominate"], lm["svc"], lm["ra"] + rng.normal(0.0, 8.0, 3)]
    if rng.random() < 0.7:
        return [*path, lm["tricuspid"], lm["rv_apex"]]
    # Atrial lead: the J shape curling up into the appendage.
    return [*path, lm["ra"] * 0.5 + lm["raa"] * 0.5 + np.array([0.0, 20.0, 0.0]), lm["raa"]]


_ROUTES: dict[str, Callable[..., list[np.ndarray]]] = {
    "cs_decapolar": _coronary_sinus,
    "ablation": _ablation,
    "quadripolar": _quadripolar,
    "pacing_lead": _pacing_lead,
}


def build_catheter(
    rng: np.random.Generator,
    device_type: str,
    lm: Landmarks,
    step_mm: float,
    shaft_mu: float,
    lead_shaft_mu: float,
    electrode_mu: float,
) -> Tube:
    """One target device of a random catalogue variant of ``device_type``.

    Args:
        rng: the scene's generator.
        device_type: a catalogue type.
        lm: landmarks of the scene (:func:`.landmarks.sample_landmarks`).
        step_mm: arc-length sampling step of the axis.
        shaft_mu, lead_shaft_mu, electrode_mu: attenuations (1/mm), see ``SynthConfig``.
    """
    variants = variants_of(device_type)
    variant = variants[rng.integers(len(variants))]
    if device_type == "circular_mapping":
        control = _circular_mapping(rng, lm, variant)
    else:
        control = _ROUTES[device_type](rng, lm)
    axis = smooth_curve(np.asarray(control[::-1]), step_mm)  # distal tip first
    centres = np.asarray(variant.electrode_centres_mm)
    half = 0.5 * np.asarray(variant.electrode_lengths_mm)
    return Tube(
        kind=device_type,
        points_mm=axis,
        step_mm=step_mm,
        radius_mm=0.5 * variant.shaft_diameter_mm,
        shaft_mu=lead_shaft_mu if device_type == "pacing_lead" else shaft_mu,
        bands_mm=np.column_stack([centres - half, centres + half]),
        band_mu=electrode_mu,
    )
