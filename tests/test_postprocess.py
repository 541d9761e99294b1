"""The native post-processing core against independent references (SciPy, scikit-image) and
on inputs with known answers."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import thin as skimage_thin
from skimage.morphology._skeletonize import G123_LUT, G123P_LUT

import cathtrack
from cathtrack import _native
from cathtrack import postprocess as pp
from cathtrack.catheters import CATALOGUE, CATHETER_TYPES

# ---- helpers -------------------------------------------------------------------------------------


def gaussian_heatmap(shape, centres, sigma):
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    heat = np.zeros(shape)
    for x, y in centres:
        heat = np.maximum(heat, np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2)))
    return heat.astype(np.float32)


def random_blobs(rng, shape, count):
    mask = np.zeros(shape, np.uint8)
    for _ in range(count):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        axes = (int(rng.integers(2, shape[1] // 3)), int(rng.integers(2, shape[0] // 3)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    # ragged borders and holes, as a thresholded network output has
    noise = ndi.gaussian_filter(rng.standard_normal(shape), 2.0)
    return mask & (noise > -0.6).astype(np.uint8)


def smooth_curve(rng, shape, n=200):
    """A random smooth curve entering from the bottom edge and ending inside the image."""
    h, w = shape
    t = np.linspace(0, 1, n)
    x0 = rng.uniform(0.3, 0.7) * w
    bend = rng.uniform(-0.3, 0.3) * w
    x = x0 + bend * np.sin(np.pi * t * rng.uniform(0.5, 1.2))
    y = (h - 1) - t * rng.uniform(0.5, 0.75) * h
    return np.stack([x, y], axis=1)


def polyline_length(points):
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def scipy_peaks(heat, threshold):
    """Reference peaks: 3x3 maximum filter (outside = -inf), sorted by score then raster index."""
    local_max = ndi.maximum_filter(heat, size=3, mode="constant", cval=-np.inf)
    rows, cols = np.nonzero((heat == local_max) & (heat >= threshold))
    order = np.lexsort((rows * heat.shape[1] + cols, -heat[rows, cols]))
    return rows[order], cols[order]


def log_parabola_offset(left, centre, right):
    a, b, c = np.log(left), np.log(centre), np.log(right)
    return np.clip(0.5 * (a - c) / (a - 2 * b + c), -0.5, 0.5)


# ---- peaks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_peaks_equal_scipy_maximum_filter_on_tie_free_heatmaps(seed):
    rng = np.random.default_rng(seed)
    heat = ndi.gaussian_filter(rng.random((96, 128)), 1.5).astype(np.float32)
    heat = (heat - heat.min()) / (heat.max() - heat.min())  # continuous values: no ties
    xy, scores, index = pp.find_peaks(heat, threshold=0.4, max_peaks=10_000, return_index=True)
    rows, cols = scipy_peaks(heat, 0.4)
    assert len(rows) > 5
    np.testing.assert_array_equal(index, rows * heat.shape[1] + cols)
    np.testing.assert_array_equal(scores, heat[rows, cols])
    # sub-pixel offsets equal an independent float64 log-parabola fit away from the border
    inner = (cols > 0) & (cols < heat.shape[1] - 1) & (rows > 0) & (rows < heat.shape[0] - 1)
    r, c = rows[inner], cols[inner]
    expected_x = c + log_parabola_offset(heat[r, c - 1], heat[r, c], heat[r, c + 1])
    expected_y = r + log_parabola_offset(heat[r - 1, c], heat[r, c], heat[r + 1, c])
    np.testing.assert_allclose(xy[inner, 0], expected_x, atol=2e-5)
    np.testing.assert_allclose(xy[inner, 1], expected_y, atol=2e-5)


def test_peaks_top_k_and_threshold():
    rng = np.random.default_rng(7)
    heat = ndi.gaussian_filter(rng.random((64, 64)), 1.0).astype(np.float32)
    all_xy, all_scores = pp.find_peaks(heat, threshold=0.0, max_peaks=100_000)
    top_xy, top_scores = pp.find_peaks(heat, threshold=0.0, max_peaks=5)
    np.testing.assert_array_equal(top_scores, all_scores[:5])
    np.testing.assert_array_equal(top_xy, all_xy[:5])
    assert np.all(np.diff(all_scores) <= 0)
    above, _ = pp.find_peaks(heat, threshold=float(np.median(all_scores)), max_peaks=100_000)
    assert len(above) == int(np.sum(all_scores >= np.median(all_scores)))
    assert pp.find_peaks(heat, max_peaks=0)[0].shape == (0, 2)


def test_peaks_tie_rule_keeps_the_first_pixel_of_a_plateau():
    heat = np.zeros((8, 9), np.float32)
    heat[2:5, 3:7] = 0.8  # a plateau: one peak, its first pixel in raster order
    heat[6, 1] = heat[6, 2] = 0.5  # two equal neighbours: the left one
    xy, scores, index = pp.find_peaks(heat, threshold=0.3, return_index=True)
    np.testing.assert_array_equal(index, [2 * 9 + 3, 6 * 9 + 1])
    np.testing.assert_array_equal(scores, np.float32([0.8, 0.5]))
    # a parabola through (-1, 0), (0, v), (1, v) peaks at +0.5: the shift points into the plateau
    np.testing.assert_array_equal(xy, np.float32([[3.5, 2.5], [1.5, 6]]))


def test_peaks_ignore_nan():
    heat = gaussian_heatmap((20, 20), [(9.3, 10.2)], 1.5)
    heat[10, 10] = np.nan
    heat[0, 0] = np.nan
    xy, scores = pp.find_peaks(heat, threshold=0.3)
    assert len(xy) >= 1 and np.all(np.isfinite(xy)) and np.all(np.isfinite(scores))


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.5])
def test_subpixel_error_on_gaussian_blobs_below_a_tenth_of_a_pixel(sigma):
    rng = np.random.default_rng(int(sigma * 10))
    grid = [(x, y) for x in range(12, 116, 16) for y in range(12, 116, 16)]
    centres = np.array(grid, np.float64) + rng.uniform(-0.5, 0.5, (len(grid), 2))
    heat = gaussian_heatmap((128, 128), centres, sigma)
    noisy = (heat + rng.normal(0, 0.01, heat.shape)).clip(1e-4, None).astype(np.float32)
    # Noise-free: exact up to float rounding. With 1 % noise the fit's sensitivity grows with
    # sigma^2, so the 0.1 px bound is checked at the widths a CenterNet heatmap of 2-4 px
    # electrodes has (sigma <= 1.5).
    cases = [(heat, 1e-3)] + ([(noisy, 0.1)] if sigma <= 1.5 else [])
    for image, tolerance in cases:
        xy, _ = pp.find_peaks(image, threshold=0.5, max_peaks=1000)
        assert len(xy) == len(centres)
        distance = np.linalg.norm(xy[:, None, :] - centres[None, :, :], axis=2).min(axis=1)
        assert distance.max() < tolerance, (sigma, distance.max())


# ---- thinning ------------------------------------------------------------------------------------


def test_thinning_tables_equal_skimage():
    table_1, table_2 = _native.thinning_tables()
    np.testing.assert_array_equal(np.array(table_1, bool), G123_LUT)
    np.testing.assert_array_equal(np.array(table_2, bool), G123P_LUT)


@pytest.mark.parametrize("seed", range(8))
def test_thin_equals_skimage_on_random_blobs(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 160)), int(rng.integers(20, 160)))
    mask = random_blobs(rng, shape, int(rng.integers(1, 8)))
    mask[0, :] |= rng.random(shape[1]) > 0.5  # foreground touching the border
    skeleton = pp.thin(mask)
    assert skeleton.dtype == np.uint8 and skeleton.shape == mask.shape
    np.testing.assert_array_equal(skeleton, skimage_thin(mask).astype(np.uint8))


@pytest.mark.parametrize("thickness", [2, 3, 5, 9])
def test_thin_equals_skimage_on_thick_curves(thickness):
    rng = np.random.default_rng(thickness)
    mask = np.zeros((200, 220), np.uint8)
    for _ in range(3):
        curve = smooth_curve(rng, mask.shape)
        cv2.polylines(mask, [np.round(curve).astype(np.int32)], False, 1, thickness)
    np.testing.assert_array_equal(pp.thin(mask), skimage_thin(mask).astype(np.uint8))


def test_thin_equals_skimage_on_the_angiogram_masks(angiogram_dir):
    paths = sorted(angiogram_dir.glob("*/*_gt.png"))
    assert len(paths) >= 80
    for path in paths:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 127
        np.testing.assert_array_equal(
            pp.thin(mask), skimage_thin(mask).astype(np.uint8), err_msg=str(path)
        )


def test_thin_accepts_any_numeric_mask_and_views():
    rng = np.random.default_rng(3)
    mask = random_blobs(rng, (60, 80), 4)
    expected = skimage_thin(mask).astype(np.uint8)
    for variant in (mask.astype(bool), mask.astype(np.float64) * 0.7, mask.astype(np.int32)):
        np.testing.assert_array_equal(pp.thin(variant), expected)
    wide = np.zeros((60, 160), np.uint8)
    wide[:, ::2] = mask  # a non-contiguous view
    np.testing.assert_array_equal(pp.thin(wide[:, ::2]), expected)
    np.testing.assert_array_equal(pp.thin(np.asfortranarray(mask)), expected)


# ---- centerlines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_centerline_of_a_drawn_curve_is_ordered_and_has_its_length(seed):
    rng = np.random.default_rng(seed)
    shape = (256, 256)
    curve = smooth_curve(rng, shape)
    mask = np.zeros(shape, np.uint8)
    cv2.polylines(mask, [np.round(curve * 16).astype(np.int32)], False, 1, 5, cv2.LINE_8, 4)
    lines = pp.trace_centerlines(pp.thin(mask), min_length=10)
    assert len(lines) == 1
    line = lines[0]
    assert line.dtype == np.float32 and line.shape[1] == 2
    # starts at the free end inside the image (the curve's tip), ends at the bottom edge
    assert np.linalg.norm(line[0] - curve[-1]) < 4.0
    assert np.linalg.norm(line[-1] - curve[0]) < 5.0
    # follows the curve, and its arc length matches within 3 % (the smoothing removes the staircase)
    dense = np.linspace(0, 1, 4000)
    fine = np.stack(
        [np.interp(dense, np.linspace(0, 1, len(curve)), curve[:, k]) for k in (0, 1)], 1
    )
    distance = np.linalg.norm(line[:, None, :] - fine[None, :, :], axis=2)
    off_curve = distance.min(axis=1)
    # Where the stroke is cut by the image border, thinning forks into a short "Y"; the trace
    # follows one arm for up to half the stroke width. Everywhere else it sits on the curve.
    assert np.mean(off_curve < 1.0) > 0.95 and off_curve.max() < 5 / 2 + 1.5
    assert abs(polyline_length(line) - polyline_length(curve)) < 0.03 * polyline_length(curve)
    # ordered: the nearest curve parameter grows along the polyline (tip -> entry)
    parameter = distance.argmin(axis=1)
    assert np.all(np.diff(parameter) <= 0) or np.mean(np.diff(parameter) <= 0) > 0.97


def test_centerline_t_junction_keeps_the_trunk_and_the_side_branch():
    mask = np.zeros((100, 120), np.uint8)
    mask[50, 10:110] = 1  # trunk, 100 px
    mask[20:50, 60] = 1  # a 30 px side arm ending on it: a device touching the trunk's side
    lines = pp.trace_centerlines(mask, min_length=10)
    assert len(lines) == 2
    side, trunk = lines  # raster order of the first point: (60, 49) before (10, 50)
    assert len(trunk) == 100 and np.all(trunk[:, 1] == 50)
    assert polyline_length(trunk) == pytest.approx(99.0)
    # the side branch runs from the junction out to its free end
    np.testing.assert_array_equal(side[:, 0], 60)
    np.testing.assert_array_equal(side[:, 1], np.arange(49, 19, -1))


def test_centerline_prunes_short_spurs():
    mask = np.zeros((100, 120), np.uint8)
    mask[50, 10:110] = 1
    mask[46:50, 60] = 1  # a 4 px spur
    lines = pp.trace_centerlines(mask, min_length=10)
    assert len(lines) == 1
    assert len(lines[0]) == 100 and np.all(lines[0][:, 1] == 50)


def test_centerlines_one_per_component_and_short_ones_dropped():
    mask = np.zeros((80, 80), np.uint8)
    mask[10, 5:60] = 1
    mask[40:75, 30] = 1
    mask[70, 70:74] = 1  # 4 px: below min_length
    lines = pp.trace_centerlines(mask, min_length=10)
    assert [len(line) for line in lines] == [55, 35]
    np.testing.assert_array_equal(
        lines[0][[0, -1]], [[59, 10], [5, 10]]
    )  # end farther from the border first


def draw_strokes(shape, curves, width):
    mask = np.zeros(shape, np.uint8)
    for curve in curves:
        cv2.polylines(mask, [np.round(curve * 16).astype(np.int32)], False, 1, width, cv2.LINE_8, 4)
    return mask


def resample(curve, n=2000):
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    at = np.linspace(0, arc[-1], n)
    return np.stack([np.interp(at, arc, curve[:, k]) for k in (0, 1)], axis=1)


def distances_to(points, curve):
    """Distance from each point to the nearest point of a densely resampled curve."""
    return np.linalg.norm(points[:, None, :] - resample(curve)[None, :, :], axis=2).min(axis=1)


def crossing_curves(rng, angle, shape=(160, 160)):
    """Two gently bent curves, 80-110 px long, crossing near the image centre at `angle` degrees."""
    h, w = shape
    t = np.linspace(-1, 1, 200)[:, None]
    while True:
        centre = rng.uniform(0.35, 0.65, 2) * [w, h]
        base = rng.uniform(0, np.pi)
        curves = []
        for heading in (base, base + np.deg2rad(angle)):
            along = np.array([np.cos(heading), np.sin(heading)])
            across = np.array([-along[1], along[0]])
            half_length, bend = rng.uniform(40, 55), rng.uniform(-6, 6)
            curves.append(centre + t * half_length * along + t**2 * bend * across)
        if all(((c >= 8) & (c <= [w - 9, h - 9])).all() for c in curves):
            return curves


def assert_follows(line, curve):
    """The polyline lies on the curve (end points: within the stroke's end cap) and covers it from
    end to end."""
    off = distances_to(line, curve)
    assert off[2:-2].max() < 2.0 and off.max() < 4.0, off.max()
    assert distances_to(resample(curve, 400), line).max() < 3.0


@pytest.mark.parametrize("angle", [30, 45, 60, 90])
@pytest.mark.parametrize("width", [3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_crossing_catheters_give_one_centerline_each(angle, width, seed):
    rng = np.random.default_rng(100 * angle + 10 * width + seed)
    curves = crossing_curves(rng, angle)
    lines = pp.trace_centerlines(pp.thin(draw_strokes((160, 160), curves, width)), min_length=10)
    assert len(lines) == 2
    # each polyline belongs to a different curve and follows it through the crossing
    owner = [int(np.argmin([distances_to(line, c).max() for c in curves])) for line in lines]
    assert sorted(owner) == [0, 1]
    for line, k in zip(lines, owner, strict=True):
        assert_follows(line, curves[k])


def test_crossing_catheters_entering_from_the_border_start_at_their_tips():
    shape = (256, 256)
    t = np.linspace(0, 1, 200)[:, None]
    # two devices entering at the bottom edge, crossing at ~50 degrees, tips inside the image
    first = np.array([60.0, 255.0]) + t * [150, -170] + np.sin(np.pi * t) * [0, -20]
    second = np.array([200.0, 255.0]) + t * [-130, -190] + np.sin(np.pi * t) * [-15, 0]
    lines = pp.trace_centerlines(pp.thin(draw_strokes(shape, [first, second], 5)), min_length=10)
    assert len(lines) == 2
    by_curve = sorted(lines, key=lambda line: distances_to(line, first).max())
    for line, curve in zip(by_curve, (first, second), strict=True):
        assert_follows(line, curve)
        assert np.linalg.norm(line[0] - curve[-1]) < 4.0  # the tip first
        assert line[-1][1] >= 252  # the end at the border last


def test_t_junction_of_drawn_catheters_gives_the_trunk_and_the_side_device():
    t = np.linspace(0, 1, 200)[:, None]
    trunk = np.array([20.0, 90.0]) + t * [160, 0] + np.sin(np.pi * t) * [0, -12]
    side = np.array([150.0, 10.0]) + t * [-45, 68]  # ends on the trunk at ~60 degrees
    lines = pp.trace_centerlines(pp.thin(draw_strokes((140, 200), [trunk, side], 5)), min_length=10)
    assert len(lines) == 2
    trunk_line, side_line = sorted(lines, key=len, reverse=True)
    assert_follows(trunk_line, trunk)
    # the side device runs from its free end to the junction, inside the trunk's stroke
    assert distances_to(side_line, side).max() < 2.0
    assert min(distances_to(side_line[[0, -1]], trunk)) < 5 / 2 + 1
    outside_trunk = resample(side, 400)
    outside_trunk = outside_trunk[distances_to(outside_trunk, trunk) > 5]
    assert distances_to(outside_trunk, side_line).max() < 3.0


def test_spur_on_a_drawn_catheter_is_pruned():
    t = np.linspace(0, 1, 200)[:, None]
    curve = np.array([20.0, 100.0]) + t * [150, -60]
    stub = np.array([[95.0, 70.0], [99.0, 64.0]])  # pokes ~4 px out of the 5 px stroke
    skeleton = pp.thin(draw_strokes((140, 200), [curve, stub], 5))
    lines = pp.trace_centerlines(skeleton, min_length=10)
    assert len(lines) == 1
    assert_follows(lines[0], curve)


def test_closed_loop_gives_one_centerline_around_it():
    mask = np.zeros((120, 120), np.uint8)
    cv2.circle(mask, (60, 55), 35, 1, 4)
    lines = pp.trace_centerlines(pp.thin(mask), min_length=10)
    assert len(lines) == 1
    ring = lines[0]
    circumference = 2 * np.pi * 35
    closing = np.linalg.norm(ring[-1] - ring[0])
    assert closing <= np.sqrt(2) + 1e-6  # all the way round
    assert polyline_length(ring) + closing == pytest.approx(circumference, rel=0.03)
    assert np.abs(np.linalg.norm(ring - [60, 55], axis=1) - 35).max() < 1.5


def test_catheter_crossing_itself_gives_one_centerline_through_its_loop():
    # a nodal cubic: a tail, a loop crossing itself at ~70 degrees, another tail
    t = np.linspace(-1.45, 1.5, 600)
    curve = np.stack([70 + 50 * (t**2 - 1), 100 + 35 * t * (t**2 - 1)], axis=1)
    lines = pp.trace_centerlines(pp.thin(draw_strokes((200, 200), [curve], 3)), min_length=10)
    assert len(lines) == 1
    assert_follows(lines[0], curve)
    assert polyline_length(lines[0]) == pytest.approx(polyline_length(curve), rel=0.03)


def test_centerlines_are_deterministic_and_in_raster_order_of_their_first_point():
    rng = np.random.default_rng(5)
    curves = crossing_curves(rng, 50) + [c + [170, 0] for c in crossing_curves(rng, 80)]
    skeleton = pp.thin(draw_strokes((160, 330), curves, 4))
    lines = pp.trace_centerlines(skeleton, min_length=10)
    assert len(lines) == 4
    starts = np.array([line[0] for line in lines]).astype(int)  # end points are skeleton pixels
    assert np.all(skeleton[starts[:, 1], starts[:, 0]] == 1)
    assert np.all(np.diff(starts[:, 1] * 330 + starts[:, 0]) > 0)
    again = pp.trace_centerlines(skeleton.copy(), min_length=10)
    assert len(again) == len(lines)
    for first, second in zip(lines, again, strict=True):
        np.testing.assert_array_equal(first, second)


# ---- electrode assignment and catheter type ---------------------------------------------------


def electrodes_along(curve, arc_positions):
    """Points at the given arc lengths along a polyline."""
    segment = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    cumulative = np.concatenate([[0], np.cumsum(segment)])
    return np.stack([np.interp(arc_positions, cumulative, curve[:, k]) for k in (0, 1)], axis=1)


def test_assign_electrodes_orders_them_along_their_centerline():
    rng = np.random.default_rng(11)
    first = smooth_curve(rng, (200, 200))[::-1].astype(np.float32)  # tip first
    second = np.stack([np.linspace(10, 190, 50), np.full(50, 15.0)], 1).astype(np.float32)
    on_first = electrodes_along(first, np.array([5.0, 12.0, 30.0, 41.0]))
    on_second = electrodes_along(second, np.array([100.0, 20.0]))
    xy = np.concatenate([on_first[[2, 0, 3, 1]], on_second, [[150.0, 150.0]]]).astype(np.float32)
    xy[:-1] += rng.normal(0, 0.5, (len(xy) - 1, 2)).astype(np.float32)
    groups = pp.assign_electrodes([first, second], xy, max_distance=3.0)
    np.testing.assert_array_equal(groups[0], [1, 3, 0, 2])
    np.testing.assert_array_equal(groups[1], [5, 4])  # the far point (index 6) is in none


@pytest.mark.parametrize(
    "variant", [v for v in CATALOGUE if v.n_electrodes >= 2], ids=lambda v: f"{v.type}/{v.name}"
)
def test_classify_catheter_names_every_catalogue_type_under_noise(variant):
    rng = np.random.default_rng(abs(hash(variant.name)) % 2**32)
    trials, correct = 40, 0
    for _ in range(trials):
        px_per_mm = rng.uniform(2.0, 4.0)
        curve = smooth_curve(rng, (512, 512))[::-1]
        if variant.loop_diameter_mm:  # a foreshortened ring
            radius = rng.uniform(*variant.loop_diameter_mm) / 2 * px_per_mm
            angle = np.linspace(0, 1.9 * np.pi, 400)
            curve = np.stack([256 + radius * np.cos(angle), 256 + 0.7 * radius * np.sin(angle)], 1)
        arc = np.array(variant.electrode_centres_mm) * px_per_mm
        xy = electrodes_along(curve, arc) + rng.normal(0, 0.15, (len(arc), 2))
        found, score = pp.classify_catheter(xy.astype(np.float32))
        correct += found == variant.type
        assert 0.0 <= score <= 1.0
    assert correct / trials >= 0.9, (variant.type, variant.name, correct)


def test_classify_catheter_degenerate_inputs():
    assert pp.classify_catheter(np.zeros((0, 2), np.float32)) == ("unknown", 0.0)
    assert pp.classify_catheter(np.array([[3.0, 4.0]])) == ("unknown", 0.0)
    assert pp.classify_catheter(np.ones((3, 2))) == ("unknown", 0.0)
    found, score = pp.classify_catheter(np.array([[0.0, 0.0], [0.0, 12.0]]))
    assert found == "pacing_lead" and found in CATHETER_TYPES
    # Two electrodes fit every device: the pacing lead wins on coverage but must not claim
    # certainty. Its share of the types' best fits: 1 / sum(2 / n of the shortest template of
    # each type).
    shortest = {}
    for variant in CATALOGUE:
        if variant.n_electrodes < 2:
            continue  # no spacing template: the matcher never predicts types without electrodes
        count = len(variant.electrode_centres_mm)
        shortest[variant.type] = min(shortest.get(variant.type, count), count)
    expected = 1.0 / sum(2.0 / count for count in shortest.values())
    assert score == pytest.approx(expected, rel=1e-5) and score < 0.5


def test_classify_catheter_is_confident_only_where_one_type_fits():
    decapolar = next(v for v in CATALOGUE if v.type == "cs_decapolar")
    arc = np.asarray(decapolar.electrode_centres_mm, np.float32) * 3.0
    xy = np.stack([np.zeros_like(arc), arc], axis=1)
    assert pp.classify_catheter(xy) == ("cs_decapolar", pytest.approx(1.0, abs=0.1))
    found, score = pp.classify_catheter(xy[:3])  # three electrodes of ten: many devices fit
    assert score < 0.5, (found, score)


# ---- bad inputs, threads, build info ------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda bad: pp.find_peaks(bad),
        lambda bad: pp.thin(bad),
        lambda bad: pp.trace_centerlines(bad),
    ],
    ids=["find_peaks", "thin", "trace_centerlines"],
)
def test_bad_images_raise_clear_errors(call):
    with pytest.raises(ValueError, match="2-D"):
        call(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        call(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="empty"):
        call(np.zeros((0, 7), np.float32))
    with pytest.raises(TypeError):
        call(np.array([["a", "b"]]))
    with pytest.raises(TypeError):
        call(np.zeros((3, 3), np.complex64))
    with pytest.raises(TypeError):
        call(None)


def test_bad_points_and_arguments():
    line = np.array([[0, 0], [10, 0]], np.float32)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        pp.assign_electrodes([line], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        pp.assign_electrodes([line], np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"centerlines\[0\]"):
        pp.assign_electrodes([np.zeros(4)], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="tolerance"):
        pp.classify_catheter(np.zeros((3, 2)), tolerance=0)
    with pytest.raises(ValueError, match="device"):
        pp.thin(np.ones((3, 3)), device="gpu")


def test_torch_cpu_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    heat = gaussian_heatmap((32, 32), [(10.2, 20.7)], 1.5)
    xy_numpy, _ = pp.find_peaks(heat)
    xy_torch, _ = pp.find_peaks(torch.from_numpy(heat).requires_grad_(False))
    np.testing.assert_array_equal(xy_numpy, xy_torch)


def test_native_calls_release_the_gil():
    mask = np.zeros((1500, 1500), np.uint8)
    cv2.circle(mask, (750, 750), 700, 1, -1)  # thinning a big disc takes a while
    ticks = 0
    worker = threading.Thread(target=pp.thin, args=(mask,))
    worker.start()
    while worker.is_alive():
        ticks += 1  # only runs while the native call does not hold the GIL
    worker.join()
    assert ticks > 10_000


def test_concurrent_calls_give_the_same_results():
    rng = np.random.default_rng(5)
    masks = [random_blobs(rng, (120, 120), 5) for _ in range(8)]
    expected = [pp.thin(m) for m in masks]
    results = [None] * len(masks)

    def work(i):
        results[i] = pp.thin(masks[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(masks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_build_info_reports_the_build():
    import torch

    info = cathtrack.build_info()
    assert info["torch_version"] == torch.__version__.split("+")[0]
    assert info["compiler"] and info["cxx_standard"] >= 201703
    assert isinstance(info["cuda_kernels"], bool)
    assert info["cuda_available"] == (info["cuda_kernels"] and torch.cuda.is_available())
    if not info["cuda_kernels"]:
        with pytest.raises(RuntimeError, match="CUDA"):
            pp.thin(np.ones((3, 3)), device="cuda")
    else:  # the kernels take CUDA tensors only
        with pytest.raises(TypeError, match="CUDA torch tensor"):
            pp.thin(np.ones((3, 3)), device="cuda")
        with pytest.raises(TypeError, match="CUDA torch tensor"):
            pp.find_peaks(torch.ones(3, 3), device="cuda")


# ---- CUDA kernels: bit-for-bit equal to the CPU core --------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("seed", range(6))
def test_cuda_peaks_equal_cpu_bit_for_bit(seed):
    import torch

    rng = np.random.default_rng(seed)
    shape = [(1, 1), (7, 300), (256, 256), (1024, 768), (33, 65), (512, 512)][seed]
    heat = ndi.gaussian_filter(rng.random(shape), 1.0).astype(np.float32)
    heat = np.round(heat * 64) / 64  # plenty of ties to exercise the tie rule
    heat[rng.random(shape) < 0.01] = np.nan
    cpu = pp.find_peaks(heat, threshold=0.3, max_peaks=500, return_index=True)
    gpu = pp.find_peaks(torch.from_numpy(heat).cuda(), 0.3, 500, device="cuda", return_index=True)
    for a, b in zip(cpu, gpu, strict=True):
        np.testing.assert_array_equal(a, b.cpu().numpy())


@pytest.mark.cuda
def test_cuda_thin_equals_cpu_bit_for_bit(angiogram_dir):
    import torch

    rng = np.random.default_rng(0)
    masks = [
        random_blobs(rng, (int(rng.integers(1, 300)), int(rng.integers(1, 300))), 6)
        for _ in range(10)
    ]
    masks += [
        cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127
        for p in sorted(angiogram_dir.glob("*/*_gt.png"))[:20]
    ]
    masks.append(np.ones((1024, 1024), np.uint8))
    for mask in masks:
        expected = pp.thin(mask)
        got = pp.thin(torch.from_numpy(np.ascontiguousarray(mask, np.uint8)).cuda(), device="cuda")
        np.testing.assert_array_equal(got.cpu().numpy(), expected)
