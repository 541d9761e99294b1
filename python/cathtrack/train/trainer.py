"""The training loop: the stages' steps, validation, checkpoints and the run's summary.

Determinism. Everything a step consumes is a function of (seed, stage, step): its batch
(:mod:`cathtrack.train.batches`) and the augmentation of every sample in it. ``--resume``
therefore continues with exactly the batches an uninterrupted run would see; with the model,
optimizer, schedule, grad scaler, prioritization and RNG states restored, a resumed CPU run ends
with bit-identical weights.

Stages run one after the other from the previous stage's weights with a fresh optimizer, schedule
and prioritization (:mod:`cathtrack.train.optimization`); ``step`` in logs and checkpoints counts
across stages.

Run directory::

    config.yaml                   the resolved config
    train_log.csv, val_log.csv    (cathtrack.train.logs), tensorboard/
    checkpoints/last, best        (cathtrack.train.checkpoints) model.safetensors + model.json
                                  (cathtrack.checkpoint), trainer_state.json; ``last`` also
                                  optimizer.pt, scheduler.pt, scaler.pt, rng.pt,
                                  prioritization.pt, difficulty.pt (torch.save of tensors and
                                  plain containers, read with weights_only=True)
    plots/*.png                   (cathtrack.train.plots), summary.json

Every file the trainer rewrites is replaced atomically (:func:`cathtrack.checkpoint.atomic_file`)
and every checkpoint is committed whole (:func:`cathtrack.train.checkpoints.write_checkpoint`);
the CSV logs are appended to.

DDP: started by ``torchrun`` (:mod:`cathtrack.train.distributed`), the same code runs
DistributedDataParallel with NCCL on CUDA or gloo on CPU; the prioritization is synced after every
step; only rank 0 validates, logs and writes files.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cathtrack.checkpoint import load_model, remove_temporaries, save_model, write_text_atomic
from cathtrack.coordinates import OUTPUT_STRIDE
from cathtrack.data.sample import TASKS, Sample
from cathtrack.device import autocast, autocast_dtype, training_device
from cathtrack.model import CathNet, build_model
from cathtrack.train.batches import (
    IndexedDataset,
    StepBatches,
    build_dataset,
    collate_indexed,
    crop_steps,
    dataset_length,
    stage_steps,
    to_device,
)
from cathtrack.train.checkpoints import (
    CHECKPOINTS,
    STATE_FILE,
    checkpoint_dir,
    committed,
    load_state,
    recover,
    run_dir_of,
    save_state,
    write_checkpoint,
)
from cathtrack.train.config import (
    ConfigError,
    Stage,
    TrainConfig,
    changed_keys,
    config_hash,
    resolve_stages,
    to_dict,
    to_yaml,
)
from cathtrack.train.distributed import init_distributed
from cathtrack.train.history import DifficultyHistory
from cathtrack.train.kpi import batch_kpis
from cathtrack.train.logs import RunLogger
from cathtrack.train.losses import task_losses
from cathtrack.train.optimization import StageOptimizer
from cathtrack.train.prioritization import Prioritization
from cathtrack.train.run_state import TrainerState, rng_state, set_rng_state
from cathtrack.train.validation import validate


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
        self.device = training_device(config.device, self.distributed.local_rank)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.autocast_dtype = autocast_dtype(self.device, config.amp, config.cpu_bf16)
        self.progress = progress and self.distributed.is_main
        self.stages = resolve_stages(config)
        self._plan_stages()

        torch.manual_seed(config.seed)  # identical initial weights in every process and run
        self.model = build_model(config.model).to(self.device)
        if config.init is not None and resume is None:
            init_weights(self.model, config.init)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.state = TrainerState()
        self.history = DifficultyHistory()
        if self.distributed.is_main:  # what a killed run left half-written goes first
            recover(self.run_dir / CHECKPOINTS)
            remove_temporaries(self.run_dir)
            remove_temporaries(self.run_dir / "plots")
        # The version directory, not the link: its files stay while later commits re-point it.
        self.resume_from = checkpoint_dir(Path(resume)).resolve() if resume is not None else None
        if self.resume_from is not None:
            self._restore_progress(self.resume_from)
        if self.distributed.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.run_dir / "config.yaml", to_yaml(config))
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.distributed.is_main,
            resume_step=self.state.step if self.resume_from is not None else None,
        )
        self.val_samples: list[Sample] | None = None
        self.strategy: Prioritization | None = None  # the running stage's, for inspection

    def _plan_stages(self) -> None:
        """The training set, length and first global step of every stage."""
        config = self.config
        self.train_sets: list[Dataset] = [
            build_dataset(
                stage.train,
                config.data.size,
                config.data.augment,
                config.seed,
                cache=config.data.cache_frames,
            )
            for stage in self.stages
        ]
        global_batch = config.batch_size * self.distributed.world_size
        self.stage_lengths = [
            stage_steps(stage, dataset_length(data), global_batch)
            for stage, data in zip(self.stages, self.train_sets, strict=True)
        ]
        self.stage_starts = np.cumsum([0, *self.stage_lengths]).tolist()
        self.total_steps = self.stage_starts[-1]

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
        self.state = TrainerState.from_json(saved)
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
        start = self.stage_starts[stage.index]
        length = self.stage_lengths[stage.index]
        local_start = self.state.step - start
        dataset = self.train_sets[stage.index]
        num_samples = dataset_length(dataset)
        sampler = StepBatches(
            num_samples,
            self.config.batch_size,
            self.config.seed,
            stage.index,
            local_start,
            min(length, end_step - start),
            self.distributed,
            crop_steps(length, self.config.data.crop, self.config.data.crop_fraction),
        )
        optimization = self._stage_optimizer(stage, length, num_samples, local_start)
        bar.set_description(stage.name)
        strategy = optimization.strategy
        shared = self.network.last_shared_parameters() if strategy.needs_shared_parameters else None
        parameters = [p for p in self.network.parameters() if p.requires_grad]
        self.model.train()
        for local_step, batch in enumerate(self._loader(dataset, sampler), start=local_start):
            tick = time.perf_counter()
            epoch = sampler.epoch(local_step)
            values = self._train_step(batch, local_step, epoch, optimization, parameters, shared)
            self.state.step += 1
            self.state.epoch, self.state.stage = epoch, stage.name
            row = {"step": self.state.step, "epoch": epoch, "stage": stage.name, **values}
            self._log_step({**row, "seconds": time.perf_counter() - tick}, bar)
            epoch_done = (
                sampler.steps_per_epoch is not None
                and (local_step + 1) % sampler.steps_per_epoch == 0
            )
            self._after_step(stage, local_step + 1, epoch_done, optimization, end_step)

    def _stage_optimizer(
        self, stage: Stage, length: int, num_samples: int | None, local_start: int
    ) -> StageOptimizer:
        """A fresh optimisation for the stage, restored from ``resume`` when resuming inside it."""
        optimization = StageOptimizer.build(
            self.network,
            self.config,
            stage,
            length,
            num_samples,
            self.device,
            self.autocast_dtype,
        )
        self.strategy = optimization.strategy
        if local_start > 0:  # resuming inside this stage: restore its optimisation state
            optimization.load_state_files(self.resume_from)
        return optimization

    def _loader(self, dataset: Dataset, sampler: StepBatches) -> DataLoader:
        # Targets on the model's heatmap grid (CathNet.output_stride: 4, 2 or 1).
        stride = getattr(self.network, "output_stride", OUTPUT_STRIDE)
        return DataLoader(
            IndexedDataset(dataset, self.config.data.crop),
            batch_sampler=sampler,
            collate_fn=functools.partial(collate_indexed, stride=stride),
            num_workers=self.config.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def _train_step(
        self,
        batch: dict,
        local_step: int,
        epoch: int,
        optimization: StageOptimizer,
        parameters: list[Tensor],
        shared: list[Tensor] | None,
    ) -> dict[str, float]:
        """Forward, losses, KPIs, prioritization and update of one step; returns its log values
        (learning rate, loss, gradient norm, the prioritization's logs and the loss parts)."""
        batch = to_device(batch, self.device)
        if self.config.channels_last:
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.autocast_dtype):
            raw_outputs = self.model(batch["image"])
        outputs = tuple(output.float() for output in raw_outputs)
        losses, loss_parts = task_losses(outputs, batch, self.config.size_weight)
        kpis = batch_kpis(outputs, batch)
        strategy = optimization.strategy
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
        if not optimization.scaler.is_enabled() and not torch.isfinite(result.total):
            raise FloatingPointError(
                f"the loss is {float(result.total)} at step {self.state.step}; lower "
                "optimizer.lr or set grad_clip"
            )
        learning_rate, grad_norm = optimization.step(
            result.total, parameters, self.config.grad_clip
        )
        return {
            "lr": learning_rate,
            "loss": float(result.total.detach()),
            "grad_norm": float(grad_norm),
            **result.logs,
            **{name: float(value.detach().mean()) for name, value in loss_parts.items()},
        }

    def _log_step(self, row: dict, bar: tqdm) -> None:
        """The step's CSV row (TensorBoard and the progress bar's text every ``log_every``)."""
        to_tensorboard = row["step"] % self.config.log_every == 0
        self.logger.log_train(row, to_tensorboard)
        bar.update(1)
        if to_tensorboard:
            bar.set_postfix_str(_progress_text(row), refresh=False)

    def _after_step(
        self,
        stage: Stage,
        steps_done: int,
        epoch_done: bool,
        optimization: StageOptimizer,
        end_step: int,
    ) -> None:
        """Difficulty history, validation and the ``last`` checkpoint when they are due.

        ``steps_done``: steps of the stage done so far; ``epoch_done``: this step ended an epoch.
        """
        config, step = self.config, self.state.step
        if epoch_done:
            self.history.record(step, optimization.strategy, steps_done)
        if config.val_every and step % config.val_every == 0:
            self.history.record(step, optimization.strategy, steps_done)
            self._validate(step, stage, self.state.epoch)
        last_of_stage = steps_done == self.stage_lengths[stage.index]
        if step % config.checkpoint_every == 0 or last_of_stage or step == end_step:
            resumable = {
                **optimization.state_files(),
                "rng.pt": rng_state(),
                "difficulty.pt": self.history.state_dict(),
            }
            self._save("last", stage, resumable)

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

    def _state_text(self) -> str:
        return json.dumps(self.state.to_json(self.config_hash), indent=2)

    def _save(self, name: str, stage: Stage, resumable: dict[str, object] | None = None) -> None:
        """Commits checkpoint ``name`` whole or not at all (rank 0 only; :func:`write_checkpoint`).

        Every checkpoint holds the weights, their metadata and the trainer state; ``resumable``
        adds the ``.pt`` files needed to continue training (``last``; ``best`` is for inference).
        """
        if not self.distributed.is_main:
            return
        training = self._training_facts(stage)
        state = self._state_text()

        def write(directory: Path) -> None:
            save_model(directory, self.network, input_size=self.config.data.size, training=training)
            for file_name, part in (resumable or {}).items():
                save_state(directory / file_name, part)
            write_text_atomic(directory / STATE_FILE, state)  # last: the version is complete

        write_checkpoint(self.run_dir / CHECKPOINTS, name, write)

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
        last_dir = committed(self.run_dir / CHECKPOINTS, "last")
        if last_dir is not None:
            write_text_atomic(last_dir / STATE_FILE, self._state_text())
        from cathtrack.train.plots import plot_run

        plot_run(self.run_dir)
        write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary


def init_weights(model: CathNet, path: str | Path) -> None:
    """Loads the weights of the model file or checkpoint ``path`` into ``model`` (config ``init``).

    Raises ConfigError when the file is missing or its architecture differs from ``model``'s,
    naming the fields that differ.
    """
    try:
        source, _ = load_model(path, "cpu")
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"init: cannot load {path}: {error}") from error
    ours, theirs = dataclasses.asdict(model.config), dataclasses.asdict(source.config)
    differing = [f"{k} {theirs[k]!r} (config: {ours[k]!r})" for k in ours if ours[k] != theirs[k]]
    if differing:
        raise ConfigError(
            f"init: {path} has another architecture than the config's model: "
            + ", ".join(differing)
        )
    model.load_state_dict(source.state_dict())


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
