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

The reader also takes what CVAT and Label Studio export as COCO (their folder layouts,
categories matched by name, polygons, RLE, keypoint skeletons, boxes, mask PNGs): the label
import of :mod:`cathtrack.data.labels` turns every file into one canonical form first, with the
rules of docs/labelling.md. Coordinates in the files this module writes follow cathtrack's
pixel-centre convention (``info.coordinates = "pixel-centre"``).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from cathtrack.catheters import UNKNOWN_TYPE
from cathtrack.data.labels import (
    CATEGORIES,
    CATHETER,
    CATHTRACK_DESCRIPTION,
    ELECTRODE,
    PIXEL_CENTRE,
    import_labels,
)
from cathtrack.data.sample import TASKS, CatheterLabel, Sample

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
        "info": {
            "description": f"{CATHTRACK_DESCRIPTION} (docs/design.md 4.1)",
            "version": "1.0",
            "coordinates": PIXEL_CENTRE,
        },
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


def read_mask_file(path: Path) -> np.ndarray:
    """A mask PNG as (H, W) uint8 {0, 1}: foreground where at least half the file's maximum (so
    0/1, 0/255 and 0/65535 masks all work); colour masks use the maximum over channels."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise FileNotFoundError(f"cannot read mask {path}")
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    peak = mask.max()
    return ((mask >= peak / 2) & (peak > 0)).astype(np.uint8)


def read_sequences(root: Path, images: list[dict]) -> tuple[list[list[int]], list[float]]:
    """``sequences.json`` as lists of reader indices and frame rates ([] without the file).

    Raises:
        ValueError: the file is not valid or names a frame the dataset does not have.
    """
    path = root / SEQUENCES_FILE
    if not path.is_file():
        return [], []
    index_of = {image["id"]: i for i, image in enumerate(images)}
    by_name = {Path(image["file_name"]).name: i for i, image in enumerate(images)}
    try:
        records = json.loads(path.read_text())["sequences"]
        sequences = []
        for record in records:
            if "image_ids" in record:
                sequences.append([index_of[i] for i in record["image_ids"]])
            else:
                sequences.append([by_name[Path(n).name] for n in record["file_names"]])
        return sequences, [float(r.get("fps", 0.0)) for r in records]
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error
    except KeyError as error:
        raise ValueError(f"{path}: names {error} which is not a frame of the dataset") from error
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: not a sequences file ({error})") from error


class CocoReader:
    """Random access to a COCO dataset as :class:`Sample` objects.

    The labels are read by :func:`cathtrack.data.labels.import_labels` (cathtrack's own files,
    CVAT's and Label Studio's COCO exports; rules in docs/labelling.md). A dataset with errors
    (duplicate ids, malformed RLE, electrodes outside their frame...) is refused with one line;
    what was read but not used is reported in one warning with counts.

    Attributes:
        coco: ``pycocotools.coco.COCO`` index of the canonical labels (category 1 catheter,
            2 electrode, pixel-centre coordinates).
        labels: the :class:`~cathtrack.data.labels.LabelImport` (files, problems, not used).
        sequences: ordered lists of reader indices, one per video sequence (empty if none).
        sequence_fps: frame rate of each sequence.
    """

    def __init__(self, root: str | Path, annotations: str | None = None):
        self.labels = import_labels(root, annotations)
        self.root = self.labels.root
        errors = self.labels.errors
        if errors:
            more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
            raise ValueError(
                f"{errors[0].line}{more}; 'cathtrack data check {root}' lists them all"
            )
        if self.labels.not_used:
            warnings.warn(
                f"{root}: labels not used: {self.labels.not_used_text()} (docs/labelling.md)",
                stacklevel=2,
            )
        self.coco = COCO()
        self.coco.dataset = self.labels.dataset
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco.createIndex()
        self._images = self.labels.dataset["images"]
        self._image_ids = [image["id"] for image in self._images]
        self.sequences, self.sequence_fps = read_sequences(self.root, self._images)

    def __len__(self) -> int:
        return len(self._image_ids)

    @property
    def image_ids(self) -> list[int]:
        """COCO image id of each reader index (what detections must refer to)."""
        return list(self._image_ids)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        info = self._images[index]
        if info["path"] is None:
            raise FileNotFoundError(f"image {info['file_name']!r} not found under {self.root}")
        image = _read_gray(self.root / info["path"])
        available = {t: t in info["annotated"] for t in TASKS}
        anns = self.coco.imgToAnns.get(info["id"], [])
        catheters = [a for a in anns if a["category_id"] == CATHETER]
        electrodes = [a for a in anns if a["category_id"] == ELECTRODE]

        mask = None
        if available["segmentation"]:
            mask = np.zeros(image.shape, np.uint8)
            for ann in catheters:
                if ann["attributes"]["target"]:
                    mask |= self.coco.annToMask(ann).astype(np.uint8)
            if "mask_file" in info:
                mask |= read_mask_file(self.root / info["mask_file"])

        n = len(electrodes)
        return Sample(
            image=image,
            mask=mask,
            electrodes=np.asarray([a["keypoints"][:2] for a in electrodes], np.float32).reshape(
                n, 2
            ),
            boxes=np.asarray([a["bbox"] for a in electrodes], np.float32).reshape(n, 4),
            electrode_catheter=np.asarray(
                [-1 if a["catheter_id"] is None else a["catheter_id"] for a in electrodes], np.int64
            ),
            electrode_index=np.asarray([a["index"] for a in electrodes], np.int64),
            catheters=[
                CatheterLabel(
                    id=int(ann["id"]),
                    type=ann["attributes"]["type"],
                    centerline=np.asarray(ann["centerline"], np.float32).reshape(-1, 2),
                    target=ann["attributes"]["target"],
                )
                for ann in catheters
            ],
            available=available,
            name=Path(info["file_name"].replace("\\", "/")).stem,
            pixel_spacing_mm=info.get("pixel_spacing_mm"),
        )
