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

_KERNEL_SUPERSAMPLING = 8
_RADIUS_QUANTUM = 1 / 32  # kernels are cached per radius rounded to this many pixels


@functools.lru_cache(maxsize=256)
def _disc_kernel(radius_q: int) -> np.ndarray:
    radius = radius_q * _RADIUS_QUANTUM
    half = int(np.ceil(radius + 0.5))
    n = 2 * half + 1
    s = _KERNEL_SUPERSAMPLING
    offsets = (np.arange(n * s) + 0.5) / s - (half + 0.5)
    inside = (offsets[None, :] ** 2 + offsets[:, None] ** 2) <= radius**2
    return inside.reshape(n, s, n, s).mean(axis=(1, 3)).astype(np.float32)


def disc_kernel(radius_px: float) -> np.ndarray:
    """(k, k) float32 area coverage of a disc of radius ``radius_px`` centred on the middle pixel."""
    return _disc_kernel(max(1, int(round(radius_px / _RADIUS_QUANTUM))))


def splat_disc_filtered(
    image: np.ndarray, uv: np.ndarray, weights: np.ndarray, radius_px: float
) -> None:
    """Add ``sum_k weights[k] * disc(uv[k], radius_px)`` to ``image`` (H, W) float32 in place.

    Args:
        uv: (N, 2) pixel positions x, y (pixel centres at integers).
        weights: (N,) per-sample weights.
    """
    height, width = image.shape
    kernel = disc_kernel(radius_px)
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
    density = np.zeros(roi_h * roi_w, np.float64)
    for offset, share in (
        (0, (1 - fx) * (1 - fy)),
        (1, fx * (1 - fy)),
        (roi_w, (1 - fx) * fy),
        (roi_w + 1, fx * fy),
    ):
        density += np.bincount(flat + offset, weights * share, minlength=roi_h * roi_w)
    roi = cv2.filter2D(
        density.reshape(roi_h, roi_w).astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT
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
    base = np.round(uv).astype(np.int64)
    d = np.arange(-reach, reach + 1)
    dx, dy = np.meshgrid(d, d)
    px = base[:, 0:1] + dx.ravel()[None, :]
    py = base[:, 1:2] + dy.ravel()[None, :]
    near = (px - uv[:, 0:1]) ** 2 + (py - uv[:, 1:2]) ** 2 <= radius**2
    near &= (px >= 0) & (px < width) & (py >= 0) & (py < height)
    mask[py[near], px[near]] = 1
