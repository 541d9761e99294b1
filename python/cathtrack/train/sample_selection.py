"""The sample level of a prioritization: which samples, with which weights, enter a task's loss.

The rules of :mod:`cathtrack.train.prioritization`'s strategies: all samples, MDRP's Top-K
(hard or soft) with its :class:`KeepSchedule`, soft and hard assignment, self-paced learning
(their choices are described there).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cathtrack.train.distributed import float_dict_to_tensor, mean_over_ranks
from cathtrack.train.kpi import KAPPA_MIN


@dataclass(frozen=True)
class KeepSchedule:
    """Fraction of samples kept by Top-K at a training step.

    ``initial`` for ``step < warmup_steps``, then linear to ``final`` over ``ramp_steps``, then
    ``final``.
    """

    final: float = 0.7
    warmup_steps: int = 500
    ramp_steps: int = 2000
    initial: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.final <= 1 and 0 < self.initial <= 1):
            raise ValueError(f"kept fractions must be in (0, 1], got {self.initial}, {self.final}")
        if self.warmup_steps < 0 or self.ramp_steps < 0:
            raise ValueError("warmup_steps and ramp_steps must be >= 0")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial
        if self.ramp_steps == 0:
            return self.final
        progress = min(1.0, (step - self.warmup_steps) / self.ramp_steps)
        return self.initial + (self.final - self.initial) * progress


class SampleSelection(ABC):
    """Sample-level rule: (B,) weights w_{t,i} for one task, 0 for unlabelled samples.

    Called with: task name, step, epoch, ``kappa`` (B,) momentum KPIs of the batch,
    ``population`` (P,) momentum KPIs of every labelled sample seen (the Top-K population),
    ``losses`` (B,) detached per-sample losses, ``available`` (B,) bool.
    """

    @abstractmethod
    def __call__(
        self,
        task: str,
        step: int,
        epoch: int,
        kappa: Tensor,
        population: Tensor,
        losses: Tensor,
        available: Tensor,
    ) -> Tensor:
        """(B,) float32 sample weights of one task."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state

    def sync(self) -> None:  # noqa: B027 (a no-op default, not an abstract method)
        """Make the state equal on all DDP ranks (nothing to do for stateless rules)."""


def _difficulty_weights(kappa: Tensor, selected: Tensor, kappa_min: float) -> Tensor:
    """D = 1 / kappa on ``selected`` samples, normalised to mean 1 over them; 0 elsewhere."""
    difficulty = torch.where(selected, 1.0 / kappa.clamp(min=kappa_min), 0.0)
    count = selected.sum()
    return difficulty * count / difficulty.sum() if count > 0 else difficulty


class AllSamples(SampleSelection):
    """Every labelled sample with weight 1 (no sample-level prioritization)."""

    def __call__(self, task, step, epoch, kappa, population, losses, available):
        return available.float()


class TopK(SampleSelection):
    """Keep the samples among the Top-K hardest of the population (MDRP's sample level, eq. 3).

    Args:
        schedule: kept fraction per step.
        soft: False: kept samples get weight 1 (hard assignment); True: kept samples get
            difficulty-proportional weights normalised to mean 1 (Top-K soft assignment).
        kappa_min: floor of kappa in the soft weights.
    """

    def __init__(self, schedule: KeepSchedule, soft: bool = False, kappa_min: float = KAPPA_MIN):
        self.schedule = schedule
        self.soft = soft
        self.kappa_min = kappa_min

    def __call__(self, task, step, epoch, kappa, population, losses, available):
        if population.numel() == 0:
            return available.float()
        # round() first: 0.7 * 10 must give K = 7, not ceil(7.000000000000001) = 8.
        k = max(1, math.ceil(round(self.schedule(step) * population.numel(), 6)))
        threshold = population.kthvalue(k).values
        kept = available & (kappa <= threshold)
        return _difficulty_weights(kappa, kept, self.kappa_min) if self.soft else kept.float()


class SoftAssignment(SampleSelection):
    """All labelled samples, weights proportional to difficulty 1 / kappa (mean 1)."""

    def __init__(self, kappa_min: float = KAPPA_MIN) -> None:
        self.kappa_min = kappa_min

    def __call__(self, task, step, epoch, kappa, population, losses, available):
        return _difficulty_weights(kappa, available, self.kappa_min)


class HardThreshold(SampleSelection):
    """Keep samples whose normalised difficulty 1 - kappa exceeds ``threshold`` (Table 7's
    "Hard Assignment (delta > 0.5)")."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def __call__(self, task, step, epoch, kappa, population, losses, available):
        return (available & (1 - kappa > self.threshold)).float()


class SelfPaced(SampleSelection):
    """Self-paced learning: samples with loss <= lambda_t, lambda_t = lambda0_t growth^epoch.

    Args:
        initial_threshold: lambda0 for every task; None: the median loss of the task's first
            labelled batch.
        growth: factor applied to lambda once per epoch (> 1: harder samples join over time).
    """

    def __init__(
        self, tasks: Sequence[str], initial_threshold: float | None = None, growth: float = 1.1
    ) -> None:
        self.tasks = tuple(tasks)
        self.initial_threshold = initial_threshold
        self.growth = growth
        self.thresholds: dict[str, float] = {}

    def threshold(self, task: str, epoch: int) -> float | None:
        """lambda_t at ``epoch`` (None before the task's first labelled batch)."""
        initial = self.thresholds.get(task)
        return None if initial is None else initial * self.growth**epoch

    def __call__(self, task, step, epoch, kappa, population, losses, available):
        if task not in self.thresholds and bool(available.any()):
            self.thresholds[task] = (
                float(losses[available].median())
                if self.initial_threshold is None
                else float(self.initial_threshold)
            )
        threshold = self.threshold(task, epoch)
        if threshold is None:
            return available.float()
        return (available & (losses <= threshold)).float()

    def state_dict(self) -> dict:
        return {"thresholds": dict(self.thresholds)}

    def load_state_dict(self, state: dict) -> None:
        self.thresholds = dict(state["thresholds"])

    def sync(self) -> None:
        values = float_dict_to_tensor(self.thresholds, self.tasks)
        merged, present = mean_over_ranks(values, ~torch.isnan(values))
        self.thresholds = {
            t: float(v) for t, v, p in zip(self.tasks, merged, present, strict=True) if p
        }
