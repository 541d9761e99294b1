"""The reference inference pipeline in Python: frame -> network -> electrodes, mask, catheters.

This is the path the trainer validates with, ``cathtrack eval`` scores, and the native runtime
must agree with. Steps:

1. ``normalize_frame`` at the frame's own resolution, ``resize_frame`` to the model's square
   input (cathtrack.data.normalize: the same rule as training).
2. Forward: segmentation logits (H, W), electrode heatmap (H/4, W/4) of probabilities, size
   map (2, H/4, W/4) of box width/height in input pixels.
3. Electrodes: ``find_peaks`` on the heatmap (3x3 NMS, sub-pixel log-parabola fit), mapped from
   heatmap cells to input pixels by x = 4 (u + 0.5) - 0.5 (:mod:`cathtrack.coordinates`); sizes
   read at the integer peak.
4. Catheters: mask = sigmoid(logits) > 0.5 -> ``thin`` -> ``trace_centerlines`` ->
   ``assign_electrodes`` -> ``classify_catheter`` for every centerline with >= 2 electrodes.
   If the electrodes of a centerline sit mostly in its proximal half, the centerline is turned
   around: the distal tip is where the electrodes are.
5. Everything mapped back to the frame's pixel grid: x_frame = (x + 0.5) W / S - 0.5 (pixel
   centres at integers, :mod:`cathtrack.coordinates`), sizes scaled, the mask probability
   resized bilinearly.

Decoding settings are :class:`cathtrack.settings.DecodeSettings` (the tracker's defaults).
"""

from __future__ import annotations

import numpy as np
import torch

from cathtrack import postprocess as pp
from cathtrack.catheters import UNKNOWN_TYPE
from cathtrack.coordinates import (
    heatmap_stride,
    input_to_frame_scale,
    to_frame_coordinates,
    to_input_coordinates,
)
from cathtrack.data.normalize import normalize_frame, resize_frame
from cathtrack.prediction import Prediction
from cathtrack.settings import DecodeSettings


def decode(
    segmentation_logits: np.ndarray | torch.Tensor,
    heatmap: np.ndarray | torch.Tensor,
    size: np.ndarray | torch.Tensor,
    settings: DecodeSettings | None = None,
    *,
    catheters: bool = True,
) -> Prediction:
    """One frame's network outputs -> a Prediction in model-input pixels.

    Args:
        segmentation_logits: (H, W) or (1, H, W).
        heatmap: (h, w) or (1, h, w) probabilities at stride s = H / h (4, 2 or 1).
        size: (2, h, w) box width and height in input pixels.
        settings: thresholds and lengths (None: the defaults). ``tip_lookback`` is not used
            here: the tip direction is the tracker's, measured on the centerlines this returns.
        catheters: run thinning, centerlines and type classification (False: electrodes and
            mask only, e.g. for fast validation).
    """
    settings = settings or DecodeSettings()
    logits = _numpy(segmentation_logits).reshape(_numpy(segmentation_logits).shape[-2:])
    heat = _numpy(heatmap).reshape(_numpy(heatmap).shape[-2:])
    sizes_map = _numpy(size).reshape(2, *heat.shape)
    stride = heatmap_stride(logits.shape, heat.shape)
    cells, scores, index = pp.find_peaks(
        heat, settings.score_threshold, settings.max_peaks, return_index=True
    )
    electrodes = to_input_coordinates(cells, stride).astype(np.float32)
    rows, cols = np.divmod(index.astype(np.int64), heat.shape[1])
    sizes = np.maximum(sizes_map[:, rows, cols].T, 0.0).astype(np.float32)
    # sigmoid as 0.5 (1 + tanh(x / 2)): no overflow for large negative logits
    mask = (0.5 * (1.0 + np.tanh(0.5 * logits.astype(np.float32)))).astype(np.float32)
    prediction = Prediction(electrodes, scores.astype(np.float32), sizes, mask)
    if catheters:
        _find_catheters(prediction, settings)
    return prediction


def _find_catheters(prediction: Prediction, settings: DecodeSettings) -> None:
    skeleton = pp.thin(prediction.mask > settings.mask_threshold)
    lines = pp.trace_centerlines(skeleton, settings.min_centerline_length)
    groups = pp.assign_electrodes(lines, prediction.electrodes, settings.max_assign_distance)
    for line, group in zip(lines, groups, strict=True):
        line, group = _orient_by_electrodes(line, group, prediction.electrodes)
        catheter_type, score = UNKNOWN_TYPE, 0.0
        if len(group) >= 2:
            catheter_type, score = pp.classify_catheter(
                prediction.electrodes[group], settings.spacing_tolerance
            )
        prediction.catheters.append((catheter_type, group))
        prediction.type_scores.append(score)
        prediction.centerlines.append(line)


def _orient_by_electrodes(
    line: np.ndarray, group: np.ndarray, electrodes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Turns a centerline around when its electrodes sit in its proximal half."""
    if len(group) == 0 or len(line) < 2:
        return line, group
    step = np.linalg.norm(np.diff(line, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(step)])
    nearest = np.argmin(np.linalg.norm(electrodes[group][:, None] - line[None], axis=2), axis=1)
    if np.median(arc[nearest]) <= 0.5 * arc[-1]:
        return line, group
    return line[::-1].copy(), group[::-1].copy()


def preprocess(frame: np.ndarray, size: int) -> np.ndarray:
    """A frame of any dtype/size -> (size, size) float32 in [0, 1], the network's input."""
    return resize_frame(normalize_frame(frame), size)


def to_frame(prediction: Prediction, frame_shape: tuple[int, int], size: int) -> Prediction:
    """Maps a Prediction from the (size, size) model grid to a (H, W) frame grid."""
    height, width = frame_shape
    scale = input_to_frame_scale(frame_shape, size)
    mapped = Prediction(
        electrodes=to_frame_coordinates(prediction.electrodes, frame_shape, size),
        scores=prediction.scores,
        sizes=(prediction.sizes * scale).astype(np.float32),
        mask=None
        if prediction.mask is None
        else _resize_probability(prediction.mask, height, width),
        catheters=prediction.catheters,
        type_scores=prediction.type_scores,
        centerlines=[
            to_frame_coordinates(line, frame_shape, size) for line in prediction.centerlines
        ],
    )
    return mapped


def _resize_probability(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a probability map, the same op as the native engine's."""
    tensor = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None, None]
    resized = torch.nn.functional.interpolate(
        tensor, size=(height, width), mode="bilinear", align_corners=False
    )
    return resized[0, 0].numpy()


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    frames: list[np.ndarray],
    size: int,
    settings: DecodeSettings | None = None,
    device: str | torch.device = "cpu",
) -> list[Prediction]:
    """Runs the whole reference pipeline on frames of any size; results in each frame's pixels.

    The input is cast to the dtype of the model's weights (a bfloat16 or float16 network);
    ``settings`` None decodes with the defaults.
    """
    batch = np.stack([preprocess(frame, size) for frame in frames])[:, None]
    dtype = next(model.parameters()).dtype
    segmentation, heatmap, sizes = model(torch.from_numpy(batch).to(device, dtype))
    return [
        to_frame(decode(segmentation[i], heatmap[i], sizes[i], settings), frame.shape[:2], size)
        for i, frame in enumerate(frames)
    ]


def _numpy(value: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value)
