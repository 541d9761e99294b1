"""Dataset check before any run: is every label and file of a dataset usable?

:func:`check_dataset` reads a dataset the way training and evaluation will (COCO through the label
import of :mod:`cathtrack.data.labels`, image/mask folders, UCL HDF5), decodes every image and
mask file once, and returns a summary and one :class:`~cathtrack.data.labels.Problem` per problem.
An *error* makes the dataset unusable (a run would die on it or learn from wrong labels): a file
that cannot be read, a missing or undecodable image, an image whose size differs from its entry,
duplicate image or annotation ids, an annotation on an unknown image or category, a malformed RLE
or polygon, a NaN or out-of-image electrode, a bad ``sequences.json``. A *warning* does not:
labels that are not used, frames without any annotation, sizes taken from the files, unknown
catheter types. ``cathtrack data check``, ``cathtrack-train`` and ``cathtrack eval`` all use it.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from cathtrack.data.labels import (
    CATHETER,
    ELECTRODE,
    LabelImport,
    Problem,
    annotation_files,
    import_labels,
)

KINDS = ("coco", "folder", "ucl")
_LISTED = 5  # frame names quoted in one line


@dataclass
class DataCheck:
    """The outcome of :func:`check_dataset`.

    Attributes:
        path: the dataset as given.
        kind: ``coco``, ``folder``, ``ucl``, or ``unknown`` when nothing was recognised.
        summary: lines describing what the dataset holds.
        problems: one per problem, errors first.
    """

    path: Path
    kind: str
    summary: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def usable(self) -> bool:
        return not self.errors

    def counts(self) -> str:
        errors, warnings = len(self.errors), len(self.warnings)
        return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"

    def verdict(self) -> str:
        """The last line of ``cathtrack data check``."""
        return f"{self.path}: {'usable' if self.usable else 'not usable'} ({self.counts()})"

    def refusal(self) -> str:
        """The one line a run refuses an unusable dataset with: the verdict and its first error.
        The other problems are :meth:`other_lines`."""
        first = self.errors[0]
        return f"{self.path}: not usable ({self.counts()}); {first.where}: {first.message}"

    def other_lines(self) -> list[str]:
        """Every problem line but the first error (which :meth:`refusal` carries)."""
        first = self.errors[0] if self.errors else None
        return [p.line for p in self.problems if p is not first]


def check_dataset(
    path: str | Path,
    kind: str | None = None,
    *,
    images_dir: str = "images",
    masks_dir: str = "masks",
    mask_suffix: str = "",
    workers: int | None = None,
) -> DataCheck:
    """Checks a dataset folder (or a COCO ``.json`` file) and summarises it.

    Args:
        path: the dataset.
        kind: ``coco``, ``folder`` or ``ucl``; None: recognised from what the folder holds.
        images_dir, masks_dir, mask_suffix: the layout of a ``folder`` dataset.
        workers: threads decoding the files (default: up to 4, one per core).
    Returns:
        the summary and the problems; never raises for what the files contain.
    """
    path = Path(path)
    if kind is None:
        kind = _recognise(path, images_dir, masks_dir)
    report = DataCheck(path=path, kind=kind)
    workers = workers or min(4, os.cpu_count() or 1)
    if not path.exists():
        report.problems.append(Problem("error", str(path), "no such file or folder"))
    elif kind == "coco":
        _check_coco(report, workers)
    elif kind == "folder":
        _check_folder(report, images_dir, masks_dir, mask_suffix, workers)
    elif kind == "ucl":
        _check_ucl(report)
    else:
        report.problems.append(
            Problem(
                "error",
                str(path),
                "not a dataset (looked for a COCO annotation file, T*.hdf5, or "
                f"{images_dir}/ + {masks_dir}/)",
            )
        )
    report.problems.sort(key=lambda p: p.severity != "error")  # errors first, order kept
    return report


def _recognise(path: Path, images_dir: str, masks_dir: str) -> str:
    """The kind :func:`cathtrack.data.readers.open_reader` would read ``path`` as."""
    if path.is_file() and path.suffix == ".json":
        return "coco"
    if not path.is_dir():
        return "unknown"
    if annotation_files(path):
        return "coco"
    if any(path.glob("T*.hdf5")):
        return "ucl"
    if (path / images_dir).is_dir() and (path / masks_dir).is_dir():
        return "folder"
    return "unknown"


def _decode(path: Path) -> tuple[int, int, bool] | str:
    """(height, width, any pixel non-zero) of an image file, or why it cannot be used."""
    try:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:  # OpenCV refuses some malformed headers by raising
        return f"cannot be read as an image ({str(error).strip().splitlines()[-1]})"
    if pixels is None:
        return "cannot be read as an image"
    if pixels.ndim == 3 and pixels.shape[2] not in (1, 3, 4):
        return f"has {pixels.shape[2]} channels (1, 3 or 4 are read)"
    return int(pixels.shape[0]), int(pixels.shape[1]), bool(pixels.any())


# --- COCO ------------------------------------------------------------------------------


def _check_coco(report: DataCheck, workers: int) -> None:
    from cathtrack.data.coco import read_sequences

    path = report.path
    labels = import_labels(path)
    report.problems += labels.problems
    unreadable = {str(f) for f in labels.files} & {p.where for p in labels.errors}
    if not labels.files or unreadable:
        return  # no annotation file that could be read: nothing more to say
    images = labels.dataset["images"]
    _check_image_files(report, labels, workers)
    try:
        sequences, _ = read_sequences(labels.root, images)
    except ValueError as error:
        report.problems.append(Problem("error", "sequences.json", str(error)))
        sequences = []
    for what, count in sorted(labels.not_used.items()):
        report.problems.append(Problem("warning", "labels", f"not used: {count} {what}"))
    _warn_empty_frames(report, labels)
    report.summary = _coco_summary(labels, sequences)


def _check_image_files(report: DataCheck, labels: LabelImport, workers: int) -> None:
    images = labels.dataset["images"]
    jobs = []
    for image in images:
        where = f"image {image['id']} ({image['file_name']})"
        if image["path"] is None:
            report.problems.append(
                Problem("error", where, f"file not found under {labels.root} (nor in images/)")
            )
            continue
        jobs.append((where, image, image["path"]))
        if "mask_file" in image:
            jobs.append((where, image, image["mask_file"]))
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(pool.map(lambda job: _decode(labels.root / job[2]), jobs))
    for (where, image, relative), outcome in zip(jobs, decoded, strict=True):
        if isinstance(outcome, str):
            report.problems.append(Problem("error", where, f"{relative} {outcome}"))
        elif image["width"] is not None and outcome[:2] != (image["height"], image["width"]):
            report.problems.append(
                Problem(
                    "error",
                    where,
                    f"{relative} is {outcome[1]}x{outcome[0]} but the labels say "
                    f"{image['width']}x{image['height']}",
                )
            )


def _warn_empty_frames(report: DataCheck, labels: LabelImport) -> None:
    images = labels.dataset["images"]
    # A frame the file declares labelled and empty is a deliberate negative; an export that does
    # not say also lists the frames nobody labelled, and those would teach "nothing here".
    empty = [i["file_name"] for i in _empty_frames(labels) if i["id"] in labels.inferred]
    if empty:
        report.problems.append(
            Problem(
                "warning",
                "frames",
                f"{len(empty)} labelled frames have no catheter and no electrode "
                f"({_names(empty)}): they train as frames with nothing to find; remove frames "
                "that were not labelled",
            )
        )
    unlabelled = [i["file_name"] for i in images if not i["annotated"]]
    if unlabelled:
        report.problems.append(
            Problem(
                "warning",
                "frames",
                f"{len(unlabelled)} frames are labelled for no task ({_names(unlabelled)}): "
                "nothing is learnt or scored on them",
            )
        )


def _empty_frames(labels: LabelImport) -> list[dict]:
    """Frames labelled for some task that hold no catheter, no electrode and no mask file."""
    annotated = {a["image_id"] for a in labels.dataset["annotations"]}
    return [
        i
        for i in labels.dataset["images"]
        if i["annotated"] and i["id"] not in annotated and "mask_file" not in i
    ]


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _coco_summary(labels: LabelImport, sequences: list) -> list[str]:
    images, anns = labels.dataset["images"], labels.dataset["annotations"]
    catheters = [a for a in anns if a["category_id"] == CATHETER]
    electrodes = [a for a in anns if a["category_id"] == ELECTRODE]
    targets = Counter(a["attributes"]["type"] for a in catheters if a["attributes"]["target"])
    by_type = ", ".join(f"{t} {n}" for t, n in targets.most_common()) or "none"
    others = sum(1 for a in catheters if not a["attributes"]["target"])
    files = ", ".join(str(f.relative_to(labels.root)) for f in labels.files)
    per_task = ", ".join(
        f"{task} {sum(task in i['annotated'] for i in images)}"
        for task in ("segmentation", "detection")
    )
    lines = [
        f"{labels.root}: COCO ({files}; {labels.convention} coordinates)",
        f"frames: {len(images)} (labelled for {per_task}; {len(_empty_frames(labels))} with "
        "nothing to find)" + (f", {len(sequences)} sequences" if sequences else ""),
        f"catheters: {sum(targets.values())} targets ({by_type})"
        + (f", {others} not targets" if others else ""),
        f"electrodes: {len(electrodes)} ("
        f"{sum(1 for e in electrodes if e['bbox'][2] > 0 and e['bbox'][3] > 0)} with a box, "
        f"{sum(1 for e in electrodes if e['catheter_id'] is not None)} on a catheter)",
    ]
    masks = sum(1 for i in images if "mask_file" in i)
    if masks:
        lines.append(f"mask files: {masks}")
    if labels.absent_points:
        lines.append(f"keypoints marked not labelled (v = 0): {labels.absent_points}")
    return lines


# --- folders and UCL -------------------------------------------------------------------


def _check_folder(report, images_dir, masks_dir, mask_suffix, workers) -> None:
    from cathtrack.data.folders import FolderReader

    try:
        reader = FolderReader(report.path, images_dir, masks_dir, mask_suffix)
    except (FileNotFoundError, ValueError) as error:
        report.problems.append(Problem("error", str(report.path), str(error)))
        return
    files = [path for pair in reader.pairs for path in pair]
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(pool.map(_decode, files))
    outcome = dict(zip(files, decoded, strict=True))
    empty = []
    for image_path, mask_path in reader.pairs:
        image, mask = outcome[image_path], outcome[mask_path]
        for file, result in ((image_path, image), (mask_path, mask)):
            if isinstance(result, str):
                report.problems.append(Problem("error", str(file), result))
        if isinstance(image, tuple) and isinstance(mask, tuple) and image[:2] != mask[:2]:
            report.problems.append(
                Problem(
                    "error",
                    str(mask_path),
                    f"mask is {mask[1]}x{mask[0]}, its image {image[1]}x{image[0]}",
                )
            )
        elif isinstance(mask, tuple) and not mask[2]:
            empty.append(mask_path.name)
    if empty:
        report.problems.append(
            Problem(
                "warning",
                "masks",
                f"{len(empty)} masks are empty ({_names(empty)}): they train as frames without a "
                "catheter",
            )
        )
    report.summary = [
        f"{report.path}: image/mask folders ({images_dir}/, {masks_dir}/"
        + (f", mask suffix {mask_suffix!r}" if mask_suffix else "")
        + ")",
        f"frames: {len(reader.pairs)} (labelled for segmentation {len(reader.pairs)}, detection 0)",
    ]


def _check_ucl(report: DataCheck) -> None:
    try:
        from cathtrack.data.ucl import UclReader

        reader = UclReader(report.path)
    except (ImportError, OSError, ValueError) as error:
        report.problems.append(Problem("error", str(report.path), str(error).splitlines()[0]))
        return
    report.summary = [
        f"{report.path}: UCL HDF5 ({len(reader.files)} files)",
        f"frames: {len(reader)} (labelled for segmentation {len(reader)}, detection 0)",
    ]
