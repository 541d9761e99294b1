"""What happens to a displayed frame on its way out of the X-ray system: burned-in graphics,
inverted polarity, 8-bit quantisation and JPEG compression. Settings are per sequence."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import SynthConfig
from .overlays import Overlay, burn_in, sample_overlay


@dataclass(frozen=True)
class Export:
    """Export settings of one sequence.

    Attributes:
        invert: metal bright instead of dark.
        overlay: burned-in graphics, or None.
        eight_bit: quantise to 256 grey levels.
        jpeg_quality: JPEG quality (1-100), or None for no compression.
    """

    invert: bool
    overlay: Overlay | None
    eight_bit: bool
    jpeg_quality: int | None


def sample_export(
    rng: np.random.Generator,
    config: SynthConfig,
    lao: float,
    cranial: float,
    pixel_mm: float,
) -> Export | None:
    """Draw the export settings; None when the config turns every step off."""
    invert = bool(rng.random() < config.invert_probability)
    overlay = None
    if rng.random() < config.overlay_probability:
        overlay = sample_overlay(rng, config.size, lao, cranial, pixel_mm)
    jpeg = rng.random() < config.jpeg_probability
    quality = (
        int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)) if jpeg else None
    )
    eight_bit = jpeg or bool(rng.random() < config.export_8bit_probability)
    if not (invert or overlay is not None or eight_bit):
        return None
    return Export(invert=invert, overlay=overlay, eight_bit=eight_bit, jpeg_quality=quality)


def apply_export(image: np.ndarray, export: Export, frame: int) -> np.ndarray:
    """The exported version of a displayed frame (H, W) float32 in [0, 1]."""
    if export.invert:
        image = 1.0 - image
    if export.overlay is not None:
        image = burn_in(image, export.overlay, frame)
    if not export.eight_bit:
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    pixels = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if export.jpeg_quality is not None:
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, export.jpeg_quality])
        if ok:
            pixels = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return pixels.astype(np.float32) * np.float32(1.0 / 255.0)
