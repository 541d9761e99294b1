"""`cathtrack predict --coco`: predictions as COCO pre-annotations, read back by pycocotools and
by cathtrack's own COCO reader, in both styles (CVAT, Label Studio)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from cathtrack.data.readers import open_reader
from cathtrack.preannotations import MIN_BOX, PreannotationWriter
from cathtrack.tracker import Catheter, Result

SIZE = 128


def _result(seed: int) -> Result:
    """Two thin curved catheters (2-4 px wide) with electrodes along them, one of unknown
    type, a mask speck near neither, and one electrode on no catheter."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    catheters, electrodes = [], []
    for k, (width, kind) in enumerate(((3, "cs_decapolar"), (2, "unknown"))):
        t = np.linspace(0, 1, 40)
        x = 15 + 95 * t
        y = 25 + 60 * k + 12 * np.sin(3 * t + rng.uniform(0, 2))
        line = np.stack([x, y], 1).astype(np.float32)
        cv2.polylines(mask, [np.round(line).astype(np.int32)], False, 255, width)
        first = len(electrodes)
        electrodes += [line[i] for i in (2, 8, 14)]
        catheters.append(
            Catheter(
                id=k, type=kind, type_score=0.7 if kind != "unknown" else 0.0, centerline=line,
                electrodes=np.arange(first, first + 3), tip=tuple(map(float, line[0])),
                tip_direction=(-1.0, 0.0),
            )
        )  # fmt: skip
    electrodes.append(np.float32([120.25, 120.5]))
    mask[5:8, 118:121] = 255  # a speck: a part of no catheter's own, goes to the nearest
    n = len(electrodes)
    return Result(
        mask=mask, electrodes=np.asarray(electrodes, np.float32),
        scores=np.linspace(0.9, 0.4, n).astype(np.float32),
        sizes=np.tile(np.float32([[3.0, 2.5]]), (n, 1)), catheters=catheters,
    )  # fmt: skip


@pytest.fixture(params=["cvat", "label-studio"])
def written(request, tmp_path):
    """Two frames written as images/ + a pre-annotation file; (style, path, results)."""
    results = [_result(0), _result(1)]
    writer = PreannotationWriter(request.param)
    (tmp_path / "images").mkdir()
    for k, result in enumerate(results):
        cv2.imwrite(str(tmp_path / "images" / f"f{k}.png"), result.mask // 2)
        writer.add(f"f{k}.png", result)
    return request.param, writer.write(tmp_path / "pre.json"), results


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_pycocotools_reads_back_masks_and_electrodes(written):
    style, path, results = written
    coco = COCO(str(path))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(names.values()) == ["catheter", "electrode"]
    for image_id, result in zip(sorted(coco.getImgIds()), results, strict=True):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        catheters = [a for a in anns if names[a["category_id"]] == "catheter"]
        electrodes = [a for a in anns if names[a["category_id"]] == "electrode"]
        union = np.zeros((SIZE, SIZE), bool)
        for ann in catheters:
            part = coco.annToMask(ann).astype(bool)
            assert not (union & part).any()  # the catheters' masks do not overlap
            union |= part
        if style == "cvat":  # RLE: exact
            np.testing.assert_array_equal(union, result.binary)
            assert all(a["iscrowd"] == 1 for a in catheters)
        else:  # polygons at twice the resolution, specks under 4 px left out
            assert _iou(union, result.binary) > 0.9
            assert all(a["iscrowd"] == 0 and isinstance(a["segmentation"], list)
                       for a in catheters)  # fmt: skip
        # keypoints in COCO's pixel-corner coordinates: pixel centres at +0.5
        centres = np.float32([a["keypoints"][:2] for a in electrodes])
        np.testing.assert_allclose(centres, result.electrodes + 0.5, atol=1e-3)
        assert [a["score"] for a in electrodes] == pytest.approx(result.scores, abs=1e-4)
        if style == "cvat":  # rectangles centred on the electrodes, at least MIN_BOX wide
            for ann, (x, y) in zip(electrodes, result.electrodes + 0.5, strict=True):
                bx, by, bw, bh = ann["bbox"]
                assert ann["segmentation"] == [] and min(bw, bh) >= MIN_BOX
                assert (bx + bw / 2, by + bh / 2) == pytest.approx((x, y), abs=2e-3)
        else:  # keypoints only: a bbox or segmentation would add a shape in Label Studio
            assert all("bbox" not in a and "segmentation" not in a for a in electrodes)


def test_cathtrack_reads_back_what_it_predicted(written):
    style, path, results = written
    reader = open_reader(path)
    assert len(reader) == len(results)
    for index, result in enumerate(results):
        sample = reader[index]
        assert sample.available["segmentation"] and sample.available["detection"]
        if style == "cvat":
            np.testing.assert_array_equal(sample.mask.astype(bool), result.binary)
        else:
            assert _iou(sample.mask.astype(bool), result.binary) > 0.9
        np.testing.assert_allclose(sample.electrodes, result.electrodes, atol=1e-3)
        assert sample.catheters[0].type == "cs_decapolar"
        np.testing.assert_allclose(sample.catheters[0].centerline,
                                   result.catheters[0].centerline, atol=1e-3)  # fmt: skip
        if style == "cvat":
            # electrodes keep their catheter (its annotation id) and their place from the tip
            # (the reader takes catheter_id and index from electrodes given with a box)
            first_catheter = sample.catheters[0].id
            assert list(sample.electrode_catheter[:3]) == [first_catheter] * 3
            assert list(sample.electrode_index) == [0, 1, 2, 0, 1, 2, -1]
            assert sample.electrode_catheter[-1] == -1  # the stray electrode is on no catheter


def test_a_frame_without_detections_is_an_empty_image_entry(tmp_path):
    empty = Result(
        mask=np.zeros((32, 48), np.uint8), electrodes=np.zeros((0, 2), np.float32),
        scores=np.zeros(0, np.float32), sizes=np.zeros((0, 2), np.float32),
    )  # fmt: skip
    writer = PreannotationWriter("cvat")
    writer.add("empty.png", empty)
    document = json.loads(writer.write(tmp_path / "pre.json").read_text())
    assert document["images"] == [{"id": 1, "file_name": "empty.png", "width": 48, "height": 32}]
    assert document["annotations"] == []


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="style"):
        PreannotationWriter("labelme")
