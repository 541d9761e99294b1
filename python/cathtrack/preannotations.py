"""Predictions as a COCO file for correcting in an annotation tool (``cathtrack predict --coco``).

A labeller who starts from the model's predictions corrects them instead of drawing every
electrode and catheter. The file uses the category names that cathtrack's COCO reader takes
(``catheter``, ``electrode``; :mod:`cathtrack.data.coco`), so the corrected export trains as it
is. Two styles, because CVAT and Label Studio read different parts of a COCO annotation:

``cvat`` (CVAT: Actions > Upload annotations > "COCO 1.0"; CVAT reads COCO through Datumaro):
    catheters as RLE masks (``iscrowd`` 1, which CVAT imports as masks; exact to the pixel) with
    their bounding box; electrodes as rectangles (``bbox`` of the predicted electrode size, at
    least ``MIN_BOX`` px, and an empty ``segmentation``, which CVAT imports as rectangles), with
    the centre also as a one-point keypoint that cathtrack's reader prefers.

``label-studio`` (``label-studio-converter import coco -i FILE -o tasks.json --out-type
predictions``, then import ``tasks.json`` into a project with the labeling config it writes):
    catheters as polygons, one annotation per connected part (the converter reads the first
    polygon of each annotation and no RLE); electrodes as keypoints only (an annotation with a
    ``bbox`` would also become a rectangle there).

Both carry, as cathtrack's reader expects: the catheter's ``attributes`` (``type`` and
``type_score``), its ``centerline``, a ``score`` per annotation, and for each electrode
``catheter_id`` and ``index`` (position from the tip). Coordinates are in the pixel-corner
convention of COCO and of both tools (pixel (0, 0) spans [0, 1]: cathtrack's pixel-centre
coordinates + 0.5), declared as ``info.coordinates = "pixel-corner"``, so that cathtrack reads
the file, and what a tool exports after correction, back to the same pixels. Images are named
by their path relative to the input folder they were found in; frames of a video or
multi-frame file as ``<file>/frame_NNNNNN.png`` (CVAT names the frames of a video task
``frame_NNNNNN``).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

STYLES = ("cvat", "label-studio")
CATEGORIES = [
    {"id": 1, "name": "catheter", "supercategory": "device"},
    {
        "id": 2,
        "name": "electrode",
        "supercategory": "device",
        "keypoints": ["center"],
        "skeleton": [],
    },
]
CATHETER, ELECTRODE = 1, 2
MIN_BOX = 4.0  # px: a smaller rectangle is hard to grab and move in an annotation tool
_DECIMALS = 3
_MIN_PART_AREA = 4  # px: mask specks smaller than this are left out of the polygons
_TO_CORNER = 0.5  # pixel-centre (cathtrack) -> pixel-corner (COCO, CVAT, Label Studio)


def _round(values) -> list[float]:
    return [round(float(v), _DECIMALS) for v in values]


def _partition(binary: np.ndarray, centerlines: list[np.ndarray]) -> np.ndarray:
    """(H, W) int32: each mask pixel -> 1 + index of the nearest centerline (0: background);
    every mask pixel -> 1 when there is no centerline (one catheter of unknown type)."""
    owner = np.zeros(binary.shape, np.int32)
    height, width = binary.shape
    for k, line in enumerate(centerlines):
        if len(line):
            points = np.round(np.clip(line, 0, [width - 1, height - 1])).astype(np.int32)
            cv2.polylines(owner, [points.reshape(-1, 1, 2)], False, k + 1, 1)
    seeds = owner > 0
    if not seeds.any():
        return binary.astype(np.int32)
    _, labels = cv2.distanceTransformWithLabels(
        (~seeds).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lookup = np.zeros(labels.max() + 1, np.int32)
    lookup[labels[seeds]] = owner[seeds]
    return np.where(binary, lookup[labels], 0).astype(np.int32)


def _polygons(binary: np.ndarray) -> list[list[float]]:
    """Outer contours of the mask's parts as COCO polygons (x, y, x, y, ...); parts under
    ``_MIN_PART_AREA`` pixels are left out. Traced at twice the resolution, because a contour
    through the boundary pixels' centres would lose half of a 2-pixel-wide catheter."""
    upscaled = cv2.resize(binary.astype(np.uint8), None, fx=2, fy=2,
                          interpolation=cv2.INTER_NEAREST)  # fmt: skip
    contours, _ = cv2.findContours(upscaled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if cv2.contourArea(contour) < 4 * _MIN_PART_AREA or len(contour) < 3:
            continue
        # Polygons are in COCO's (and the annotation tools') pixel-corner coordinates: pixel x
        # spans [x, x + 1]. Cell c of the doubled grid spans [c / 2, c / 2 + 0.5], so the
        # contour through the boundary cells' centres runs a quarter pixel inside the mask's
        # outline, and pycocotools rasterises it back to the same pixels.
        points = contour.reshape(-1, 2).astype(np.float64) / 2.0 + 0.25
        polygons.append(_round(points.ravel()))
    return polygons


class PreannotationWriter:
    """Collects tracked frames; :meth:`write` saves them as one COCO file of ``style``."""

    def __init__(self, style: str = "cvat") -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
        self.style = style
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, file_name: str, result) -> None:
        """Adds one frame named ``file_name`` with its tracking ``Result``."""
        height, width = result.mask.shape
        image_id = len(self.images) + 1
        self.images.append(
            {"id": image_id, "file_name": file_name, "width": int(width), "height": int(height)}
        )
        catheters = result.catheters
        owner = _partition(result.binary, [c.centerline for c in catheters])
        catheter_ids: dict[int, int] = {}
        for k in range(max(len(catheters), 1 if result.binary.any() else 0)):
            part = owner == k + 1
            catheter = catheters[k] if k < len(catheters) else None
            ids = self._catheter(image_id, part, catheter)
            if ids:
                catheter_ids[k] = ids[0]
        on_catheter = {}
        for k, catheter in enumerate(catheters):
            for position, index in enumerate(catheter.electrodes):
                on_catheter[int(index)] = (catheter_ids.get(k), position)
        for index, (x, y) in enumerate(result.electrodes + _TO_CORNER):
            owner_id, position = on_catheter.get(index, (None, -1))
            box_w, box_h = (max(MIN_BOX, float(v)) for v in result.sizes[index])
            annotation = {
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": ELECTRODE,
                "iscrowd": 0,
                "keypoints": [*_round((x, y)), 2],
                "num_keypoints": 1,
                "score": round(float(result.scores[index]), 4),
                "catheter_id": owner_id,
                "index": position,
            }
            if self.style == "cvat":
                box = _round((x - box_w / 2, y - box_h / 2, box_w, box_h))
                annotation.update(bbox=box, area=box[2] * box[3], segmentation=[])
            self.annotations.append(annotation)

    def _catheter(self, image_id: int, part: np.ndarray, catheter) -> list[int]:
        """Annotations of one catheter's mask pixels; their ids (none for an empty mask)."""
        if not part.any():
            return []
        common = {
            "image_id": image_id,
            "category_id": CATHETER,
            "attributes": {"type": "unknown", "type_score": 0.0},
            "centerline": [],
            "score": 1.0,
        }
        if catheter is not None:
            line = catheter.centerline.astype(float) + _TO_CORNER
            common.update(
                attributes={"type": catheter.type, "type_score": round(catheter.type_score, 4)},
                centerline=np.round(line, _DECIMALS).tolist(),
                score=round(float(catheter.type_score), 4),
            )
        ids = []
        if self.style == "cvat":
            rle = mask_utils.encode(np.asfortranarray(part.astype(np.uint8)))
            annotation = {
                "id": len(self.annotations) + 1,
                **common,
                "iscrowd": 1,
                "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode()},
                "area": float(mask_utils.area(rle)),
                "bbox": _round(mask_utils.toBbox(rle)),
            }
            self.annotations.append(annotation)
            return [annotation["id"]]
        for polygon in _polygons(part):
            annotation = {"id": len(self.annotations) + 1, **common, "iscrowd": 0,
                          "segmentation": [polygon]}  # fmt: skip
            self.annotations.append(annotation)
            ids.append(annotation["id"])
            common["centerline"] = []  # one centerline per catheter: on its first part
        return ids

    def document(self) -> dict:
        return {
            "info": {
                "description": f"cathtrack predictions ({self.style} pre-annotations)",
                "coordinates": "pixel-corner",
            },
            "images": self.images,
            "annotations": self.annotations,
            "categories": CATEGORIES,
        }

    def write(self, path: str | Path) -> Path:
        """Writes the COCO file through a temporary file (never half written); ``path``."""
        from cathtrack.checkpoint import write_text_atomic

        path = Path(path)
        write_text_atomic(path, json.dumps(self.document(), separators=(",", ":")))
        return path
