"""Reader for the UCL catheter segmentation data set (HDF5; segmentation labels only).

Layout of a data set directory (docs/formats.md, "UCL HDF5")::

    DIR/T1.hdf5          key "test":  (N, H, W, 3) float, the frames (the 3 channels are gray)
    DIR/T1_label.hdf5    key "label": (N, H, W, 2) uint8, channel 0 = catheter mask (non-zero)
    DIR/T2.hdf5 ...

Every ``T*.hdf5`` needs its ``T*_label.hdf5`` with the same N, H, W. Frames are addressed as one
flat sequence in natural file order (T2 before T10), frame order within a file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from cathtrack.data.normalize import normalize_frame
from cathtrack.data.sample import Sample

IMAGE_KEY = "test"
LABEL_KEY = "label"
MASK_CHANNEL = 0


def _h5py():
    try:
        import h5py
    except ImportError as error:
        raise ImportError("reading UCL HDF5 files needs h5py: pip install h5py") from error
    return h5py


class UclReader:
    """Random access to the frames of a UCL HDF5 directory as :class:`Sample` objects.

    Samples carry ``mask`` and ``available = {"segmentation": True, "detection": False}``; the
    image is normalised with :func:`normalize_frame` (native size).

    HDF5 handles are opened lazily in the process that reads and reopened after a fork or
    unpickling, so the reader can be shared with DataLoader workers.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        h5py = _h5py()
        self.root = Path(root)
        image_files = sorted(
            (p for p in self.root.glob("T*.hdf5") if not p.stem.endswith("_label")),
            key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)],
        )
        if not image_files:
            raise FileNotFoundError(f"no UCL frame files T*.hdf5 in {self.root}")
        self.files: list[tuple[Path, Path]] = []
        self._index: list[tuple[int, int]] = []
        for image_path in image_files:
            label_path = image_path.with_name(f"{image_path.stem}_label.hdf5")
            if not label_path.is_file():
                raise FileNotFoundError(f"{image_path}: label file {label_path.name} is missing")
            with h5py.File(image_path, "r") as images, h5py.File(label_path, "r") as labels:
                image_shape = _dataset_shape(images, IMAGE_KEY, image_path)
                label_shape = _dataset_shape(labels, LABEL_KEY, label_path)
            if len(image_shape) != 4 or len(label_shape) != 4 or image_shape[:3] != label_shape[:3]:
                raise ValueError(
                    f"{image_path}: frames {image_shape} and labels {label_shape} must be "
                    "(N, H, W, C) with the same N, H, W"
                )
            file_number = len(self.files)
            self.files.append((image_path, label_path))
            self._index.extend((file_number, frame) for frame in range(image_shape[0]))
        self._handles: dict[int, tuple] = {}
        self._handles_pid = os.getpid()

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range for {len(self)} UCL frames")
        file_number, frame = self._index[index]
        images, labels = self._open(file_number)
        image = normalize_frame(np.asarray(images[IMAGE_KEY][frame]))
        mask = (np.asarray(labels[LABEL_KEY][frame, :, :, MASK_CHANNEL]) > 0).astype(np.uint8)
        return Sample(
            image=image,
            mask=mask,
            available={"segmentation": True, "detection": False},
            name=f"{self.files[file_number][0].stem}/{frame:05d}",
        )

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = {}  # HDF5 handles cannot be pickled; reopened on first use
        return state

    def _open(self, file_number: int) -> tuple:
        if self._handles_pid != os.getpid():  # inherited through fork: not safe to share
            self._handles, self._handles_pid = {}, os.getpid()
        if file_number not in self._handles:
            h5py = _h5py()
            image_path, label_path = self.files[file_number]
            self._handles[file_number] = (h5py.File(image_path, "r"), h5py.File(label_path, "r"))
        return self._handles[file_number]


def _dataset_shape(file, key: str, path: Path) -> tuple[int, ...]:
    if key not in file:
        raise KeyError(f"{path}: no dataset {key!r} (found: {', '.join(file.keys()) or 'none'})")
    return tuple(file[key].shape)
