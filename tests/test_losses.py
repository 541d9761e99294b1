"""Targets, losses and KPIs on tiny tensors whose expected values are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cathtrack.coordinates import to_heatmap_coordinates, to_input_coordinates
from cathtrack.data.sample import Sample
from cathtrack.postprocess import find_peaks
from cathtrack.train.kpi import batch_kpis, detection_kpi, heatmap_peaks, segmentation_kpi
from cathtrack.train.losses import (
    focal_loss,
    segmentation_loss,
    size_l1_loss,
    task_losses,
    weighted_batch_mean,
)
from cathtrack.train.targets import collate_batch, draw_heatmap, gaussian_radius, target_outputs

# --------------------------------------------------------------------------- targets


def _sample(electrodes, boxes, detection=True, segmentation=True, size=64) -> Sample:
    mask = np.zeros((size, size), np.uint8)
    mask[10:20, 5:9] = 1
    return Sample(
        image=np.full((size, size), 0.5, np.float32),
        mask=mask,
        electrodes=np.asarray(electrodes, np.float32).reshape(-1, 2),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        available={"segmentation": segmentation, "detection": detection},
    )


def test_heatmap_coordinate_convention():
    # Heatmap cell u covers input pixels [4u - 0.5, 4u + 3.5): its centre is x = 4u + 1.5.
    assert to_heatmap_coordinates(torch.tensor([1.5, -0.5, 9.5])).tolist() == [0.0, -0.5, 2.0]
    assert to_input_coordinates(torch.tensor([0.0, 3.0])).tolist() == [1.5, 13.5]


def test_targets_put_peaks_of_one_at_centres_and_sizes_at_their_cell():
    # centres (9.5, 21.5) -> cell (2, 5); (30.0, 41.0) -> u = (7.125, 9.875) -> cell (7, 10)
    samples = [
        _sample([[9.5, 21.5], [30.0, 41.0]], [[7, 19, 5, 5], [28, 39, 4, 6]]),
        _sample([], []),
    ]
    batch = collate_batch(samples, [3, 7])
    heatmap = batch["heatmap"]
    assert heatmap.shape == (2, 1, 16, 16)
    assert heatmap[0, 0, 5, 2] == 1 and heatmap[0, 0, 10, 7] == 1
    assert int((heatmap[0] == 1).sum()) == 2 and float(heatmap[1].max()) == 0
    assert batch["index"][0].tolist() == [5 * 16 + 2, 10 * 16 + 7]
    assert batch["size"][0].tolist() == [[5.0, 5.0], [4.0, 6.0]]
    assert batch["center_mask"].tolist() == [[True, True], [False, False]]
    assert batch["sample_id"].tolist() == [3, 7]
    # The first centre is exactly on a cell: its neighbours follow the Gaussian of sigma
    # (2 r + 1) / 6 with r = 1 (the minimum radius; CenterNet's rule gives 0 for a 5 px box).
    assert float(heatmap[0, 0, 5, 3]) == pytest.approx(math.exp(-1 / (2 * 0.5**2)), rel=1e-6)
    assert float(heatmap[0, 0, 5, 4]) == 0  # outside the (2r + 1)^2 window


def test_targets_respect_availability_and_mask():
    batch = collate_batch(
        [_sample([[9.5, 21.5]], [[7, 19, 5, 5]], detection=False, segmentation=False)]
    )
    assert float(batch["heatmap"].abs().sum()) == 0 and float(batch["mask"].abs().sum()) == 0
    assert batch["available"]["detection"].tolist() == [0.0]
    assert batch["sample_id"].tolist() == [-1]
    batch = collate_batch([_sample([], [])])
    assert float(batch["mask"].sum()) == 40 and batch["available"]["segmentation"].tolist() == [1.0]
    with pytest.raises(ValueError, match="not a multiple of 32"):
        collate_batch([_sample([], [], size=48)])


def test_gaussian_radius_matches_centernet_formula():
    # CornerNet's three cases for a 10 x 20 box at IoU 0.7, evaluated by hand:
    h, w, o = 10.0, 20.0, 0.7
    r1 = (h + w + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    r2 = (2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (1 - o) * w * h)) / 2
    r3 = (-2 * o * (h + w) + math.sqrt(4 * o**2 * (h + w) ** 2 - 16 * o * (o - 1) * w * h)) / 2
    radius = gaussian_radius(torch.tensor([h]), torch.tensor([w]))
    assert float(radius) == pytest.approx(min(r1, r2, r3), rel=1e-6)


# --------------------------------------------------------------------------- losses


def test_focal_loss_by_hand():
    prediction = torch.tensor([0.8, 0.3, 0.1, 0.6]).reshape(1, 1, 1, 4)
    target = torch.tensor([1.0, 0.5, 0.0, 1.0]).reshape(1, 1, 1, 4)
    positive = math.log(0.8) * 0.2**2 + math.log(0.6) * 0.4**2
    negative = math.log(0.7) * 0.3**2 * 0.5**4 + math.log(0.9) * 0.1**2 * 1.0
    expected = -(positive + negative) / 2  # two positives
    assert float(focal_loss(prediction, target)) == pytest.approx(expected, rel=1e-5)


def test_focal_loss_without_electrodes_divides_by_one():
    prediction = torch.tensor([0.2, 0.5]).reshape(1, 1, 1, 2)
    target = torch.zeros(1, 1, 1, 2)
    expected = -(math.log(0.8) * 0.2**2 + math.log(0.5) * 0.5**2)
    assert float(focal_loss(prediction, target)) == pytest.approx(expected, rel=1e-5)


def test_size_l1_at_centres_only():
    size = torch.zeros(2, 2, 2, 2)
    size[0, :, 1, 1] = torch.tensor([4.0, 8.0])  # flat index 3 of sample 0
    size[1, :, 0, 0] = torch.tensor([1.0, 1.0])
    index = torch.tensor([[3, 0], [0, 0]])
    mask = torch.tensor([[True, False], [True, True]])
    target = torch.tensor([[[5.0, 6.0], [9.0, 9.0]], [[2.0, 3.0], [1.0, 1.0]]])
    # sample 0: |4-5| + |8-6| over 2 values; sample 1: (|1-2| + |1-3| + 0 + 0) / 4
    assert size_l1_loss(size, index, mask, target).tolist() == [1.5, 0.75]


def test_segmentation_bce_plus_iou_by_hand():
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)
    total, parts = segmentation_loss(logits, mask)
    # BCE = log 2; IoU: intersection 0.5, union 0.5 * 4 + 1 - 0.5 = 2.5, smoothed by 1.
    assert float(parts["bce"]) == pytest.approx(math.log(2), rel=1e-6)
    assert float(parts["iou"]) == pytest.approx(1 - 1.5 / 3.5, rel=1e-6)
    assert float(total) == pytest.approx(math.log(2) + 1 - 1.5 / 3.5, rel=1e-6)
    empty, _ = segmentation_loss(torch.full((1, 1, 2, 2), -30.0), torch.zeros(1, 1, 2, 2))
    assert float(empty) == pytest.approx(0.0, abs=1e-6)


def test_weighted_batch_mean_divides_by_batch_and_ignores_unlabelled_nan():
    losses = torch.tensor([1.0, float("nan"), 3.0, 4.0])
    weights = torch.tensor([1.0, 0.0, 1.0, 0.5])
    assert float(weighted_batch_mean(losses, weights)) == pytest.approx((1 + 3 + 2) / 4)


# --------------------------------------------------------------------------- KPIs


def test_segmentation_kpi_is_hard_iou():
    logits = torch.tensor([[2.0, 2.0], [-1.0, 3.0]]).reshape(1, 1, 2, 2)
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).reshape(1, 1, 2, 2)
    empty = torch.full((1, 1, 2, 2), -1.0)
    kappa = segmentation_kpi(torch.cat([logits, empty]), torch.cat([mask, torch.zeros_like(mask)]))
    assert kappa.tolist() == [pytest.approx(2 / 4), 1.0]


def _heatmap(centers: list[list[float]], size: int = 16) -> torch.Tensor:
    points = torch.tensor(centers).reshape(-1, 2)
    heatmap, _, _ = draw_heatmap(points, torch.full_like(points, 4.0), size, size)
    return heatmap[None, None]


def test_peaks_recover_sub_pixel_centres():
    xy, scores, valid = heatmap_peaks(_heatmap([[10.3, 20.7], [40.0, 41.2]]))
    found = xy[0, valid[0]]
    torch.testing.assert_close(found, torch.tensor([[10.3, 20.7], [40.0, 41.2]]), atol=1e-4, rtol=0)
    assert scores[0, valid[0]].tolist() == [1.0, 1.0]


def test_detection_kpi_from_localisation_error():
    centers = torch.tensor([[[20.0, 20.0], [40.0, 44.0]]])
    both = torch.tensor([[True, True]])
    exact = _heatmap([[20.0, 20.0], [40.0, 44.0]])
    shifted = _heatmap([[22.0, 20.0], [40.0, 42.0]])  # both 2 px off: MAE 2 = tau
    one_missed = _heatmap([[20.0, 20.0]])  # distances 0 (twice, both ways) and the cap 16
    spurious = _heatmap([[20.0, 20.0], [40.0, 44.0], [6.0, 56.0]])  # extra peak costs 16
    kappa = detection_kpi(
        torch.cat([exact, shifted, one_missed, spurious]),
        centers.expand(4, -1, -1),
        both.expand(4, -1),
    )
    expected = [1.0, 0.5, 1 / (1 + (16 / 3) / 2), 1 / (1 + (16 / 5) / 2)]
    torch.testing.assert_close(kappa, torch.tensor(expected), atol=1e-4, rtol=0)
    nothing = detection_kpi(
        torch.zeros(2, 1, 16, 16),
        centers.expand(2, -1, -1),
        torch.tensor([[True, True], [False, False]]),
    )
    assert nothing.tolist() == [pytest.approx(1 / 9), 1.0]  # all missed; no electrodes, no peaks


# --------------------------------------------------------------------------- any stride


def _pair_peaks(first, second, stride: int, size: int = 48) -> np.ndarray:
    """Peaks (input pixels) of the target of two 3 x 3 px electrodes, found as in decoding."""
    centers = torch.from_numpy(np.array([first, second], np.float32))
    heatmap, _, _ = draw_heatmap(
        centers, torch.full((2, 2), 3.0), size // stride, size // stride, stride
    )
    cells, _ = find_peaks(heatmap.numpy(), 0.3, 128)
    return to_input_coordinates(cells, stride)


def _pairs(distance: float, angles: int = 24, offsets: int = 5):
    """Electrode pairs ``distance`` px apart in every direction at several sub-pixel positions."""
    for angle in np.linspace(0, np.pi, angles, endpoint=False):
        step = distance * np.array([np.cos(angle), np.sin(angle)])
        for dx in np.linspace(0, 1, offsets, endpoint=False):
            for dy in np.linspace(0, 1, offsets, endpoint=False):
                first = np.array([20.13 + dx, 21.37 + dy])
                yield first, first + step


def test_targets_at_strides_2_and_1_put_sizes_at_their_cell():
    samples = [_sample([[9.5, 21.5], [30.0, 41.0]], [[7, 19, 5, 5], [28, 39, 4, 6]])]
    for stride, cells in ((2, [(4, 10), (15, 20)]), (1, [(10, 22), (30, 41)])):
        batch = collate_batch(samples, stride=stride)
        side = 64 // stride
        assert batch["heatmap"].shape == (1, 1, side, side)
        # (9.5, 21.5) -> u = (4.5, 10.5) at stride 2, rounded half to even: cell (4, 10)
        assert batch["index"][0].tolist() == [row * side + column for column, row in cells]
        assert [float(batch["heatmap"][0, 0, row, column]) for column, row in cells] == [1, 1]
        # sigma = (2 r + 1) / 6 cells, r = 1 at every stride for these 4-6 px boxes.
        uv = to_heatmap_coordinates(torch.tensor([30.0, 41.0]), stride)
        (column, row), offset = cells[1], ((torch.tensor(cells[1]) - uv) ** 2).sum()
        expected = math.exp(-(((column + 1 - uv[0]) ** 2 + (row - uv[1]) ** 2) - offset) / 0.5)
        assert float(batch["heatmap"][0, 0, row, column + 1]) == pytest.approx(expected, rel=1e-5)
        assert float(batch["heatmap"][0, 0, row, column + 2]) == 0  # outside the 3 x 3 window
        # A perfect network's outputs: the size map holds each box at its centre cell.
        _, _, size = target_outputs(batch)
        assert float(size_l1_loss(size, batch["index"], batch["center_mask"], batch["size"])) == 0
    with pytest.raises(ValueError, match="stride 3"):
        collate_batch(samples, stride=3)


def test_windowed_splatting_equals_the_dense_gaussian():
    generator = torch.Generator().manual_seed(0)
    centers = torch.rand(12, 2, generator=generator) * 72 - 4  # some just off the map
    boxes = 1 + torch.rand(12, 2, generator=generator) * 30  # radii 1 to several cells
    for stride in (4, 2, 1):
        side = 64 // stride
        heatmap, cells, inside = draw_heatmap(centers, boxes, side, side, stride)
        uv = to_heatmap_coordinates(centers, stride)
        radius = torch.clamp(
            torch.floor(gaussian_radius(boxes[:, 1] / stride, boxes[:, 0] / stride)), min=1
        )
        sigma = (2 * radius + 1) / 6
        grid = torch.arange(side, dtype=torch.float32)
        offset = ((cells - uv) ** 2).sum(dim=1)
        dense = torch.exp(
            -(
                (grid[None, None, :] - uv[:, 0, None, None]) ** 2
                + (grid[None, :, None] - uv[:, 1, None, None]) ** 2
                - offset[:, None, None]
            )
            / (2 * sigma[:, None, None] ** 2)
        )
        window = (
            (grid[None, None, :] - cells[:, 0, None, None]).abs() <= radius[:, None, None]
        ) & ((grid[None, :, None] - cells[:, 1, None, None]).abs() <= radius[:, None, None])
        expected = torch.where(window, dense, 0.0).amax(dim=0)
        expected[cells[inside, 1], cells[inside, 0]] = 1.0
        assert torch.equal(heatmap, expected), f"stride {stride}"


def test_electrodes_3_px_apart_stay_two_exact_peaks_at_stride_1():
    for first, second in _pairs(3.0):
        peaks = _pair_peaks(first, second, stride=1)
        assert len(peaks) == 2, (first, second)
        distance = np.linalg.norm(peaks[:, None] - np.array([first, second])[None], axis=2)
        assert distance.min(axis=0).max() < 0.01  # refined to the true centres
    # 2 px apart along a row or a column: always two peaks too.
    for step in ([2.0, 0.0], [0.0, 2.0]):
        for dx in np.linspace(0, 1, 8, endpoint=False):
            first = np.array([20.13 + dx, 21.37 - dx])
            assert len(_pair_peaks(first, first + step, stride=1)) == 2


@pytest.mark.parametrize("stride", [4, 2, 1])
def test_minimum_separable_distance_is_two_diagonal_cells(stride):
    # Centre cells >= 2 apart on one axis are never suppressed: 2 sqrt(2) cells in any direction.
    for first, second in _pairs(2 * math.sqrt(2) * stride + 0.01, angles=16, offsets=3):
        assert len(_pair_peaks(first, second, stride, size=64)) == 2, (first, second)
    # Under one cell apart, the centre cells are the same or 8-neighbours: one peak.
    for first, second in _pairs(0.95 * stride, angles=16, offsets=3):
        assert len(_pair_peaks(first, second, stride, size=64)) == 1, (first, second)


def test_kpis_read_the_stride_from_the_shapes():
    centers = [[9.3, 21.6], [40.2, 41.7]]
    samples = [_sample(centers, [[7, 19, 5, 5], [38, 39, 4, 6]])]
    for stride in (4, 2, 1):
        batch = collate_batch(samples, stride=stride)
        outputs = target_outputs(batch)
        xy, _, valid = heatmap_peaks(outputs[1], stride=stride)
        found = xy[0, valid[0]][torch.argsort(xy[0, valid[0], 0])]
        torch.testing.assert_close(found, torch.tensor(centers), atol=1e-4, rtol=0)
        kappa = batch_kpis(outputs, batch)  # (torch.cdist adds ~0.01 px of rounding)
        assert kappa["detection"].tolist() == [pytest.approx(1.0, abs=1e-2)], f"stride {stride}"
        assert kappa["segmentation"].tolist() == [1.0]
        losses, _ = task_losses(outputs, batch)
        assert torch.isfinite(losses["detection"]).all()
    # Read at stride 4, the last (stride-1) heatmap's peaks land far off: the stride must match.
    misread, _, valid = heatmap_peaks(outputs[1], stride=4)
    assert (misread[0, valid[0]] - found).abs().max() > 10


def test_detection_loss_refuses_targets_of_another_stride():
    samples = [_sample([[9.5, 21.5]], [[7, 19, 5, 5]])]
    outputs = target_outputs(collate_batch(samples, stride=2))
    with pytest.raises(ValueError, match="collate the batch at the model's stride"):
        task_losses(outputs, collate_batch(samples))
