"""`SynthConfig`: every knob of the synthetic fluoroscopy engine, and the named presets.

A field that is a ``(low, high)`` pair is a range: each scene draws its value uniformly from it
(use equal ends for a fixed value). Integer count ranges include both ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from cathtrack.catheters import CATHETER_TYPES

Range = tuple[float, float]
CountRange = tuple[int, int]


def _default_device_probability() -> dict[str, float]:
    # What an AF-ablation lab usually shows: a CS catheter almost always, the ablation catheter
    # most of the time, a lasso during PV isolation, sometimes a His/RV quadripolar or a pacemaker.
    return {
        "cs_decapolar": 0.9,
        "ablation": 0.8,
        "circular_mapping": 0.5,
        "quadripolar": 0.35,
        "pacing_lead": 0.15,
    }


@dataclass(frozen=True)
class SynthConfig:
    """All parameters of the synthetic fluoroscopy engine (docs/design.md section 8).

    Lengths in mm are measured at the isocentre (where the heart is), angles in degrees,
    attenuations ``mu`` in 1/mm (so ``mu * chord_mm`` is the dimensionless line integral).
    """

    # --- output -------------------------------------------------------------------------
    size: int = 256
    """Output image height = width, pixels."""

    # --- C-arm geometry -----------------------------------------------------------------
    field_of_view_mm: Range = (190.0, 250.0)
    """Width of the imaged field at the isocentre, mm (sets the pixel spacing)."""
    source_isocentre_distance_mm: Range = (720.0, 800.0)
    """X-ray focal spot to isocentre distance, mm (sets the perspective strength)."""
    lao_deg: Range = (-35.0, 45.0)
    """C-arm rotation about the patient's long axis, degrees; positive = LAO, negative = RAO."""
    cranial_deg: Range = (-15.0, 15.0)
    """C-arm tilt; positive = cranial, negative = caudal, degrees."""
    table_shift_mm: float = 25.0
    """Std of the random offset between the heart centre and the isocentre (x, y), mm."""
    landmark_jitter_mm: float = 6.0
    """Std of the per-scene displacement of anatomical landmarks (veins, valves, ostia), mm."""

    # --- target devices -----------------------------------------------------------------
    device_probability: Mapping[str, float] = field(default_factory=_default_device_probability)
    """Catalogue type -> probability that one such device is in the scene."""
    min_devices: int = 1
    """At least this many target devices (the most probable missing types are added)."""
    shaft_mu: Range = (0.15, 0.28)
    """Attenuation of a catheter shaft (polymer with steel braid), 1/mm."""
    lead_shaft_mu: Range = (0.45, 0.7)
    """Attenuation of a pacing lead body (metal coil conductor), 1/mm."""
    electrode_mu: Range = (1.6, 2.6)
    """Effective attenuation of a platinum electrode seen as a solid cylinder, 1/mm."""
    wall_mu: Range = (0.4, 0.8)
    """Attenuation of the braided wall of hollow devices without electrodes (guiding and
    diagnostic catheters, long sheaths), 1/mm."""

    # --- distractors (never labelled) ---------------------------------------------------
    ecg_snaps: CountRange = (0, 3)
    """Number of ECG electrode snaps (10 mm disc with a metal stud) on the chest."""
    ecg_wire_probability: float = 0.7
    """Probability that an ECG snap has its lead wire running out of the field."""
    sternal_wires: CountRange = (0, 0)
    """Number of sternal wire loops (post-sternotomy patients)."""
    guidewires: CountRange = (0, 1)
    """Number of 0.9 mm (0.035") guidewires."""
    temperature_probe_probability: float = 0.2
    """Probability of an oesophageal temperature probe (tube with metal sensor bands)."""

    # --- hard negatives (never labelled; drawn from their own seed streams) -------------
    coronary_probability: float = 0.0
    """Probability of a contrast-filled coronary artery tree (left 60%, right 40%), as in an
    angiography run: it fills from the ostium over time, then washes out."""
    venogram_probability: float = 0.0
    """Probability of a coronary sinus venogram (CS, great cardiac vein and tributaries)."""
    contrast_mu: Range = (0.03, 0.3)
    """Attenuation of a fully opacified vessel lumen, 1/mm (faint to dark)."""
    coronary_wire_probability: float = 0.0
    """Probability of a 0.014" coronary guidewire (dense 30 mm tip) down a coronary artery."""
    pacemaker_probability: float = 0.0
    """Probability of a pacemaker (70%) or ICD can in the upper chest with its leads' pocket
    loops."""
    valve_ring_probability: float = 0.0
    """Probability of prosthetic valve rings (mitral, aortic and/or tricuspid)."""
    surgical_clips: CountRange = (0, 0)
    """Number of haemostatic clips along the internal mammary artery bed (bypass patients)."""
    tee_probe_probability: float = 0.0
    """Probability of a transoesophageal echo probe (thick shaft, dense rectangular head)."""

    # --- anatomy ------------------------------------------------------------------------
    anatomy_contrast: Range = (0.8, 1.25)
    """Scale of the anatomy's line integrals (patient size / beam quality)."""
    background_dir: str | None = None
    """Folder of real X-ray images (PNG/JPG, ``*_gt.*`` skipped) used as the anatomy layer."""
    background_probability: float = 1.0
    """Fraction of scenes that use a real background when ``background_dir`` is set."""
    background_contrast: Range = (0.8, 1.6)
    """Line-integral range a real background's darkest-to-brightest span is mapped to."""

    # --- image formation ----------------------------------------------------------------
    photons_per_pixel: Range = (150.0, 700.0)
    """Detected X-ray quanta per pixel at the median anatomy (the dose; 256 px reference)."""
    dose_log_uniform: bool = False
    """Draw ``photons_per_pixel`` log-uniformly (for ranges spanning decades) instead of
    uniformly."""
    electronic_noise: Range = (1.0, 4.0)
    """Std of the additive detector read-out noise, in quanta."""
    psf_sigma_mm: Range = (0.35, 0.7)
    """Gaussian detector blur (scintillator + focal spot), sigma in mm."""
    vignetting: Range = (0.1, 0.35)
    """Fractional brightness loss of the image intensifier at the field corner."""
    intensifier_probability: float = 0.35
    """Probability of a round image-intensifier field (black outside the circle)."""
    collimation_probability: float = 0.3
    """Probability of collimator shutters entering the field."""
    collimation_depth: Range = (0.05, 0.25)
    """How far each shutter blade enters the field, fraction of the image size."""
    edge_enhancement: Range = (0.0, 0.6)
    """Unsharp-mask gain of the display processing."""
    clip_overshoot: float | None = None
    """Clip the windowed signal to this fraction beyond the window before edge enhancement, as
    vendor pipelines do (dark shutter areas stay smooth instead of sharpened speckle); None:
    no clipping."""
    edge_radius_mm: Range | None = None
    """Gaussian sigma of the unsharp mask, mm; None: twice the detector blur plus a pixel."""
    s_curve_probability: float = 0.0
    """Probability of an S-shaped (sigmoid) display LUT on top of the gamma."""
    s_curve_slope: Range = (3.0, 8.0)
    """Steepness of that sigmoid over the display range."""
    display_gamma: Range = (0.8, 1.3)
    """Exponent of the display LUT applied after window/level."""
    window_percentiles: Range = (1.0, 99.0)
    """Percentiles of the in-field log signal that set the display window."""
    window_headroom: Range = (0.2, 0.6)
    """Window extension below its low percentile, as a fraction of the window, so that devices
    are dark grey rather than clipped to black."""
    window_top_headroom: Range = (0.0, 0.0)
    """Window extension above its high percentile (fraction of the window): greyer, darker
    backgrounds as some vendors display them."""
    detector_bits: int = 12
    """Bit depth of the detector's digitiser."""
    recursive_filter_probability: float = 0.0
    """Probability of recursive temporal noise filtering (per sequence: frames lag behind
    motion; a single frame gets the filter's steady-state noise)."""
    recursive_filter_weight: Range = (0.25, 0.6)
    """Weight of the new frame in that filter (0.25 averages about 7 frames)."""

    # --- export (after the display; per sequence) -----------------------------------------
    invert_probability: float = 0.0
    """Probability that the export inverts the polarity (metal bright, field border white)."""
    overlay_probability: float = 0.0
    """Probability of burned-in text (angles, dose, dates, ids, frame counter), a ruler and
    markers; never labelled."""
    export_8bit_probability: float = 0.0
    """Probability of 8-bit quantisation of the displayed frame."""
    jpeg_probability: float = 0.0
    """Probability of JPEG compression (implies 8 bits)."""
    jpeg_quality: CountRange = (30, 95)
    """JPEG quality range, drawn once per sequence."""

    # --- motion (sequences) -------------------------------------------------------------
    fps: float = 15.0
    """Frame rate of sequences, frames/s (EP fluoroscopy runs at 7.5-15)."""
    heart_rate_bpm: Range = (55.0, 100.0)
    """Cardiac rate, beats/min."""
    respiratory_rate_bpm: Range = (12.0, 18.0)
    """Breathing rate, breaths/min."""
    cardiac_amplitude_mm: Range = (2.0, 6.0)
    """Peak contraction displacement of devices near the heart centre, mm."""
    respiratory_amplitude_mm: Range = (4.0, 10.0)
    """Peak cranio-caudal displacement of the heart and diaphragm with breathing, mm."""

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"size must be >= 32 pixels, got {self.size}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
                raise ValueError(f"{f.name}: range low {value[0]} > high {value[1]}")
        unknown = set(self.device_probability) - set(CATHETER_TYPES)
        if unknown:
            raise ValueError(f"device_probability: unknown device types {sorted(unknown)}")
        probabilities = {
            **{
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name.endswith("_probability") and f.name != "device_probability"
            },
            **{f"device_probability[{k}]": v for k, v in self.device_probability.items()},
        }
        for name, p in probabilities.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.dose_log_uniform and self.photons_per_pixel[0] <= 0:
            raise ValueError("photons_per_pixel must be > 0 for dose_log_uniform")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"jpeg_quality must be within [1, 100], got {self.jpeg_quality}")
        if not 0.0 < self.recursive_filter_weight[0] <= self.recursive_filter_weight[1] <= 1.0:
            raise ValueError("recursive_filter_weight must be within (0, 1]")

    @property
    def pixel_scale(self) -> float:
        """Output pixels per pixel of the 256 px reference (dose and noise are defined there)."""
        return self.size / 256.0


PRESETS: dict[str, SynthConfig] = {
    # Clean frames: high dose, near-PA views, few devices, nothing else in the field.
    "easy": SynthConfig(
        lao_deg=(-20.0, 25.0),
        cranial_deg=(-5.0, 5.0),
        device_probability={
            "cs_decapolar": 0.8,
            "ablation": 0.6,
            "circular_mapping": 0.3,
            "quadripolar": 0.3,
            "pacing_lead": 0.1,
        },
        ecg_snaps=(0, 0),
        guidewires=(0, 0),
        temperature_probe_probability=0.0,
        photons_per_pixel=(2000.0, 4000.0),
        electronic_noise=(0.5, 1.0),
        intensifier_probability=0.0,
        collimation_probability=0.0,
        edge_enhancement=(0.0, 0.3),
    ),
    # A typical AF-ablation run.
    "clinical": SynthConfig(),
    # Low dose, steep angles, collimation, many devices crossing and many look-alike distractors.
    "hard": SynthConfig(
        lao_deg=(-45.0, 60.0),
        cranial_deg=(-25.0, 25.0),
        device_probability={
            "cs_decapolar": 0.95,
            "ablation": 0.95,
            "circular_mapping": 0.7,
            "quadripolar": 0.6,
            "pacing_lead": 0.35,
        },
        min_devices=2,
        ecg_snaps=(2, 6),
        ecg_wire_probability=0.9,
        sternal_wires=(0, 7),
        guidewires=(0, 2),
        temperature_probe_probability=0.6,
        anatomy_contrast=(1.0, 1.6),
        photons_per_pixel=(80.0, 300.0),
        electronic_noise=(2.0, 6.0),
        psf_sigma_mm=(0.5, 0.9),
        intensifier_probability=0.5,
        collimation_probability=0.8,
        collimation_depth=(0.1, 0.3),
    ),
    # Everything real X-ray systems and exports vary, and the hard negatives of other
    # procedures: for models that must work on frames that are not from this engine.
    "real": SynthConfig(
        field_of_view_mm=(77.0, 256.0),  # 0.3-1.0 mm per pixel at 256 px (magnification modes)
        lao_deg=(-45.0, 60.0),
        cranial_deg=(-30.0, 30.0),
        device_probability={
            "cs_decapolar": 0.6,
            "ablation": 0.5,
            "circular_mapping": 0.3,
            "quadripolar": 0.3,
            "pacing_lead": 0.2,
            "guiding_catheter": 0.3,
            "diagnostic_catheter": 0.15,
            "long_sheath": 0.3,
        },
        min_devices=0,
        ecg_snaps=(0, 4),
        sternal_wires=(0, 2),
        guidewires=(0, 1),
        temperature_probe_probability=0.15,
        coronary_probability=0.4,
        venogram_probability=0.1,
        coronary_wire_probability=0.15,
        pacemaker_probability=0.15,
        valve_ring_probability=0.1,
        surgical_clips=(0, 3),
        tee_probe_probability=0.1,
        anatomy_contrast=(0.7, 1.5),
        background_probability=0.5,
        photons_per_pixel=(40.0, 3000.0),
        dose_log_uniform=True,
        electronic_noise=(0.5, 3.0),
        psf_sigma_mm=(0.3, 1.2),
        intensifier_probability=0.4,
        collimation_probability=0.4,
        edge_enhancement=(0.0, 1.5),
        window_top_headroom=(0.1, 1.0),
        clip_overshoot=0.25,
        edge_radius_mm=(0.8, 6.0),
        s_curve_probability=0.4,
        display_gamma=(0.6, 1.6),
        recursive_filter_probability=0.5,
        invert_probability=0.1,
        overlay_probability=0.5,
        export_8bit_probability=0.7,
        jpeg_probability=0.5,
    ),
}


def preset(name: str, **overrides) -> SynthConfig:
    """A named preset (``"easy"``, ``"clinical"``, ``"hard"``, ``"real"``) with fields replaced.

    Raises ``ValueError`` for an unknown preset name or field name, or an invalid value.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    known = {f.name for f in dataclasses.fields(SynthConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown SynthConfig field(s): {', '.join(unknown)}")
    return dataclasses.replace(PRESETS[name], **overrides)
