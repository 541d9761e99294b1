"""sensor_msgs/Image <-> numpy without cv_bridge (no wheel exists; docs/design.md 4.5).

Pure functions on message objects: they need the message library, not a running ROS graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import Image

__all__ = ["ENCODINGS", "MalformedImage", "array_to_image", "check_image", "image_to_array"]

# encoding -> (dtype, channels); multi-byte dtypes are read with the message's byte order.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
}
_ARRAY_ENCODINGS = {
    (np.dtype(np.uint8), 1): "mono8",
    (np.dtype(np.uint16), 1): "mono16",
    (np.dtype(np.float32), 1): "32FC1",
    (np.dtype(np.uint8), 3): "bgr8",
}


class MalformedImage(ValueError):
    """A sensor_msgs/Image that cannot be read; ``kind`` says why, for counting: ``"encoding"``
    (unsupported), ``"empty"`` (zero width or height), ``"step"`` (shorter than one row) or
    ``"data"`` (fewer bytes than ``step * height``)."""

    KINDS = ("encoding", "empty", "step", "data")

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_image(msg: Any) -> None:
    """Checks that a sensor_msgs/Image can be read, without touching its pixels (cheap enough for
    every message, also the ones that are dropped later).

    Raises:
        MalformedImage: (a ValueError) unsupported encoding, zero height or width, ``step``
            shorter than a row, or ``data`` shorter than ``step * height``.
    """
    _layout(msg)


def image_to_array(msg: Any) -> np.ndarray:
    """The pixels of a sensor_msgs/Image as a new array the tracker takes.

    Args:
        msg: a sensor_msgs/Image (anything with ``encoding``, ``height``, ``width``, ``step``,
            ``is_bigendian`` and ``data``).

    Returns:
        (H, W) uint8 (mono8, 8UC1), uint16 (mono16, 16UC1) or float32 (32FC1) in native byte order,
        or (H, W, 3) uint8 in BGR channel order (rgb8 is reordered, bgr8 kept), the tracker's
        colour convention. Row padding (``step`` larger than a row) is dropped.

    Raises:
        MalformedImage: as :func:`check_image`.
    """
    dtype, channels, row_bytes = _layout(msg)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(msg.data, np.uint8)
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    order = ">" if msg.is_bigendian else "<"
    # astype copies into the native-order dtype: the native engine refuses an explicit "<f4".
    pixels = rows.view(dtype.newbyteorder(order)).astype(dtype)
    if channels == 1:
        return pixels.reshape(height, width)
    image = pixels.reshape(height, width, channels)
    return np.ascontiguousarray(image[..., ::-1]) if msg.encoding == "rgb8" else image


def _layout(msg: Any) -> tuple[np.dtype, int, int]:
    """(dtype, channels, bytes per row without padding) of a readable message, else raises."""
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise MalformedImage(
            "encoding", f"unsupported encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise MalformedImage("empty", f"empty image: {width}x{height} pixels")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise MalformedImage(
            "step",
            f"step {step} is shorter than one row of {width} {encoding} pixels ({row_bytes} bytes)",
        )
    size = len(msg.data) * getattr(msg.data, "itemsize", 1)
    if size < step * height:
        raise MalformedImage(
            "data",
            f"data has {size} bytes, {encoding} {width}x{height} with step {step} needs "
            f"{step * height}",
        )
    return dtype, channels, row_bytes


def array_to_image(array: np.ndarray, header: Any) -> Image:
    """A sensor_msgs/Image of a frame: (H, W) uint8 -> mono8, uint16 -> mono16, float32 ->
    32FC1, (H, W, 3) uint8 -> bgr8 (the tracker's colour order); little-endian, no padding.

    Raises:
        ValueError: any other dtype or shape.
    """
    key = (np.dtype(array.dtype), array.shape[2] if array.ndim == 3 else 1)
    encoding = _ARRAY_ENCODINGS.get(key) if array.ndim in (2, 3) else None
    if encoding is None:
        raise ValueError(
            f"no image encoding for a {array.dtype} array of shape {array.shape}; expected (H, W) "
            "uint8/uint16/float32 or (H, W, 3) uint8"
        )
    height, width = array.shape[:2]
    pixels = np.ascontiguousarray(array, key[0].newbyteorder("<"))
    return Image(
        header=header,
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * key[1] * key[0].itemsize,
        data=pixels.tobytes(),
    )
