"""One random scene: view, patient, devices, distractors, motion and imaging settings.

Everything random about a scene is drawn here, once, from the scene's generator; rendering a
frame of it at time t only needs the frame's noise generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy, sample_anatomy
from .backgrounds import background_layer, load_backgrounds
from .catheters import build_catheter
from .config import SynthConfig
from .distractors import ecg_snap, guidewire, sternal_wires, temperature_probe
from .geometry import CArmView
from .imaging import Imaging, sample_imaging
from .landmarks import sample_landmarks
from .motion import Motion
from .objects import Disc, Tube

_SAMPLES_PER_PIXEL = 2.0  # axis samples per pixel at the isocentre (footprint error < 0.03 px)


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
    """

    view: CArmView
    anatomy: Anatomy | None
    background: np.ndarray | None
    opaque: np.ndarray
    tubes: list[Tube]
    discs: list[Disc]
    motion: Motion
    imaging: Imaging


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


def sample_scene(config: SynthConfig, rng: np.random.Generator) -> Scene:
    """Draw a scene from ``config`` with the scene generator ``rng``."""
    size = config.size
    pixel_mm = rng.uniform(*config.field_of_view_mm) / size
    view = CArmView.from_angles(
        lao_deg=rng.uniform(*config.lao_deg),
        cranial_deg=rng.uniform(*config.cranial_deg),
        isocentre_mm=np.append(rng.normal(0.0, config.table_shift_mm, 2), 0.0),
        source_isocentre_mm=rng.uniform(*config.source_isocentre_distance_mm),
        pixel_mm=pixel_mm,
        size=size,
    )
    step_mm = pixel_mm / _SAMPLES_PER_PIXEL
    landmarks = sample_landmarks(rng, config.landmark_jitter_mm)

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
    tubes = _trim_to_view(tubes, view)

    anatomy, background = None, None
    opaque = np.zeros((size, size), bool)
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
        imaging=sample_imaging(rng, config, pixel_mm),
    )
