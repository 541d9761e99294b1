"""Overlays a person can look at: catheter mask in orange, electrodes as green crosses (as in the
paper's Figure 2), centerlines and type labels. OpenCV drawing on 8-bit BGR images."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

ORANGE = (0, 140, 255)  # BGR
GREEN = (0, 220, 0)
CYAN = (255, 220, 0)
WHITE = (255, 255, 255)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) image of any dtype -> (H, W, 3) uint8 BGR, min-max scaled if not uint8."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = array.astype(np.float32)
        finite = np.isfinite(array)
        low = float(array[finite].min()) if finite.any() else 0.0
        high = float(array[finite].max()) if finite.any() else 1.0
        scale = 255.0 / (high - low) if high > low else 0.0
        array = np.where(finite, (array - low) * scale, 0).clip(0, 255).astype(np.uint8)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(array[..., :3])


def draw_overlay(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    electrodes: np.ndarray | None = None,
    centerlines: Sequence[np.ndarray] = (),
    labels: Sequence[str] = (),
    *,
    scale: int = 1,
    mask_alpha: float = 0.45,
) -> np.ndarray:
    """Draws labels or predictions over a frame.

    Args:
        image: (H, W) or (H, W, 3) frame, any dtype.
        mask: (H, W) catheter mask (nonzero or probability > 0.5 = catheter), drawn in orange.
        electrodes: (N, 2) x, y pixel centres, drawn as green crosses.
        centerlines: (M, 2) polylines, tip first, drawn in cyan with a dot at the tip.
        labels: one text per centerline, written at its tip.
        scale: integer upscaling of the output so small frames stay readable.
        mask_alpha: opacity of the mask colour.

    Returns:
        (H*scale, W*scale, 3) uint8 BGR image.
    """
    canvas = to_bgr8(image)
    if mask is not None:
        binary = np.asarray(mask) > (
            127 if np.asarray(mask).dtype == np.uint8 and mask.max() > 1 else 0.5
        )
        tinted = canvas.copy()
        tinted[binary] = ORANGE
        canvas = cv2.addWeighted(tinted, mask_alpha, canvas, 1 - mask_alpha, 0)
    if scale != 1:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)

    def to_canvas(points: np.ndarray) -> np.ndarray:
        # pixel centres sit at integer coordinates; shift 4 gives 1/16 px drawing precision
        return np.round((np.asarray(points, np.float64) + 0.5) * scale * 16 - 8).astype(np.int32)

    for line in centerlines:
        if len(line) >= 2:
            cv2.polylines(canvas, [to_canvas(line)], False, CYAN, 1, cv2.LINE_AA, 4)
        if len(line):
            cv2.circle(canvas, tuple(to_canvas(line[:1])[0]), 2 * 16, CYAN, -1, cv2.LINE_AA, 4)
    if electrodes is not None:
        size = max(5, 3 * scale)
        for x, y in np.round((np.asarray(electrodes) + 0.5) * scale - 0.5).astype(int):
            cv2.drawMarker(canvas, (int(x), int(y)), GREEN, cv2.MARKER_CROSS, size, 1)
    for line, text in zip(centerlines, labels, strict=False):
        if len(line) and text:
            x, y = (np.asarray(line[0]) * scale).astype(int)
            cv2.putText(canvas, text, (int(x) + 6, int(y) - 6), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35 + 0.1 * scale, WHITE, 1, cv2.LINE_AA)  # fmt: skip
    return canvas
