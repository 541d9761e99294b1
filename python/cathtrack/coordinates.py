"""Where a value of the network's outputs sits in the input, and where the input sits in a frame.

Every part of cathtrack maps coordinates with these functions: the model (its heatmap stride),
the training targets, the KPIs, the reference pipeline, and the native engine (which mirrors
them in ``src/cpp/runtime/engine.cpp``; docs/design.md 4.2 states the convention).

Convention: pixel centres sit at integer coordinates, as with bilinear resizing at
``align_corners=False``.

- Heatmap cell u covers input pixels [s u - 0.5, s u + s - 0.5) for the heatmap stride s, so
  input x maps to u = (x + 0.5) / s - 0.5 and back with x = s (u + 0.5) - 0.5.
- The model runs on a square S x S input resized from a W x H frame: x_frame = (x + 0.5) W / S
  - 0.5 (and the same for y with H); lengths scale by W / S and H / S.

Plain arithmetic: numpy arrays and torch tensors both work.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

OUTPUT_STRIDE = 4  # the paper's stride of the electrode heatmap and size maps
HEATMAP_STRIDES = (4, 2, 1)  # the strides a model may have (cathtrack.model.ModelConfig)

Array = TypeVar("Array")


def to_heatmap_coordinates(xy: Array, stride: int = OUTPUT_STRIDE) -> Array:
    """Input pixel coordinates -> heatmap cell coordinates, u = (x + 0.5) / stride - 0.5."""
    return (xy + 0.5) / stride - 0.5


def to_input_coordinates(uv: Array, stride: int = OUTPUT_STRIDE) -> Array:
    """Heatmap cell coordinates -> input pixel coordinates, x = stride (u + 0.5) - 0.5."""
    return (uv + 0.5) * stride - 0.5


def input_to_frame_scale(frame_shape: tuple[int, int], size: int) -> np.ndarray:
    """(W / S, H / S) as float32: how much longer a frame pixel's x and y are than the model's."""
    height, width = frame_shape
    return np.array([width / size, height / size], np.float32)


def to_frame_coordinates(xy: np.ndarray, frame_shape: tuple[int, int], size: int) -> np.ndarray:
    """(..., 2) x, y in the S x S model input -> the (H, W) frame's pixels, float32."""
    return ((xy + 0.5) * input_to_frame_scale(frame_shape, size) - 0.5).astype(np.float32)


def heatmap_stride(input_shape: tuple[int, ...], heatmap_shape: tuple[int, ...]) -> int:
    """The stride of a heatmap from its (..., h, w) shape and the input's (..., H, W).

    Raises:
        ValueError: the sizes do not divide into one of :data:`HEATMAP_STRIDES` on both axes.
    """
    (height, width), (rows, cols) = input_shape[-2:], heatmap_shape[-2:]
    for stride in HEATMAP_STRIDES:
        if rows * stride == height and cols * stride == width:
            return stride
    raise ValueError(
        f"a {rows}x{cols} heatmap has none of the strides {HEATMAP_STRIDES} of a "
        f"{height}x{width} input"
    )
