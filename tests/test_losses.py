"""Targets, losses and KPIs on tiny tensors whose expected values are computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cathtrack.coordinates import to_heatmap_coordinates, to_input_coordinates
from cathtrack.data.sample import Sample
from cathtrack.train.kpi import detection_kpi, heatmap_peaks, segmentation_kpi
from cathtrack.train.losses import (
    focal_loss,
    segmentation_loss,
    size_l1_loss,
    weighted_batch_mean,
)
from cathtrack.train.targets import collate_batch, draw_heatmap, gaussian_radius

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
