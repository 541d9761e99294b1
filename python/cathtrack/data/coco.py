"""The COCO dataset format of docs/design.md 4.1: :func:`write_coco` and :class:`CocoReader`.

Layout::

    ROOT/images/<name>.png     8- or 16-bit grayscale
    ROOT/annotations.json      COCO: category 1 "catheter", category 2 "electrode"
    ROOT/sequences.json        optional ordered frame lists (schema below)

``sequences.json``::

    {"sequences": [{"id": 0, "name": "seq_0000", "fps": 15.0,
                    "image_ids": [1, 2, 3], "file_names": ["a.png", "b.png", "c.png"]}]}

``image_ids`` (COCO image ids, in playback order) is authoritative; ``file_names`` is there for
people and tools that do not read COCO.

The reader also takes what CVAT and Label Studio export as COCO: categories are matched by name
(case-insensitive, singular or plural), catheter segmentations may be polygons or RLE
(compressed or not), electrodes may be given by keypoints or only by a bbox (centre = bbox
centre), images may be RGB or 16-bit. When an image has no ``annotated`` list, availability is
inferred per dataset: segmentation is available for every image if any catheter annotation in
the file has a segmentation, detection if the file has any electrode annotation (an image
without such annotations then counts as labelled-empty, not unknown).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from cathtrack.catheters import UNKNOWN_TYPE
from cathtrack.data.sample import TASKS, CatheterLabel, Sample

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
SEQUENCES_FILE = "sequences.json"
_CENTRE_DECIMALS = 4  # 1e-4 px: far below any labelling precision, keeps the JSON compact
_CENTERLINE_DECIMALS = 3


# --- writing ------------------------------------------------------------------------------


def _encode_image(image: np.ndarray, bits: int) -> np.ndarray:
    full_scale = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.round(np.clip(image, 0.0, 1.0) * full_scale).astype(dtype)


def _partition_mask(mask: np.ndarray, centerlines: list[np.ndarray]) -> np.ndarray:
    """Split a union mask between instances: each pixel goes to the nearest centerline.

    Args:
        mask: (H, W) uint8 {0, 1}.
        centerlines: per instance (M, 2) x, y pixels.
    Returns:
        (H, W) int32: 0 outside the mask, k + 1 for pixels of instance k.
    """
    height, width = mask.shape
    owner = np.zeros((height, width), np.int32)
    for k, line in enumerate(centerlines):
        points = np.round(np.clip(line, 0, [width - 1, height - 1])).astype(np.int32)
        cv2.polylines(owner, [points.reshape(-1, 1, 2)], False, k + 1, 1)
    seeds = owner > 0
    if not seeds.any():
        return np.zeros_like(owner)
    _, labels = cv2.distanceTransformWithLabels(
        (~seeds).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lookup = np.zeros(labels.max() + 1, np.int32)
    lookup[labels[seeds]] = owner[seeds]
    return np.where(mask > 0, lookup[labels], 0).astype(np.int32)


def _rle(binary: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _catheter_annotations(
    sample: Sample, image_id: int, first_id: int
) -> tuple[list[dict], dict[int, int]]:
    """Annotations of the sample's target devices and the map sample id -> annotation id."""
    targets = [c for c in sample.catheters if c.target]
    if sample.mask is not None and sample.mask.any() and not targets:
        # Mask without instances (e.g. a mask-only source): one instance of unknown type.
        targets = [CatheterLabel(-1, UNKNOWN_TYPE, np.zeros((0, 2), np.float32))]
    owners = None
    if sample.mask is not None:
        owners = _partition_mask(sample.mask, [c.centerline for c in targets])
        if not any(len(c.centerline) for c in targets):
            owners = np.where(sample.mask > 0, 1, 0)
    annotations, ids = [], {}
    for k, catheter in enumerate(targets):
        ann_id = first_id + k
        ids[catheter.id] = ann_id
        ann = {
            "id": ann_id,
            "image_id": image_id,
            "category_id": CATHETER,
            "iscrowd": 0,
            "attributes": {"type": catheter.type, "target": True},
            "centerline": np.round(catheter.centerline, _CENTERLINE_DECIMALS).tolist(),
        }
        if owners is not None:
            rle = _rle(owners == k + 1)
            ann.update(
                segmentation=rle,
                area=float(mask_utils.area(rle)),
                bbox=[float(v) for v in mask_utils.toBbox(rle)],
            )
        else:
            low = catheter.centerline.min(axis=0) if len(catheter.centerline) else np.zeros(2)
            high = catheter.centerline.max(axis=0) if len(catheter.centerline) else np.zeros(2)
            ann.update(bbox=[*map(float, low), *map(float, high - low)], area=0.0)
        annotations.append(ann)
    return annotations, ids


def _electrode_annotations(
    sample: Sample, image_id: int, first_id: int, catheter_ids: dict[int, int]
) -> list[dict]:
    annotations = []
    for k in range(len(sample.electrodes)):
        x, y, w, h = (round(float(v), _CENTRE_DECIMALS) for v in sample.boxes[k])
        cx, cy = (round(float(v), _CENTRE_DECIMALS) for v in sample.electrodes[k])
        annotations.append(
            {
                "id": first_id + k,
                "image_id": image_id,
                "category_id": ELECTRODE,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
                # The box as a polygon, so COCOeval can also run iouType="segm" on all categories.
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                "keypoints": [cx, cy, 2],
                "num_keypoints": 1,
                "catheter_id": catheter_ids.get(int(sample.electrode_catheter[k])),
                "index": int(sample.electrode_index[k]),
            }
        )
    return annotations


def _file_stem(sample: Sample, position: int) -> str:
    stem = sample.name or f"{position:06d}"
    if "/" in stem or "\\" in stem or stem in {".", ".."}:
        raise ValueError(f"sample name {stem!r} cannot be used as a file name")
    return stem


def write_coco(
    root: str | Path,
    samples: Iterable[Sample],
    *,
    bits: int = 8,
    sequences: list[dict] | None = None,
) -> Path:
    """Write samples as a COCO dataset (docs/design.md 4.1).

    Args:
        root: dataset folder (created if needed).
        samples: the frames; image ids are 1 + their position, file names their ``name``
            (or the position when unnamed), which must be unique.
        bits: 8 or 16, bit depth of the PNG images.
        sequences: optional video sequences, each ``{"frames": [positions in samples...],
            "fps": float, "name": str (optional)}``; written to ``sequences.json``.
    Returns:
        ``root`` as a Path (so ``CocoReader(write_coco(...))`` works).

    Only target devices are written (one catheter annotation each); the union mask is split
    between them by nearest centerline, so the union of their segmentations is the mask.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images: list[dict] = []
    annotations: list[dict] = []
    file_names: dict[str, int] = {}
    for position, sample in enumerate(samples):
        image_id = position + 1
        file_name = f"{_file_stem(sample, position)}.png"
        if file_name in file_names:
            raise ValueError(f"duplicate sample name {file_name!r}")
        file_names[file_name] = image_id
        if not cv2.imwrite(str(root / "images" / file_name), _encode_image(sample.image, bits)):
            raise OSError(f"could not write {root / 'images' / file_name}")
        height, width = sample.image.shape
        entry = {
            "id": image_id,
            "file_name": file_name,
            "width": width,
            "height": height,
            "annotated": [t for t in TASKS if sample.available.get(t, False)],
        }
        if sample.pixel_spacing_mm is not None:
            entry["pixel_spacing_mm"] = float(sample.pixel_spacing_mm)
        images.append(entry)
        catheters, ids = _catheter_annotations(sample, image_id, len(annotations) + 1)
        annotations += catheters
        annotations += _electrode_annotations(sample, image_id, len(annotations) + 1, ids)
    dataset = {
        "info": {"description": "cathtrack dataset (docs/design.md 4.1)", "version": "1.0"},
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    (root / "annotations.json").write_text(json.dumps(dataset, separators=(",", ":")))
    if sequences is not None:
        records = []
        for k, sequence in enumerate(sequences):
            ids = [images[p]["id"] for p in sequence["frames"]]
            records.append(
                {
                    "id": k,
                    "name": sequence.get("name", f"seq_{k:04d}"),
                    "fps": float(sequence["fps"]),
                    "image_ids": ids,
                    "file_names": [images[i - 1]["file_name"] for i in ids],
                }
            )
        (root / SEQUENCES_FILE).write_text(json.dumps({"sequences": records}, indent=1))
    return root


# --- reading ------------------------------------------------------------------------------


def _category_role(name: str) -> int | None:
    key = name.strip().lower()
    if key in ("catheter", "catheters"):
        return CATHETER
    if key in ("electrode", "electrodes"):
        return ELECTRODE
    return None


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "")
    return bool(value)


def _read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype.kind == "f":
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    return (image.astype(np.float32) / np.iinfo(image.dtype).max).astype(np.float32)


class CocoReader:
    """Random access to a COCO dataset as :class:`Sample` objects.

    Attributes:
        coco: the ``pycocotools.coco.COCO`` index of the annotation file.
        sequences: ordered lists of reader indices, one per video sequence (empty if none).
        sequence_fps: frame rate of each sequence.
    """

    def __init__(self, root: str | Path, annotations: str = "annotations.json"):
        self.root = Path(root)
        path = self.root / annotations
        if not path.is_file():
            raise FileNotFoundError(f"no COCO annotation file at {path}")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                self.coco = COCO(str(path))
        except (AssertionError, ValueError, KeyError, TypeError) as error:
            # pycocotools asserts on a non-object file and fails deep inside on bad records.
            reason = str(error) or type(error).__name__
            raise ValueError(f"{path}: not a COCO annotation file ({reason})") from error
        self._image_ids = [image["id"] for image in self.coco.dataset["images"]]
        self._roles = {
            c["id"]: _category_role(c["name"]) for c in self.coco.dataset.get("categories", [])
        }
        anns = self.coco.dataset.get("annotations", [])
        self._dataset_availability = {
            "segmentation": any(
                self._roles.get(a["category_id"]) == CATHETER and a.get("segmentation")
                for a in anns
            ),
            "detection": any(self._roles.get(a["category_id"]) == ELECTRODE for a in anns),
        }
        self.sequences, self.sequence_fps = self._read_sequences()

    def _read_sequences(self) -> tuple[list[list[int]], list[float]]:
        path = self.root / SEQUENCES_FILE
        if not path.is_file():
            return [], []
        index_of = {image_id: i for i, image_id in enumerate(self._image_ids)}
        by_name = {
            Path(img["file_name"]).name: i for i, img in enumerate(self.coco.dataset["images"])
        }
        records = json.loads(path.read_text())["sequences"]
        sequences = []
        for record in records:
            if "image_ids" in record:
                sequences.append([index_of[i] for i in record["image_ids"]])
            else:
                sequences.append([by_name[Path(n).name] for n in record["file_names"]])
        return sequences, [float(r.get("fps", 0.0)) for r in records]

    def __len__(self) -> int:
        return len(self._image_ids)

    @property
    def image_ids(self) -> list[int]:
        """COCO image id of each reader index (what detections must refer to)."""
        return list(self._image_ids)

    def _image_path(self, file_name: str) -> Path:
        for candidate in (
            self.root / "images" / file_name,
            self.root / file_name,
            self.root / "images" / Path(file_name).name,
        ):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"image {file_name!r} not found under {self.root}")

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        info = self.coco.imgs[self._image_ids[index]]
        image = _read_gray(self._image_path(info["file_name"]))
        if "annotated" in info:
            available = {t: t in info["annotated"] for t in TASKS}
        else:
            available = dict(self._dataset_availability)
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[info["id"]]))
        catheters, electrodes = [], []
        for ann in anns:
            role = self._roles.get(ann["category_id"])
            if role == CATHETER:
                catheters.append(ann)
            elif role == ELECTRODE:
                electrodes.append(ann)

        mask = None
        if available["segmentation"]:
            mask = np.zeros(image.shape, np.uint8)
            for ann in catheters:
                if ann.get("segmentation") and _truthy(
                    ann.get("attributes", {}).get("target", True)
                ):
                    mask |= self.coco.annToMask(ann).astype(np.uint8)

        centres, boxes, owners, indices = [], [], [], []
        for ann in electrodes:
            keypoints = ann.get("keypoints") or []
            bbox = ann.get("bbox")
            if len(keypoints) >= 3 and keypoints[2] > 0:
                centre = [float(keypoints[0]), float(keypoints[1])]
            elif bbox:
                centre = [bbox[0] + 0.5 * bbox[2], bbox[1] + 0.5 * bbox[3]]
            else:
                continue
            centres.append(centre)
            # Keypoint-only electrodes get a zero-size box: their size is unknown.
            boxes.append(list(map(float, bbox)) if bbox else [centre[0], centre[1], 0.0, 0.0])
            owner = ann.get("catheter_id")
            owners.append(-1 if owner is None else int(owner))
            indices.append(int(ann.get("index", -1)))
        n = len(centres)
        return Sample(
            image=image,
            mask=mask,
            electrodes=np.asarray(centres, np.float32).reshape(n, 2),
            boxes=np.asarray(boxes, np.float32).reshape(n, 4),
            electrode_catheter=np.asarray(owners, np.int64),
            electrode_index=np.asarray(indices, np.int64),
            catheters=[
                CatheterLabel(
                    id=int(ann["id"]),
                    type=str(ann.get("attributes", {}).get("type", UNKNOWN_TYPE)),
                    centerline=np.asarray(ann.get("centerline", []), np.float32).reshape(-1, 2),
                    target=_truthy(ann.get("attributes", {}).get("target", True)),
                )
                for ann in catheters
            ],
            available=available,
            name=Path(info["file_name"]).stem,
            pixel_spacing_mm=info.get("pixel_spacing_mm"),
        )
