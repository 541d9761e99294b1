"""COCO writer / reader: round trip, pycocotools compatibility, foreign exports."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cathtrack.data.coco import CocoReader, write_coco
from cathtrack.data.synth import preset, render, render_sequence


@pytest.fixture(scope="module")
def samples():
    config = preset("hard", size=128)
    return [render(config, seed) for seed in range(4)] + render_sequence(config, 99, 3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, samples):
    root = tmp_path_factory.mktemp("coco")
    sequences = [{"name": "beat", "fps": 15.0, "frames": [4, 5, 6]}]
    return write_coco(root, samples, bits=16, sequences=sequences)


def test_round_trip_equals_samples(dataset, samples):
    reader = CocoReader(dataset)
    assert len(reader) == len(samples)
    for original in samples:
        assert original.mask.any() and len(original.electrodes) > 0
    for k, original in enumerate(samples):
        read = reader[k]
        assert read.name == original.name
        np.testing.assert_array_equal(read.mask, original.mask)
        np.testing.assert_allclose(read.image, original.image, atol=1 / 65535)
        np.testing.assert_allclose(read.electrodes, original.electrodes, atol=1e-3)
        np.testing.assert_allclose(read.boxes, original.boxes, atol=1e-3)
        np.testing.assert_array_equal(read.electrode_index, original.electrode_index)
        assert read.available == original.available
        assert read.pixel_spacing_mm == pytest.approx(original.pixel_spacing_mm)
        # Only target devices are stored; ids become COCO annotation ids.
        targets = [c for c in original.catheters if c.target]
        assert [c.type for c in read.catheters] == [c.type for c in targets]
        id_map = {old.id: new.id for old, new in zip(targets, read.catheters, strict=True)}
        for old, new in zip(targets, read.catheters, strict=True):
            np.testing.assert_allclose(new.centerline, old.centerline, atol=1e-3)
        expected_owner = [id_map[i] for i in original.electrode_catheter]
        np.testing.assert_array_equal(read.electrode_catheter, expected_owner)
    assert reader.sequences == [[4, 5, 6]]
    assert reader.sequence_fps == [15.0]


def test_eight_bit_images(tmp_path, samples):
    reader = CocoReader(write_coco(tmp_path, samples[:1], bits=8))
    assert (
        cv2.imread(str(tmp_path / "images" / f"{samples[0].name}.png"), cv2.IMREAD_UNCHANGED).dtype
        == np.uint8
    )
    np.testing.assert_allclose(reader[0].image, samples[0].image, atol=0.5 / 255 + 1e-6)


def test_pycocotools_evaluates_ground_truth_against_itself(dataset):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(dataset / "annotations.json"))
        for category, iou_type in ((2, "bbox"), (1, "segm")):
            results = [
                {"image_id": a["image_id"], "category_id": category, "score": 1.0,
                 **({"bbox": a["bbox"]} if iou_type == "bbox" else {"segmentation": a["segmentation"]})}
                for a in gt.loadAnns(gt.getAnnIds(catIds=[category]))
            ]  # fmt: skip
            evaluation = COCOeval(gt, gt.loadRes(results), iou_type)
            evaluation.params.catIds = [category]
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            assert evaluation.stats[0] == pytest.approx(1.0), iou_type


def test_written_json_follows_the_contract(dataset):
    data = json.loads((dataset / "annotations.json").read_text())
    assert {c["id"]: c["name"] for c in data["categories"]} == {1: "catheter", 2: "electrode"}
    catheter_ids = {a["id"] for a in data["annotations"] if a["category_id"] == 1}
    for ann in data["annotations"]:
        assert ann["iscrowd"] == 0
        if ann["category_id"] == 1:
            assert isinstance(ann["segmentation"]["counts"], str)
            assert ann["attributes"]["target"] is True
            assert ann["area"] == mask_utils.area(ann["segmentation"])
        else:
            assert ann["num_keypoints"] == 1 and ann["keypoints"][2] == 2
            assert ann["catheter_id"] in catheter_ids
    assert all(image["annotated"] == ["segmentation", "detection"] for image in data["images"])
    sequences = json.loads((dataset / "sequences.json").read_text())["sequences"]
    assert sequences[0]["fps"] == 15.0 and len(sequences[0]["image_ids"]) == 3


def _foreign_dataset(root, annotations, categories, image_entry_extra=None, image=None):
    (root / "images").mkdir(parents=True)
    if image is None:
        image = np.zeros((40, 50, 3), np.uint8)
        image[..., 1] = 200  # RGB export
    cv2.imwrite(str(root / "images" / "a.png"), image)
    entry = {
        "id": 7,
        "file_name": "images/a.png",
        "width": 50,
        "height": 40,
        **(image_entry_extra or {}),
    }
    data = {"images": [entry], "annotations": annotations, "categories": categories}
    (root / "export.json").write_text(json.dumps(data))
    return CocoReader(root, annotations="export.json")


def test_reads_cvat_polygons_and_bbox_only_electrodes(tmp_path):
    categories = [
        {"id": 5, "name": "Electrodes"},
        {"id": 9, "name": "CATHETER"},
        {"id": 3, "name": "ruler"},
    ]
    annotations = [
        {"id": 1, "image_id": 7, "category_id": 9, "iscrowd": 0, "bbox": [10, 10, 20, 4], "area": 80,
         "segmentation": [[10, 10, 30, 10, 30, 14, 10, 14]], "attributes": {"type": "ablation"}},
        {"id": 2, "image_id": 7, "category_id": 5, "bbox": [20, 8, 4, 6], "area": 24, "iscrowd": 0},
        {"id": 3, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0},
    ]  # fmt: skip
    with pytest.warns(UserWarning, match="1 annotations of category 'ruler'"):
        reader = _foreign_dataset(tmp_path, annotations, categories)
    sample = reader[0]
    assert sample.image.shape == (40, 50) and sample.image.dtype == np.float32
    assert sample.available == {"segmentation": True, "detection": True}  # inferred
    assert sample.mask[12, 20] == 1 and sample.mask[20, 20] == 0
    assert 60 <= sample.mask.sum() <= 110
    # COCO's pixel corners -> cathtrack's pixel centres: 0.5 px up and left
    np.testing.assert_allclose(sample.electrodes, [[21.5, 10.5]])
    np.testing.assert_allclose(sample.boxes, [[19.5, 7.5, 4, 6]])
    assert sample.electrode_catheter.tolist() == [-1] and sample.electrode_index.tolist() == [-1]
    assert [(c.id, c.type, c.target) for c in sample.catheters] == [(1, "ablation", True)]


def test_reads_label_studio_keypoints_uncompressed_rle_and_16_bit(tmp_path):
    mask = np.zeros((40, 50), np.uint8)
    mask[5:9, 3:40] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    # Uncompressed RLE: counts as a list of run lengths in column-major order.
    flat = mask.flatten(order="F")
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    categories = [{"id": 1, "name": "catheter"}, {"id": 2, "name": "electrode"}]
    annotations = [
        {"id": 10, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": list(mask_utils.toBbox(rle)),
         "area": int(mask.sum()), "segmentation": {"size": [40, 50], "counts": runs},
         "attributes": {"type": "cs_decapolar", "target": "false"}},
        {"id": 11, "image_id": 7, "category_id": 2, "iscrowd": 0, "keypoints": [12.5, 6.5, 2],
         "num_keypoints": 1, "area": 0},
    ]  # fmt: skip
    image16 = np.full((40, 50), 65535, np.uint16)
    sample = _foreign_dataset(
        tmp_path, annotations, categories, {"annotated": ["detection"]}, image16
    )[0]
    assert sample.image.max() == pytest.approx(1.0)
    assert sample.available == {"segmentation": False, "detection": True}
    assert sample.mask is None  # segmentation not labelled for this image: unknown, not empty
    np.testing.assert_allclose(sample.electrodes, [[12.0, 6.0]])
    assert sample.catheters[0].target is False


def test_non_target_instances_never_enter_the_mask(tmp_path):
    mask = np.zeros((40, 50), np.uint8)
    mask[5:9, 3:40] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode()
    categories = [{"id": 1, "name": "catheter"}]
    annotations = [
        {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [3, 5, 37, 4], "area": 148,
         "segmentation": rle, "attributes": {"type": "unknown", "target": False}},
    ]  # fmt: skip
    sample = _foreign_dataset(tmp_path, annotations, categories)[0]
    assert sample.available["segmentation"] and sample.mask.sum() == 0
