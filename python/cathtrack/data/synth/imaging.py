"""Image formation: from line integrals to a displayed fluoroscopy frame.

I = I0 exp(-sum mu l) shaped by the image-intensifier vignetting, collimator shutters and the
round intensifier field; Poisson quantum noise (Gaussian approximation: counts are >> 10 in
the field), detector blur (it spreads the quanta, so the noise is correlated like a real
scintillator's), electronic noise, optionally a recursive temporal filter (sequences lag
behind motion), digitisation, then the display chain: log, window/level from the in-field
histogram, unsharp masking of random radius and a gamma (optionally S-shaped) LUT.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass

import cv2
import numpy as np

from .config import SynthConfig
from .scratch import scratch

SHUTTER_TRANSMISSION = 0.04  # lead blades leave a faint, noisy signal
_ADC_HEADROOM = 4.0  # the digitiser saturates at 4x the median anatomy signal
_LUT_LEVELS = 4096
_NOISE_BLOCK = 16384  # noise values drawn at once (a multiple of 4)


@dataclass(frozen=True)
class Imaging:
    """Detector and display settings of one scene, with its static field maps.

    Attributes:
        photons: mean detected quanta per pixel at the median anatomy.
        electronic_noise: read-out noise std, quanta.
        psf_sigma_px: detector blur, pixels.
        edge_gain: unsharp-mask gain.
        gamma: display LUT exponent.
        window_percentiles: (low, high) percentiles of the in-field log signal.
        window_headroom: extension of the window below its low percentile (fraction of it).
        bits: digitiser bit depth.
        transmission: (H, W) float32 relative beam intensity: vignetting x shutters x field.
        in_field: (H, W) bool pixels that show the patient (not shuttered, inside the circle).
        exposed: (H, W) bool pixels inside the intensifier circle (shutters included).
        edge_sigma_px: unsharp-mask blur, pixels; None: ``2 psf_sigma_px + 1``.
        lut: display LUT on ``_LUT_LEVELS + 1`` steps of the window; None: the gamma curve.
        recursive_weight: weight of the new frame in the recursive filter (1 = off).
        window_top: extension of the window above its high percentile (fraction of it).
        clip_overshoot: the windowed signal is clipped to this much beyond [0, 1] before
            edge enhancement; None: not clipped.
    """

    photons: float
    electronic_noise: float
    psf_sigma_px: float
    edge_gain: float
    gamma: float
    window_percentiles: tuple[float, float]
    window_headroom: float
    bits: int
    transmission: np.ndarray
    in_field: np.ndarray
    exposed: np.ndarray
    edge_sigma_px: float | None = None
    lut: np.ndarray | None = None
    recursive_weight: float = 1.0
    clip_overshoot: float | None = None
    window_top: float = 0.0


@functools.lru_cache(maxsize=8)
def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates about the image centre, float32, cached per size (read-only):
    x (1, size), y (size, 1) (they broadcast to (size, size) on use) and x^2 + y^2."""
    coords = np.arange(size, dtype=np.float32) - (size - 1) / 2.0
    x, y = coords[None, :], coords[:, None]
    radius2 = x * x + y * y
    for array in (x, y, radius2):
        array.flags.writeable = False
    return x, y, radius2


@functools.lru_cache(maxsize=8)
def _everywhere(size: int) -> np.ndarray:
    """(size, size) bool, all True, read-only: the field maps of scenes with an open field."""
    everywhere = np.ones((size, size), bool)
    everywhere.flags.writeable = False
    return everywhere


def _edge_coverage(signed_distance: np.ndarray) -> np.ndarray:
    """Fraction of a pixel on the positive side of an edge at ``signed_distance`` px, computed
    in place (returns the array)."""
    signed_distance += 0.5
    return np.clip(signed_distance, 0.0, 1.0, out=signed_distance)


def sample_imaging(
    rng: np.random.Generator,
    config: SynthConfig,
    pixel_mm: float,
    chain_rng: np.random.Generator | None = None,
) -> Imaging:
    """Draw the detector, collimation and display settings of a scene.

    ``rng`` is the scene's generator; ``chain_rng`` (its own stream) draws the vendor
    processing variety (unsharp radius, S-curve LUT, recursive filter, window top); None
    keeps the plain chain of the older presets.
    """
    size = config.size
    x, y, radius2 = _centred_grid(size)
    vignetting = rng.uniform(*config.vignetting)
    # 1 - vignetting / (size^2 / 2) * radius2; the maps below are computed in place, in the
    # same order of operations as their formulas.
    transmission = np.multiply(np.float32(vignetting / (0.5 * size * size)), radius2)
    np.subtract(1.0, transmission, out=transmission)

    # Without an intensifier circle or shutters the field is fully open; those factors (and the
    # maps they would multiply by) are then exactly 1 and skipped, and the field maps are one
    # shared all-True array.
    in_field = exposed = _everywhere(size)
    coverage = scratch("coverage", (size, size), np.float32)
    if rng.random() < config.intensifier_probability:
        cx, cy = rng.normal(0.0, 0.03 * size, 2).astype(np.float32)
        circle_radius = np.float32(rng.uniform(0.5, 0.64) * size)
        # coverage of circle_radius - sqrt((x - cx)^2 + (y - cy)^2)
        np.add((x - cx) ** 2, (y - cy) ** 2, out=coverage)
        np.sqrt(coverage, out=coverage)
        np.subtract(circle_radius, coverage, out=coverage)
        _edge_coverage(coverage)
        transmission *= coverage
        in_field = exposed = coverage > 0.5

    if rng.random() < config.collimation_probability:
        open_fraction = scratch("open_fraction", (size, size), np.float32)
        open_fraction.fill(1.0)
        blades = rng.random(4) < 0.6
        blades[rng.integers(4)] = True  # at least one blade enters
        for side in np.flatnonzero(blades):
            angle = np.radians(90.0 * side + rng.normal(0.0, 6.0))
            nx, ny = np.float32(np.cos(angle)), np.float32(np.sin(angle))
            edge = np.float32((0.5 - rng.uniform(*config.collimation_depth)) * size)
            # coverage of edge - (x nx + y ny)
            np.add(x * nx, y * ny, out=coverage)
            np.subtract(edge, coverage, out=coverage)
            open_fraction *= _edge_coverage(coverage)
        in_field = exposed & (open_fraction > 0.5)
        shutters = open_fraction  # SHUTTER_TRANSMISSION + (1 - SHUTTER_TRANSMISSION) * open
        shutters *= 1.0 - SHUTTER_TRANSMISSION
        shutters += SHUTTER_TRANSMISSION
        transmission *= shutters

    if config.dose_log_uniform:
        photons = np.exp(rng.uniform(*np.log(config.photons_per_pixel)))
    else:
        photons = rng.uniform(*config.photons_per_pixel)
    photons /= config.pixel_scale**2
    electronic_noise = rng.uniform(*config.electronic_noise) / config.pixel_scale
    psf_sigma_px = rng.uniform(*config.psf_sigma_mm) / pixel_mm
    edge_gain = rng.uniform(*config.edge_enhancement)
    gamma = rng.uniform(*config.display_gamma)
    edge_sigma_px, lut, recursive_weight, window_top = None, None, 1.0, 0.0
    if chain_rng is not None:
        if config.edge_radius_mm is not None:
            edge_sigma_px = chain_rng.uniform(*config.edge_radius_mm) / pixel_mm
        if chain_rng.random() < config.s_curve_probability:
            slope, centre = chain_rng.uniform(*config.s_curve_slope), chain_rng.uniform(0.35, 0.65)
            lut = _s_curve_lut(gamma, slope, centre)
        if chain_rng.random() < config.recursive_filter_probability:
            recursive_weight = chain_rng.uniform(*config.recursive_filter_weight)
        window_top = chain_rng.uniform(*config.window_top_headroom)
    return Imaging(
        photons=photons,
        electronic_noise=electronic_noise,
        psf_sigma_px=psf_sigma_px,
        edge_gain=edge_gain,
        gamma=gamma,
        window_percentiles=config.window_percentiles,
        window_headroom=rng.uniform(*config.window_headroom),
        bits=config.detector_bits,
        transmission=transmission,
        in_field=in_field,
        exposed=exposed,
        edge_sigma_px=edge_sigma_px,
        lut=lut,
        recursive_weight=recursive_weight,
        clip_overshoot=config.clip_overshoot,
        window_top=window_top,
    )


def form_image(
    line_integrals: np.ndarray,
    imaging: Imaging,
    rng: np.random.Generator,
    in_field: np.ndarray,
    previous: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Expose, detect and display one frame.

    Args:
        line_integrals: (H, W) float32 total attenuation relative to the median anatomy.
        imaging: the scene's settings.
        rng: this frame's noise generator.
        in_field: (H, W) bool pixels whose histogram sets window/level.
        previous: the recursive filter's output for the previous frame of the sequence (None
            for the first frame: it starts from the filter's steady state on a still scene).
    Returns:
        image: (H, W) float32 in [0, 1], display convention (dense = dark).
        signal: (H, W) float32 detector signal after the recursive filter (the next
            frame's ``previous``).
    """
    # The temporaries live in per-thread scratch arrays (see .scratch) and are computed in
    # place; every element still goes through the same operations in the same order as in the
    # plain expressions of the model (noted beside them), so frames are bit for bit the same.
    shape = line_integrals.shape
    expected = np.negative(line_integrals, out=scratch("expected", shape, np.float32))
    cv2.exp(expected, expected)
    expected *= np.float32(imaging.photons)
    expected *= imaging.transmission  # exp(-line_integrals) * photons * transmission
    quantum, electronic = _standard_normal(rng, scratch("noise", (2, *shape), np.float32))
    quanta = cv2.sqrt(expected, scratch("quanta", shape, np.float32))
    weight = imaging.recursive_weight
    if weight < 1.0 and previous is None:
        # A settled filter on a still scene keeps the mean and weight / (2 - weight) of the
        # noise variance.
        calm = np.float32(np.sqrt(weight / (2.0 - weight)))
        quanta *= calm
        quanta *= quantum
        quanta += expected  # expected + calm * sqrt(expected) * quantum
        signal = cv2.GaussianBlur(quanta, (0, 0), imaging.psf_sigma_px)
        electronic *= calm * np.float32(imaging.electronic_noise)
        signal += electronic
    else:
        quanta *= quantum
        quanta += expected  # expected + sqrt(expected) * quantum
        signal = cv2.GaussianBlur(quanta, (0, 0), imaging.psf_sigma_px)
        electronic *= np.float32(imaging.electronic_noise)
        signal += electronic
        if weight < 1.0:
            # weight * signal + (1 - weight) * previous
            signal *= np.float32(weight)
            signal += np.multiply(
                previous, np.float32(1.0 - weight), out=scratch("lag", shape, np.float32)
            )
    full_scale = 2**imaging.bits - 1
    digital = np.multiply(
        signal,
        np.float32(full_scale / (_ADC_HEADROOM * imaging.photons)),
        out=scratch("digital", shape, np.float32),
    )
    digital += 0.5
    np.clip(digital, 0, full_scale, out=digital)
    index = scratch("index", shape, np.intp)
    np.copyto(index, digital, casting="unsafe")  # digital.astype(np.intp)
    log_signal = np.take(_log_lut(imaging.bits), index, out=scratch("display", shape, np.float32))
    field_values = log_signal[::3, ::3][in_field[::3, ::3]]
    if field_values.size == 0:
        field_values = log_signal.ravel()
    low, high = np.percentile(field_values, imaging.window_percentiles)
    if imaging.window_top > 0.0:
        high += imaging.window_top * (high - low)
    low -= imaging.window_headroom * (high - low)
    display = log_signal
    display -= np.float32(low)
    display *= np.float32(1.0 / max(high - low, 1e-6))  # (log_signal - low) / (high - low)
    if imaging.clip_overshoot is not None:
        np.clip(display, -imaging.clip_overshoot, 1.0 + imaging.clip_overshoot, out=display)
    if imaging.edge_gain > 0.0:
        sigma = imaging.edge_sigma_px
        detail = cv2.GaussianBlur(
            display,
            (0, 0),
            2.0 * imaging.psf_sigma_px + 1.0 if sigma is None else sigma,
            dst=scratch("detail", shape, np.float32),
        )
        np.subtract(display, detail, out=detail)
        detail *= np.float32(imaging.edge_gain)
        display += detail  # display + edge_gain * (display - smooth)
    # Display LUT (gamma) on 1/4096 steps of the window.
    display *= _LUT_LEVELS
    display += 0.5
    np.clip(display, 0, _LUT_LEVELS, out=display)
    np.copyto(index, display, casting="unsafe")
    lut = _gamma_lut(imaging.gamma) if imaging.lut is None else imaging.lut
    image = np.take(lut, index)
    image[~imaging.exposed] = 0.0
    return image, signal


def _standard_normal(rng: np.random.Generator, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (C-contiguous float32) with standard normal noise from ``rng``; ~8x faster
    than numpy's.

    Draws 16-bit uniform integers and maps them through the normal quantile function.
    """
    flat = out.reshape(-1)
    quantiles = _normal_quantiles()
    bit_generator = rng.bit_generator
    if (
        isinstance(bit_generator, np.random.PCG64)
        and flat.size % 4 == 0
        and not bit_generator.state["has_uint32"]
    ):
        # The uniforms are ``rng.bytes(2 * size)``, which is built from 32-bit draws, each
        # 64-bit PCG64 output giving its low then its high half, written little-endian: the
        # very bytes of the 64-bit outputs. ``random_raw`` returns those without the per-draw
        # path and two copies, and leaves the generator in the same state (no half draw is
        # pending before or after). Blocks keep the temporaries small.
        for start in range(0, flat.size, _NOISE_BLOCK):
            block = flat[start : start + _NOISE_BLOCK]
            raw = bit_generator.random_raw(block.size // 4).astype("<u8", copy=False)
            np.take(quantiles, raw.view(np.uint16), out=block)
    else:
        np.take(quantiles, np.frombuffer(rng.bytes(2 * flat.size), np.uint16), out=flat)
    return out


@functools.lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    levels = 1 << 16
    inverse_cdf = statistics.NormalDist().inv_cdf
    return np.array([inverse_cdf((k + 0.5) / levels) for k in range(levels)], np.float32)


@functools.lru_cache(maxsize=4)
def _log_lut(bits: int) -> np.ndarray:
    return np.log1p(np.arange(2**bits, dtype=np.float32))


@functools.lru_cache(maxsize=16)  # a sequence's frames share their scene's gamma
def _gamma_lut(gamma: float) -> np.ndarray:
    lut = (np.linspace(0.0, 1.0, _LUT_LEVELS + 1, dtype=np.float64) ** gamma).astype(np.float32)
    lut.flags.writeable = False  # shared by the callers of the cache
    return lut


def _s_curve_lut(gamma: float, slope: float, centre: float) -> np.ndarray:
    """Gamma followed by a sigmoid of ``slope`` about ``centre``, rescaled to [0, 1]."""
    x = np.linspace(0.0, 1.0, _LUT_LEVELS + 1, dtype=np.float64) ** gamma
    y = 1.0 / (1.0 + np.exp(-slope * (x - centre)))
    return ((y - y[0]) / (y[-1] - y[0])).astype(np.float32)
