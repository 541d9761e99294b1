"""torch Datasets that turn every data source into training-ready :class:`Sample` objects.

Each dataset returns Samples whose image is normalised with :func:`normalize_frame` (the rule the
runtime uses at inference), resized to a square ``size`` with all labels mapped along
(:func:`prepare_sample`), then optionally augmented. ``Sample.available`` (the paper's delta)
says which tasks are labelled. Target encoding (heatmaps, size maps) belongs to the training
code, so :func:`collate_samples` keeps a batch as a plain list.

Randomness is a pure function of (seed, epoch, index), never of the worker that happens to load a
sample: results do not depend on ``num_workers``. Call ``set_epoch`` before each epoch to get
fresh augmentations (the epoch is part of the augmentation seed).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from cathtrack.data.augment import Augment, warp_labels
from cathtrack.data.normalize import normalize_frame, resize_frame
from cathtrack.data.sample import Sample


def prepare_sample(sample: Sample, size: int) -> Sample:
    """Normalise the image and resize the sample to ``size`` x ``size`` (stretching, no padding).

    The image is normalised at its native resolution, then resized with :func:`resize_frame`;
    the mask is resampled the same way and thresholded at 0.5 (coverage), points, boxes and
    centerlines are scaled (pixel-centre convention: x' = (x + 0.5) * size / W - 0.5).

    Returns:
        a new Sample: image (size, size) float32 in [0, 1], mask (size, size) uint8 or None.
    """
    image = normalize_frame(sample.image)
    height, width = image.shape
    if sample.mask is not None and sample.mask.shape != (height, width):
        raise ValueError(
            f"{sample.name}: mask shape {sample.mask.shape} != image shape {(height, width)}"
        )
    if (height, width) == (size, size):
        return dataclasses.replace(sample, image=image, available=dict(sample.available))
    scale_x, scale_y = size / width, size / height
    matrix = np.array([[scale_x, 0, 0.5 * scale_x - 0.5], [0, scale_y, 0.5 * scale_y - 0.5]])
    resized = warp_labels(sample, matrix, size, size)
    resized.image = resize_frame(image, size)
    if sample.mask is not None:
        resized.mask = (resize_frame(sample.mask.astype(np.float32), size) >= 0.5).astype(np.uint8)
    return resized


def collate_samples(batch: list[Sample]) -> list[Sample]:
    """DataLoader ``collate_fn`` that keeps the Samples as they are (a list)."""
    return list(batch)


class SampleDataset(Dataset):
    """Map-style dataset over any indexable source of Samples (a reader), prepared and augmented.

    Args:
        reader: ``len()`` and ``reader[i] -> Sample`` (e.g. CocoReader, UclReader, FolderReader).
        size: square output side in pixels.
        augment: applied after resizing, with a generator seeded from (seed, epoch, index).
        seed: seed of the augmentation streams.
    """

    def __init__(
        self, reader: Sequence[Sample], size: int, augment: Augment | None = None, seed: int = 0
    ) -> None:
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.reader = reader
        self.size = size
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of one epoch (call before creating the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> Sample:
        sample = prepare_sample(self.reader[index], self.size)
        if self.augment is not None:
            sample = self.augment(sample, np.random.default_rng([self.seed, self.epoch, index]))
        return sample


class CocoDataset(SampleDataset):
    """A COCO data set of docs/design.md 4.1 (``root/annotations.json`` + ``root/images``)."""

    def __init__(
        self, root: str | os.PathLike, size: int, augment: Augment | None = None, seed: int = 0
    ) -> None:
        from cathtrack.data.coco import CocoReader

        super().__init__(CocoReader(root), size, augment, seed)


class UclDataset(SampleDataset):
    """The UCL HDF5 catheter data set (segmentation only); see :mod:`cathtrack.data.ucl`."""

    def __init__(
        self, root: str | os.PathLike, size: int, augment: Augment | None = None, seed: int = 0
    ) -> None:
        from cathtrack.data.ucl import UclReader  # needs h5py, only for this data set

        super().__init__(UclReader(root), size, augment, seed)


class FolderDataset(SampleDataset):
    """Image/mask folder pairs (segmentation only); see :mod:`cathtrack.data.folders`."""

    def __init__(
        self,
        root: str | os.PathLike,
        size: int,
        augment: Augment | None = None,
        seed: int = 0,
        images_dir: str = "images",
        masks_dir: str = "masks",
        mask_suffix: str = "",
    ) -> None:
        from cathtrack.data.folders import FolderReader

        super().__init__(
            FolderReader(root, images_dir, masks_dir, mask_suffix), size, augment, seed
        )


def frame_seed(seed: int, index: int) -> int:
    """The render seed of synthetic frame ``index`` of stream ``seed`` (a 63-bit integer).

    Mixed through numpy's SeedSequence so that neighbouring (seed, index) pairs give unrelated
    frames: ``render(config, frame_seed(seed, i))`` reproduces frame i of a SyntheticDataset.
    """
    state = np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


class SyntheticDataset:
    """Synthetic fluoroscopy rendered on the fly (no disk), deterministic per (seed, index).

    ``SyntheticDataset(config, length=None)`` is an infinite :class:`IterableDataset`
    (:class:`SyntheticStream`): DataLoader worker w of n renders indices w, w + n, w + 2n, ..., so
    no two workers ever produce the same frame. ``SyntheticDataset(config, length=N)`` is a
    map-style dataset of N frames (:class:`SyntheticFrames`) that gives identical frames for any
    number of workers.

    Args:
        config: a :class:`cathtrack.data.synth.SynthConfig`; frames are ``config.size`` square.
        length: number of frames, or None for an endless stream.
        seed: selects the stream; frame i is ``render(config, frame_seed(seed, i))``, then
            normalised, then augmented with a generator seeded from (seed, epoch, i).
        augment: optional :class:`Augment`.
        cache: keep every rendered frame (before augmentation) in memory, so each is rendered
            once per process rather than once per epoch (~320 kB per 256x256 frame; with
            DataLoader workers, each worker keeps the frames it rendered). Map-style only.
    """

    def __new__(cls, *args, **kwargs):
        if cls is SyntheticDataset:
            length = (
                kwargs["length"] if "length" in kwargs else (args[1] if len(args) > 1 else None)
            )
            cls = SyntheticStream if length is None else SyntheticFrames
        return super().__new__(cls)

    def __init__(
        self,
        config,
        length: int | None = None,
        seed: int = 0,
        augment: Augment | None = None,
        cache: bool = False,
    ) -> None:
        if length is not None and length < 0:
            raise ValueError(f"length must be >= 0 or None, got {length}")
        if cache and length is None:
            raise ValueError("an endless synthetic stream never repeats a frame: nothing to cache")
        self._cache: dict[int, Sample] | None = {} if cache else None
        self.config = config
        self.length = length
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of one epoch (rendered frames stay the same)."""
        self.epoch = epoch

    def frame(self, index: int) -> Sample:
        """Frame ``index`` of this stream, prepared (and augmented if configured)."""
        sample = self._cache.get(index) if self._cache is not None else None
        if sample is None:
            from cathtrack.data.synth import render

            rendered = render(self.config, frame_seed(self.seed, index))
            sample = prepare_sample(rendered, self.config.size)
            if self._cache is not None:
                self._cache[index] = sample
        if self.augment is not None:
            sample = self.augment(sample, np.random.default_rng([self.seed, self.epoch, index]))
        return sample


class SyntheticFrames(SyntheticDataset, Dataset):
    """Map-style synthetic dataset of ``length`` frames (see :class:`SyntheticDataset`)."""

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.length:
            raise IndexError(f"synthetic frame {index} out of range [0, {self.length})")
        return self.frame(index)


class SyntheticStream(SyntheticDataset, IterableDataset):
    """Endless synthetic stream, split across DataLoader workers (see :class:`SyntheticDataset`)."""

    def __iter__(self) -> Iterator[Sample]:
        worker = get_worker_info()
        first, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for index in itertools.count(first, step):
            yield self.frame(index)
