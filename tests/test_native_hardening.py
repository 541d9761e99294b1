"""Hostile and careless inputs to the native module (issue 17, items 1 and 5): frames whose dtype
is numpy's by value but not by identity, non-finite heatmaps, out-of-range counts and lengths,
and large images. Each case ends in a result or in one clear ValueError, never a crash, a hang or
a dump of pybind11's overload list."""

from __future__ import annotations

import json
import math
import pickle
import resource
import time

import numpy as np
import pytest
from runtime_support import PARITY_SETTINGS, sample_frames, tiny_export

import cathtrack
from cathtrack import _native
from cathtrack import postprocess as pp
from cathtrack.data.normalize import normalize_frame

# ---- item 1: dtypes are compared by value -------------------------------------------------------


def pickled(array: np.ndarray) -> np.ndarray:
    """The array as a multiprocessing queue, ProcessPoolExecutor or Ray hands it over: its dtype
    equals numpy's but is another object."""
    copy = pickle.loads(pickle.dumps(array))
    assert copy.dtype.type is array.dtype.type
    if array.dtype.isnative:
        assert copy.dtype is not np.dtype(array.dtype.type)
    np.testing.assert_array_equal(copy, array)
    return copy


def frame_variants(frame: np.ndarray) -> list[np.ndarray]:
    """The same pixels as a pickled copy, byte-swapped (a big-endian DICOM's pixel data) and a
    byte-swapped non-contiguous view."""
    swapped = frame.astype(frame.dtype.newbyteorder(">"))
    wide = np.zeros((frame.shape[0], 2 * frame.shape[1]), swapped.dtype)
    wide[:, ::2] = swapped
    variants = [pickled(frame), pickled(swapped), wide[:, ::2]]
    if frame.dtype.itemsize > 1:  # uint8 has no byte order
        variants.append(swapped)
        assert not swapped.dtype.isnative
    for variant in variants:
        np.testing.assert_array_equal(variant, frame)
    return variants


def frames_of_every_dtype() -> list[np.ndarray]:
    rng = np.random.default_rng(17)
    return [
        rng.integers(0, 256, (37, 29), dtype=np.uint8),
        rng.integers(0, 4096, (37, 29), dtype=np.uint16),
        rng.normal(100, 30, (37, 29)).astype(np.float32),
    ]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_preprocessing_takes_pickled_and_byte_swapped_frames(dtype):
    (frame,) = [f for f in frames_of_every_dtype() if f.dtype == dtype]
    expected_normalized = _native.normalize_frame(frame)
    np.testing.assert_array_equal(expected_normalized, normalize_frame(frame))
    expected_input = _native.preprocess_frame(frame, 64)
    for variant in frame_variants(frame):
        np.testing.assert_array_equal(_native.normalize_frame(variant), expected_normalized)
        np.testing.assert_array_equal(_native.preprocess_frame(variant, 64), expected_input)


def test_the_engine_and_the_tracker_take_pickled_and_byte_swapped_frames(tmp_path_factory):
    model = tiny_export(tmp_path_factory, "ts")
    tracker = cathtrack.Tracker(model, device="cpu", **PARITY_SETTINGS)
    frame = sample_frames()[0]
    assert frame.dtype in (np.uint8, np.uint16, np.float32)
    expected = tracker(frame)
    assert len(expected.electrodes) > 0
    for variant in frame_variants(frame):
        result = tracker(variant)
        np.testing.assert_array_equal(result.electrodes, expected.electrodes)
        np.testing.assert_array_equal(result.mask, expected.mask)
    # the repro: a pickled uint8 frame
    result = tracker(pickled(np.zeros((64, 64), np.uint8)))
    assert result.mask.shape == (64, 64)


def test_dtypes_the_engine_does_not_take_are_still_refused_by_value():
    for dtype in ("<f8", ">f8", "<i2", ">i2", "?", "<u4", ">f2"):
        with pytest.raises(TypeError, match="uint8, uint16 or float32, got"):
            _native.normalize_frame(np.zeros((4, 4), dtype))
        with pytest.raises(TypeError, match="uint8, uint16 or float32, got"):
            _native.normalize_frame(pickled(np.zeros((4, 4), dtype)))


def test_the_post_processing_bindings_take_pickled_and_byte_swapped_arrays():
    heat = np.zeros((9, 11), np.float32)
    heat[4, 5], heat[4, 6], heat[2, 2] = 1.0, 0.5, 0.7
    mask = np.zeros((20, 30), np.uint8)
    mask[5:9, 2:28] = 1
    line = np.array([[0, 0], [10, 0], [20, 5]], np.float32)
    points = np.array([[3, 1], [12, 2], [0, 10]], np.float32)
    expected = (
        _native.find_peaks(heat, 0.3, 10),
        _native.thin(mask),
        _native.trace_centerlines(_native.thin(mask)[0], 0.0),
        _native.assign_electrodes([line], points, 4.0),
        _native.classify_spacing(line, [(0, [2.0, 1.0])], 0.15),
    )
    for swap in (pickled, lambda a: a.astype(a.dtype.newbyteorder(">"))):
        got = (
            _native.find_peaks(swap(heat), 0.3, 10),
            _native.thin(swap(mask)),
            _native.trace_centerlines(swap(_native.thin(mask)[0]), 0.0),
            _native.assign_electrodes([swap(line)], swap(points), 4.0),
            _native.classify_spacing(swap(line), [(0, [2.0, 1.0])], 0.15),
        )
        for ours, theirs in zip(got, expected, strict=True):
            for a, b in zip(ours, theirs, strict=True):
                if isinstance(a, list):
                    for x, y in zip(a, b, strict=True):
                        np.testing.assert_array_equal(x, y)
                else:
                    np.testing.assert_array_equal(a, b)


# ---- item 5: non-finite heatmaps, out-of-range counts and lengths, large masks ------------------


def test_infinite_heatmap_pixels_are_never_peaks_and_suppress_nothing():
    heat = np.zeros((12, 12), np.float32)
    heat[3, 3] = np.inf
    heat[3, 4] = 0.9  # beside +inf: still a peak
    heat[8, 8] = -np.inf
    heat[8, 9] = 0.6  # beside -inf
    heat[0, 11] = np.nan
    heat[1, 10] = 0.5  # beside NaN
    xy, scores, index = pp.find_peaks(heat, threshold=0.3, return_index=True)
    np.testing.assert_array_equal(index, [3 * 12 + 4, 8 * 12 + 9, 1 * 12 + 10])
    np.testing.assert_array_equal(scores, np.float32([0.9, 0.6, 0.5]))
    assert np.isfinite(xy).all()
    json.dumps({"scores": scores.tolist(), "xy": xy.tolist()}, allow_nan=False)  # valid JSON
    # Not even a threshold of -inf makes a non-finite pixel a peak.
    for value in (np.inf, -np.inf, np.nan):
        only = np.full((5, 6), value, np.float32)
        assert pp.find_peaks(only, threshold=-np.inf)[0].shape == (0, 2)
    _xy, scores = pp.find_peaks(np.where(heat == 0, -np.inf, heat), threshold=-np.inf)
    assert np.isfinite(scores).all() and len(scores) == 3


def test_heatmap_values_near_the_float_range_give_finite_coordinates():
    """Found by the fuzz driver: raw values near the largest float overflow the parabola fit to
    inf / inf, which gave a NaN coordinate."""
    big = np.finfo(np.float32).max
    heat = np.float32([[0.9 * big, big, -0.9 * big]])
    xy, scores = pp.find_peaks(heat, threshold=0.0)
    np.testing.assert_array_equal(xy, [[1.0, 0.0]])
    assert scores[0] == big


def test_max_peaks_out_of_range_is_one_clear_value_error():
    heat = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    everything = pp.find_peaks(heat, threshold=0.0, max_peaks=2**31 - 1)[1]
    assert len(everything) > 5
    for bad, message in (
        (2**31, "max_peaks must be <= 2147483647, got 2147483648"),
        (2**70, f"max_peaks must be <= 2147483647, got {2**70}"),
        (-1, "max_peaks must be >= 0, got -1"),
        (-(2**40), f"max_peaks must be >= 0, got {-(2**40)}"),
    ):
        with pytest.raises(ValueError) as caught:
            pp.find_peaks(heat, max_peaks=bad)
        assert str(caught.value) == message
        with pytest.raises(ValueError, match="max_peaks must be"):
            _native.find_peaks(heat, 0.3, bad)
    with pytest.raises(TypeError, match="integer"):
        _native.find_peaks(heat, 0.3, 2.5)
    with pytest.raises(ValueError, match="threshold must not be NaN"):
        pp.find_peaks(heat, threshold=math.nan)


def test_thin_of_a_4096_square_solid_mask_is_fast():
    """Thinning visits only pixels whose neighbourhood changed: a solid 4096 x 4096 mask took
    70 s (every foreground pixel on each of ~2000 iterations), with no way to interrupt it."""
    mask = np.ones((4096, 4096), np.uint8)
    start = time.perf_counter()
    skeleton, iterations = _native.thin(mask)
    elapsed = time.perf_counter() - start
    assert elapsed < 15.0, elapsed
    assert iterations > 1000  # it did peel the square layer by layer
    assert 0 < skeleton.sum() < 4 * 4096 and set(np.unique(skeleton)) == {0, 1}


@pytest.mark.parametrize(
    "shape", [(1, 1), (1, 40), (40, 1), (2, 2), (64, 64), (97, 130), (130, 97)]
)
def test_thin_of_solid_rectangles_equals_skimage(shape):
    from skimage.morphology import thin as skimage_thin

    mask = np.ones(shape, np.uint8)
    np.testing.assert_array_equal(pp.thin(mask), skimage_thin(mask).astype(np.uint8))


LINE = np.array([[0, 0], [10, 0]], np.float32)


@pytest.mark.parametrize("bad", [-1.0, -1e-30, math.nan, math.inf, -math.inf])
def test_assign_electrodes_refuses_a_negative_or_non_finite_distance(bad):
    with pytest.raises(ValueError) as caught:
        pp.assign_electrodes([LINE], np.array([[1.0, 1.0]]), max_distance=bad)
    assert str(caught.value) == f"max_distance must be finite and >= 0, got {bad!r}"


@pytest.mark.parametrize("bad", [-1.0, -0.5, math.nan, math.inf, -math.inf])
def test_trace_centerlines_refuses_a_negative_or_non_finite_min_length(bad):
    with pytest.raises(ValueError) as caught:
        pp.trace_centerlines(np.ones((5, 5), np.uint8), min_length=bad)
    assert str(caught.value) == f"min_length must be finite and >= 0, got {bad!r}"


def test_zero_lengths_and_distances_are_accepted():
    assert pp.assign_electrodes([LINE], np.array([[3.0, 0.0], [3.0, 1.0]]), max_distance=0.0)[
        0
    ].tolist() == [0]
    assert len(pp.trace_centerlines(np.eye(8, dtype=np.uint8), min_length=0.0)) == 1


@pytest.mark.parametrize("bad", [math.inf, math.nan, 0.0, -0.1])
def test_classify_refuses_a_tolerance_that_is_not_finite_and_positive(bad):
    xy = np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 9.0]], np.float32)
    with pytest.raises(ValueError, match="tolerance must be"):
        pp.classify_catheter(xy, tolerance=bad)
    with pytest.raises(ValueError) as caught:
        _native.classify_spacing(xy, [(0, [5.0, 4.0])], bad)
    assert str(caught.value) == f"tolerance must be finite and > 0, got {bad!r}"


def test_a_huge_template_type_costs_no_memory():
    """The matcher kept one slot per type index up to the largest: a type of 2^31 - 1 asked for
    8 GB. Types are only compared now."""
    xy = np.array([[0.0, 0.0], [0.0, 5.0], [0.0, 9.0]], np.float32)
    templates = [(2**31 - 1, [5.0, 4.0]), (3, [4.0, 5.0])]
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    kind, variant, score = _native.classify_spacing(xy, templates, 0.15)
    assert time.perf_counter() - start < 1.0
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown < 100 * 1024, f"peak memory grew by {grown} KiB"
    assert (kind, variant) == (2**31 - 1, 0) and 0.5 < score <= 1.0
    # the same pattern under a small label scores the same
    assert _native.classify_spacing(xy, [(0, [5.0, 4.0]), (3, [4.0, 5.0])], 0.15)[2] == score
