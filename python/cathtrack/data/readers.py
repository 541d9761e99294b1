"""Open a labelled dataset folder of any supported format by looking at what it holds."""

from __future__ import annotations

from pathlib import Path

from cathtrack.data.coco import CocoReader
from cathtrack.data.folders import FolderReader
from cathtrack.data.labels import annotation_files
from cathtrack.data.ucl import UclReader


def open_reader(path: str | Path):
    """A random-access reader of :class:`~cathtrack.data.sample.Sample` for ``path``.

    - ``annotations.json``, ``result.json`` or ``annotations/instances_*.json`` inside (or ``path``
      is a ``.json`` file): COCO (docs/design.md 4.1, CVAT, Label Studio; docs/labelling.md);
    - ``T*.hdf5`` files inside: UCL HDF5 (segmentation only);
    - ``images/`` and ``masks/`` folders inside: image/mask pairs (segmentation only).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: nothing recognisable in it (the message lists what was looked for).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix == ".json":
        return CocoReader(path.parent, annotations=path.name)
    if annotation_files(path):  # annotations.json, Label Studio's result.json, CVAT's annotations/
        return CocoReader(path)
    if any(path.glob("T*.hdf5")):
        return UclReader(path)
    if (path / "images").is_dir() and (path / "masks").is_dir():
        return FolderReader(path)
    raise ValueError(
        f"{path}: not a dataset (looked for annotations.json, result.json, annotations/, T*.hdf5, "
        "or images/ + masks/)"
    )
