"""Overlays a person can look at: each catheter in its own colour (mask, centerline, electrodes,
a numbered tag at its tip) and a legend that names the types. OpenCV drawing on 8-bit BGR images.

Colours come from the Okabe-Ito palette, which stays distinguishable with the common forms of
colour blindness; catheters beyond its seven colours reuse them in order. What the legend groups
as one line (a catheter of unknown type, a track not confirmed yet) is drawn in grey.

Everything scales with the output image: line widths, electrode rings, tip dots and text are
sized from its shorter side, so an overlay reads the same at 256² and at 1024². Tags and the
legend are kept inside the image, the legend goes to the corner with the least drawn on it, and
tags are moved around their tip so that they do not overlap each other or the legend where
there is room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Okabe & Ito (2008), "Color Universal Design", in BGR: orange, sky blue, bluish green, yellow,
# reddish purple, vermillion, blue (black is left out: it vanishes on a fluoroscopy frame).
PALETTE = (
    (0, 159, 230),
    (233, 180, 86),
    (115, 158, 0),
    (66, 228, 240),
    (167, 121, 204),
    (0, 94, 213),
    (178, 114, 0),
)
GREY = (190, 190, 190)  # catheters the legend does not name one by one
WHITE = (255, 255, 255)
DARK = (20, 20, 20)  # halos and label backgrounds
FONT = cv2.FONT_HERSHEY_SIMPLEX
# Sizes are given for a 512-pixel image and scaled with its shorter side (never below the
# minimum, which keeps a 256-pixel overlay readable).
_REFERENCE_SIDE = 512.0
_MIN_FONT_SCALE = 0.35
_FONT_SCALE = 0.45
_RING_RADIUS = 2.5
_LEGEND_MAX_ROWS = 8


def colour(key: int | None) -> tuple[int, int, int]:
    """The palette colour of catheter ``key`` (its index or track id); grey for None or < 0."""
    if key is None or key < 0:
        return GREY
    return PALETTE[key % len(PALETTE)]


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
    if array.shape[2] == 1:
        return cv2.cvtColor(array[..., 0], cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(array[..., :3])


@dataclass(frozen=True)
class Sizes:
    """Drawing sizes for an image whose shorter side is ``side`` pixels."""

    font_scale: float
    text_thickness: int
    line_thickness: int
    ring_radius: int
    padding: int

    @classmethod
    def for_side(cls, side: int) -> Sizes:
        unit = side / _REFERENCE_SIDE
        return cls(
            font_scale=max(_MIN_FONT_SCALE, _FONT_SCALE * unit),
            text_thickness=max(1, round(unit)),
            line_thickness=max(1, round(unit)),
            ring_radius=max(2, round(_RING_RADIUS * unit)),
            padding=max(2, round(3 * unit)),
        )

    def text_box(self, text: str) -> tuple[int, int, int]:
        """(width, height above the baseline, depth below it) of ``text`` in pixels."""
        (width, height), baseline = cv2.getTextSize(
            text, FONT, self.font_scale, self.text_thickness
        )
        return width, height, baseline


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def _overlap(a: Box, b: Box) -> int:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(0, width) * max(0, height)


def _inside(x: int, y: int, width: int, height: int, canvas: tuple[int, int]) -> Box:
    """The (width, height) box at (x, y), shifted into a (rows, cols) ``canvas``."""
    rows, cols = canvas
    x = min(max(0, x), max(0, cols - width))
    y = min(max(0, y), max(0, rows - height))
    return (x, y, x + width, y + height)


def place_labels(
    anchors: Sequence[tuple[float, float]],
    sizes: Sequence[tuple[int, int]],
    canvas: tuple[int, int],
    blocked: Sequence[Box] = (),
    gap: int = 3,
) -> list[Box]:
    """Boxes for labels of (width, height) ``sizes`` next to their (x, y) ``anchors``.

    Each label tries positions around its anchor (right-above first, then the other diagonals,
    the sides, and the same again two and three label heights further out), every one shifted
    inside the (rows, cols)
    ``canvas``; it takes the first that overlaps neither the labels placed before it nor a
    ``blocked`` box, else the one with the least overlap. Labels are placed in order.
    """
    placed: list[Box] = []
    for (x, y), (width, height) in zip(anchors, sizes, strict=True):
        x, y = round(x), round(y)
        best, best_overlap = None, None
        for reach in (gap, 3 * gap + height, 5 * gap + 2 * height):
            offsets = (
                (reach, -reach - height),  # right, above
                (reach, reach),  # right, below
                (-reach - width, -reach - height),
                (-reach - width, reach),
                (-width // 2, -reach - height),  # above
                (-width // 2, reach),  # below
                (reach, -height // 2),  # right
                (-reach - width, -height // 2),  # left
            )
            for dx, dy in offsets:
                box = _inside(x + dx, y + dy, width, height, canvas)
                overlap = sum(_overlap(box, other) for other in (*placed, *blocked))
                if best_overlap is None or overlap < best_overlap:
                    best, best_overlap = box, overlap
                if overlap == 0:
                    break
            if best_overlap == 0:
                break
        placed.append(best)
    return placed


def _draw_text(canvas: np.ndarray, text: str, box: Box, colour_: tuple, sizes: Sizes) -> None:
    """``text`` on a dark plate filling ``box`` (as sized by :func:`_label_size`)."""
    x0, y0, x1, y1 = box
    cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), DARK, -1)
    _, height, _ = sizes.text_box(text)
    origin = (x0 + sizes.padding, y0 + sizes.padding + height)
    cv2.putText(canvas, text, origin, FONT, sizes.font_scale, colour_, sizes.text_thickness,
                cv2.LINE_AA)  # fmt: skip


def _label_size(text: str, sizes: Sizes) -> tuple[int, int]:
    width, height, depth = sizes.text_box(text)
    return width + 2 * sizes.padding, height + depth + 2 * sizes.padding


def _partition(binary: np.ndarray, lines: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W) uint8: for each mask pixel, 1 + the index of the nearest centerline (at most
    255); 0 outside the mask. Computed on a grid of at most ~256 cells a side and scaled back
    (the boundary between two catheters' colours moves by a few pixels at most; the distance
    transform at full size would dominate the drawing time)."""
    rows, cols = binary.shape
    step = max(1, min(rows, cols) // 256)
    small = (-(-rows // step), -(-cols // step))
    owner = np.zeros(small, np.int32)
    for k, line in enumerate(lines):
        if len(line):
            points = np.round(np.asarray(line, np.float64) / step).astype(np.int32)
            cv2.polylines(owner, [points.reshape(-1, 1, 2)], False, min(k + 1, 255), 1)
    seeds = owner > 0
    if not seeds.any():
        return np.zeros(binary.shape, np.uint8)
    _, labels = cv2.distanceTransformWithLabels(
        (~seeds).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lookup = np.zeros(labels.max() + 1, np.uint8)
    lookup[labels[seeds]] = owner[seeds]
    nearest = lookup[labels]
    if step > 1:
        nearest = cv2.resize(nearest, (cols, rows), interpolation=cv2.INTER_NEAREST)
    return nearest * binary.astype(np.uint8)


def _legend_rows(tags, labels, keys) -> list[tuple[str, tuple[int, int, int]]]:
    """One row per coloured catheter ("TAG LABEL"); grey ones grouped by label ("LABEL ×N")."""
    rows, grey = [], {}
    for tag, label, key in zip(tags, labels, keys, strict=True):
        if key is None or key < 0:
            grey[label] = grey.get(label, 0) + 1
        elif label or tag:
            rows.append((f"{tag} {label}".strip(), colour(key)))
    rows += [(label if n == 1 else f"{label} x{n}", GREY) for label, n in grey.items() if label]
    if len(rows) > _LEGEND_MAX_ROWS:
        rows = rows[: _LEGEND_MAX_ROWS - 1] + [(f"+{len(rows) - _LEGEND_MAX_ROWS + 1} more", WHITE)]
    return rows


def _legend_box(rows, sizes: Sizes, canvas: tuple[int, int], busy: np.ndarray) -> Box | None:
    """The legend's box in the corner where ``busy`` (drawn pixels) is least covered."""
    if not rows:
        return None
    swatch = sizes.text_box("M")[1]
    widths = [_label_size(text, sizes)[0] + swatch + sizes.padding for text, _ in rows]
    row_height = _label_size("Mg", sizes)[1]
    width, height = max(widths), row_height * len(rows)
    rows_, cols = canvas
    margin = sizes.padding
    corners = [
        _inside(x, y, width, height, canvas)
        for x, y in (
            (margin, margin),
            (cols - width - margin, margin),
            (margin, rows_ - height - margin),
            (cols - width - margin, rows_ - height - margin),
        )
    ]
    return min(corners, key=lambda b: int(busy[b[1] : b[3], b[0] : b[2]].sum()))


def _draw_legend(canvas: np.ndarray, rows, box: Box, sizes: Sizes) -> None:
    x0, y0, x1, y1 = box
    plate = canvas[y0:y1, x0:x1]
    plate[:] = (plate.astype(np.float32) * 0.3 + np.float32(DARK) * 0.7).astype(np.uint8)
    row_height = (y1 - y0) // len(rows)
    swatch = sizes.text_box("M")[1]
    for k, (text, colour_) in enumerate(rows):
        top = y0 + k * row_height
        middle = top + row_height // 2
        left = x0 + sizes.padding
        cv2.rectangle(canvas, (left, middle - swatch // 2), (left + swatch - 1,
                      middle - swatch // 2 + swatch - 1), colour_, -1)  # fmt: skip
        _, height, _ = sizes.text_box(text)
        origin = (left + swatch + sizes.padding, top + sizes.padding + height)
        cv2.putText(canvas, text, origin, FONT, sizes.font_scale, colour_, sizes.text_thickness,
                    cv2.LINE_AA)  # fmt: skip


def draw_overlay(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    electrodes: np.ndarray | None = None,
    centerlines: Sequence[np.ndarray] = (),
    labels: Sequence[str] = (),
    *,
    groups: Sequence[np.ndarray] | None = None,
    keys: Sequence[int | None] | None = None,
    tags: Sequence[str] | None = None,
    legend: bool = True,
    scale: int = 1,
    mask_alpha: float = 0.4,
) -> np.ndarray:
    """Draws labels or predictions over a frame.

    Args:
        image: (H, W) or (H, W, 3) frame, any dtype.
        mask: (H, W) catheter mask (nonzero, or probability > 0.5 for floats, or > 127 for
            uint8 with values above 1, = catheter). Each mask pixel takes the colour of the
            nearest centerline (the first palette colour when there is none).
        electrodes: (N, 2) x, y pixel centres, drawn as rings in their catheter's colour
            (white when on no catheter).
        centerlines: one (M, 2) polyline per catheter, tip first, with a dot at the tip.
        labels: one legend text per centerline (e.g. its type and score).
        groups: per centerline, the indices of its electrodes (None: every ring is white).
        keys: per centerline, its colour key (see :func:`colour`; a track id keeps a
            catheter's colour over a video); None or < 0 draws it grey, grouped in the legend
            by label and without a tag. Default: 0, 1, 2, ...
        tags: per centerline, the short text at its tip, repeated in the legend
            (default "1", "2", ...).
        legend: draw the legend (the catheters' colours, tags and labels).
        scale: integer upscaling of the output (sizes follow the upscaled image).
        mask_alpha: opacity of the mask colours.

    Returns:
        (H*scale, W*scale, 3) uint8 BGR image.
    """
    count = len(centerlines)
    keys = list(range(count)) if keys is None else list(keys)
    tags = [str(k + 1) for k in range(count)] if tags is None else list(tags)
    labels = list(labels) + [""] * (count - len(labels))
    if not len(keys) == len(tags) == count:
        raise ValueError("keys and tags need one entry per centerline")
    canvas = to_bgr8(image)
    lines = [np.asarray(line, np.float64).reshape(-1, 2) for line in centerlines]
    busy = np.zeros(canvas.shape[:2], np.uint8)  # what the legend should not cover
    if mask is not None:
        array = np.asarray(mask)
        cut = 127 if array.dtype == np.uint8 and array.size and array.max() > 1 else 0.5
        binary = array > cut
        owner = binary.astype(np.uint8) if count == 0 else _partition(binary, lines)
        colours = [PALETTE[0]] if count == 0 else [colour(key) for key in keys]
        lookup = np.zeros((256, 1, 3), np.uint8)  # owner label -> BGR, through cv2.LUT (fast)
        lookup[1 : 1 + len(colours[:255]), 0] = colours[:255]
        tint = cv2.LUT(cv2.merge([owner, owner, owner]), lookup)
        tinted = cv2.addWeighted(tint, mask_alpha, canvas, 1 - mask_alpha, 0)
        cv2.copyTo(tinted, binary.astype(np.uint8), canvas)
        busy |= binary.astype(np.uint8)
    if scale != 1:
        canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        busy = cv2.resize(busy, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    rows, cols = canvas.shape[:2]
    sizes = Sizes.for_side(min(rows, cols))

    def to_canvas(points: np.ndarray) -> np.ndarray:
        # pixel centres sit at integer coordinates; shift 4 gives 1/16 px drawing precision
        return np.round((np.asarray(points, np.float64) + 0.5) * scale * 16 - 8).astype(np.int32)

    tips = []
    for line, key in zip(lines, keys, strict=True):
        if len(line) >= 2:
            cv2.polylines(canvas, [to_canvas(line)], False, colour(key), sizes.line_thickness,
                          cv2.LINE_AA, 4)  # fmt: skip
        if len(line):
            tip = to_canvas(line[:1])[0]
            tips.append(tip / 16.0)
            radius = (sizes.ring_radius + 1) * 16
            cv2.circle(canvas, tuple(tip), radius + 16, DARK, -1, cv2.LINE_AA, 4)
            cv2.circle(canvas, tuple(tip), radius, colour(key), -1, cv2.LINE_AA, 4)
        else:
            tips.append(None)
    if electrodes is not None and len(electrodes):
        owners: list[int | None] = [None] * len(electrodes)
        for k, group in enumerate(groups or ()):
            for index in np.asarray(group, np.int64).ravel():
                if 0 <= index < len(owners):
                    owners[index] = k
        centres = to_canvas(np.asarray(electrodes, np.float64).reshape(-1, 2))
        radius = sizes.ring_radius * 16
        for centre, owner in zip(centres, owners, strict=True):
            ring = WHITE if owner is None else colour(keys[owner])
            if sizes.ring_radius >= 4:  # a halo where the ring is wide enough to carry one
                cv2.circle(canvas, tuple(centre), radius, DARK, sizes.line_thickness + 2,
                           cv2.LINE_AA, 4)  # fmt: skip
            cv2.circle(canvas, tuple(centre), radius, ring, sizes.line_thickness, cv2.LINE_AA, 4)
        for x, y in centres // 16:
            busy[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = 1
    for tip in tips:
        if tip is not None:
            x, y = int(tip[0]), int(tip[1])
            busy[max(0, y - 4) : y + 5, max(0, x - 4) : x + 5] = 1

    legend_rows = _legend_rows(tags, labels, keys) if legend else []
    legend_box = _legend_box(legend_rows, sizes, (rows, cols), busy)
    tagged = [k for k in range(count) if tips[k] is not None and tags[k] and keys[k] is not None
              and keys[k] >= 0]  # fmt: skip
    boxes = place_labels(
        [tuple(tips[k]) for k in tagged],
        [_label_size(tags[k], sizes) for k in tagged],
        (rows, cols),
        blocked=[legend_box] if legend_box else [],
        gap=sizes.ring_radius + 2,
    )
    for k, box in zip(tagged, boxes, strict=True):
        _draw_text(canvas, tags[k], box, colour(keys[k]), sizes)
    if legend_box is not None:
        _draw_legend(canvas, legend_rows, legend_box, sizes)
    return canvas
