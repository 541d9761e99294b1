"""One random scene: view, patient, devices, distractors, motion and imaging settings.

Everything random about a scene is drawn here, once; rendering a frame of it at time t only
needs the frame's noise generator. The original scene content comes from the scene stream
``SeedSequence([seed, 0])``; each hard negative and the vendor chain have their own stream
``SeedSequence([seed, 2, k])`` (k in :data:`STREAMS`), so switching one on changes nothing else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .anatomy import Anatomy, sample_anatomy
from .backgrounds import background_layer, load_backgrounds
from .catheters import build_catheter
from .config import SynthConfig
from .distractors import STEEL_MU, ecg_snap, guidewire, sternal_wires, tee_probe, temperature_probe
from .export import Export, sample_export
from .geometry import CArmView
from .heart import sample_heart
from .imaging import Imaging, sample_imaging
from .implants import generator, surgical_clips, valve_rings
from .landmarks import sample_landmarks
from .motion import Motion
from .objects import Disc, Plate, Tube, Vessel
from .vessels import coronary_tree, venogram

_SAMPLES_PER_PIXEL = 2.0  # axis samples per pixel at the isocentre (footprint error < 0.03 px)
STREAMS = (
    "heart", "coronary", "venogram", "pacemaker", "valves", "clips", "tee", "chain", "export",
)  # fmt: skip
"""Names of the extra seed streams, in the order of their index k."""


@dataclass
class Scene:
    """Everything needed to render frames of one scene.

    Attributes:
        view: the C-arm pose.
        anatomy: procedural patient, or None when a real background is used.
        background: (H, W) float32 line integrals of a real image, or None.
        opaque: (H, W) bool pixels outside the real background's field (all False otherwise).
        tubes: targets first (in label order), then distractor tubes.
        discs: distractor discs.
        motion: the scene's cardiac and respiratory motion.
        imaging: detector and display settings.
        vessels: contrast-filled trees (never labelled).
        plates: flat dense shapes such as pacemaker cans (never labelled).
        export: burned-in graphics, polarity, 8 bits, JPEG; None for none of them.
    """

    view: CArmView
    anatomy: Anatomy | None
    background: np.ndarray | None
    opaque: np.ndarray
    tubes: list[Tube]
    discs: list[Disc]
    motion: Motion
    imaging: Imaging
    vessels: list[Vessel] = field(default_factory=list)
    plates: list[Plate] = field(default_factory=list)
    export: Export | None = None


@functools.lru_cache(maxsize=8)
def _nowhere(size: int) -> np.ndarray:
    """(size, size) bool, all False, read-only: ``Scene.opaque`` without a real background."""
    nowhere = np.zeros((size, size), bool)
    nowhere.flags.writeable = False
    return nowhere


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator of one extra stream of scene ``seed`` (see :data:`STREAMS`)."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, 2, STREAMS.index(name)]))
    )


def _pick_catheter_types(rng: np.random.Generator, config: SynthConfig) -> list[str]:
    chosen = [t for t, p in config.device_probability.items() if rng.random() < p]
    by_probability = sorted(
        (t for t, p in config.device_probability.items() if p > 0 and t not in chosen),
        key=lambda t: -config.device_probability[t],
    )
    while len(chosen) < config.min_devices and by_probability:
        chosen.append(by_probability.pop(0))
    return chosen


def _trim_to_view(tubes: list[Tube], view: CArmView) -> list[Tube]:
    """Cut each tube's proximal part beyond the last point near the field; drop unseen tubes.

    Shafts run far outside the field (down to the groin); a margin of a quarter field covers
    any motion, and the cut keeps arc lengths from the tip unchanged.
    """
    margin = 0.25 * view.size
    kept = []
    for tube in tubes:
        uv, _ = view.project(tube.points_mm)
        near = np.all((uv > -margin) & (uv < view.size + margin), axis=1)
        if near.any():
            tube.points_mm = tube.points_mm[: np.flatnonzero(near)[-1] + 1]
            kept.append(tube)
    return kept


def _count(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _drawn(seed: int, name: str, probability: float) -> np.random.Generator | None:
    """The stream of object ``name`` if the scene has it, else None (no stream is made for
    objects that are off: they cost nothing)."""
    if probability <= 0.0:
        return None
    rng = stream(seed, name)
    return rng if rng.random() < probability else None


def _hard_negatives(
    config: SynthConfig, seed: int, landmarks: dict, surface, step_mm: float, side: str
) -> tuple[list[Tube], list[Vessel], list[Plate]]:
    """Contrast trees, coronary wire, pacemaker, valve rings, clips and TEE probe."""
    tubes: list[Tube] = []
    vessels: list[Vessel] = []
    plates: list[Plate] = []
    if config.coronary_probability > 0.0 or config.coronary_wire_probability > 0.0:
        rng = stream(seed, "coronary")
        opacified = rng.random() < config.coronary_probability
        wired = rng.random() < config.coronary_wire_probability
        if opacified or wired:
            mu = rng.uniform(*config.contrast_mu)
            tree = coronary_tree(rng, surface, landmarks, step_mm, mu, side)
            if opacified:
                vessels.append(tree)
            if wired:
                tubes.append(_coronary_wire(rng, tree, step_mm))
    if rng := _drawn(seed, "venogram", config.venogram_probability):
        vessels.append(venogram(rng, surface, landmarks, step_mm, rng.uniform(*config.contrast_mu)))
    if rng := _drawn(seed, "pacemaker", config.pacemaker_probability):
        can, leads = generator(rng, landmarks, step_mm)
        plates += can
        tubes += leads
    if rng := _drawn(seed, "valves", config.valve_ring_probability):
        tubes += valve_rings(rng, landmarks, step_mm)
    if config.surgical_clips[1] > 0:
        rng = stream(seed, "clips")
        tubes += surgical_clips(rng, _count(rng, config.surgical_clips), landmarks, step_mm)
    if rng := _drawn(seed, "tee", config.tee_probe_probability):
        tubes += tee_probe(rng, step_mm)
    return tubes, vessels, plates


def _uses_the_heart(config: SynthConfig) -> bool:
    """Whether anything in the scene needs the heart surface, aorta and coronary ostia."""
    return (
        max(
            config.coronary_probability,
            config.coronary_wire_probability,
            config.venogram_probability,
            config.valve_ring_probability,
            config.device_probability.get("guiding_catheter", 0.0),
            config.device_probability.get("diagnostic_catheter", 0.0),
        )
        > 0.0
    )


def _uses_the_vendor_chain(config: SynthConfig) -> bool:
    return (
        config.edge_radius_mm is not None
        or config.s_curve_probability > 0.0
        or config.recursive_filter_probability > 0.0
        or config.window_top_headroom[1] > 0.0
    )


def _exports(config: SynthConfig) -> bool:
    return (
        max(
            config.invert_probability,
            config.overlay_probability,
            config.export_8bit_probability,
            config.jpeg_probability,
        )
        > 0.0
    )


def _coronary_wire(rng: np.random.Generator, tree: Vessel, step_mm: float) -> Tube:
    """A 0.014" wire from the ostium down the tree's main branch, its last 30 mm platinum."""
    # The trunk and the first branch are the first samples whose arc length keeps growing.
    arc = tree.arc_mm
    end = int(np.argmax(np.diff(arc) < 0)) + 1 if (np.diff(arc) < 0).any() else len(arc)
    path = tree.points_mm[:end][::-1]  # distal tip first
    return Tube(
        kind="coronary_guidewire",
        points_mm=path,
        step_mm=step_mm,
        radius_mm=0.18,
        shaft_mu=STEEL_MU,
        bands_mm=np.array([[0.0, rng.uniform(25.0, 35.0)]]),
        band_mu=3.5,
        target=False,
    )


def sample_scene(config: SynthConfig, seed: int) -> Scene:
    """Draw the scene of ``seed`` from ``config``."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0])))
    size = config.size
    pixel_mm = rng.uniform(*config.field_of_view_mm) / size
    lao, cranial = rng.uniform(*config.lao_deg), rng.uniform(*config.cranial_deg)
    view = CArmView.from_angles(
        lao_deg=lao,
        cranial_deg=cranial,
        isocentre_mm=np.append(rng.normal(0.0, config.table_shift_mm, 2), 0.0),
        source_isocentre_mm=rng.uniform(*config.source_isocentre_distance_mm),
        pixel_mm=pixel_mm,
        size=size,
    )
    step_mm = pixel_mm / _SAMPLES_PER_PIXEL
    landmarks = sample_landmarks(rng, config.landmark_jitter_mm)
    surface, side = None, "left"
    if _uses_the_heart(config):
        heart_rng = stream(seed, "heart")
        surface, arteries = sample_heart(heart_rng, landmarks)
        side = "left" if heart_rng.random() < 0.6 else "right"
        landmarks = {
            **landmarks,
            **arteries,
            "coronary_ostium": arteries["lm_ostium" if side == "left" else "rca_ostium"],
        }

    electrode_mu = rng.uniform(*config.electrode_mu)
    tubes = [
        build_catheter(
            rng,
            catheter_type,
            landmarks,
            step_mm,
            shaft_mu=rng.uniform(*config.shaft_mu),
            lead_shaft_mu=rng.uniform(*config.lead_shaft_mu),
            electrode_mu=electrode_mu,
            wall_mu=config.wall_mu,
        )
        for catheter_type in _pick_catheter_types(rng, config)
    ]

    discs: list[Disc] = []
    for _ in range(_count(rng, config.ecg_snaps)):
        snap_discs, wires = ecg_snap(rng, view, step_mm, rng.random() < config.ecg_wire_probability)
        discs += snap_discs
        tubes += wires
    tubes += sternal_wires(rng, _count(rng, config.sternal_wires), step_mm)
    tubes += [guidewire(rng, landmarks, step_mm) for _ in range(_count(rng, config.guidewires))]
    if rng.random() < config.temperature_probe_probability:
        tubes.append(temperature_probe(rng, step_mm, electrode_mu))
    negatives, vessels, plates = _hard_negatives(config, seed, landmarks, surface, step_mm, side)
    for vessel in vessels:  # a coronary injection fills the guiding catheter's lumen too
        for tube in tubes:
            if vessel.kind == "coronary_artery" and tube.kind == "guiding_catheter":
                tube.lumen_mu = vessel.mu
    tubes = _trim_to_view(tubes + negatives, view)

    anatomy, background = None, None
    opaque = _nowhere(size)
    if config.background_dir is not None and rng.random() < config.background_probability:
        background, opaque = background_layer(
            rng,
            load_backgrounds(config.background_dir),
            size,
            rng.uniform(*config.background_contrast),
        )
    else:
        anatomy = sample_anatomy(rng, rng.uniform(*config.anatomy_contrast))

    motion = Motion(
        heart_hz=rng.uniform(*config.heart_rate_bpm) / 60.0,
        respiratory_hz=rng.uniform(*config.respiratory_rate_bpm) / 60.0,
        cardiac_phase=rng.random(),
        respiratory_phase=rng.random(),
        cardiac_mm=rng.uniform(*config.cardiac_amplitude_mm),
        respiratory_mm=rng.uniform(*config.respiratory_amplitude_mm),
    )
    return Scene(
        view=view,
        anatomy=anatomy,
        background=background,
        opaque=opaque,
        tubes=tubes,
        discs=discs,
        motion=motion,
        imaging=sample_imaging(
            rng, config, pixel_mm, stream(seed, "chain") if _uses_the_vendor_chain(config) else None
        ),
        vessels=vessels,
        plates=plates,
        export=sample_export(stream(seed, "export"), config, lao, cranial, pixel_mm)
        if _exports(config)
        else None,
    )
