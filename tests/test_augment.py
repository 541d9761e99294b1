"""Augment keeps the image, mask and every label aligned."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from cathtrack.data.augment import Augment, crop_sample, random_crop, warp_sample
from cathtrack.data.sample import CatheterLabel, Sample

SIZE = 96
DOT_SIGMA = 1.5
GEOMETRY_ONLY = dict(gamma=(1.0, 1.0), contrast=(1.0, 1.0), brightness=0.0, noise_std=(0.0, 0.0))


def _dotted_sample() -> Sample:
    """Gaussian dots at sub-pixel electrode centres on black, a catheter mask, boxes, centerlines."""
    centerlines = [
        np.array([[20.3, 30.7], [35.0, 40.0], [50.0, 60.0], [55.0, 95.4]], np.float32),
        np.array([[70.6, 20.2], [75.0, 50.0], [80.0, 95.0]], np.float32),
    ]
    electrodes = np.array(
        [[20.3, 30.7], [29.8, 36.6], [41.2, 48.4], [70.6, 20.2], [72.9, 35.5], [74.4, 45.9]],
        np.float32,
    )
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)  # pixel centres at integer coordinates
    image = np.zeros((SIZE, SIZE), np.float32)
    for x, y in electrodes:
        image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * DOT_SIGMA**2))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    for line in centerlines:
        cv2.polylines(mask, [np.round(line).astype(np.int32)], False, 1, thickness=3)
    return Sample(
        image=np.clip(image, 0, 1),
        mask=mask,
        electrodes=electrodes,
        boxes=np.hstack([electrodes - 2.0, np.full_like(electrodes, 4.0)]),
        electrode_catheter=np.array([7, 7, 7, 9, 9, 9], np.int64),
        electrode_index=np.array([0, 1, 2, 0, 1, 2], np.int64),
        catheters=[
            CatheterLabel(7, "ablation", centerlines[0]),
            CatheterLabel(9, "quadripolar", centerlines[1]),
        ],
        name="dots",
        pixel_spacing_mm=0.5,
    )


def _dot_centroid(image: np.ndarray, x: float, y: float, radius: int = 5) -> np.ndarray:
    x0, y0 = int(round(x)), int(round(y))
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    inside = (xs >= 0) & (xs < SIZE) & (ys >= 0) & (ys < SIZE)
    weights = np.where(inside, image[ys.clip(0, SIZE - 1), xs.clip(0, SIZE - 1)], 0.0)
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


@pytest.mark.parametrize("seed", range(8))
def test_electrodes_stay_on_their_dots(seed):
    sample = _dotted_sample()
    augment = Augment(
        scale=(0.8, 1.25), rotation_deg=40, translate=0.1, hflip_p=0.5, vflip_p=0.5, **GEOMETRY_ONLY
    )
    out = augment(sample, np.random.default_rng(seed))
    assert len(out.electrodes) >= 1
    for x, y in out.electrodes:
        # Dots cut by the border have a biased centroid: check only those well inside.
        if 6 <= x <= SIZE - 7 and 6 <= y <= SIZE - 7:
            np.testing.assert_allclose(_dot_centroid(out.image, x, y), (x, y), atol=0.5)


@pytest.mark.parametrize("seed", range(8))
def test_labels_stay_consistent(seed):
    sample = _dotted_sample()
    out = Augment(rotation_deg=90, translate=0.25, vflip_p=0.5)(sample, np.random.default_rng(seed))
    n = len(out.electrodes)
    assert (
        out.boxes.shape == (n, 4)
        and out.electrode_catheter.shape == (n,)
        and out.electrode_index.shape == (n,)
    )
    # Surviving electrodes keep their identity: (catheter, index) pairs are a subset, in order.
    pairs = list(zip(out.electrode_catheter.tolist(), out.electrode_index.tolist(), strict=True))
    original = list(
        zip(sample.electrode_catheter.tolist(), sample.electrode_index.tolist(), strict=True)
    )
    assert pairs == [p for p in original if p in pairs]
    x, y, w, h = out.boxes.T
    assert np.all((x <= out.electrodes[:, 0]) & (out.electrodes[:, 0] <= x + w))
    assert np.all((y <= out.electrodes[:, 1]) & (out.electrodes[:, 1] <= y + h))
    assert np.all((x >= -0.5) & (y >= -0.5) & (x + w <= SIZE - 0.5) & (y + h <= SIZE - 0.5))
    assert set(np.unique(out.mask)) <= {0, 1} and out.mask.dtype == np.uint8
    assert 0.0 <= out.image.min() and out.image.max() <= 1.0 and out.image.dtype == np.float32
    for catheter in out.catheters:
        assert np.all((catheter.centerline >= -0.5) & (catheter.centerline <= SIZE - 0.5))
    assert out.available == sample.available
    # The input is untouched.
    np.testing.assert_array_equal(sample.electrodes, _dotted_sample().electrodes)


def test_rotated_box_is_the_bounding_box_of_its_corners():
    sample = _dotted_sample()
    centre = (SIZE - 1) / 2
    matrix = cv2.getRotationMatrix2D((centre, centre), 45, 1.0)
    out = warp_sample(sample, matrix)
    # A 4x4 box rotated by 45 degrees spans 4*sqrt(2) on both axes.
    np.testing.assert_allclose(out.boxes[:, 2:], 4 * np.sqrt(2), rtol=1e-5)
    np.testing.assert_allclose(out.boxes[:, :2] + out.boxes[:, 2:] / 2, out.electrodes, atol=1e-4)


def test_flip_twice_is_the_identity():
    sample = _dotted_sample()
    flip = Augment(scale=(1, 1), rotation_deg=0, translate=0, hflip_p=1, vflip_p=1, **GEOMETRY_ONLY)
    once = flip(sample, np.random.default_rng(0))
    np.testing.assert_allclose(once.electrodes, (SIZE - 1) - sample.electrodes, atol=1e-5)
    np.testing.assert_array_equal(once.image, sample.image[::-1, ::-1])
    twice = flip(once, np.random.default_rng(1))
    np.testing.assert_array_equal(twice.image, sample.image)
    np.testing.assert_array_equal(twice.mask, sample.mask)
    np.testing.assert_allclose(twice.electrodes, sample.electrodes, atol=1e-5)
    np.testing.assert_allclose(twice.boxes, sample.boxes, atol=1e-5)
    for before, after in zip(sample.catheters, twice.catheters, strict=True):
        np.testing.assert_allclose(after.centerline, before.centerline, atol=1e-5)
    assert twice.pixel_spacing_mm == sample.pixel_spacing_mm


def test_points_leaving_the_image_are_dropped_and_centerlines_cut_at_the_border():
    sample = _dotted_sample()
    shift = np.array([[1.0, 0, 45.0], [0, 1.0, 0]])  # 45 px to the right
    out = warp_sample(sample, shift)
    kept = sample.electrodes[:, 0] + 45 <= SIZE - 0.5
    assert 0 < kept.sum() < len(kept)
    np.testing.assert_allclose(out.electrodes, sample.electrodes[kept] + [45, 0])
    np.testing.assert_array_equal(out.electrode_index, sample.electrode_index[kept])
    np.testing.assert_array_equal(out.electrode_catheter, sample.electrode_catheter[kept])
    first = out.catheters[0].centerline
    # (50, 60) -> (55, 95.4) becomes (95, 60) -> (100, 95.4): cut at x = 95.5, 1/10 of the way.
    np.testing.assert_allclose(first[-1], [SIZE - 0.5, 60 + 0.1 * 35.4], rtol=1e-6)
    np.testing.assert_allclose(first[:-1], sample.catheters[0].centerline[:3] + [45, 0])
    assert [c.id for c in out.catheters] == [7]  # catheter 9 is entirely outside now
    assert (out.image[:, :45] == 0).all()  # filled like a collimator shutter


def test_centerline_leaving_and_reentering_keeps_the_longest_piece():
    line = np.array([[10, 10], [10, -20], [30, -20], [30, 60]], np.float32)  # out, then back in
    sample = Sample(
        image=np.zeros((SIZE, SIZE), np.float32), catheters=[CatheterLabel(1, "unknown", line)]
    )
    out = warp_sample(sample, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    np.testing.assert_allclose(out.catheters[0].centerline, [[30, -0.5], [30, 60]])


def test_unavailable_tasks_stay_unavailable():
    sample = dataclasses.replace(
        _dotted_sample(),
        mask=None,
        available={"segmentation": False, "detection": True},
    )
    out = Augment()(sample, np.random.default_rng(3))
    assert out.mask is None and out.available == {"segmentation": False, "detection": True}


def test_scale_changes_pixel_spacing_and_photometric_changes_stay_in_range():
    sample = _dotted_sample()
    zoom = Augment(scale=(2, 2), rotation_deg=0, translate=0, hflip_p=0, **GEOMETRY_ONLY)
    assert zoom(sample, np.random.default_rng(0)).pixel_spacing_mm == pytest.approx(0.25)
    noisy = Augment(noise_std=(0.05, 0.05), gamma=(0.5, 2.0))
    first = noisy(sample, np.random.default_rng(5))
    again = noisy(sample, np.random.default_rng(5))
    np.testing.assert_array_equal(first.image, again.image)  # deterministic given the generator
    assert first.image.min() >= 0 and first.image.max() <= 1
    background = first.image[first.image < 0.5]
    assert 0.01 < background.std() < 0.1


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError, match="scale"):
        Augment(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="hflip_p"):
        Augment(hflip_p=1.5)
    with pytest.raises(ValueError, match="rotation_deg"):
        Augment(rotation_deg=-1)


@pytest.mark.parametrize("left, top, size", [(0, 0, 64), (32, 17, 64), (10, 50, 32)])
def test_crop_equals_opencv_translation_and_keeps_labels_on_their_dots(left, top, size):
    sample = _dotted_sample()
    cropped = crop_sample(sample, left, top, size)
    # Independent reference: the same window as an OpenCV translation.
    matrix = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top]])
    np.testing.assert_array_equal(
        cropped.image, cv2.warpAffine(sample.image, matrix, (size, size), flags=cv2.INTER_NEAREST)
    )
    np.testing.assert_array_equal(
        cropped.mask, cv2.warpAffine(sample.mask, matrix, (size, size), flags=cv2.INTER_NEAREST)
    )
    inside = (
        (sample.electrodes[:, 0] >= left - 0.5)
        & (sample.electrodes[:, 0] <= left + size - 0.5)
        & (sample.electrodes[:, 1] >= top - 0.5)
        & (sample.electrodes[:, 1] <= top + size - 0.5)
    )
    np.testing.assert_allclose(cropped.electrodes, sample.electrodes[inside] - (left, top))
    np.testing.assert_array_equal(cropped.electrode_index, sample.electrode_index[inside])
    for x, y in cropped.electrodes:  # every kept electrode still sits on its dot
        if 5 <= x < size - 5 and 5 <= y < size - 5:
            np.testing.assert_allclose(_dot_centroid_in(cropped.image, x, y), (x, y), atol=0.05)
    for catheter in cropped.catheters:
        assert (catheter.centerline >= -0.5).all() and (catheter.centerline <= size - 0.5).all()
    assert cropped.pixel_spacing_mm == sample.pixel_spacing_mm


def _dot_centroid_in(image: np.ndarray, x: float, y: float, radius: int = 5) -> np.ndarray:
    x0, y0 = int(round(x)), int(round(y))
    window = image[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    return np.array([(window * xs).sum(), (window * ys).sum()]) / window.sum()


def test_random_crop_is_seeded_and_refuses_windows_outside_the_image():
    sample = _dotted_sample()
    a = random_crop(sample, 32, np.random.default_rng(5))
    b = random_crop(sample, 32, np.random.default_rng(5))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.shape == (32, 32)
    with pytest.raises(ValueError, match="leaves the 96x96 image"):
        crop_sample(sample, 70, 0, 32)
