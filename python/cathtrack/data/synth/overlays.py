"""Burned-in graphics of exported frames: corner text, a frame counter, a ruler and markers.

They are pixels of the image, never labels: a catheter segmenter must ignore them. The static
part is drawn once per sequence; only the counter changes from frame to frame.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import cv2
import numpy as np

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)


@dataclass(frozen=True)
class Overlay:
    """The burned-in graphics of one sequence.

    Attributes:
        alpha: (H, W) float32 coverage of the static graphics.
        value: their grey level in [0, 1].
        counter_at: (x, y) baseline of the frame counter, or None.
        counter_start: number shown on frame 0.
        font, scale: how the counter is written.
    """

    alpha: np.ndarray
    value: float
    counter_at: tuple[int, int] | None
    counter_start: int
    font: int
    scale: float


def _random_text(rng: np.random.Generator, lao: float, cranial: float, pixel_mm: float) -> str:
    choices = [
        f"{'LAO' if lao >= 0 else 'RAO'} {abs(lao):.0f}  {'CRA' if cranial >= 0 else 'CAU'} {abs(cranial):.0f}",
        f"{rng.integers(60, 110)} kV  {rng.uniform(2.0, 15.0):.1f} mA",
        f"{rng.choice(['7.5', '10', '15', '30'])} fps {rng.choice(['FL', 'CINE', 'ACQ', 'DSA'])}",
        f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/{rng.integers(2008, 2025)}",
        f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}:{rng.integers(0, 60):02d}",
        f"ID {rng.integers(10**6, 10**7)}",
        "".join(rng.choice(list(string.ascii_uppercase), rng.integers(4, 9)))
        + "^"
        + "".join(rng.choice(list(string.ascii_uppercase), rng.integers(3, 7))),
        f"FOV {pixel_mm * 256:.0f} mm",
        f"Zoom {rng.choice(['1.0', '1.2', '1.5', '2.0'])}",
        f"SID {rng.integers(90, 120)} cm",
    ]
    return str(choices[rng.integers(len(choices))])


def sample_overlay(
    rng: np.random.Generator, size: int, lao: float, cranial: float, pixel_mm: float
) -> Overlay:
    """Random corner text, counter, ruler and markers for an image of ``size`` pixels."""
    canvas = np.zeros((size, size), np.uint8)
    font = int(_FONTS[rng.integers(len(_FONTS))])
    scale = (
        size / 256.0 * rng.uniform(0.28, 0.45) * (1.6 if font == cv2.FONT_HERSHEY_PLAIN else 1.0)
    )
    line_height = int(cv2.getTextSize("Ag", font, scale, 1)[0][1] * 1.8) + 1
    margin = int(rng.integers(2, max(3, size // 40)))
    corners = np.flatnonzero(rng.random(4) < 0.5)
    counter_at = None
    for corner in corners:
        right, bottom = corner % 2 == 1, corner >= 2
        for row in range(int(rng.integers(1, 4))):
            text = _random_text(rng, lao, cranial, pixel_mm)
            width = cv2.getTextSize(text, font, scale, 1)[0][0]
            x = size - margin - width if right else margin
            y = size - margin - row * line_height if bottom else margin + (row + 1) * line_height
            cv2.putText(canvas, text, (x, y), font, scale, 255, 1, cv2.LINE_AA)
        if counter_at is None and rng.random() < 0.6:
            y = size - margin - 3 * line_height if bottom else margin + 4 * line_height
            counter_at = (size - margin - 4 * line_height if right else margin, y)
    if rng.random() < 0.5:  # ruler: ticks every 1 cm at the isocentre
        x = (
            int(rng.uniform(0.03, 0.08) * size)
            if rng.random() < 0.5
            else int(rng.uniform(0.92, 0.97) * size)
        )
        tick_px = 10.0 / pixel_mm
        count = int(min(10, 0.5 * size / tick_px))
        top = int(rng.uniform(0.2, 0.4) * size)
        for k in range(count + 1):
            y = int(round(top + k * tick_px))
            cv2.line(canvas, (x, y), (x + (6 if k % 5 == 0 else 3), y), 255, 1, cv2.LINE_AA)
        cv2.line(canvas, (x, top), (x, int(round(top + count * tick_px))), 255, 1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):  # markers: orientation letter, cross, arrow
        kind = rng.integers(3)
        point = tuple(int(v) for v in rng.uniform(0.15, 0.85, 2) * size)
        if kind == 0:
            cv2.putText(
                canvas,
                str(rng.choice(["L", "R", "A", "P", "H"])),
                point,
                font,
                2 * scale,
                255,
                1,
                cv2.LINE_AA,
            )
        elif kind == 1:
            arm = int(size * rng.uniform(0.01, 0.03)) + 1
            cv2.line(
                canvas, (point[0] - arm, point[1]), (point[0] + arm, point[1]), 255, 1, cv2.LINE_AA
            )
            cv2.line(
                canvas, (point[0], point[1] - arm), (point[0], point[1] + arm), 255, 1, cv2.LINE_AA
            )
        else:
            tip = tuple(int(v) for v in np.asarray(point) + rng.normal(0.0, 0.06 * size, 2))
            cv2.arrowedLine(canvas, point, tip, 255, 1, cv2.LINE_AA, tipLength=0.3)
    value = rng.uniform(0.85, 1.0) if rng.random() < 0.8 else rng.uniform(0.0, 0.15)
    return Overlay(
        alpha=canvas.astype(np.float32) / 255.0,
        value=float(value),
        counter_at=counter_at,
        counter_start=int(rng.integers(1, 200)),
        font=font,
        scale=float(scale),
    )


def burn_in(image: np.ndarray, overlay: Overlay, frame: int) -> np.ndarray:
    """``image`` (H, W) float32 with the overlay of frame ``frame`` blended in (a new array)."""
    alpha = overlay.alpha
    if overlay.counter_at is not None:
        counter = np.zeros(image.shape, np.uint8)
        text = f"{overlay.counter_start + frame:d}"
        cv2.putText(
            counter, text, overlay.counter_at, overlay.font, overlay.scale, 255, 1, cv2.LINE_AA
        )
        alpha = np.maximum(alpha, counter.astype(np.float32) / 255.0)
    return image * (1.0 - alpha) + np.float32(overlay.value) * alpha
