"""The one image normalisation and resize used in training AND inference.

Training (every loader in :mod:`cathtrack.data`) and inference (the C++ runtime, which
re-implements these two functions) must feed the network identical inputs, so the rule is
specified exactly here and kept simple enough to port.

Why a robust percentile stretch and not a fixed scale: X-ray frames arrive as 8-bit exports,
12-bit values stored in 16-bit words, full 16-bit detector data or floats, with arbitrary window
and offset. Mapping the 0.5th..99.5th percentile of each frame to [0, 1] makes all of them look
alike to the model (bit-depth and window agnostic), while the 0.5 % tails keep a few saturated or
dead pixels, burnt-in text or metal from stealing the contrast.

The rule (``normalize_frame``):

1. Colour to gray: (H, W, 3) is BGR and (H, W, 4) is BGRA (OpenCV's channel order, the order
   ``cv2.imread`` and ``cv2.VideoCapture`` return), converted with ``cv2.cvtColor`` (gray =
   0.299 R + 0.587 G + 0.114 B). uint8, uint16 and float32 convert in their own dtype (OpenCV
   rounds integer results); any other dtype is converted to float32 first. (H, W, 1) is squeezed.
2. Let the n finite pixels sorted ascending be v[0..n-1]. lo = v[(n-1)*5 // 1000] and
   hi = v[ceil((n-1)*995 / 1000)], computed with integer arithmetic (no float rounding).
3. out = 0 where x < lo, 1 where x > hi, (x - lo) / (hi - lo) otherwise; when hi == lo the
   middle case is 0.5 (so a constant image becomes all 0.5). The arithmetic is float32 for
   inputs of at most 16-bit integers and float32 (exact for integers), float64 for 32-bit
   integers and float64; the result is float32.
4. Non-finite pixels (NaN, +-inf) become 0 and do not count in n; with no finite pixel the
   output is all 0.

The rule is idempotent: a normalised frame normalises to itself.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Integer dtypes whose histogram fits comfortably in memory: exact order statistics by bincount.
_HISTOGRAM_DTYPES = (np.uint8, np.int8, np.uint16, np.int16)
_SUPPORTED_KINDS = "uif"  # unsigned, signed integer, floating point (bool and complex refused)
_OPENCV_COLOUR_DTYPES = (np.uint8, np.uint16, np.float32)


def normalize_frame(image: np.ndarray) -> np.ndarray:
    """Normalise one frame to the network's input range (the rule in the module docstring).

    Args:
        image: (H, W) or (H, W, C) with C in {1, 3, 4} (BGR / BGRA order); any integer dtype up
            to 32 bits or float16/32/64.

    Returns:
        (H, W) float32 in [0, 1], C-contiguous.

    Raises:
        ValueError: empty image or a shape that is not (H, W) / (H, W, 1|3|4).
        TypeError: unsupported dtype (bool, complex, object, 64-bit integers).
    """
    gray = _to_gray(image)
    if np.dtype(gray.dtype).type in _HISTOGRAM_DTYPES:
        return _stretch_by_histogram(gray)
    return _stretch_by_partition(gray)


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize a normalised frame to the network's square input size.

    Bilinear interpolation with an antialiasing filter, exactly torch's
    ``F.interpolate(mode="bilinear", align_corners=False, antialias=True)``: when shrinking, each
    output pixel is a triangle-filtered average over the input pixels it covers (its support
    widens with the scale), so a one-pixel wire keeps its weight instead of vanishing between
    samples; when enlarging it is plain bilinear interpolation. The native runtime calls the same
    libtorch operator, so training, the Python reference and the C++ engine resize identically.
    Pixel-centre convention: the centre of pixel (row r, column c) is at (x=c, y=r), so a point
    maps as x' = (x + 0.5) * size / W - 0.5. A non-square frame is stretched, not padded.

    Args:
        frame: (H, W) float32, normally the output of :func:`normalize_frame`.
        size: output side in pixels (> 0).

    Returns:
        (size, size) float32, C-contiguous (the frame itself, as float32, when already that size).
    """
    if frame.ndim != 2 or frame.size == 0:
        raise ValueError(f"resize_frame expects a non-empty (H, W) frame, got shape {frame.shape}")
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if frame.shape == (size, size):
        return np.ascontiguousarray(frame, dtype=np.float32)
    image = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32))[None, None]
    resized = F.interpolate(
        image, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized[0, 0].numpy()


def _to_gray(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(image).__name__}")
    wide_integer = image.dtype.kind in "ui" and image.dtype.itemsize > 4
    if image.dtype.kind not in _SUPPORTED_KINDS or wide_integer:
        raise TypeError(
            f"unsupported image dtype {image.dtype} (use integers up to 32 bits or floats)"
        )
    channels_ok = image.ndim == 3 and image.shape[2] in (1, 3, 4)
    if image.size == 0 or not (image.ndim == 2 or channels_ok):
        raise ValueError(
            f"expected a non-empty (H, W) or (H, W, 1|3|4) image, got shape {image.shape}"
        )
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    if np.dtype(image.dtype).type not in _OPENCV_COLOUR_DTYPES:
        image = image.astype(np.float32)
    code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(np.ascontiguousarray(image), code)


def _rank_bounds(n: int) -> tuple[int, int]:
    """Ranks of lo and hi among n sorted values: floor(0.005 (n-1)) and ceil(0.995 (n-1))."""
    last = n - 1
    return last * 5 // 1000, -(-last * 995 // 1000)


def _stretch_by_histogram(gray: np.ndarray) -> np.ndarray:
    """Exact order statistics from a histogram, then a lookup table (8- and 16-bit integers)."""
    info = np.iinfo(gray.dtype)
    # Shift signed values so the smallest representable value is bin 0.
    bins = gray.astype(np.int32).ravel() - info.min
    counts = np.bincount(bins, minlength=info.max - info.min + 1)
    cumulative = np.cumsum(counts)
    lo_rank, hi_rank = _rank_bounds(gray.size)
    # The value of rank r is the first bin whose cumulative count exceeds r.
    lo_bin = int(np.searchsorted(cumulative, lo_rank, side="right"))
    hi_bin = int(np.searchsorted(cumulative, hi_rank, side="right"))
    values = np.arange(counts.size, dtype=np.float32)
    lut = _stretch(values, np.float32(lo_bin), np.float32(hi_bin))
    return lut[bins].reshape(gray.shape)


def _stretch_by_partition(gray: np.ndarray) -> np.ndarray:
    """Exact order statistics by partial sort (floats and 32-bit integers)."""
    work_dtype = np.float32 if gray.dtype.itemsize <= 2 or gray.dtype == np.float32 else np.float64
    values = gray.astype(work_dtype, copy=False)
    finite = np.isfinite(values)
    all_finite = bool(finite.all())
    finite_values = values.ravel() if all_finite else values[finite]
    if finite_values.size == 0:
        return np.zeros(gray.shape, np.float32)
    lo_rank, hi_rank = _rank_bounds(finite_values.size)
    ordered = np.partition(finite_values, (lo_rank, hi_rank))
    lo, hi = ordered[lo_rank], ordered[hi_rank]
    if not all_finite:
        values = np.where(finite, values, lo)
    out = _stretch(values, lo, hi).astype(np.float32, copy=False)
    if not all_finite:
        out[~finite] = 0.0
    return np.ascontiguousarray(out)


def _stretch(values: np.ndarray, lo: np.floating, hi: np.floating) -> np.ndarray:
    """Step 3 of the rule: (x - lo) / (hi - lo) clipped to [0, 1]; 0.5 inside when hi == lo."""
    if hi > lo:
        return np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    return np.where(values < lo, 0.0, np.where(values > hi, 1.0, 0.5)).astype(values.dtype)
