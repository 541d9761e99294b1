"""Rendering frames of a scene and their ground truth; the engine's public entry points."""

from __future__ import annotations

import cv2
import numpy as np

from cathtrack.data.sample import CatheterLabel, Sample

from .anatomy import render_anatomy
from .config import SynthConfig
from .export import apply_export
from .imaging import form_image
from .objects import Plate, Tube, Vessel
from .raster import fill_polygon, footprint, splat_disc_filtered, splat_tapered
from .scene import Scene, sample_scene
from .scratch import scratch

_BACKGROUND_BREATHING = 0.5  # fraction of the heart's breathing motion applied to a real image
_BAND_FRACTIONS = np.linspace(0.0, 1.0, 5)  # where along a band its box is sampled


def _frame_rng(seed: int, frame: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1, frame])))


def _longest_run(flags: np.ndarray) -> slice:
    """Slice of the longest run of True in a 1-D bool array (empty slice if none)."""
    if not flags.any():
        return slice(0, 0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    starts, ends = edges[::2], edges[1::2]
    best = int(np.argmax(ends - starts))
    return slice(int(starts[best]), int(ends[best]))


def _tube_weights(tube: Tube, n_points: int) -> np.ndarray:
    """(n_points,) line-integral weight of each axis sample: mu times the length it stands for.

    Each sample stands for the arc [s - step/2, s + step/2]; a band adds its extra attenuation
    in proportion to its overlap with that arc, so even bands shorter than a step keep their
    full amount of metal.
    """
    step = tube.step_mm
    weights = np.full(n_points, tube.shaft_mu * step)
    if len(tube.bands_mm) == 0:
        return weights
    # All bands at once: the samples each band may touch, one run per band in band order.
    starts, ends = tube.bands_mm[:, 0], tube.bands_mm[:, 1]
    first = np.maximum(np.floor(starts / step - 0.5).astype(np.int64), 0)
    last = np.minimum(np.ceil(ends / step + 0.5).astype(np.int64), n_points - 1)
    counts = np.maximum(last - first + 1, 0)
    band = np.repeat(np.arange(len(starts)), counts)
    index = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + first[band]
    s = index * step
    overlap = np.clip(
        np.minimum(s + 0.5 * step, ends[band]) - np.maximum(s - 0.5 * step, starts[band]), 0.0, step
    )
    # Unbuffered and in order, like one += per band: where runs overlap, the amounts add up in
    # the same order.
    np.add.at(weights, index, (tube.band_mu - tube.shaft_mu) * overlap)
    return weights


class _Frame:
    """Accumulates one frame's line integrals and labels."""

    def __init__(self, scene: Scene, t: float):
        self.scene, self.t = scene, t
        size = scene.view.size
        # Both are temporaries of this frame (the sample gets a masked copy of the mask).
        self.devices = scratch("devices", (size, size), np.float32)
        self.devices.fill(0.0)
        self.mask = scratch("mask", (size, size), np.uint8)
        self.mask.fill(0)
        in_field = scene.imaging.in_field
        self.in_view = in_field & ~scene.opaque if scene.opaque.any() else in_field
        # One block of rows per catheter, stacked in the sample.
        self.electrodes: list[np.ndarray] = [np.zeros((0, 2))]
        self.boxes: list[np.ndarray] = [np.zeros((0, 4))]
        self.electrode_catheter: list[np.ndarray] = [np.zeros(0, np.int64)]
        self.electrode_index: list[np.ndarray] = [np.zeros(0, np.int64)]
        self.catheters: list[CatheterLabel] = []

    def _visible(self, uv: np.ndarray) -> np.ndarray:
        size = self.scene.view.size
        ix, iy = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
        inside = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
        visible = np.zeros(len(uv), bool)
        visible[inside] = self.in_view[iy[inside], ix[inside]]
        return visible

    def add_tube(self, tube: Tube) -> None:
        points = self.scene.motion.displace(
            tube.points_mm, self.t, tube.cardiac_weight, tube.respiratory_weight
        )
        uv, px_per_mm = self.scene.view.project(points)
        scale = float(px_per_mm.mean())
        radius_px = tube.radius_mm * scale
        inner_px = tube.inner_radius_mm * scale
        splat_disc_filtered(self.devices, uv, _tube_weights(tube, len(uv)), radius_px, inner_px)
        if tube.lumen_mu > 0.0 and inner_px > 0.0:
            lumen = np.full(len(uv), tube.lumen_mu * tube.step_mm)
            splat_disc_filtered(self.devices, uv, lumen, inner_px)

        # One centerline point per ~pixel, clipped to the longest stretch in view.
        stride = max(1, int(round(1.0 / (tube.step_mm * scale))))
        centerline = uv[::stride]
        centerline = centerline[_longest_run(self._visible(centerline))]
        if len(centerline) == 0:
            return
        catheter_id = len(self.catheters) + 1
        self.catheters.append(
            CatheterLabel(catheter_id, tube.kind, centerline.astype(np.float32), tube.target)
        )
        if not tube.target:
            return
        footprint(self.mask, uv, radius_px)
        if tube.bands_are_electrodes:
            self._add_electrodes(tube, uv, radius_px, catheter_id)

    def _add_electrodes(
        self, tube: Tube, uv: np.ndarray, radius_px: float, catheter_id: int
    ) -> None:
        """Label the tube's bands whose centre is in view: centre, footprint box, owner, index."""
        arc = np.arange(len(uv)) * tube.step_mm
        # Per band: its centre and 5 points along it (for the box), all interpolated at once.
        along = tube.bands_mm[:, :1] + _BAND_FRACTIONS * np.diff(tube.bands_mm, axis=1)
        queries = np.concatenate([tube.bands_mm.mean(axis=1), along.ravel()])
        positions = np.column_stack([np.interp(queries, arc, uv[:, d]) for d in range(2)])
        n_bands = len(tube.bands_mm)
        centres, band_points = positions[:n_bands], positions[n_bands:].reshape(n_bands, 5, 2)
        shown = np.flatnonzero(self._visible(centres))
        low = band_points[shown].min(axis=1) - radius_px
        high = band_points[shown].max(axis=1) + radius_px
        self.electrodes.append(centres[shown])
        self.boxes.append(np.concatenate([low, high - low], axis=1))
        self.electrode_catheter.append(np.full(len(shown), catheter_id, np.int64))
        self.electrode_index.append(shown.astype(np.int64))

    def add_discs(self) -> None:
        for disc in self.scene.discs:
            centre = self.scene.motion.displace(
                disc.centre_mm[None], self.t, 0.0, disc.respiratory_weight
            )
            uv, px_per_mm = self.scene.view.project(centre)
            splat_disc_filtered(
                self.devices, uv, np.array([disc.line_integral]), disc.radius_mm * px_per_mm[0]
            )

    def add_vessel(self, vessel: Vessel) -> None:
        """Contrast in the lumen: line integrals only, never a label."""
        points = self.scene.motion.displace(
            vessel.points_mm, self.t, vessel.cardiac_weight, vessel.respiratory_weight
        )
        uv, px_per_mm = self.scene.view.project(points)
        weights = vessel.mu * vessel.step_mm * vessel.opacity(self.t)
        splat_tapered(self.devices, uv, weights, vessel.radius_mm * px_per_mm)

    def add_plate(self, plate: Plate) -> None:
        outline = self.scene.motion.displace(
            plate.outline_mm, self.t, plate.cardiac_weight, plate.respiratory_weight
        )
        uv, _ = self.scene.view.project(outline)
        fill_polygon(self.devices, uv, plate.line_integral)

    def anatomy(self) -> np.ndarray:
        """The patient's line integrals at this frame's time, (H, W) float32, in a scratch array
        that the frame may work in."""
        scene = self.scene
        size = scene.view.size
        out = scratch("anatomy", (size, size), np.float32)
        if scene.anatomy is not None:
            return render_anatomy(scene.anatomy, scene.view, scene.motion, self.t, out=out)
        shift = scene.motion.respiratory_shift(self.t, _BACKGROUND_BREATHING)
        dx, dy = shift[:2] / scene.view.pixel_mm
        return cv2.warpAffine(
            scene.background,
            np.float32([[1, 0, dx], [0, 1, dy]]),
            scene.background.shape[::-1],
            dst=out,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT,
        )


def render_frame(
    scene: Scene,
    t: float,
    noise_rng: np.random.Generator,
    name: str,
    index: int = 0,
    previous: np.ndarray | None = None,
) -> tuple[Sample, np.ndarray]:
    """Render the scene at time ``t`` s with this frame's noise generator.

    ``index`` is the frame's position in its sequence (for burned-in counters) and
    ``previous`` the detector signal of the frame before (recursive filter). Returns the
    sample and this frame's detector signal.
    """
    frame = _Frame(scene, t)
    for tube in scene.tubes:
        frame.add_tube(tube)
    frame.add_discs()
    for vessel in scene.vessels:
        frame.add_vessel(vessel)
    for plate in scene.plates:
        frame.add_plate(plate)
    anatomy = frame.anatomy()
    # The automatic brightness control sets the dose on the patient, not on the devices.
    reference = (
        float(np.median(anatomy[::4, ::4][scene.imaging.in_field[::4, ::4]]))
        if scene.imaging.in_field.any()
        else 0.0
    )
    # anatomy - reference + devices, plus 6 outside a real image's field (opaque), in place.
    line_integrals = anatomy
    line_integrals -= reference
    line_integrals += frame.devices
    np.add(line_integrals, np.float32(6.0), out=line_integrals, where=scene.opaque)
    image, signal = form_image(line_integrals, scene.imaging, noise_rng, frame.in_view, previous)
    if scene.export is not None:
        image = apply_export(image, scene.export, index)
    mask = frame.mask * frame.in_view  # a new uint8 array
    sample = Sample(
        image=image,
        mask=mask,
        electrodes=np.concatenate(frame.electrodes).astype(np.float32),
        boxes=np.concatenate(frame.boxes).astype(np.float32),
        electrode_catheter=np.concatenate(frame.electrode_catheter),
        electrode_index=np.concatenate(frame.electrode_index),
        catheters=frame.catheters,
        available={"segmentation": True, "detection": True},
        name=name,
        pixel_spacing_mm=float(scene.view.pixel_mm),
    )
    return sample, signal


def render_sequence(config: SynthConfig, seed: int, n_frames: int) -> list[Sample]:
    """``n_frames`` frames of one scene moving with the heart and breathing at ``config.fps``.

    Fully determined by ``(config, seed)``; frame 0 equals ``render(config, seed)``. Scene,
    C-arm, processing and export settings hold for the whole sequence; quantum noise is new
    in every frame and the recursive filter (when on) carries the previous frames along.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    scene = sample_scene(config, seed)
    samples, signal = [], None
    for k in range(n_frames):
        sample, signal = render_frame(
            scene, k / config.fps, _frame_rng(seed, k), f"synth-{seed}-{k:04d}", k, signal
        )
        samples.append(sample)
    return samples


def render(config: SynthConfig, seed: int) -> Sample:
    """One frame, fully determined by ``(config, seed)``."""
    sample = render_sequence(config, seed, 1)[0]
    sample.name = f"synth-{seed}"
    return sample
