"""Real X-ray images as the anatomy layer (``SynthConfig.background_dir``)."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
_OPAQUE_LEVEL = 8 / 255  # darker than this over an area = outside the field (shutter, II border)
EXCLUDE_FILE = "background_exclude.txt"
"""Optional list, inside a background folder, of images not to use (e.g. ones that show a catheter
outside any label: as a background its pixels would be taught as "not catheter")."""


def excluded_names(folder: Path) -> set[str]:
    """File names listed in ``folder/background_exclude.txt`` (one per line, ``#`` comments)."""
    path = folder / EXCLUDE_FILE
    if not path.is_file():
        return set()
    names = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {name for name in names if name}


@functools.lru_cache(maxsize=4)
def load_backgrounds(folder: str) -> tuple[np.ndarray, ...]:
    """All images of ``folder`` as (H, W) float32 in [0, 1], display convention.

    Files named ``*_gt.*`` (ground-truth masks beside the angiograms) and files listed in
    ``background_exclude.txt`` are skipped. Cached per process: a dataset run reads the folder once.
    """
    excluded = excluded_names(Path(folder))
    paths = sorted(
        p
        for p in Path(folder).iterdir()
        if p.suffix.lower() in _IMAGE_SUFFIXES
        and not p.stem.endswith("_gt")
        and p.name not in excluded
    )
    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
        if image is not None:
            images.append(image.astype(np.float32) / np.iinfo(image.dtype).max)
    if not images:
        raise ValueError(f"no background images in {folder}")
    return tuple(images)


def background_layer(
    rng: np.random.Generator, images: tuple[np.ndarray, ...], size: int, span: float
) -> tuple[np.ndarray, np.ndarray]:
    """A random crop / flip / zoom of one real image, as line integrals.

    Clinical displays are log-processed, so grey levels are taken as proportional to the line
    integral: the image's 1st..99th percentile grey range maps to ``span``.

    Returns:
        line_integrals: (size, size) float32, larger = denser.
        opaque: (size, size) bool, pixels outside the real image's field (black borders).
    """
    image = images[rng.integers(len(images))]
    height, width = image.shape
    side = int(min(height, width) * rng.uniform(0.6, 1.0))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = image[top : top + side, left : left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_LINEAR)
    opaque = cv2.morphologyEx(
        (crop < _OPAQUE_LEVEL).astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)
    ).astype(bool)
    inside = crop[~opaque] if (~opaque).any() else crop.ravel()
    low, high = np.percentile(inside, (1.0, 99.0))
    line_integrals = (high - crop) / max(high - low, 1e-3) * span
    return line_integrals.astype(np.float32), opaque
