"""Target catheters as 3D curves of clinical shape, with electrodes from the catalogue.

Each builder returns the device's axis as control points running proximal -> distal through
the landmarks a clinician would steer it along; :func:`build_catheter` smooths, orders it distal
first and places the electrodes of a catalogue variant (:data:`cathtrack.catheters.CATALOGUE`).
Catheters without electrodes (guiding and diagnostic catheters, long sheaths) are hollow tubes
(a braided wall around a lumen); a sheath carries a radiopaque tip marker, which is not an
electrode and is never labelled.
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
    """From the left subclavian vein entry down the SVC to the RV apex or RA appendage."""
    path = [lm["subclavian"], lm["innominate"], lm["svc"], lm["ra"] + rng.normal(0.0, 8.0, 3)]
    if rng.random() < 0.7:
        return [*path, lm["tricuspid"], lm["rv_apex"]]
    # Atrial lead: the J shape curling up into the appendage.
    return [*path, lm["ra"] * 0.5 + lm["raa"] * 0.5 + np.array([0.0, 20.0, 0.0]), lm["raa"]]


def _aortic_route(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """Femoral artery up the descending aorta and over the arch (70%), or radial / brachial
    through the right subclavian artery; both end in the ascending aorta."""
    if rng.random() < 0.7:
        return [
            lm["descending_aorta_low"],
            lm["descending_aorta"],
            lm["aortic_arch"],
            lm["ascending_aorta"],
        ]
    return [lm["right_subclavian_artery"], lm["brachiocephalic"], lm["ascending_aorta"]]


def _engaged(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """Judkins / extra-backup shape: the secondary curve rests on the aortic wall opposite the
    coronary ostium, the tip sits a few mm inside the artery."""
    root, ostium = lm["aortic_root"], lm["coronary_ostium"]
    outward = _unit(ostium - root)
    backup = root - outward * rng.uniform(8.0, 14.0) + rng.normal(0.0, 3.0, 3)
    above = 0.5 * (lm["ascending_aorta"] + backup) + rng.normal(0.0, 4.0, 3)
    return [
        *_aortic_route(rng, lm),
        above,
        backup,
        ostium,
        ostium + outward * rng.uniform(2.0, 6.0),
    ]


def _guiding(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """Guiding catheter seated in the coronary ostium of the scene (left or right)."""
    return _engaged(rng, lm)


def _pigtail(rng: np.random.Generator, end: np.ndarray, direction: np.ndarray) -> list[np.ndarray]:
    """A pigtail: a tight 1.2-turn curl of 4-6 mm radius at the end of a straight approach."""
    radius = rng.uniform(4.0, 6.0)
    side = _unit(np.cross(direction, _random_unit(rng)))
    angles = np.linspace(0.0, 2.4 * np.pi, 16)[1:]
    curl = circle_arc(
        end + side * radius, -side, direction, radius * np.linspace(1.0, 0.7, 15), angles
    )
    return [end, *curl]


def _diagnostic(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """Diagnostic catheter: engaged in the coronary ostium (50%), a pigtail in the left
    ventricle across the aortic valve (30%) or in the aortic root for an aortogram."""
    site = rng.choice(["ostium", "ventricle", "root"], p=[0.5, 0.3, 0.2])
    if site == "ostium":
        return _engaged(rng, lm)
    route = _aortic_route(rng, lm)
    if site == "ventricle":
        end = lm["lv_cavity"] + rng.normal(0.0, 5.0, 3)
        return [*route, lm["aortic_root"], *_pigtail(rng, end, _unit(end - lm["aortic_root"]))]
    end = lm["aortic_root"] + rng.normal(0.0, 3.0, 3)
    return [*route, *_pigtail(rng, end, _unit(end - lm["ascending_aorta"]))]


def _long_sheath(rng: np.random.Generator, lm: Landmarks) -> list[np.ndarray]:
    """Femoral venous sheath: across the septum with its tip in the left atrium (75%, a
    transseptal or cryoballoon sheath) or parked in the right atrium."""
    if rng.random() < 0.25:
        return [
            *_femoral_route(lm),
            lm["ra_floor"] * 0.5 + lm["ra"] * 0.5 + rng.normal(0.0, 5.0, 3),
        ]
    target = lm[PULMONARY_VEINS[rng.integers(4)]] * 0.5 + lm["la"] * 0.5
    direction = _unit(target - lm["fossa"] + rng.normal(0.0, 6.0, 3))
    return [
        *_femoral_route(lm),
        lm["fossa"] - np.array([12.0, -5.0, 0.0]),
        lm["fossa"],
        lm["fossa"] + direction * rng.uniform(8.0, 25.0),
    ]


_ROUTES: dict[str, Callable[..., list[np.ndarray]]] = {
    "cs_decapolar": _coronary_sinus,
    "ablation": _ablation,
    "quadripolar": _quadripolar,
    "pacing_lead": _pacing_lead,
    "guiding_catheter": _guiding,
    "diagnostic_catheter": _diagnostic,
    "long_sheath": _long_sheath,
}

# Devices without electrodes are hollow: lumen diameter as a fraction of the outer one.
_LUMEN_FRACTION = {
    "guiding_catheter": (0.8, 0.88),
    "diagnostic_catheter": (0.65, 0.75),
    "long_sheath": (0.78, 0.86),
}
_SHEATH_MARKER_MM = (1.5, 2.5)  # radiopaque band at the sheath tip


def build_catheter(
    rng: np.random.Generator,
    device_type: str,
    lm: Landmarks,
    step_mm: float,
    shaft_mu: float,
    lead_shaft_mu: float,
    electrode_mu: float,
    wall_mu: tuple[float, float] = (0.4, 0.8),
) -> Tube:
    """One target device of a random catalogue variant of ``device_type``.

    Args:
        rng: the scene's generator.
        device_type: a catalogue type.
        lm: landmarks of the scene (:func:`.landmarks.sample_landmarks`).
        step_mm: arc-length sampling step of the axis.
        shaft_mu, lead_shaft_mu, electrode_mu: attenuations (1/mm), see ``SynthConfig``.
        wall_mu: range of the wall attenuation of hollow devices without electrodes (1/mm),
            drawn only for them.
    """
    variants = variants_of(device_type)
    variant = variants[rng.integers(len(variants))]
    if device_type == "circular_mapping":
        control = _circular_mapping(rng, lm, variant)
    else:
        control = _ROUTES[device_type](rng, lm)
    axis = smooth_curve(np.asarray(control[::-1]), step_mm)  # distal tip first
    if variant.n_electrodes == 0:
        radius = 0.5 * variant.shaft_diameter_mm
        marker = rng.uniform(*_SHEATH_MARKER_MM) if device_type == "long_sheath" else 0.0
        return Tube(
            kind=device_type,
            points_mm=axis,
            step_mm=step_mm,
            radius_mm=radius,
            shaft_mu=rng.uniform(*wall_mu),
            bands_mm=np.array([[0.5, 0.5 + marker]]) if marker else np.zeros((0, 2)),
            band_mu=electrode_mu,
            inner_radius_mm=radius * rng.uniform(*_LUMEN_FRACTION[device_type]),
            bands_are_electrodes=False,
        )
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
