"""Training batches as a function of (seed, stage, step), and the datasets they come from.

The batch of stage-local step s is taken from the epoch permutation ``randperm(N, seed(seed,
stage, epoch))`` at positions [s B_g, (s + 1) B_g) of that epoch (B_g = batch size x processes;
rank r takes the r-th slice; the last incomplete batch of an epoch is dropped); augmentation is
seeded by (dataset seed, epoch, index) inside the datasets. An endless synthetic stream gives
step s the frames s B_g ... (s + 1) B_g - 1. During the first ``crop_steps`` steps of a stage
every sample is a random crop whose position is seeded by (seed, stage, step, slot). A resumed run
therefore sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from cathtrack.coordinates import OUTPUT_STRIDE
from cathtrack.data.augment import Augment, random_crop
from cathtrack.data.datasets import (
    CocoDataset,
    FolderDataset,
    SyntheticDataset,
    SyntheticStream,
    UclDataset,
)
from cathtrack.data.sample import Sample
from cathtrack.data.synth import preset
from cathtrack.train.config import DataSource, Stage
from cathtrack.train.distributed import SINGLE_PROCESS, Distributed
from cathtrack.train.targets import collate_batch


def build_dataset(
    source: DataSource, size: int, augment: Augment | None, seed: int, cache: bool = False
) -> Dataset:
    """The dataset of a :class:`DataSource` at ``size`` x ``size`` (``augment`` if enabled).

    ``cache``: keep rendered frames of a fixed-length synthetic set in memory (ignored for
    other sources).
    """
    augment = augment if source.augment else None
    if source.kind == "synthetic":
        # YAML gives lists where SynthConfig's ranges are tuples.
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in source.synth.items()}
        config = preset(source.preset, **{**fields, "size": size})
        return SyntheticDataset(
            config,
            length=source.length,
            seed=source.seed,
            augment=augment,
            cache=cache and source.length is not None,
        )
    if source.kind == "coco":
        return CocoDataset(source.path, size, augment, seed)
    if source.kind == "ucl":
        return UclDataset(source.path, size, augment, seed)
    return FolderDataset(
        source.path,
        size,
        augment,
        seed,
        images_dir=source.images_dir,
        masks_dir=source.masks_dir,
        mask_suffix=source.mask_suffix,
    )


def dataset_length(dataset: Dataset) -> int | None:
    """Number of samples; None for an endless stream."""
    return None if isinstance(dataset, SyntheticStream) else len(dataset)


class IndexedDataset(Dataset):
    """Items ``(epoch, index, crop_seed)`` -> ``(index, Sample)``, so batches carry their indices.

    The epoch travels with the index: ``set_epoch`` is applied in whichever process loads the
    sample, so augmentation does not depend on when DataLoader workers were started.
    ``crop_seed`` (None: the whole frame) places a random ``crop`` x ``crop`` window, taken
    after augmentation.
    """

    def __init__(self, dataset: Dataset, crop: int | None = None) -> None:
        self.dataset = dataset
        self.crop = crop

    def __getitem__(self, item: tuple[int, int, int | None]) -> tuple[int, Sample]:
        epoch, index, crop_seed = item
        self.dataset.set_epoch(epoch)
        if isinstance(self.dataset, SyntheticStream):
            sample = self.dataset.frame(index)
        else:
            sample = self.dataset[index]
        if crop_seed is not None and self.crop is not None:
            sample = random_crop(sample, self.crop, np.random.default_rng(crop_seed))
        return index, sample


def collate_indexed(items: list[tuple[int, Sample]], stride: int = OUTPUT_STRIDE) -> dict:
    """DataLoader ``collate_fn``: (index, Sample) pairs -> :func:`collate_batch` tensors.

    ``stride``: the model's heatmap stride; bind it with ``functools.partial(collate_indexed,
    stride=...)`` (picklable, so it works in DataLoader worker processes).
    """
    return collate_batch(
        [sample for _, sample in items], [index for index, _ in items], stride=stride
    )


def _mix_seed(*values: int) -> int:
    return int(np.random.SeedSequence(list(values)).generate_state(1, np.uint32)[0])


class StepBatches(Sampler):
    """Batch indices as a function of (seed, stage, step) (see the module docstring).

    Args:
        num_samples: dataset length; None for an endless stream.
        batch_size: samples per step and process.
        seed: run seed.
        stage: stage index (each stage draws its own permutations).
        start_step, end_step: the stage-local steps to yield, [start, end).
        distributed: this process's rank and the number of processes.
        crop_steps: the stage-local steps before this one give every item a crop seed (the
            samples are cropped); later steps give None (whole frames).
    """

    def __init__(
        self,
        num_samples: int | None,
        batch_size: int,
        seed: int,
        stage: int,
        start_step: int,
        end_step: int,
        distributed: Distributed = SINGLE_PROCESS,
        crop_steps: int = 0,
    ) -> None:
        self.num_samples = num_samples
        self.crop_steps = crop_steps
        self.batch_size = batch_size
        self.global_batch = batch_size * distributed.world_size
        self.rank = distributed.rank
        self.seed = seed
        self.stage = stage
        self.start_step = start_step
        self.end_step = end_step
        if num_samples is not None and num_samples < self.global_batch:
            raise ValueError(
                f"the training set has {num_samples} samples, fewer than one global batch "
                f"({self.global_batch})"
            )
        self._permutation: tuple[int, Tensor] | None = None

    @property
    def steps_per_epoch(self) -> int | None:
        return None if self.num_samples is None else self.num_samples // self.global_batch

    def epoch(self, step: int) -> int:
        """Epoch of a stage-local step (0 for an endless stream)."""
        return 0 if self.num_samples is None else step // self.steps_per_epoch

    def batch(self, step: int) -> list[tuple[int, int, int | None]]:
        """(epoch, dataset index, crop seed or None) of this process's samples at a stage-local
        step."""
        offset = self.rank * self.batch_size
        if self.num_samples is None:
            first = step * self.global_batch + offset
            epoch, indices = 0, [first + j for j in range(self.batch_size)]
        else:
            epoch = self.epoch(step)
            if self._permutation is None or self._permutation[0] != epoch:
                generator = torch.Generator().manual_seed(_mix_seed(self.seed, self.stage, epoch))
                self._permutation = (epoch, torch.randperm(self.num_samples, generator=generator))
            first = (step % self.steps_per_epoch) * self.global_batch + offset
            indices = self._permutation[1][first : first + self.batch_size].tolist()
        if step >= self.crop_steps:
            return [(epoch, index, None) for index in indices]
        return [
            (epoch, index, _mix_seed(self.seed, self.stage, step, offset + slot))
            for slot, index in enumerate(indices)
        ]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.end_step):
            yield self.batch(step)

    def __len__(self) -> int:
        return self.end_step - self.start_step


def crop_steps(length: int, crop: int | None, crop_fraction: float) -> int:
    """Stage-local steps that train on crops: the first ``crop_fraction`` of ``length``."""
    return 0 if crop is None else int(round(length * crop_fraction))


def stage_steps(stage: Stage, num_samples: int | None, global_batch: int) -> int:
    """Optimisation steps of a stage (``epochs`` x full batches per epoch, or ``steps``)."""
    if stage.steps is not None:
        return stage.steps
    return stage.epochs * (num_samples // global_batch)


def to_device(batch: dict, device: torch.device) -> dict:
    """Moves every tensor of a collated batch (including the ``available`` dict) to ``device``."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, dict):
            moved[key] = {k: v.to(device, non_blocking=True) for k, v in value.items()}
        else:
            moved[key] = value.to(device, non_blocking=True)
    return moved
