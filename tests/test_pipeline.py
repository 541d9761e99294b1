"""The Python reference pipeline: decoding crafted network outputs with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cathtrack.coordinates import to_heatmap_coordinates, to_input_coordinates
from cathtrack.pipeline import decode, predict, to_frame
from cathtrack.settings import DecodeSettings


def crafted_outputs(size=128, electrodes=((40.3, 70.6), (52.1, 70.2), (64.8, 69.9), (77.4, 70.4))):
    """Network outputs a perfect model would give for one catheter with four electrodes."""
    logits = np.full((size, size), -8.0, np.float32)
    mask = np.zeros((size, size), np.uint8)
    cv2.line(mask, (20, 70), (127, 70), 1, 3)
    logits[mask > 0] = 8.0
    cells = size // 4
    rows, cols = np.mgrid[:cells, :cells].astype(np.float32)
    heat = np.zeros((cells, cells), np.float32)
    sizes = np.zeros((2, cells, cells), np.float32)
    for x, y in electrodes:
        u, v = to_heatmap_coordinates(torch.tensor([x, y])).tolist()
        heat = np.maximum(heat, np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 0.5**2)))
        sizes[:, round(v), round(u)] = (3.0, 2.5)
    return logits, heat, sizes, np.array(electrodes, np.float32)


def test_heatmap_cells_map_back_to_input_pixels():
    xy = np.array([[10.25, 3.5]], np.float32)
    back = to_input_coordinates(to_heatmap_coordinates(torch.from_numpy(xy)).numpy())
    np.testing.assert_allclose(back, xy, atol=1e-6)


def test_decode_recovers_electrodes_sizes_mask_and_catheter():
    logits, heat, sizes, truth = crafted_outputs()
    prediction = decode(logits, heat, sizes, DecodeSettings(score_threshold=0.3))
    order = np.argsort(prediction.electrodes[:, 0])
    np.testing.assert_allclose(prediction.electrodes[order], truth, atol=0.05)
    np.testing.assert_allclose(prediction.sizes, np.tile([3.0, 2.5], (4, 1)))
    assert prediction.mask.shape == logits.shape and prediction.mask.max() > 0.99
    assert len(prediction.catheters) == 1
    _type, members = prediction.catheters[0]
    # the line runs into the right border, so its distal tip is the left end, where the
    # electrodes are: they come out ordered left to right
    np.testing.assert_array_equal(prediction.electrodes[members][:, 0], np.sort(truth[:, 0]))
    assert prediction.centerlines[0][0, 0] < prediction.centerlines[0][-1, 0]


def test_catheter_is_turned_around_when_its_electrodes_are_proximal():
    logits, heat, sizes, _ = crafted_outputs(
        electrodes=((100.2, 70.1), (110.6, 70.3), (120.1, 69.8))
    )
    prediction = decode(logits, heat, sizes, DecodeSettings(score_threshold=0.3))
    line = prediction.centerlines[0]
    assert line[0, 0] > line[-1, 0]  # now starts at the right end, where the electrodes are
    _type, members = prediction.catheters[0]
    assert np.all(np.diff(prediction.electrodes[members][:, 0]) < 0)


def test_to_frame_maps_back_to_the_frame_grid():
    logits, heat, sizes, truth = crafted_outputs()
    prediction = decode(logits, heat, sizes, DecodeSettings(score_threshold=0.3))
    mapped = to_frame(prediction, (256, 384), 128)
    np.testing.assert_allclose(
        mapped.electrodes, (prediction.electrodes + 0.5) * [3, 2] - 0.5, atol=1e-5
    )
    np.testing.assert_allclose(mapped.sizes, prediction.sizes * [3, 2])
    assert mapped.mask.shape == (256, 384)


def test_predict_accepts_frames_of_any_size_and_dtype():
    from cathtrack.model import ModelConfig, build_model

    model = build_model(ModelConfig(backbone="resnet18", width=0.25)).eval()
    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 4096, (200, 300), dtype=np.uint16),
        rng.random((64, 64), dtype=np.float32),
    ]
    predictions = predict(model, frames, 64)
    assert predictions[0].mask.shape == (200, 300) and predictions[1].mask.shape == (64, 64)
    for p in predictions:
        assert np.all(np.isfinite(p.electrodes)) and p.electrodes.dtype == np.float32
    with pytest.raises(ValueError):
        predict(model, [np.zeros((0, 5), np.uint8)], 64)
