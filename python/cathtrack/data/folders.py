"""Reader for plain image/mask folder pairs (segmentation labels only).

Layout::

    ROOT/images/<stem>.<ext>     the frames: any format OpenCV reads, 8- or 16-bit, gray or colour
    ROOT/masks/<stem>.<ext>      the catheter mask of the same frame, same size

Images and masks are matched by file stem (the extensions may differ, e.g. x.jpg + x.png). Data
sets that keep both in one folder with a suffix on the masks (``1.png`` + ``1_gt.png``) are read
with ``images_dir == masks_dir`` and ``mask_suffix="_gt"``. A mask pixel is foreground when it is
at least half the mask's maximum value, so 0/1, 0/255 and 0/65535 masks all work and JPEG ringing
does not.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from cathtrack.data.normalize import normalize_frame
from cathtrack.data.sample import Sample

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
_MAX_LISTED = 10


class FolderReader:
    """Random access to image/mask pairs as :class:`Sample` objects, in natural stem order.

    Samples carry ``mask`` (H, W) uint8 {0, 1}, the normalised image (native size) and
    ``available = {"segmentation": True, "detection": False}``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        images_dir: str = "images",
        masks_dir: str = "masks",
        mask_suffix: str = "",
    ) -> None:
        self.root = Path(root)
        image_folder, mask_folder = self.root / images_dir, self.root / masks_dir
        for folder in (image_folder, mask_folder):
            if not folder.is_dir():
                raise FileNotFoundError(f"image/mask folder data set: {folder} is not a directory")
        same_folder = image_folder.resolve() == mask_folder.resolve()
        if same_folder and not mask_suffix:
            raise ValueError("images and masks share a folder: give mask_suffix (e.g. '_gt')")

        masks = _files_by_stem(mask_folder, lambda stem: stem.endswith(mask_suffix))
        masks = {stem[: len(stem) - len(mask_suffix)]: path for stem, path in masks.items()}
        images = _files_by_stem(
            image_folder, lambda stem: not (same_folder and stem.endswith(mask_suffix))
        )
        unmatched = sorted(str(images[s]) for s in images.keys() - masks.keys()) + sorted(
            str(masks[s]) for s in masks.keys() - images.keys()
        )
        if unmatched:
            listed = ", ".join(unmatched[:_MAX_LISTED])
            more = (
                f" and {len(unmatched) - _MAX_LISTED} more" if len(unmatched) > _MAX_LISTED else ""
            )
            raise ValueError(
                f"{len(unmatched)} files without a partner (matched by stem): {listed}{more}"
            )
        if not images:
            raise FileNotFoundError(
                f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {image_folder}"
            )
        stems = sorted(images, key=_natural_key)
        self.pairs: list[tuple[Path, Path]] = [(images[stem], masks[stem]) for stem in stems]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image_path, mask_path = self.pairs[index]
        image = _imread(image_path)
        mask = _imread(mask_path)
        if mask.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"{mask_path}: mask size {mask.shape[:2]} differs from image {image.shape[:2]}"
            )
        if mask.ndim == 3:
            mask = mask.max(axis=2)
        peak = mask.max()
        binary = (mask >= peak / 2) if peak > 0 else np.zeros(mask.shape, bool)
        return Sample(
            image=normalize_frame(image),
            mask=binary.astype(np.uint8),
            available={"segmentation": True, "detection": False},
            name=image_path.stem,
        )


def _files_by_stem(folder: Path, accept) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if (
            path.suffix.lower() not in IMAGE_SUFFIXES
            or path.name.startswith(".")
            or not accept(path.stem)
        ):
            continue
        if path.stem in found:
            raise ValueError(
                f"two files with the stem {path.stem!r}: {found[path.stem]} and {path}"
            )
        found[path.stem] = path
    return found


def _natural_key(stem: str) -> list:
    """Sort key that puts "frame2" before "frame10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", stem)]


def _imread(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image
