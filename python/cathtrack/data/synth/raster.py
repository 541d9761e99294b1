"""Rasterising projected tubes and discs into line-integral images and footprint masks.

A cylinder of radius r seen from the side has line integral ``mu * 2 sqrt(r^2 - d^2)`` at
distance d from its axis; that is exactly the convolution of its axis (as a line density) with
a uniform disc of radius r. So a tube is drawn by splatting its axis samples (weight
``mu * step``) bilinearly into a small image and filtering once with an anti-aliased disc
kernel: exact chord profiles, sub-pixel positions, and no per-pixel Python.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from .scratch import scratch

_KERNEL_SUPERSAMPLING = 8
_RADIUS_QUANTUM = 1 / 32  # kernels are cached per radius rounded to this many pixels
_FOOTPRINT_BLOCK = 256  # samples tested at once by footprint()


@functools.lru_cache(maxsize=256)
def _disc_kernel(radius_q: int) -> np.ndarray:
    radius = radius_q * _RADIUS_QUANTUM
    half = int(np.ceil(radius + 0.5))
    n = 2 * half + 1
    s = _KERNEL_SUPERSAMPLING
    offsets = (np.arange(n * s) + 0.5) / s - (half + 0.5)
    inside = (offsets[None, :] ** 2 + offsets[:, None] ** 2) <= radius**2
    kernel = inside.reshape(n, s, n, s).mean(axis=(1, 3))
    if radius < 1.0 / _KERNEL_SUPERSAMPLING:
        # Thinner than the supersampling resolves (a 0.014" wire at 2 mm per pixel, any wire
        # below 64 px): keep the exact area, so thin wires stay faint instead of vanishing.
        if kernel.sum() == 0.0:
            kernel[half, half] = 1.0
        kernel *= np.pi * radius**2 / kernel.sum()
    return kernel.astype(np.float32)


def disc_kernel(radius_px: float) -> np.ndarray:
    """(k, k) float32 area coverage of a disc of radius ``radius_px`` centred on the middle pixel."""
    return _disc_kernel(max(1, int(round(radius_px / _RADIUS_QUANTUM))))


@functools.lru_cache(maxsize=256)
def _annulus_kernel(radius_q: int, inner_q: int) -> np.ndarray:
    outer, inner = _disc_kernel(radius_q), _disc_kernel(inner_q)
    pad = (outer.shape[0] - inner.shape[0]) // 2
    return outer - np.pad(inner, pad)


def annulus_kernel(radius_px: float, inner_radius_px: float) -> np.ndarray:
    """Disc of ``radius_px`` minus the disc of ``inner_radius_px``: the wall of a hollow tube."""
    radius_q = max(1, int(round(radius_px / _RADIUS_QUANTUM)))
    inner_q = min(max(1, int(round(inner_radius_px / _RADIUS_QUANTUM))), radius_q)
    return _annulus_kernel(radius_q, inner_q)


def splat_disc_filtered(
    image: np.ndarray,
    uv: np.ndarray,
    weights: np.ndarray,
    radius_px: float,
    inner_radius_px: float = 0.0,
) -> None:
    """Add ``sum_k weights[k] * disc(uv[k], radius_px)`` to ``image`` (H, W) float32 in place.

    Args:
        uv: (N, 2) pixel positions x, y (pixel centres at integers).
        weights: (N,) per-sample weights.
        inner_radius_px: > 0 for a hollow tube: the disc minus the inner disc (its wall).
    """
    kernel = (
        annulus_kernel(radius_px, inner_radius_px)
        if inner_radius_px > 0.0
        else disc_kernel(radius_px)
    )
    splat_filtered(image, uv, weights, kernel)


def splat_tapered(
    image: np.ndarray, uv: np.ndarray, weights: np.ndarray, radius_px: np.ndarray
) -> None:
    """Like :func:`splat_disc_filtered` with a radius per sample (tapering vessels).

    Samples are grouped by radius in 10% steps, one filtered splat per group.
    """
    live = weights > 0.0
    uv, weights, radius_px = uv[live], weights[live], radius_px[live]
    if len(uv) == 0:
        return
    bins = np.round(np.log(np.maximum(radius_px, 0.2)) / np.log(1.1)).astype(np.int64)
    for b in np.unique(bins):
        group = bins == b
        splat_disc_filtered(image, uv[group], weights[group], float(1.1**b))


def fill_polygon(image: np.ndarray, uv: np.ndarray, value: float, supersample: int = 4) -> None:
    """Add ``value`` times the pixel coverage of the polygon ``uv`` (K, 2) to ``image``."""
    height, width = image.shape
    x0 = max(int(np.floor(uv[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(uv[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(uv[:, 0].max())) + 2, width)
    y1 = min(int(np.ceil(uv[:, 1].max())) + 2, height)
    if x1 <= x0 or y1 <= y0:
        return
    canvas = np.zeros(((y1 - y0) * supersample, (x1 - x0) * supersample), np.float32)
    # Pixel i spans [i - 0.5, i + 0.5]; 1/16 sub-pixel precision for cv2 (shift 4).
    fine = ((uv - (x0, y0) + 0.5) * supersample - 0.5) * 16
    cv2.fillPoly(canvas, [np.round(fine).astype(np.int32)], 1.0, cv2.LINE_8, 4)
    coverage = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    image[y0:y1, x0:x1] += np.float32(value) * coverage


def splat_filtered(
    image: np.ndarray, uv: np.ndarray, weights: np.ndarray, kernel: np.ndarray
) -> None:
    """Add ``sum_k weights[k] * kernel(. - uv[k])`` to ``image`` (H, W) float32 in place."""
    height, width = image.shape
    margin = kernel.shape[0] // 2 + 2
    keep = (
        (uv[:, 0] > -margin)
        & (uv[:, 0] < width - 1 + margin)
        & (uv[:, 1] > -margin)
        & (uv[:, 1] < height - 1 + margin)
    )
    if not keep.any():
        return
    uv, weights = uv[keep], weights[keep]
    x0 = int(np.floor(uv[:, 0].min())) - margin
    y0 = int(np.floor(uv[:, 1].min())) - margin
    roi_w = int(np.ceil(uv[:, 0].max())) + margin - x0 + 1
    roi_h = int(np.ceil(uv[:, 1].max())) + margin - y0 + 1
    local = uv - (x0, y0)
    ix, iy = np.floor(local[:, 0]).astype(np.int64), np.floor(local[:, 1]).astype(np.int64)
    fx, fy = local[:, 0] - ix, local[:, 1] - iy
    flat = iy * roi_w + ix
    # Bilinear shares of each sample on its four pixels, summed per pixel; the float64 sums are
    # those of numpy's bincount (in sample order), one corner after the other.
    count = roi_h * roi_w
    density = np.bincount(flat, weights * ((1 - fx) * (1 - fy)), minlength=count)
    density += np.bincount(flat + 1, weights * (fx * (1 - fy)), minlength=count)
    density += np.bincount(flat + roi_w, weights * ((1 - fx) * fy), minlength=count)
    density += np.bincount(flat + roi_w + 1, weights * (fx * fy), minlength=count)
    splats = scratch("splats", (roi_h, roi_w), np.float32)
    np.copyto(splats, density.reshape(roi_h, roi_w), casting="same_kind")  # to float32
    roi = cv2.filter2D(
        splats,
        -1,
        kernel,
        dst=scratch("filtered", (roi_h, roi_w), np.float32),
        borderType=cv2.BORDER_CONSTANT,
    )
    # Paste the part of the ROI that lies in the image.
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + roi_w, width), min(y0 + roi_h, height)
    if ix1 > ix0 and iy1 > iy0:
        image[iy0:iy1, ix0:ix1] += roi[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]


def footprint(mask: np.ndarray, uv: np.ndarray, radius_px: float) -> None:
    """Set ``mask`` (H, W) uint8 to 1 where a pixel centre lies within ``radius_px`` of a sample.

    With samples much closer than a pixel this is the tube's projected footprint; radii below
    half a pixel are raised to it so thin tubes stay connected.
    """
    height, width = mask.shape
    radius = max(radius_px, 0.5)
    reach = int(np.ceil(radius))
    inside = (
        (uv[:, 0] > -reach - 1)
        & (uv[:, 0] < width + reach)
        & (uv[:, 1] > -reach - 1)
        & (uv[:, 1] < height + reach)
    )
    uv = uv[inside]
    if len(uv) == 0:
        return
    # A sample is at most half a pixel from its nearest pixel along each axis: offsets whose
    # square, shrunk by half a pixel per axis, lies beyond the radius (with a margin far above
    # rounding) can never be within it, and are not tested.
    dx, dy, gap = _square_offsets(reach)
    kept = gap <= radius**2 + 1e-6
    dx, dy = dx[kept], dy[kept]
    flat_mask = mask.reshape(-1) if mask.flags.c_contiguous else None  # a view of the mask
    # The samples x offsets arrays reach several MB each for thick tubes at 512 px: a few
    # hundred samples at a time keep them small.
    for start in range(0, len(uv), _FOOTPRINT_BLOCK):
        part = uv[start : start + _FOOTPRINT_BLOCK]
        base = np.round(part).astype(np.int64)
        px = base[:, 0:1] + dx
        py = base[:, 1:2] + dy
        near = (px - part[:, 0:1]) ** 2 + (py - part[:, 1:2]) ** 2 <= radius**2
        near &= (px >= 0) & (px < width) & (py >= 0) & (py < height)
        index = (py * width + px)[near]
        if flat_mask is not None:
            flat_mask[index] = 1
        else:
            np.put(mask, index, 1)


@functools.lru_cache(maxsize=64)
def _square_offsets(reach: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixel offsets x, y of the square of half-side ``reach`` (flat, int64) and, for each,
    its least squared distance from a point within half a pixel of the centre pixel."""
    d = np.arange(-reach, reach + 1)
    dx, dy = (a.ravel() for a in np.meshgrid(d, d))
    gap = np.maximum(np.abs(dx) - 0.5, 0.0) ** 2 + np.maximum(np.abs(dy) - 0.5, 0.0) ** 2
    for array in (dx, dy, gap):
        array.flags.writeable = False  # shared by the callers of the cache
    return dx, dy, gap
