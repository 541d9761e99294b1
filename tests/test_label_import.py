"""Label import (cathtrack.data.labels): CVAT and Label Studio COCO exports as the tools write
them (tests/data/labels), category names, every geometry, and nothing dropped without a count.

Independent references: pycocotools decoding the raw export files, run lengths computed with
numpy, box centres worked out by hand from the JSON (pixel-corner -> pixel-centre: -0.5 px).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from cathtrack.data.coco import CocoReader, write_coco
from cathtrack.data.labels import (
    CATHETER,
    ELECTRODE,
    category_role,
    catheter_type,
    import_labels,
    rle_counts,
)
from cathtrack.data.sample import CatheterLabel, Sample

LABELS = Path(__file__).resolve().parent / "data" / "labels"


def raw_masks(path: Path, height: int = 40, width: int = 48) -> dict[int, np.ndarray]:
    """pycocotools' own decoding of every segmentation in an export file, by annotation id (the
    fixture frames are all 48 x 40)."""
    masks = {}
    for ann in json.loads(path.read_text())["annotations"]:
        if ann.get("segmentation"):
            rles = mask_utils.frPyObjects(ann["segmentation"], height, width)
            masks[ann["id"]] = mask_utils.decode(
                mask_utils.merge(rles) if isinstance(rles, list) else rles
            )
    return masks


@pytest.mark.parametrize(
    ("name", "role", "kind"),
    [
        ("catheter", CATHETER, None),
        ("Catheters", CATHETER, None),
        ("catheter shaft", CATHETER, None),
        ("Catheter_Shaft", CATHETER, None),
        ("long-sheath", CATHETER, "long_sheath"),
        ("CS decapolar", CATHETER, "cs_decapolar"),
        ("ablation catheter", CATHETER, "ablation"),
        ("Guiding catheter", CATHETER, "guiding_catheter"),
        ("pacing leads", CATHETER, "pacing_lead"),
        ("quadripolar", CATHETER, "quadripolar"),
        ("electrode", ELECTRODE, None),
        ("Electrodes", ELECTRODE, None),
        ("ring electrode", ELECTRODE, None),
        ("Tip_Electrode", ELECTRODE, None),
        ("CS electrodes", ELECTRODE, None),
        ("catheter electrode", ELECTRODE, None),
        ("electrode catheter", CATHETER, None),  # the last role word decides
        ("ruler", None, None),
        ("default", None, None),
        ("", None, None),
    ],
)
def test_category_names_follow_the_documented_rules(name, role, kind):
    assert category_role(name) == role
    assert catheter_type(name) == kind


def test_cvat_coco_export_imports_polygons_rle_and_rectangles():
    root = LABELS / "cvat_coco"
    with pytest.warns(UserWarning, match=r"not used: 1 annotations of category 'Ruler'"):
        reader = CocoReader(root)
    assert reader.labels.convention == "pixel-corner"
    assert [reader[i].name for i in range(len(reader))] == [
        "frame_000000",
        "frame_000001",
        "frame_000002",
    ]
    masks = raw_masks(root / "annotations" / "instances_default.json")
    polygon, brush, empty = reader[0], reader[1], reader[2]
    np.testing.assert_array_equal(polygon.mask, masks[1])  # the polygon as pycocotools fills it
    np.testing.assert_array_equal(brush.mask, masks[6])  # CVAT's brush mask: uncompressed RLE
    assert polygon.mask.sum() == 40 * 4 and polygon.mask[18:22, 4:44].all()
    assert brush.mask.sum() == 4 * 30 and brush.mask[5:35, 22:26].all()
    assert empty.mask is not None and empty.mask.sum() == 0
    # Rectangles give electrode centre and footprint, 0.5 px up-left of the box centre in the
    # file (CVAT's pixel corners -> cathtrack's pixel centres).
    np.testing.assert_allclose(polygon.electrodes, [[9.5, 19.5], [21.5, 19.5], [33.5, 19.5]])
    np.testing.assert_allclose(polygon.boxes[0], [7.5, 17.5, 4.0, 4.0])
    np.testing.assert_allclose(brush.electrodes, [[23.5, 9.0], [23.5, 15.0]])
    assert [(c.type, c.target) for c in polygon.catheters] == [("cs_decapolar", True)]
    assert [c.type for c in brush.catheters] == ["ablation"]
    assert polygon.electrode_catheter.tolist() == [-1, -1, -1]  # rectangles name no catheter
    assert all(s.available == {"segmentation": True, "detection": True} for s in (polygon, empty))


def test_cvat_skeleton_gives_one_electrode_per_labelled_point():
    folder = LABELS / "cvat_keypoints" / "annotations"
    reader = CocoReader(folder, annotations="person_keypoints_default.json")
    assert reader.root == LABELS / "cvat_keypoints"  # images/ sits beside annotations/
    grouped, solitary = reader[0], reader[1]
    # The skeleton grouped with its polygon: 3 labelled points (one "occluded", v=1) of 4; the
    # fourth is "outside" (v=0) and is no electrode.
    np.testing.assert_allclose(grouped.electrodes, [[6.0, 19.5], [13.75, 19.5], [21.5, 19.25]])
    assert grouped.electrode_index.tolist() == [0, 1, 2]
    (catheter,) = grouped.catheters
    assert catheter.type == "quadripolar"
    assert grouped.electrode_catheter.tolist() == [catheter.id] * 3
    np.testing.assert_allclose(grouped.boxes[:, 2:], 0.0)  # a point has no footprint
    # A skeleton alone, named "CS electrodes": four electrodes numbered from the tip, and its
    # frame (electrodes, no outline) is not labelled for segmentation.
    assert len(solitary.electrodes) == 4
    assert solitary.electrode_index.tolist() == [0, 1, 2, 3]
    assert solitary.mask is None and solitary.available["segmentation"] is False
    assert reader.labels.absent_points == 1


def test_cvat_instances_and_keypoints_exports_merge_without_duplicates():
    reader = CocoReader(LABELS / "cvat_keypoints")
    assert [f.name for f in reader.labels.files] == [
        "instances_default.json",
        "person_keypoints_default.json",
    ]
    sample = reader[0]
    # The polygon is in both files: one catheter, and the skeleton's electrodes are on it.
    assert len(sample.catheters) == 1
    assert sample.electrode_catheter.tolist() == [sample.catheters[0].id] * 3
    ids = [a["id"] for a in reader.coco.dataset["annotations"]]
    assert len(ids) == len(set(ids)) == 1 + 3 + 4


def test_label_studio_export_with_rectangles_polygons_and_a_keypoint():
    root = LABELS / "label_studio"
    reader = CocoReader(root)
    assert len(reader) == 2 and reader.image_ids == [0, 1]  # Label Studio counts from 0
    first, second = reader[0], reader[1]
    assert first.image.shape == (40, 48)  # RGB upload read as gray
    masks = raw_masks(root / "result.json")
    np.testing.assert_array_equal(first.mask, masks[0])
    # two rectangles and the KeyPointLabels point "Tip electrode" (category "default")
    np.testing.assert_allclose(first.electrodes, [[9.5, 19.5], [21.5, 19.5], [33.5, 19.5]])
    assert [c.type for c in first.catheters] == ["unknown"]
    # width/height null in the export (Label Studio could not open the image): from the file
    assert second.mask.shape == (40, 48) and second.mask[5:35, 22:26].all()
    assert any("replaced by the file's 48x40" in p.message for p in reader.labels.problems)


def test_rle_counts_decodes_what_pycocotools_encodes():
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (7, 5), (40, 48), (64, 64)]:
        for density in (0.0, 0.1, 0.5, 1.0):
            mask = (rng.random(shape) < density).astype(np.uint8)
            mask[: shape[0] // 2, : shape[1] // 3] = 1  # long runs: multi-character numbers
            encoded = mask_utils.encode(np.asfortranarray(mask))["counts"].decode("ascii")
            flat = mask.flatten(order="F")  # COCO runs go down the columns
            changes = np.flatnonzero(np.diff(flat)) + 1
            runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
            if flat[0] == 1:
                runs = [0, *runs]  # the first run counts zeros
            assert rle_counts(encoded) == runs, (shape, density)
    assert rle_counts("23") is not None and rle_counts("2") is not None
    assert rle_counts("zz\x7f") is None  # a character outside the code
    assert rle_counts("o") is None  # ends inside a number (continuation bit set)


def _handmade(root: Path, annotations: list, categories: list, info: dict | None = None) -> Path:
    (root / "images").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "a.png"), np.full((40, 50), 128, np.uint8))
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}],
        "annotations": annotations,
        "categories": categories,
    }
    if info is not None:
        data["info"] = info
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def _distance_to_polyline(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Exact distance of every pixel centre to a polyline (numpy, segment by segment)."""
    rows, cols = np.mgrid[0:height, 0:width]
    centres = np.stack([cols, rows], axis=-1).astype(np.float64)
    best = np.full((height, width), np.inf)
    for a, b in zip(points[:-1], points[1:], strict=True):
        t = np.clip(((centres - a) @ (b - a)) / ((b - a) @ (b - a)), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(centres - (a + t[..., None] * (b - a)), axis=-1))
    return best


def test_a_polyline_with_a_width_and_a_mask_png_become_the_mask(tmp_path):
    categories = [{"id": 1, "name": "catheter"}]
    bent = [[5.5, 10.5], [30.5, 10.5], [45.5, 30.5]]  # pixel corners, as a tool writes them
    line = {"id": 1, "image_id": 1, "category_id": 1, "centerline": bent,
            "attributes": {"width": 3, "type": "pacing lead"}}  # fmt: skip
    root = _handmade(tmp_path, [line], categories)
    (root / "masks").mkdir()
    extra = np.zeros((40, 50), np.uint8)
    extra[33:36, 10:20] = 255
    cv2.imwrite(str(root / "masks" / "a.png"), extra)
    sample = CocoReader(root)[0]
    centre_line = np.array(bent) - 0.5
    np.testing.assert_allclose(sample.catheters[0].centerline, centre_line)
    assert sample.catheters[0].type == "pacing_lead"
    assert sample.mask[33:36, 10:20].all()  # the mask PNG is part of the frame's mask
    drawn = sample.mask.copy()
    drawn[33:36, 10:20] = 0
    exact = _distance_to_polyline(centre_line, 40, 50) <= 1.5
    # the straight part exactly 3 px wide; all of it within a pixel of the exact band
    np.testing.assert_array_equal(drawn[:, 8:28], exact[:, 8:28])
    assert drawn[:, 15].sum() == 3
    agreement = (drawn.astype(bool) & exact).sum() / (drawn.astype(bool) | exact).sum()
    assert agreement > 0.9, agreement


def test_pixel_centre_files_are_read_as_they_are(tmp_path):
    electrode = {"id": 1, "image_id": 1, "category_id": 2, "bbox": [10.0, 10.0, 4.0, 4.0],
                 "keypoints": [12.0, 12.0, 2]}  # fmt: skip
    categories = [{"id": 2, "name": "electrode"}]
    declared = _handmade(
        tmp_path / "declared", [electrode], categories, {"coordinates": "pixel-centre"}
    )
    corner = _handmade(tmp_path / "corner", [electrode], categories)
    np.testing.assert_allclose(CocoReader(declared)[0].electrodes, [[12.0, 12.0]])
    np.testing.assert_allclose(CocoReader(corner)[0].electrodes, [[11.5, 11.5]])
    # and a file cathtrack writes says so
    sample = Sample(
        image=np.full((16, 16), 0.5, np.float32),
        mask=np.zeros((16, 16), np.uint8),
        electrodes=np.array([[3.0, 4.0]], np.float32),
        boxes=np.array([[1.5, 2.5, 3.0, 3.0]], np.float32),
        electrode_catheter=np.array([-1]),
        electrode_index=np.array([0]),
        catheters=[CatheterLabel(1, "ablation", np.zeros((0, 2), np.float32))],
        name="s",
    )
    written = write_coco(tmp_path / "ours", [sample])
    assert json.loads((written / "annotations.json").read_text())["info"]["coordinates"] == (
        "pixel-centre"
    )
    np.testing.assert_allclose(CocoReader(written)[0].electrodes, [[3.0, 4.0]])


def test_everything_not_used_is_counted_in_one_warning(tmp_path):
    categories = [
        {"id": 1, "name": "catheter"},
        {"id": 2, "name": "marker", "keypoints": ["tip electrode", "hub"]},
        {"id": 3, "name": "ruler"},
        {"id": 4, "name": "electrode"},
    ]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 30, 4]},  # a catheter box
        {"id": 2, "image_id": 1, "category_id": 2, "keypoints": [5, 5, 2, 9, 9, 2]},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [0, 0, 3, 3]},
        {"id": 4, "image_id": 1, "category_id": 3, "bbox": [0, 0, 3, 3]},
        {"id": 5, "image_id": 1, "category_id": 4},  # nothing to place it with
        # a polygon of 2 points: not used, and its catheter has no mask either
        {"id": 6, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1]]},
    ]
    root = _handmade(tmp_path, annotations, categories)
    with pytest.warns(UserWarning) as caught:
        reader = CocoReader(root)
    (message,) = [str(w.message) for w in caught]
    for part in (
        "2 annotations of category 'ruler'",
        "1 keypoints 'hub' of category 'marker'",
        "2 catheter annotations with no mask (a box or a bare line)",
        "1 electrode annotations without a keypoint or a box",
        "1 polygons with fewer than 3 points",
    ):
        assert part in message, (part, message)
    sample = reader[0]
    np.testing.assert_allclose(sample.electrodes, [[4.5, 4.5]])  # "tip electrode" is used
    # a catheter without a mask: segmentation unknown on that frame, not empty
    assert sample.mask is None and sample.available["segmentation"] is False


def test_the_reader_refuses_a_broken_file_in_one_line(tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(LABELS / "cvat_coco", root)
    path = root / "annotations" / "instances_default.json"
    data = json.loads(path.read_text())
    data["annotations"][2]["id"] = data["annotations"][1]["id"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as raised:
        CocoReader(root)
    message = str(raised.value)
    assert "\n" not in message and "duplicate annotation id" in message
    assert f"cathtrack data check {root}" in message


def test_import_never_raises_for_content(tmp_path):
    (tmp_path / "annotations.json").write_text("[1, 2]")
    labels = import_labels(tmp_path)
    assert [p.severity for p in labels.problems] == ["error"]
    assert "not a COCO annotation file" in labels.problems[0].message
    assert "no COCO annotation file" in import_labels(tmp_path / "nothing").problems[0].message


def test_a_keypoint_electrode_keeps_its_catheter_and_index(tmp_path):
    mask = np.zeros((40, 50), np.uint8)
    mask[10:13, 5:45] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    categories = [{"id": 1, "name": "catheter"}, {"id": 2, "name": "electrode"}]
    annotations = [
        {"id": 7, "image_id": 1, "category_id": 1, "segmentation": rle, "iscrowd": 1},
        # a point without a box, on catheter 7, third from the tip (as pre-annotations write it)
        {"id": 8, "image_id": 1, "category_id": 2, "keypoints": [20.5, 12.0, 2],
         "catheter_id": 7, "index": 2},
        {"id": 9, "image_id": 1, "category_id": 2, "keypoints": [30.5, 12.0, 2],
         "catheter_id": 99, "index": 3},  # no such catheter on the frame
    ]  # fmt: skip
    root = _handmade(tmp_path, annotations, categories)
    labels = import_labels(root)
    assert [p.message for p in labels.problems] == [
        "1 electrodes name a catheter_id that is not a catheter of their frame "
        "(read as belonging to no catheter)"
    ]
    sample = CocoReader(root)[0]
    np.testing.assert_allclose(sample.electrodes, [[20.0, 11.5], [30.0, 11.5]])
    assert sample.electrode_catheter.tolist() == [7, -1]
    assert sample.electrode_index.tolist() == [2, 3]
    np.testing.assert_array_equal(sample.mask, mask)
