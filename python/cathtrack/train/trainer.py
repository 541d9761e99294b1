"""The training loop: data by step, AdamW, schedule, AMP, prioritization, validation, checkpoints.

Determinism. Everything a step consumes is a function of (seed, stage, step): the batch of step s
of a stage is taken from the epoch permutation ``randperm(N, seed(seed, stage, epoch))`` at
positions [s B_g, (s + 1) B_g) of that epoch (B_g = batch size x processes; rank r takes the r-th
slice; the last incomplete batch of an epoch is dropped), and augmentation is seeded by
(dataset seed, epoch, index) inside the datasets. An endless synthetic stream gives step s the
frames s B_g ... (s + 1) B_g - 1. ``--resume`` therefore continues with exactly the batches an
uninterrupted run would see; with the model, optimizer, schedule, grad scaler, prioritization and
RNG states restored, a resumed CPU run ends with bit-identical weights.

Stages run one after the other from the previous stage's weights with a fresh optimizer, schedule
and prioritization; ``step`` in logs and checkpoints counts across stages.

Run directory::

    config.yaml                   the resolved config
    train_log.csv, val_log.csv    (cathtrack.train.logs), tensorboard/
    checkpoints/last/, best/      model.safetensors + model.json (cathtrack.checkpoint),
                                  optimizer.pt, scheduler.pt, scaler.pt, rng.pt,
                                  prioritization.pt, difficulty.pt (torch.save of tensors and
                                  plain containers, read with weights_only=True),
                                  trainer_state.json
    plots/*.png                   (cathtrack.train.plots), summary.json

DDP: started by ``torchrun`` (the RANK / WORLD_SIZE / LOCAL_RANK variables), the same code runs
DistributedDataParallel with NCCL on CUDA or gloo on CPU; the prioritization is synced after every
step; only rank 0 validates, logs and writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from cathtrack.checkpoint import load_model, save_model
from cathtrack.data.augment import Augment
from cathtrack.data.datasets import (
    CocoDataset,
    FolderDataset,
    SyntheticDataset,
    SyntheticStream,
    UclDataset,
)
from cathtrack.data.sample import TASKS, Sample
from cathtrack.data.synth import preset
from cathtrack.metrics import evaluate
from cathtrack.model import CathNet, build_model
from cathtrack.pipeline import DecodeSettings, decode
from cathtrack.train.config import (
    DataSource,
    PrioritizationConfig,
    ScheduleConfig,
    Stage,
    TrainConfig,
    changed_keys,
    config_hash,
    resolve_stages,
    to_dict,
    to_yaml,
)
from cathtrack.train.kpi import batch_kpis
from cathtrack.train.logs import RunLogger
from cathtrack.train.losses import task_losses
from cathtrack.train.prioritization import Prioritization, TopK, build_prioritization
from cathtrack.train.targets import collate_batch

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
# Strategies whose Top-K schedule the trainer fits to the stage length (prioritization.py).
SCHEDULED_TOPK = ("mdrp", "topk_hard", "topk_soft")
# The difficulty history keeps at most this many samples (evenly spaced ids) per record.
HISTORY_SAMPLES = 2048
VALIDATION_METRICS = (
    "ap",
    "ap50",
    "f1_2px",
    "precision_2px",
    "recall_2px",
    "mae_px",
    "mean_j",
    "dice",
)


# --------------------------------------------------------------------------- devices and DDP


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str) -> Distributed:
    """Joins the process group ``torchrun`` describes in the environment (no-op without it).

    NCCL when the run uses CUDA, gloo otherwise (CPU DDP, e.g. for tests).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    context = Distributed(
        int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0"))
    )
    if not dist.is_initialized():
        uses_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
        dist.init_process_group("nccl" if uses_cuda else "gloo")
    return context


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA (this process's GPU), else MPS, else CPU; an explicit name must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device cuda requested but torch sees no CUDA GPU")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device mps requested but the MPS backend is not available")
    return torch.device(name)


# --------------------------------------------------------------------------- data


def build_dataset(source: DataSource, size: int, augment: Augment | None, seed: int) -> Dataset:
    """The dataset of a :class:`DataSource` at ``size`` x ``size`` (``augment`` if enabled)."""
    augment = augment if source.augment else None
    if source.kind == "synthetic":
        # YAML gives lists where SynthConfig's ranges are tuples.
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in source.synth.items()}
        config = preset(source.preset, **{**fields, "size": size})
        return SyntheticDataset(config, length=source.length, seed=source.seed, augment=augment)
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
    """Items ``(epoch, index)`` -> ``(index, Sample)``, so batches carry their dataset indices.

    The epoch travels with the index: ``set_epoch`` is applied in whichever process loads the
    sample, so augmentation does not depend on when DataLoader workers were started.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, item: tuple[int, int]) -> tuple[int, Sample]:
        epoch, index = item
        self.dataset.set_epoch(epoch)
        if isinstance(self.dataset, SyntheticStream):
            return index, self.dataset.frame(index)
        return index, self.dataset[index]


def collate_indexed(items: list[tuple[int, Sample]]) -> dict:
    """DataLoader ``collate_fn``: (index, Sample) pairs -> :func:`collate_batch` tensors."""
    return collate_batch([sample for _, sample in items], [index for index, _ in items])


def _mix_seed(*values: int) -> int:
    return int(np.random.SeedSequence(list(values)).generate_state(1, np.uint32)[0])


class StepBatches(Sampler):
    """Batch indices as a function of (seed, stage, step): see the module docstring.

    Args:
        num_samples: dataset length; None for an endless stream.
        batch_size: samples per step and process.
        seed: run seed.
        stage: stage index (each stage draws its own permutations).
        start_step, end_step: the stage-local steps to yield, [start, end).
        distributed: this process's rank and the number of processes.
    """

    def __init__(
        self,
        num_samples: int | None,
        batch_size: int,
        seed: int,
        stage: int,
        start_step: int,
        end_step: int,
        distributed: Distributed = Distributed(),
    ) -> None:
        self.num_samples = num_samples
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

    def batch(self, step: int) -> list[tuple[int, int]]:
        """(epoch, dataset index) of this process's samples at a stage-local step."""
        offset = self.rank * self.batch_size
        if self.num_samples is None:
            first = step * self.global_batch + offset
            return [(0, first + j) for j in range(self.batch_size)]
        epoch = self.epoch(step)
        if self._permutation is None or self._permutation[0] != epoch:
            generator = torch.Generator().manual_seed(_mix_seed(self.seed, self.stage, epoch))
            self._permutation = (epoch, torch.randperm(self.num_samples, generator=generator))
        first = (step % self.steps_per_epoch) * self.global_batch + offset
        indices = self._permutation[1][first : first + self.batch_size].tolist()
        return [(epoch, index) for index in indices]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.end_step):
            yield self.batch(step)

    def __len__(self) -> int:
        return self.end_step - self.start_step


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


# --------------------------------------------------------------------------- schedule, strategy


def learning_rate_factor(step: int, total_steps: int, schedule: ScheduleConfig) -> float:
    """Multiplier of the base learning rate at a stage-local step (warm-up, then cosine/step)."""
    if step < schedule.warmup_steps:
        progress = step / schedule.warmup_steps
        return schedule.warmup_start_ratio + (1 - schedule.warmup_start_ratio) * progress
    if schedule.name == "step":
        passed = sum(step >= fraction * total_steps for fraction in schedule.milestones)
        return schedule.gamma**passed
    span = max(1, total_steps - schedule.warmup_steps)
    progress = min(1.0, (step - schedule.warmup_steps) / span)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return schedule.min_lr_ratio + (1 - schedule.min_lr_ratio) * cosine


def build_strategy(
    config: PrioritizationConfig, num_samples: int | None, total_steps: int
) -> Prioritization:
    """The stage's prioritization; Top-K warm-up and ramp are fitted to the stage length."""
    params = dict(config.params)
    if config.name in SCHEDULED_TOPK:
        params.setdefault("warmup_steps", round(config.warmup_fraction * total_steps))
        params.setdefault("ramp_steps", round(config.ramp_fraction * total_steps))
    return build_prioritization(
        config.name,
        num_samples=num_samples,
        kpi_ema=config.kpi_ema,
        sample_momentum=config.sample_momentum,
        kappa_min=config.kappa_min,
        **params,
    )


# --------------------------------------------------------------------------- precision


def autocast_dtype(device: torch.device, amp: bool, cpu_bf16: bool) -> torch.dtype | None:
    """The autocast dtype of a run: float16 on CUDA with ``amp``, bfloat16 on the CPU with
    ``cpu_bf16``, else None (float32).

    Raises:
        ValueError: ``cpu_bf16`` on a CPU without native bfloat16 (emulated, it would be slower
            than float32).
    """
    if device.type == "cuda":
        return torch.float16 if amp else None
    if device.type == "cpu" and cpu_bf16:
        from cathtrack.export import cpu_has_native_bfloat16

        if not cpu_has_native_bfloat16():
            raise ValueError(
                "cpu_bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); "
                "set cpu_bf16: false"
            )
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast for ``dtype``, or a no-op for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# --------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(
    model: CathNet,
    samples: list[Sample],
    device: torch.device,
    batch_size: int,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Validation metrics (cathtrack.metrics.evaluate) + ``mean_kpi`` = mean(AP, mean J).

    ``dtype``: the autocast dtype of training (:func:`autocast_dtype`), None for float32.

    Returns:
        dict with :data:`VALIDATION_METRICS` and ``mean_kpi`` (the paper's mean KPI, a fraction;
        a metric the validation set has no labels for is left out of the mean).
    """
    was_training = model.training
    model.eval()
    predictions = []
    settings = DecodeSettings(catheters=False)
    for first in range(0, len(samples), batch_size):
        chunk = samples[first : first + batch_size]
        images = torch.from_numpy(np.stack([s.image for s in chunk])[:, None]).to(device)
        with autocast(device, dtype):
            segmentation, heatmap, size = (output.float() for output in model(images))
        for i in range(len(chunk)):
            predictions.append(decode(segmentation[i], heatmap[i], size[i], settings))
    model.train(was_training)
    metrics = evaluate(samples, predictions)
    result = {name: float(metrics[name]) for name in VALIDATION_METRICS}
    present = [result[name] for name in ("ap", "mean_j") if math.isfinite(result[name])]
    result["mean_kpi"] = float(np.mean(present)) if present else math.nan
    return result


# --------------------------------------------------------------------------- difficulty history


class DifficultyHistory:
    """Snapshots of the per-sample difficulty table over training (the paper's Fig. 3).

    Each record holds, for up to :data:`HISTORY_SAMPLES` fixed samples, the momentum KPI kappa~
    per task (difficulty D = 1 / kappa~), whether the sample was seen yet, and the Top-K
    threshold on kappa~ at that step (NaN for strategies without Top-K).
    """

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: list[Tensor] = []
        self.seen: list[Tensor] = []
        self.thresholds: list[Tensor] = []
        self.sample_ids: Tensor | None = None

    def record(self, step: int, strategy: Prioritization, local_step: int) -> None:
        memory = strategy.memory
        if memory.num_samples is None or (self.steps and self.steps[-1] == step):
            return
        if self.sample_ids is None or int(self.sample_ids.max()) >= memory.num_samples:
            count = min(HISTORY_SAMPLES, memory.num_samples)
            self.sample_ids = torch.linspace(0, memory.num_samples - 1, count).round().long()
        thresholds = torch.full((len(memory.tasks),), math.nan)
        selection = strategy.sample_selection
        if isinstance(selection, TopK):
            for row in range(len(memory.tasks)):
                population = memory.values[row][memory.seen[row]]
                if population.numel():
                    k = max(
                        1, math.ceil(round(selection.schedule(local_step) * len(population), 6))
                    )
                    thresholds[row] = population.kthvalue(k).values
        self.steps.append(step)
        self.values.append(memory.values[:, self.sample_ids].clone())
        self.seen.append(memory.seen[:, self.sample_ids].clone())
        self.thresholds.append(thresholds)

    def state_dict(self) -> dict:
        if not self.steps:
            return {"steps": torch.zeros(0, dtype=torch.long)}
        return {
            "tasks": list(TASKS),
            "steps": torch.tensor(self.steps),
            "sample_ids": self.sample_ids.clone(),
            "values": torch.stack(self.values),
            "seen": torch.stack(self.seen),
            "thresholds": torch.stack(self.thresholds),
        }

    def load_state_dict(self, state: dict) -> None:
        self.__init__()
        if len(state["steps"]) == 0:
            return
        self.steps = state["steps"].tolist()
        self.sample_ids = state["sample_ids"]
        self.values = list(state["values"])
        self.seen = list(state["seen"])
        self.thresholds = list(state["thresholds"])


# --------------------------------------------------------------------------- checkpoints


def rng_state() -> dict:
    """torch (CPU, CUDA), Python and numpy global RNG states as tensors and plain values."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {
                "key": numpy_state["key"].numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )


def load_state(path: Path) -> dict:
    """A ``*.pt`` checkpoint part: tensors and plain containers only (weights_only=True)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def checkpoint_dir(path: Path) -> Path:
    """The checkpoint directory meant by ``--resume PATH`` (a run dir or a checkpoint dir)."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    candidate = path / CHECKPOINTS / "last"
    if (candidate / STATE_FILE).is_file():
        return candidate
    raise FileNotFoundError(f"{path}: no checkpoint ({STATE_FILE}) in it or in {candidate}")


def run_dir_of(checkpoint: Path) -> Path:
    """RUN_DIR of RUN_DIR/checkpoints/<name>."""
    return checkpoint.parent.parent


# --------------------------------------------------------------------------- the trainer


@dataclass
class TrainerState:
    """Progress counters kept in ``trainer_state.json``."""

    step: int = 0
    epoch: int = 0
    stage: str = ""
    best_metric: float = -math.inf
    best_step: int = -1
    last_metrics: dict | None = None


class Trainer:
    """Runs the stages of a :class:`TrainConfig` into ``run_dir``.

    Args:
        config: the run's configuration.
        run_dir: output directory (created).
        resume: a checkpoint directory to continue from (see :func:`checkpoint_dir`).
        progress: show a tqdm progress bar (rank 0 only).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        resume: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.config_hash = config_hash(config)
        self.distributed = init_distributed(config.device)
        self.device = select_device(config.device, self.distributed.local_rank)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.autocast_dtype = autocast_dtype(self.device, config.amp, config.cpu_bf16)
        self.progress = progress and self.distributed.is_main
        self.stages = resolve_stages(config)
        augment = config.data.augment
        self.train_sets = [
            build_dataset(stage.train, config.data.size, augment, config.seed)
            for stage in self.stages
        ]
        global_batch = config.batch_size * self.distributed.world_size
        self.stage_lengths = [
            stage_steps(stage, dataset_length(data), global_batch)
            for stage, data in zip(self.stages, self.train_sets, strict=True)
        ]
        self.stage_starts = np.cumsum([0, *self.stage_lengths]).tolist()
        self.total_steps = self.stage_starts[-1]

        torch.manual_seed(config.seed)  # identical initial weights in every process and run
        self.model = build_model(config.model).to(self.device)
        self.state = TrainerState()
        self.history = DifficultyHistory()
        self.resume_from = checkpoint_dir(Path(resume)) if resume is not None else None
        if self.resume_from is not None:
            self._restore_progress(self.resume_from)
        if self.distributed.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(to_yaml(config))
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.distributed.is_main,
            resume_step=self.state.step if self.resume_from is not None else None,
        )
        self.val_samples: list[Sample] | None = None
        self.strategy: Prioritization | None = None  # the running stage's, for inspection

    @property
    def network(self) -> CathNet:
        return self.model.module if isinstance(self.model, DistributedDataParallel) else self.model

    # ----------------------------------------------------------------- resume

    def _restore_progress(self, directory: Path) -> None:
        saved = json.loads((directory / STATE_FILE).read_text())
        if saved["config_hash"] != self.config_hash:
            saved_config = run_dir_of(directory) / "config.yaml"
            changed = (
                ", ".join(
                    changed_keys(yaml.safe_load(saved_config.read_text()), to_dict(self.config))
                )
                if saved_config.is_file()
                else f"config hash {saved['config_hash'][:12]} -> {self.config_hash[:12]}"
            )
            warnings.warn(f"resuming with a changed config ({changed})", stacklevel=2)
        if saved["step"] > self.total_steps:
            raise ValueError(
                f"the checkpoint is at step {saved['step']}, past this config's "
                f"{self.total_steps} steps"
            )
        model, _ = load_model(directory, self.device)
        self.network.load_state_dict(model.state_dict())
        self.state = TrainerState(
            step=saved["step"],
            epoch=saved["epoch"],
            stage=saved["stage"],
            best_metric=saved["best_metric"] if saved["best_metric"] is not None else -math.inf,
            best_step=saved["best_step"],
            last_metrics=saved.get("last_metrics"),
        )
        self.history.load_state_dict(load_state(directory / "difficulty.pt"))
        set_rng_state(load_state(directory / "rng.pt"))

    # ----------------------------------------------------------------- the loop

    def fit(self, stop_at: int | None = None) -> dict:
        """Trains every stage to its end; returns the summary also written to summary.json.

        Args:
            stop_at: stop after this global step with a resumable ``last`` checkpoint (for
                time-limited jobs); no final validation, plots or summary.json then.
        """
        started = time.perf_counter()
        start_step = self.state.step
        end_step = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        if self.distributed.enabled:
            self.model = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if self.config.val_at_start and start_step == 0:
            self._validate(step=0, stage=self.stages[0], epoch=0)
        bar = tqdm(
            total=self.total_steps,
            initial=start_step,
            disable=not self.progress,
            dynamic_ncols=True,
            unit="step",
        )
        try:
            for stage in self.stages:
                if self.state.step < min(self.stage_starts[stage.index + 1], end_step):
                    self._run_stage(stage, bar, end_step)
        finally:
            bar.close()
        steps_per_second = (self.state.step - start_step) / (time.perf_counter() - started)
        if self.state.step < self.total_steps:
            self.logger.close()
            summary = {"steps": self.state.step, "stopped": True}
        else:
            summary = self._finish(steps_per_second)
        if self.distributed.enabled:
            dist.barrier()
        return summary

    def _run_stage(self, stage: Stage, bar: tqdm, end_step: int) -> None:
        """Runs a stage from the current step to its end or to the global ``end_step``."""
        config = self.config
        start = self.stage_starts[stage.index]
        length = self.stage_lengths[stage.index]
        local_start = self.state.step - start
        dataset = self.train_sets[stage.index]
        num_samples = dataset_length(dataset)
        sampler = StepBatches(
            num_samples,
            config.batch_size,
            config.seed,
            stage.index,
            local_start,
            min(length, end_step - start),
            self.distributed,
        )
        loader = DataLoader(
            IndexedDataset(dataset),
            batch_sampler=sampler,
            collate_fn=collate_indexed,
            num_workers=config.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        optimizer = torch.optim.AdamW(
            self.network.parameters(),
            lr=config.optimizer.lr,
            betas=config.optimizer.betas,
            weight_decay=config.optimizer.weight_decay,
            eps=config.optimizer.eps,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(step, length, config.schedule)
        )
        # Gradient scaling guards float16's narrow exponent; bfloat16 has float32's.
        scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.autocast_dtype == torch.float16
        )
        strategy = self.strategy = build_strategy(stage.prioritization, num_samples, length)
        if local_start > 0:  # resuming inside this stage: restore its optimisation state
            directory = self.resume_from
            optimizer.load_state_dict(load_state(directory / "optimizer.pt"))
            scheduler.load_state_dict(load_state(directory / "scheduler.pt"))
            scaler.load_state_dict(load_state(directory / "scaler.pt"))
            strategy.load_state_dict(load_state(directory / "prioritization.pt"))
        bar.set_description(stage.name)
        shared = self.network.last_shared_parameters() if strategy.needs_shared_parameters else None
        parameters = [p for p in self.network.parameters() if p.requires_grad]
        self.model.train()
        for local_step, batch in enumerate(loader, start=local_start):
            tick = time.perf_counter()
            epoch = sampler.epoch(local_step)
            batch = to_device(batch, self.device)
            with autocast(self.device, self.autocast_dtype):
                raw_outputs = self.model(batch["image"])
            outputs = tuple(output.float() for output in raw_outputs)
            losses, loss_parts = task_losses(outputs, batch, config.size_weight)
            kpis = batch_kpis(outputs, batch)
            result = strategy.weights(
                local_step,
                epoch,
                batch["sample_id"],
                losses,
                kpis,
                batch["available"],
                shared_parameters=shared,
            )
            strategy.sync()
            if not scaler.is_enabled() and not torch.isfinite(result.total):
                raise FloatingPointError(
                    f"the loss is {float(result.total)} at step {self.state.step}; lower "
                    "optimizer.lr or set grad_clip"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(result.total).backward()
            scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip or math.inf)
            scaler.step(optimizer)
            scaler.update()
            learning_rate = optimizer.param_groups[0]["lr"]
            scheduler.step()
            self.state.step += 1
            self.state.epoch, self.state.stage = epoch, stage.name
            step = self.state.step
            row = {
                "step": step,
                "epoch": epoch,
                "stage": stage.name,
                "lr": learning_rate,
                "loss": float(result.total.detach()),
                "grad_norm": float(grad_norm),
                **result.logs,
                **{name: float(value.detach().mean()) for name, value in loss_parts.items()},
                "seconds": time.perf_counter() - tick,
            }
            to_tensorboard = step % config.log_every == 0
            self.logger.log_train(row, to_tensorboard)
            bar.update(1)
            if to_tensorboard:
                bar.set_postfix_str(_progress_text(row), refresh=False)
            epoch_done = (
                sampler.steps_per_epoch is not None
                and (local_step + 1) % sampler.steps_per_epoch == 0
            )
            last_of_stage = local_step + 1 == length
            if epoch_done:
                self.history.record(step, strategy, local_step + 1)
            if config.val_every and step % config.val_every == 0:
                self.history.record(step, strategy, local_step + 1)
                self._validate(step, stage, epoch)
            if step % config.checkpoint_every == 0 or last_of_stage or step == end_step:
                self._save(
                    "last",
                    stage,
                    {
                        "optimizer.pt": optimizer.state_dict(),
                        "scheduler.pt": scheduler.state_dict(),
                        "scaler.pt": scaler.state_dict(),
                        "prioritization.pt": strategy.state_dict(),
                        "rng.pt": rng_state(),
                        "difficulty.pt": self.history.state_dict(),
                    },
                )

    def _validate(self, step: int, stage: Stage, epoch: int) -> None:
        """Validation on rank 0; saves ``best`` when the mean KPI improves (from step 1 on)."""
        if not self.distributed.is_main:
            return
        if self.val_samples is None:
            data = build_dataset(
                self.config.data.val, self.config.data.size, None, self.config.seed
            )
            self.val_samples = [data[i] for i in range(len(data))]
        metrics = validate(
            self.network,
            self.val_samples,
            self.device,
            self.config.batch_size,
            self.autocast_dtype,
        )
        self.state.last_metrics = {"step": step, **metrics}
        improved = step > 0 and metrics["mean_kpi"] > self.state.best_metric
        if improved:
            self.state.best_metric = metrics["mean_kpi"]
            self.state.best_step = step
        self.logger.log_val(
            {"step": step, "epoch": epoch, "stage": stage.name, **metrics, "best": int(improved)}
        )
        if improved:
            self._save("best", stage)

    # ----------------------------------------------------------------- saving

    def _training_facts(self, stage: Stage) -> dict:
        return {
            "config_hash": self.config_hash,
            "step": self.state.step,
            "stage": stage.name,
            "strategy": stage.prioritization.name,
            "train_data": stage.train.describe(),
            "metrics": self.state.last_metrics,
            "best_step": self.state.best_step,
        }

    def _state_json(self) -> dict:
        best = self.state.best_metric
        return {
            "step": self.state.step,
            "epoch": self.state.epoch,
            "stage": self.state.stage,
            "best_metric": best if math.isfinite(best) else None,
            "best_step": self.state.best_step,
            "config_hash": self.config_hash,
            "last_metrics": self.state.last_metrics,
        }

    def _save(self, name: str, stage: Stage, resumable: dict[str, object] | None = None) -> None:
        """A checkpoint, written to a temporary directory and then renamed (rank 0 only).

        Every checkpoint holds the weights, their metadata and the trainer state; ``resumable``
        adds the ``.pt`` files needed to continue training (``last``; ``best`` is for inference).
        """
        if not self.distributed.is_main:
            return
        directory = self._fresh_dir(name)
        save_model(
            directory,
            self.network,
            input_size=self.config.data.size,
            training=self._training_facts(stage),
        )
        for file_name, state in (resumable or {}).items():
            torch.save(state, directory / file_name)
        (directory / STATE_FILE).write_text(json.dumps(self._state_json(), indent=2))
        self._commit(directory, name)

    def _fresh_dir(self, name: str) -> Path:
        directory = self.run_dir / CHECKPOINTS / f".{name}.tmp"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return directory

    def _commit(self, directory: Path, name: str) -> None:
        final = self.run_dir / CHECKPOINTS / name
        shutil.rmtree(final, ignore_errors=True)
        directory.rename(final)

    def _finish(self, steps_per_second: float) -> dict:
        """Final validation (unless just done), plots and summary.json on rank 0."""
        summary = {
            "config_hash": self.config_hash,
            "steps": self.state.step,
            "steps_per_second": steps_per_second,
        }
        if not self.distributed.is_main:
            return summary
        last = self.state.last_metrics
        if last is None or last["step"] != self.state.step:
            self._validate(self.state.step, self.stages[-1], self.state.epoch)
        self.logger.close()
        summary.update(
            best_step=self.state.best_step,
            best_mean_kpi=self.state.best_metric if math.isfinite(self.state.best_metric) else None,
            last=self.state.last_metrics,
            device=str(self.device),
            processes=self.distributed.world_size,
            config=to_dict(self.config),
        )
        # The last checkpoint's trainer state must know the final validation too.
        last_dir = self.run_dir / CHECKPOINTS / "last"
        if (last_dir / STATE_FILE).is_file():
            (last_dir / STATE_FILE).write_text(json.dumps(self._state_json(), indent=2))
        from cathtrack.train.plots import plot_run

        plot_run(self.run_dir)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary


def _progress_text(row: dict) -> str:
    """Short tqdm postfix: loss, then kappa_bar and kept fraction per task (seg, det)."""
    kappa = "/".join(f"{row[f'kappa_bar/{t}']:.2f}" for t in TASKS)
    kept = "/".join(f"{row[f'kept/{t}']:.2f}" for t in TASKS)
    return f"loss={row['loss']:.3f} kappa_bar={kappa} kept={kept}"


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Trains ``config`` into ``run_dir`` (continuing from ``resume``); returns the summary."""
    return Trainer(config, run_dir, resume, progress).fit()
