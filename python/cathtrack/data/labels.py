"""Label import: COCO files as cathtrack, CVAT and Label Studio write them, in one canonical form.

:func:`import_labels` reads the annotation file(s) of a dataset folder and returns the labels as
a *canonical* COCO dict (category 1 ``catheter``, 2 ``electrode``, one electrode per annotation,
coordinates in cathtrack's pixel-centre convention), the problems found on the way, and a count
of everything that was not used. :class:`cathtrack.data.coco.CocoReader` reads samples from it;
``cathtrack data check`` prints it. The rules are those of docs/labelling.md:

Files (the first that exists): ``annotations.json`` (cathtrack), ``result.json`` (Label Studio's
COCO export), ``annotations/instances_<subset>.json`` and ``annotations/person_keypoints_<subset>
.json`` (CVAT's "COCO 1.0" and "COCO Keypoints 1.0"; several are merged: images by id, the
annotation ids of each further file shifted past those before it). Images are looked up in
``images/<subset>/``, ``images/`` and the folder itself. ``masks/<image stem>.png`` beside them
adds a catheter mask to its frame.

Categories by name: lower-cased, ``_`` and ``-`` read as spaces, a plural ``s`` dropped; the last
of the words ``electrode`` / ``catheter``, ``shaft``, ``sheath``, ``lead`` decides (``ring
electrode`` is an electrode, ``electrode catheter`` a catheter); a catalogue type name
(``CS decapolar``, ``ablation catheter``) is a catheter of that type. Other categories are not
used (counted). A category of unknown name whose keypoint names are electrodes gives electrodes.

Geometry: catheters are masks (polygon or RLE ``segmentation``, or a ``centerline`` with a
``width`` attribute, drawn as a polyline); keypoints of a catheter annotation are its electrodes,
numbered from the tip by their position in the category's keypoint list. Electrodes are keypoints
(each labelled one, ``v > 0``) or the centre of a box. Coordinates: files that cathtrack wrote use
the pixel-centre convention (the image spans [-0.5, W - 0.5]); every other file the pixel-corner
convention of COCO, CVAT and Label Studio (the image spans [0, W]), moved by -0.5 px on import.
Polygons and RLE are rasterised by pycocotools in either case.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from cathtrack.catheters import CATHETER_TYPES, UNKNOWN_TYPE
from cathtrack.data.sample import TASKS

CATHETER, ELECTRODE = 1, 2
CATEGORIES = [
    {"id": CATHETER, "name": "catheter", "supercategory": "device"},
    {
        "id": ELECTRODE,
        "name": "electrode",
        "supercategory": "device",
        "keypoints": ["center"],
        "skeleton": [],
    },
]
PIXEL_CENTRE, PIXEL_CORNER = "pixel-centre", "pixel-corner"
CATHTRACK_DESCRIPTION = "cathtrack dataset"  # start of info.description in the files we write
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MASKS_DIR = "masks"

_ELECTRODE_WORDS = frozenset({"electrode"})
_CATHETER_WORDS = frozenset({"catheter", "shaft", "sheath", "lead"})
_TYPE_BY_WORDS = {name.replace("_", " "): name for name in CATHETER_TYPES}
_LISTED = 5  # names quoted in one problem line


# --- names ---------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    """Lower-case words of a label name, ``_``/``-`` as spaces, a plural ``s`` dropped."""
    words = [w for w in re.split(r"[\s_\-]+", str(name).strip().lower()) if w]
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]


@functools.lru_cache(maxsize=1024)  # a few names, asked once per annotation
def catheter_type(name: str) -> str | None:
    """The catalogue type a label or attribute names (``CS decapolar`` -> ``cs_decapolar``)."""
    words = _words(name)
    for candidate in (words, [w for w in words if w not in _CATHETER_WORDS]):
        found = _TYPE_BY_WORDS.get(" ".join(candidate))
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=1024)
def category_role(name: str) -> int | None:
    """CATHETER, ELECTRODE or None (not used) for a category name (rules: module docstring)."""
    words = _words(name)
    for word in reversed(words):  # the head noun of an English name comes last
        if word in _ELECTRODE_WORDS:
            return ELECTRODE
        if word in _CATHETER_WORDS:
            return CATHETER
    return CATHETER if catheter_type(name) is not None else None


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something wrong in a dataset: an ``error`` makes it unusable, a ``warning`` does not."""

    severity: str
    where: str
    message: str

    @property
    def line(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class LabelImport:
    """Labels of a COCO dataset folder in canonical form (see the module docstring).

    Attributes:
        root: the dataset folder (where ``images/`` is).
        files: the annotation files read, in order.
        convention: coordinate convention of the files (:data:`PIXEL_CENTRE` or
            :data:`PIXEL_CORNER`).
        dataset: canonical COCO dict; each image has ``annotated`` (the labelled tasks) and
            ``path`` (its file relative to ``root``, None when not found), maybe ``mask_file``.
        problems: errors and warnings, one per problem.
        not_used: what was read but not used, description -> count.
        absent_points: keypoints marked not labelled (``v = 0``, CVAT's "outside").
        inferred: ids of the images whose ``annotated`` tasks were inferred (the file did not
            say), as in every CVAT and Label Studio export.
    """

    root: Path
    files: list[Path] = field(default_factory=list)
    convention: str = PIXEL_CORNER
    dataset: dict = field(default_factory=lambda: {"images": [], "annotations": []})
    problems: list[Problem] = field(default_factory=list)
    not_used: Counter = field(default_factory=Counter)
    absent_points: int = 0
    inferred: set = field(default_factory=set)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def error(self, where: str, message: str) -> None:
        self.problems.append(Problem("error", where, message))

    def warn(self, where: str, message: str) -> None:
        self.problems.append(Problem("warning", where, message))

    def not_used_text(self) -> str:
        """``12 annotations of category 'ruler', 3 ...`` (empty when everything was used)."""
        return ", ".join(f"{count} {what}" for what, count in sorted(self.not_used.items()))


# --- files ---------------------------------------------------------------------------------


def annotation_files(root: Path) -> list[Path]:
    """The annotation files of a dataset folder by the layouts of the module docstring."""
    for name in ("annotations.json", "result.json"):
        if (root / name).is_file():
            return [root / name]
    folder = root / "annotations"
    if folder.is_dir():
        found = sorted(folder.glob("instances_*.json")) + sorted(
            folder.glob("person_keypoints_*.json")
        )
        if found:
            return found
    return []


def dataset_root(root: Path, annotations: str | None) -> Path:
    """The folder that holds ``images/``: ``root``, or its parent when ``root`` is CVAT's
    ``annotations/`` folder and the file was named directly."""
    if (
        annotations is not None
        and root.name == "annotations"
        and not (root / "images").is_dir()
        and (root.parent / "images").is_dir()
    ):
        return root.parent
    return root


def _subset(path: Path) -> str | None:
    match = re.fullmatch(r"(?:instances|person_keypoints)_(.+)\.json", path.name)
    return match.group(1) if match else None


def _find_image(root: Path, file_name: str, subset: str | None) -> Path | None:
    name = file_name.replace("\\", "/")  # exports made on Windows
    base = Path(name).name
    candidates = [root / name, root / "images" / name, root / "images" / base]
    if subset is not None:
        candidates[:0] = [root / "images" / subset / name, root / "images" / subset / base]
    return next((c for c in candidates if c.is_file()), None)


def _read_json(path: Path, result: LabelImport) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        result.error(str(path), f"cannot be read ({error})")
        return None
    except json.JSONDecodeError as error:
        result.error(str(path), f"not JSON ({error})")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        result.error(str(path), "not a COCO annotation file (no 'images' list in an object)")
        return None
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            result.error(str(path), f"not a COCO annotation file ('{key}' is not a list)")
            return None
    return data


def _convention(data: dict) -> str:
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    declared = info.get("coordinates")
    if declared in (PIXEL_CENTRE, PIXEL_CORNER):
        return declared
    return (
        PIXEL_CENTRE
        if str(info.get("description", "")).startswith(CATHTRACK_DESCRIPTION)
        else PIXEL_CORNER
    )


# --- geometry checks -----------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(values, columns: int | None = None) -> np.ndarray | None:
    """``values`` as a float64 array when it is a (flat, or rows of ``columns``) list of finite
    numbers; None otherwise (strings, booleans, ragged rows, NaN and infinities)."""
    try:
        array = np.asarray(values)
    except ValueError:  # ragged rows
        return None
    if array.dtype.kind not in "iuf" or (array.size == 0 and values):
        return None
    if columns is None and array.ndim != 1 or columns is not None and array.shape[1:] != (columns,):
        return None
    array = array.astype(np.float64)
    return array if np.isfinite(array).all() else None


def _finite(values) -> bool:
    return _numbers(values) is not None


def rle_counts(counts: str) -> list[int] | None:
    """Run lengths of a compressed COCO RLE string (pycocotools' rleFrString), None if malformed."""
    runs = _rle_runs(counts)
    return None if runs is None else runs.tolist()


def _rle_runs(counts: str) -> np.ndarray | None:
    """:func:`rle_counts` as an int64 array.

    Each count is written in 5-bit groups, least significant first, as characters 48 + group
    (+ 32 while more groups follow); the last group's bit 16 is the sign. From the third count on,
    the string holds the difference to the count two places before."""
    try:
        raw = counts.encode("ascii")
    except UnicodeEncodeError:
        return None
    codes = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return codes
    if (codes < 0).any() or (codes >= 64).any() or codes[-1] & 0x20:
        return None  # a character outside the code, or the string ends inside a number
    ends = np.flatnonzero((codes & 0x20) == 0)
    starts = np.concatenate([[0], ends[:-1] + 1])
    position = np.arange(codes.size) - np.repeat(starts, ends - starts + 1)
    values = np.add.reduceat((codes & 0x1F) << (5 * position), starts)
    negative = (codes[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * (ends - starts + 1))[negative]
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def _rle_problem(rle: dict, height: int, width: int) -> str | None:
    size, counts = rle.get("size"), rle.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        return f"RLE 'size' must be [height, width], got {size!r}"
    if size != [height, width]:
        return f"RLE size {size[0]}x{size[1]} differs from the image's {height}x{width}"
    if isinstance(counts, str):
        runs = _rle_runs(counts)
        if runs is None:
            return "RLE 'counts' is not a valid compressed RLE string"
    else:
        runs = _numbers(counts) if isinstance(counts, list) else None
        if runs is None or (runs != np.round(runs)).any():
            return "RLE 'counts' must be a string or a list of integers"
    if (runs < 0).any():
        return "RLE 'counts' has a negative run"
    if int(runs.sum()) != height * width:
        return f"RLE 'counts' cover {int(runs.sum())} pixels, the image has {height * width}"
    return None


def _polygon_problem(polygons: list) -> str | None:
    for polygon in polygons:
        if not isinstance(polygon, list) or len(polygon) % 2 or _numbers(polygon) is None:
            return "a polygon must be a flat list of finite x, y numbers"
    return None


def _polyline_mask(points: np.ndarray, width_px: float, height: int, width: int) -> dict:
    """RLE of a polyline ``width_px`` wide: the pixels whose centre lies within ``width_px / 2``
    of the line drawn on the pixel grid (points in pixel-centre coordinates). OpenCV's own thick
    lines come out about 2 px wider than asked, hence the distance transform."""
    canvas = np.full((height, width), 255, np.uint8)
    shift = 4  # sub-pixel vertices: 1/16 px
    vertices = np.round(points * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [vertices], False, 0, 1, cv2.LINE_8, shift)
    distance = cv2.distanceTransform(canvas, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    inside = (distance <= 0.5 * width_px).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(inside))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


# --- import --------------------------------------------------------------------------------


class _Importer:
    """One pass over the annotation files; fills a :class:`LabelImport`."""

    def __init__(self, result: LabelImport, shift: float) -> None:
        self.result = result
        self.shift = shift  # subtracted from file coordinates (pixel-corner -> pixel-centre)
        self.images: dict[int, dict] = {}  # canonical image entries by id
        self.image_file: dict[int, Path] = {}  # the file that listed each image first
        self.catheters: list[dict] = []
        self.electrodes: list[dict] = []
        self.outlines: dict[tuple, int] = {}  # (image, segmentation) -> id of the catheter kept
        self.maskless: set[int] = set()  # images with a catheter that gives no mask
        self.unknown_types: Counter = Counter()

    # images ------------------------------------------------------------------------------

    def add_images(self, data: dict, path: Path) -> None:
        result, subset = self.result, _subset(path)
        names = {image["file_name"]: i for i, image in self.images.items()}
        for position, entry in enumerate(data["images"]):
            where = f"{path.name} images[{position}]"
            if not isinstance(entry, dict):
                result.error(where, "an image entry must be an object")
                continue
            image_id, file_name = entry.get("id"), entry.get("file_name")
            if not isinstance(image_id, int) or isinstance(image_id, bool):
                result.error(where, f"image id must be an integer, got {image_id!r}")
                continue
            if not isinstance(file_name, str) or not file_name:
                result.error(where, f"image {image_id} has no file_name")
                continue
            if image_id in self.images:
                known = self.images[image_id]["file_name"]
                if self.image_file[image_id] == path or known != file_name:
                    result.error(
                        where, f"duplicate image id {image_id} ({file_name!r} and {known!r})"
                    )
                continue  # the same frame, listed again by another file of one export
            if file_name in names:
                result.error(
                    where,
                    f"{file_name!r} listed twice (image ids {names[file_name]} and {image_id})",
                )
                continue
            names[file_name] = image_id
            found = _find_image(result.root, file_name, subset)
            image = {
                "id": image_id,
                "file_name": file_name,
                "width": entry.get("width"),
                "height": entry.get("height"),
                "path": None if found is None else found.relative_to(result.root).as_posix(),
            }
            for key in ("annotated", "pixel_spacing_mm"):
                if key in entry:
                    image[key] = entry[key]
            self._check_size(image, found, where)
            self.images[image_id] = image
            self.image_file[image_id] = path

    def _check_size(self, image: dict, found: Path | None, where: str) -> None:
        """Width and height from the entry; from the file (with a warning) when missing."""
        width, height = image["width"], image["height"]
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return
        pixels = None if found is None else cv2.imread(str(found), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            self.result.error(where, f"no usable width/height ({width!r}, {height!r})")
            image["width"] = image["height"] = None
            return
        self.result.warn(
            where,
            f"width/height {width!r}, {height!r} replaced by the file's "
            f"{pixels.shape[1]}x{pixels.shape[0]}",
        )
        image["height"], image["width"] = int(pixels.shape[0]), int(pixels.shape[1])

    # annotations -------------------------------------------------------------------------

    def add_annotations(self, data: dict, path: Path, id_offset: int) -> None:
        result = self.result
        categories = {
            c["id"]: c for c in data.get("categories", []) if isinstance(c, dict) and "id" in c
        }
        seen: dict[int, int] = {}
        for position, ann in enumerate(data.get("annotations", [])):
            where = f"{path.name} annotations[{position}]"
            if not isinstance(ann, dict):
                result.error(where, "an annotation must be an object")
                continue
            ann_id = ann.get("id")
            if not isinstance(ann_id, int) or isinstance(ann_id, bool):
                result.error(where, f"annotation id must be an integer, got {ann_id!r}")
                continue
            where = f"{path.name} annotation {ann_id}"
            if ann_id in seen:
                result.error(
                    where, f"duplicate annotation id (annotations[{seen[ann_id]}] and [{position}])"
                )
                continue
            seen[ann_id] = position
            image = self.images.get(ann.get("image_id"))
            if image is None:
                result.error(where, f"image_id {ann.get('image_id')!r} is not an image of the file")
                continue
            category = categories.get(ann.get("category_id"))
            if category is None:
                result.error(
                    where, f"category_id {ann.get('category_id')!r} is not declared in categories"
                )
                continue
            if image["width"] is None:
                continue  # reported with the image
            self._add(ann, category, image, f"{where} ({image['file_name']})", id_offset)

    def _add(self, ann: dict, category: dict, image: dict, where: str, id_offset: int) -> None:
        name = str(category.get("name", ""))
        role = category_role(name)
        slots = category.get("keypoints") if isinstance(category.get("keypoints"), list) else []
        points = self._keypoints(ann, where)
        if points is None:
            return
        numbered = len(ann.get("keypoints") or []) > 3  # a skeleton: positions count from the tip
        if role == CATHETER:
            owner = self._add_catheter(ann, name, image, where, ann["id"] + id_offset, points)
            self._add_points(points, image, where, owner, numbered)
        elif role == ELECTRODE:
            if len(points) == 1 and not numbered:
                self._add_one_electrode(ann, points[0][:2], image, where, id_offset)
            elif points:
                self._add_points(points, image, where, None, numbered)
            else:
                self._add_one_electrode(ann, None, image, where, id_offset)
        else:
            wanted = [p for p in points if category_role(_slot_name(slots, p[2])) == ELECTRODE]
            self._add_points(wanted, image, where, None, numbered)
            for p in points:
                if p not in wanted:
                    slot = _slot_name(slots, p[2])
                    self.result.not_used[f"keypoints '{slot}' of category '{name}'"] += 1
            if not points:
                self.result.not_used[f"annotations of category '{name}'"] += 1

    def _keypoints(self, ann: dict, where: str) -> list | None:
        """Labelled keypoints as [x, y, slot] in pixel-centre coordinates; None if malformed."""
        values = ann.get("keypoints") or []
        if not isinstance(values, list) or len(values) % 3:
            self.result.error(where, "keypoints must be a flat list of x, y, v triples")
            return None
        points = []
        for slot in range(len(values) // 3):
            x, y, v = values[3 * slot : 3 * slot + 3]
            if not _is_number(v):
                self.result.error(where, f"keypoint {slot}: visibility {v!r} is not a number")
                return None
            if v <= 0:  # not labelled (CVAT: "outside")
                self.result.absent_points += 1
                continue
            if not _finite([x, y]):
                self.result.error(where, f"keypoint {slot} at ({x}, {y}) is not a finite position")
                return None
            points.append([x - self.shift, y - self.shift, slot])
        return points

    def _mask(self, ann: dict, image: dict, where: str, centerline: list | None):
        """The annotation's segmentation in a form pycocotools reads; None if it has none, False
        if it is malformed (reported)."""
        height, width = image["height"], image["width"]
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, dict) and segmentation:
            problem = _rle_problem(segmentation, height, width)
            if problem is not None:
                self.result.error(where, problem)
                return False
            return segmentation
        if isinstance(segmentation, list) and segmentation:
            problem = _polygon_problem(segmentation)
            if problem is not None:
                self.result.error(where, problem)
                return False
            kept = [p for p in segmentation if len(p) >= 6]
            if len(kept) < len(segmentation):
                self.result.not_used["polygons with fewer than 3 points"] += len(
                    segmentation
                ) - len(kept)
            return kept or None
        attributes = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
        line_width = attributes.get("width")
        if centerline is None or len(centerline) < 2 or line_width is None:
            return None
        if not (_is_number(line_width) and math.isfinite(line_width) and line_width > 0):
            self.result.error(where, f"polyline width {line_width!r} is not a positive number")
            return False
        return _polyline_mask(np.asarray(centerline, np.float64), line_width, height, width)

    def _add_catheter(self, ann, name, image, where, catheter_id, points) -> int | None:
        """Adds a catheter with a mask; the id its electrodes belong to (None without a mask)."""
        centerline = self._centerline(ann, where)
        segmentation = self._mask(ann, image, where, centerline)
        if segmentation is False:
            return None
        if segmentation is None:
            # The frame has a catheter its mask would miss: segmentation is unknown there, not
            # empty. The electrodes of a skeleton are kept (without their catheter).
            what = "keypoints but no mask" if points else "no mask (a box or a bare line)"
            self.result.not_used[f"catheter annotations with {what}"] += 1
            self.maskless.add(image["id"])
            return None
        outline = (image["id"], json.dumps(segmentation, sort_keys=True))
        if outline in self.outlines:  # the same outline from a second file of the export
            return self.outlines[outline]
        self.outlines[outline] = catheter_id
        attributes = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
        kind = catheter_type(name) or UNKNOWN_TYPE
        raw_type = attributes.get("type")
        if raw_type is not None and str(raw_type).strip():
            kind = catheter_type(str(raw_type)) or UNKNOWN_TYPE
            if kind == UNKNOWN_TYPE and _words(str(raw_type)) != [UNKNOWN_TYPE]:
                self.unknown_types[str(raw_type)] += 1
        target = attributes.get("target", True)
        if isinstance(target, str):
            target = target.strip().lower() not in ("false", "0", "no", "")
        self.catheters.append(
            {
                "id": catheter_id,
                "image_id": image["id"],
                "category_id": CATHETER,
                "iscrowd": 0,
                "segmentation": segmentation,
                "attributes": {"type": kind, "target": bool(target)},
                "centerline": centerline or [],
            }
        )
        return catheter_id

    def _centerline(self, ann: dict, where: str) -> list | None:
        line = ann.get("centerline")
        if line is None or line == []:
            return None
        points = _numbers(line, columns=2)
        if points is None:
            self.result.error(where, "centerline must be a list of finite [x, y] points")
            return None
        return line if self.shift == 0 else (points - self.shift).tolist()

    def _add_electrode(self, image, where, centre, box, ann_id, catheter_id, index) -> None:
        x, y = centre
        if not _finite([x, y]):
            self.result.error(where, f"electrode at ({x}, {y}) is not a finite position")
            return
        width, height = image["width"], image["height"]
        if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
            self.result.error(
                where,
                f"electrode at ({x + self.shift:g}, {y + self.shift:g}) is outside the "
                f"{width}x{height} image",
            )
            return
        self.electrodes.append(
            {
                "id": ann_id,
                "image_id": image["id"],
                "category_id": ELECTRODE,
                # without a box the footprint is unknown: a zero-size box at the centre
                "bbox": box if box is not None else [float(x), float(y), 0.0, 0.0],
                "area": 0.0 if box is None else float(box[2] * box[3]),
                "iscrowd": 0,
                "keypoints": [float(x), float(y), 2],
                "num_keypoints": 1,
                "catheter_id": catheter_id,
                "index": index,
            }
        )

    def _add_points(self, points, image, where, catheter_id, numbered) -> None:
        for x, y, slot in points:
            index = slot if numbered else -1
            self._add_electrode(image, where, (x, y), None, None, catheter_id, index)

    def _add_one_electrode(self, ann, centre, image, where, id_offset) -> None:
        """An electrode given by one keypoint (and maybe its box), or by a box alone; it keeps
        the annotation's ``catheter_id`` and ``index`` (cathtrack's own files)."""
        box = ann.get("bbox")
        footprint = None
        if box:
            if not (isinstance(box, list) and len(box) == 4 and _finite(box)) or min(box[2:]) < 0:
                self.result.error(where, f"bbox must be 4 finite numbers, w, h >= 0, got {box!r}")
                return
            box = [box[0] - self.shift, box[1] - self.shift, box[2], box[3]]
            box = [float(v) for v in box]
            if centre is None:
                centre = (box[0] + 0.5 * box[2], box[1] + 0.5 * box[3])
            x, y = centre
            inside = box[0] <= x <= box[0] + box[2] and box[1] <= y <= box[1] + box[3]
            footprint = box if inside and box[2] > 0 and box[3] > 0 else None
        elif centre is None:
            self.result.not_used["electrode annotations without a keypoint or a box"] += 1
            return
        owner = ann.get("catheter_id")
        owner = (
            owner + id_offset if isinstance(owner, int) and not isinstance(owner, bool) else None
        )
        index = ann.get("index", -1)
        self._add_electrode(image, where, centre, footprint, ann["id"] + id_offset, owner, index)

    # finishing ---------------------------------------------------------------------------

    def finish(self) -> dict:
        catheter_images = {c["id"]: c["image_id"] for c in self.catheters}
        taken = set(catheter_images) | {e["id"] for e in self.electrodes if e["id"] is not None}
        next_id = max(taken, default=0) + 1
        strays = 0
        for electrode in self.electrodes:
            if electrode["id"] is None or electrode["id"] in catheter_images:
                electrode["id"], next_id = next_id, next_id + 1  # one of a skeleton's points
            owner = electrode["catheter_id"]
            if owner is not None and catheter_images.get(owner) != electrode["image_id"]:
                electrode["catheter_id"] = None
                strays += 1
            if not isinstance(electrode["index"], int) or isinstance(electrode["index"], bool):
                electrode["index"] = -1
        if strays:
            self.result.warn(
                "labels",
                f"{strays} electrodes name a catheter_id that is not a catheter of their frame "
                "(read as belonging to no catheter)",
            )
        if self.unknown_types:
            listed = ", ".join(repr(t) for t in list(self.unknown_types)[:_LISTED])
            self.result.warn(
                "labels",
                f"{sum(self.unknown_types.values())} catheters have a type that is not a catalogue "
                f"type ({listed}), read as '{UNKNOWN_TYPE}'; known: {', '.join(CATHETER_TYPES)}",
            )
        images = list(self.images.values())
        self._add_mask_files(images)
        self._availability(images)
        return {
            "info": {"description": f"{CATHTRACK_DESCRIPTION}: imported labels"},
            "images": images,
            "annotations": self.catheters + self.electrodes,
            "categories": [dict(c) for c in CATEGORIES],
        }

    def _add_mask_files(self, images: list[dict]) -> None:
        folder = self.result.root / MASKS_DIR
        if not folder.is_dir():
            return
        by_stem = {Path(image["file_name"].replace("\\", "/")).stem: image for image in images}
        strays = 0
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                continue
            image = by_stem.get(path.stem)
            if image is None:
                strays += 1
            else:
                image["mask_file"] = path.relative_to(self.result.root).as_posix()
        if strays:
            self.result.not_used[f"files in {MASKS_DIR}/ without a frame of their name"] += strays

    def _availability(self, images: list[dict]) -> None:
        """``annotated`` of each image: as declared, else inferred (module docstring)."""
        any_mask = bool(self.catheters) or any("mask_file" in image for image in images)
        any_electrode = bool(self.electrodes)
        # Electrodes sit on catheters: a frame with electrodes but no catheter mask has a
        # catheter nobody outlined, so its segmentation is unknown rather than empty.
        outlined = {c["image_id"] for c in self.catheters}
        unoutlined = {e["image_id"] for e in self.electrodes} - outlined
        skipped = 0
        for image in images:
            declared = image.get("annotated")
            where = f"image {image['id']} ({image['file_name']})"
            if isinstance(declared, list):
                unknown = [t for t in declared if t not in TASKS]
                if unknown:
                    self.result.warn(
                        where,
                        f"annotated lists unknown tasks {unknown} (known: {', '.join(TASKS)})",
                    )
                image["annotated"] = [t for t in TASKS if t in declared]
                continue
            if declared is not None:
                self.result.warn(where, "annotated must be a list of task names; inferred instead")
            segmentation = "mask_file" in image or (
                any_mask and image["id"] not in self.maskless and image["id"] not in unoutlined
            )
            skipped += any_mask and "mask_file" not in image and image["id"] in unoutlined
            self.result.inferred.add(image["id"])
            image["annotated"] = [
                task
                for task, labelled in (("segmentation", segmentation), ("detection", any_electrode))
                if labelled
            ]
        if skipped:
            self.result.warn(
                "frames",
                f"{skipped} frames have electrodes but no catheter mask: they count as not "
                "labelled for segmentation",
            )


def _slot_name(names: list, slot: int) -> str:
    return str(names[slot]) if slot < len(names) else str(slot + 1)


def import_labels(root: str | Path, annotations: str | None = None) -> LabelImport:
    """Reads the labels of a COCO dataset folder; never raises for what the files contain.

    Args:
        root: the dataset folder, its annotation file, or CVAT's ``annotations/`` folder when
            ``annotations`` names a file in it.
        annotations: the annotation file name inside ``root`` (default: found by layout).
    Returns:
        the labels with every problem found (an empty dataset when the files cannot be read).
    """
    root = Path(root)
    if annotations is None and root.is_file():  # the annotation file itself
        root, annotations = root.parent, root.name
    result = LabelImport(root=dataset_root(root, annotations))
    if annotations is not None:
        files = [root / annotations]
        if not files[0].is_file():
            result.error(str(files[0]), "no such annotation file")
            return result
    else:
        files = annotation_files(root)
        if not files:
            result.error(
                str(root),
                "no COCO annotation file (looked for annotations.json, result.json, "
                "annotations/instances_*.json, annotations/person_keypoints_*.json)",
            )
            return result
    result.files = files
    contents = [(path, _read_json(path, result)) for path in files]
    if result.errors:
        return result
    conventions = {_convention(data) for _, data in contents}
    if len(conventions) > 1:
        result.error(", ".join(map(str, files)), "the files use different coordinate conventions")
        return result
    result.convention = conventions.pop()
    importer = _Importer(result, shift=0.5 if result.convention == PIXEL_CORNER else 0.0)
    for path, data in contents:
        importer.add_images(data, path)
    id_offset = 0
    for path, data in contents:
        importer.add_annotations(data, path, id_offset)
        ids = [a.get("id") for a in data.get("annotations", []) if isinstance(a, dict)]
        id_offset += max((i for i in ids if isinstance(i, int)), default=0)
    result.dataset = importer.finish()
    return result
