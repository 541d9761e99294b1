"""Result.plot / save / to_json and the overlay they draw: one palette colour per catheter,
electrode rings and text sized with the image, tags and legend inside it and apart."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import cathtrack
from cathtrack.tracker import Catheter, Result
from cathtrack.viz import DARK, GREY, PALETTE, WHITE, Sizes, draw_overlay, place_labels

CORPUS = Path(__file__).resolve().parent / "data" / "malformed"


def _catheter(index: int, line, electrodes, type_="cs_decapolar", track_id=-1) -> Catheter:
    line = np.asarray(line, np.float32)
    return Catheter(
        id=index, type=type_, type_score=0.81, centerline=line,
        electrodes=np.asarray(electrodes, np.int64), tip=tuple(map(float, line[0])),
        tip_direction=(1.0, 0.0), track_id=track_id,
    )  # fmt: skip


def _result(side: int, frame: np.ndarray | None = None) -> Result:
    """Two horizontal catheters (an ablation above, an unknown one below) with two electrodes
    each and one stray electrode; coordinates scale with ``side``."""
    f = side / 256.0
    mask = np.zeros((side, side), np.uint8)
    mask[round(60 * f) : round(66 * f), round(40 * f) : round(200 * f)] = 255
    mask[round(160 * f) : round(166 * f), round(40 * f) : round(200 * f)] = 255
    electrodes = np.float32([[60, 63], [80, 63], [60, 163], [80, 163], [230, 230]]) * f
    catheters = [
        _catheter(0, np.float32([[45, 63], [195, 63]]) * f, [0, 1], "ablation"),
        _catheter(1, np.float32([[45, 163], [195, 163]]) * f, [2, 3], "unknown"),
    ]
    return Result(
        mask=mask, electrodes=electrodes, scores=np.full(5, 0.9, np.float32),
        sizes=np.full((5, 2), 3 * f, np.float32), catheters=catheters, frame=frame,
    )  # fmt: skip


def _near(image: np.ndarray, x: float, y: float, colour, reach: int) -> bool:
    """Whether a pixel of exactly ``colour`` lies within ``reach`` px of (x, y)."""
    x, y = round(x), round(y)
    window = image[max(0, y - reach) : y + reach + 1, max(0, x - reach) : x + reach + 1]
    return bool(np.all(window == np.uint8(colour), axis=-1).any())


@pytest.mark.parametrize("side", [256, 1024])
def test_each_catheter_and_its_electrodes_take_its_colour(side):
    frame = np.full((side, side), 128, np.uint8)
    result = _result(side, frame)
    overlay = result.plot()
    assert overlay.shape == (side, side, 3) and overlay.dtype == np.uint8
    np.testing.assert_array_equal(overlay, cathtrack.draw(frame, result))
    ring = Sizes.for_side(side).ring_radius
    first, unknown = PALETTE[0], GREY
    for k, (x, y) in enumerate(result.electrodes):
        expected = first if k < 2 else unknown if k < 4 else WHITE  # the stray one is white
        points = [(x + dx, y + dy) for dx, dy in ((ring, 0), (-ring, 0), (0, ring), (0, -ring))]
        assert all(_near(overlay, px, py, expected, 1) for px, py in points), (k, expected)
    # the mask is tinted in the colour of the nearest catheter: orange raises red over blue
    rows, cols = np.nonzero(result.binary)
    top = rows < side // 2
    tint = overlay[rows, cols].astype(int) - 128
    assert np.median(tint[top][:, 2] - tint[top][:, 0]) > 20
    assert np.abs(np.median(tint[~top][:, 2] - tint[~top][:, 0])) < 5  # grey adds no hue


def test_marks_and_text_scale_with_the_image():
    small, large = Sizes.for_side(256), Sizes.for_side(1024)
    assert large.ring_radius >= 2 * small.ring_radius
    small_height = small.text_box("12 ablation 0.81")[1]
    large_height = large.text_box("12 ablation 0.81")[1]
    assert small_height >= 8  # readable at 256 px
    assert large_height >= 2 * small_height - 2


def test_legend_names_coloured_catheters_and_groups_the_grey_ones():
    side = 512
    result = _result(side, np.zeros((side, side), np.uint8))
    with_legend = result.plot()
    without = cathtrack.draw(result.frame, result, legend=False)
    changed = np.any(with_legend != without, axis=-1)
    rows, cols = np.nonzero(changed)
    # the legend is a compact block in one corner, with a swatch of each colour it names
    assert rows.max() - rows.min() < side // 4 and cols.max() - cols.min() < side // 2
    block = with_legend[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    for colour in (PALETTE[0], GREY):
        assert np.all(block == np.uint8(colour), axis=-1).sum() >= 16


def test_tags_stay_inside_the_image_and_apart():
    canvas = (256, 256)
    # tips in three corners, on an edge, and crowded in the middle; the legend top left
    anchors = [(255, 255), (255, 0), (0, 255), (0, 128)] + [(128, 128)] * 6 + [(250, 128)] * 3
    sizes = [(24, 14)] * len(anchors)
    boxes = place_labels(anchors, sizes, canvas, blocked=[(0, 0, 60, 40)], gap=4)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256
    for i, a in enumerate(boxes):
        assert min(a[2], 60) <= max(a[0], 0) or min(a[3], 40) <= max(a[1], 0)  # not on legend
        for b in boxes[i + 1 :]:
            apart_x = a[2] <= b[0] or b[2] <= a[0]
            apart_y = a[3] <= b[1] or b[3] <= a[1]
            assert apart_x or apart_y, (a, b)


def test_a_tag_at_the_corner_is_drawn_inside_the_frame():
    side = 256
    image = np.full((side, side), 200, np.uint8)
    lines = [np.float32([[side - 1, side - 1], [side - 40, side - 40]])]
    overlay = draw_overlay(image, None, None, lines, ["ablation 0.90"], legend=False)
    plate = np.all(overlay == np.uint8(DARK), axis=-1)
    rows, cols = np.nonzero(plate[side - 40 :, side - 40 :])
    assert len(rows) > 30  # the tag's plate is there, pushed in from the corner


def test_temporal_results_are_tagged_and_coloured_by_track():
    side = 256
    frame = np.zeros((side, side), np.uint8)
    result = _result(side, frame)
    catheters = [
        _catheter(0, result.catheters[0].centerline, [0, 1], "ablation", track_id=5),
        _catheter(1, result.catheters[1].centerline, [2, 3], "ablation", track_id=-1),
    ]
    tracked = Result(
        mask=result.mask, electrodes=result.electrodes, scores=result.scores,
        sizes=result.sizes, catheters=catheters, frame=frame,
        electrode_track_ids=np.int64([1, 2, -1, -1, -1]),
    )  # fmt: skip
    overlay = tracked.plot()
    x, y = tracked.electrodes[0] + [Sizes.for_side(side).ring_radius, 0]
    assert _near(overlay, x, y, PALETTE[5 % len(PALETTE)], 1)  # track 5's own colour
    x, y = tracked.electrodes[2] + [Sizes.for_side(side).ring_radius, 0]
    assert _near(overlay, x, y, GREY, 1)  # not confirmed yet


def test_plot_needs_a_frame_of_the_right_size():
    result = _result(256)
    with pytest.raises(ValueError, match="keeps no frame"):
        result.plot()
    with pytest.raises(ValueError, match="128x128"):
        result.plot(np.zeros((128, 128), np.uint8))
    assert result.plot(np.zeros((256, 256), np.uint8), scale=2).shape == (512, 512, 3)


def test_save_writes_what_plot_draws(tmp_path):
    frame = np.random.default_rng(0).integers(0, 255, (256, 256), dtype=np.uint8)
    result = _result(256, frame)
    path = result.save(tmp_path / "overlay.png")
    np.testing.assert_array_equal(cv2.imread(str(path)), result.plot())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.png"]  # no temporary left
    with pytest.raises(ValueError, match="suffix"):
        result.save(tmp_path / "overlay.nope")


def test_to_json_is_to_dict_as_json_and_keeps_no_frame():
    frame = np.zeros((256, 256), np.uint8)
    result = _result(256, frame)
    assert json.loads(result.to_json()) == json.loads(json.dumps(result.to_dict()))
    with_mask = json.loads(result.to_json(include_mask=True, indent=1))
    assert with_mask["mask"]["size"] == [256, 256]
    assert "frame" not in with_mask


@pytest.fixture(scope="module")
def tiny_ts(tmp_path_factory) -> Path:
    from cathtrack.export import export_model

    path = tmp_path_factory.mktemp("tiny") / "tiny.ts"
    export_model(CORPUS / "models" / "tiny.safetensors", path, "ts")
    return path


def test_a_tracker_result_keeps_its_frame_for_plot(tiny_ts):
    tracker = cathtrack.Tracker(tiny_ts, device="cpu", threads=1)
    frame = np.random.default_rng(1).integers(0, 255, (96, 80, 3), dtype=np.uint8)
    result = tracker(frame)
    assert result.frame is frame  # the caller's array, colour and all
    np.testing.assert_array_equal(result.plot(), cathtrack.draw(frame, result))
