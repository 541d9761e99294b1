"""Multi-level dynamic resource prioritization (MDRP, paper section 2.2) and its baselines.

One :class:`Prioritization` turns the per-sample task losses, KPIs and label availability of a
batch into the total loss. It is a task-level rule (how much each task's loss counts) combined
with a sample-level rule (which samples, with which weights, enter each task's loss)::

    kappa_bar_t <- alpha kappa_t + (1 - alpha) kappa_bar_t              task KPI, EMA per step
    L_t   = (1 / B) sum_i w_{t,i} L_t(i)                                 eq. 1 (B = batch size)
    L_tot = sum_t W_t L_t                                                eq. 4 / 6

w_{t,i} is 0 where sample i has no label for task t (the paper's availability delta) and
otherwise comes from the sample rule; W_t comes from the task rule. ``build_prioritization(name)``
assembles the named strategies:

=====================  ==========================  ================================================
name                   task level W_t              sample level w_{t,i} (on labelled samples)
=====================  ==========================  ================================================
mdrp (= topk_hard)     1 / kappa_bar_t             1 if i is in the Top-K hardest, else 0
topk_soft              1 / kappa_bar_t             difficulty-proportional weights inside Top-K
soft_assignment        1 / kappa_bar_t             difficulty-proportional weights, all samples
hard_threshold         1 / kappa_bar_t             1 if 1 - kappa_i > threshold (0.5)
fixed_percent_hard     1 / kappa_bar_t             1 for a fixed fraction of hardest from step 0
single_det/single_seg  1 for one task, 0 other     1
constant               fixed weights               1
dtp                    -(1-kappa_bar)^g log kb     1
gradnorm               learned (GradNorm)          1
self_paced             1                           1 if L_t(i) <= lambda, lambda grows per epoch
=====================  ==========================  ================================================

Paper tables -> names:

- Table 3: Single Task Learning Detection -> ``single_det``, Segmentation -> ``single_seg``;
  Self-Paced [54] -> ``self_paced``; DTP [26] -> ``dtp``; Ours -> ``mdrp``.
- Table 4: DTP -> ``dtp``; Ours w/ Soft Assignment -> ``soft_assignment``, w/ Hard Assignment ->
  ``hard_threshold``, w/ Top^K Soft -> ``topk_soft``, w/ Top^K Hard -> ``mdrp``.
- Table 5: "kappa_d = a, kappa_s = b" -> ``constant`` with ``weights={"detection": a,
  "segmentation": b}``. The table names the constants kappa, which in eq. 6 would make them
  inverse weights; its numbers say otherwise (AP rises and mean J falls as "kappa_d" grows), so we
  read them as loss weights. GradNorm [55] -> ``gradnorm``; Ours -> ``mdrp``.
- Table 7 (sample selection, all with MDRP's task level: its Top^K Hard row has exactly the
  numbers of Ours): Soft Assignment -> ``soft_assignment``; Hard Assignment (delta > 0.5) ->
  ``hard_threshold``; 30/50/70 % Hard Samples -> ``fixed_percent_hard`` with ``fraction`` 0.3/0.5/
  0.7; Top^K Soft -> ``topk_soft``; Top^K Hard -> ``topk_hard``, the same strategy as ``mdrp``.

Choices the paper leaves open (ours):

- Defaults: alpha (``kpi_ema``) = 0.1 per step (the task weights follow roughly the last 10
  batches); sample momentum m = 0.7 per visit, i.e. per epoch (half-life of about 2 epochs: smooth
  enough for Fig. 3's "momentum update", short enough to forget the untrained first epoch).
- kappa_bar starts at the first observed batch KPI (no bias towards an arbitrary prior) and is
  clamped to ``kappa_min`` = 0.05 before 1 / kappa_bar (weights stay <= 20). A batch without labels
  for a task does not update that task's kappa_bar.
- Sample difficulty is per task: D_t(i) = 1 / kappa~_{t,i}, where kappa~ is the sample's KPI kept
  with momentum m across its visits (epochs), kappa~ <- m kappa~ + (1 - m) kappa, first visit
  kappa~ = kappa. The momentum runs on kappa (bounded) rather than on 1/kappa so that one bad
  visit cannot dominate the memory. A sample can be easy to segment and hard to detect; per-task
  difficulty lets each task keep its own hardest samples, and it respects delta for free.
- Top-K is taken over the dataset, as the paper writes (and its Fig. 3 draws as one threshold on
  difficulty): the threshold is the K-th smallest kappa~ among all samples seen so far that have
  labels for the task, K = ceil(keep x count); batch samples at or below it are kept (ties at the
  threshold are all kept). The kept fraction of one batch therefore varies around ``keep``.
  Without a memory (``num_samples=None``, e.g. an endless synthetic stream whose frames never
  repeat) the batch itself is the population and kappa~ = kappa.
- K follows :class:`KeepSchedule`: keep everything for ``warmup_steps`` (the KPIs of an untrained
  network say nothing about difficulty), then lower the kept fraction linearly to ``keep`` = 0.7
  over ``ramp_steps`` (the paper's best: 70 %), then hold it.
- Soft weights are D normalised to mean 1 over the samples they cover, so soft and hard variants
  give losses of the same scale.
- Self-paced (Kumar et al. 2010, used per task): lambda_t starts at the median loss of the first
  labelled batch (unless given) and is multiplied by ``growth`` = 1.1 each epoch.
- GradNorm (Chen et al. 2018): weights learned by Adam (lr 0.025) on sum_t |w_t G_t - mean(G)
  r_t^alpha|, alpha = 1.5, G_t the gradient norm of L_t on the last shared layer
  (``CathNet.last_shared_parameters()``), renormalised to sum to the number of tasks. A step in
  which some task has no labelled sample leaves the weights unchanged.

DDP: every rank updates its own copy from its own batch; :meth:`Prioritization.sync` (call it
after each :meth:`~Prioritization.weights`, on every rank) averages kappa_bar, merges the memory
entries written since the last sync (averaging entries two ranks wrote) and averages the learned
GradNorm weights and self-paced thresholds, so every rank holds the same state.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from cathtrack.data.sample import TASKS
from cathtrack.train.losses import weighted_batch_mean

KAPPA_MIN = 0.05


@dataclass
class PrioritizationOutput:
    """What one step of a prioritization gives the trainer.

    Attributes:
        total: scalar loss to back-propagate, sum_t W_t L_t.
        task_losses: task -> L_t (eq. 1), scalar in the autograd graph.
        task_weights: task -> W_t.
        sample_weights: task -> (B,) float32 w_{t,i} on the CPU (0 = not trained on).
        logs: ``kappa_bar/<task>``, ``kappa/<task>`` (batch mean over labelled samples),
            ``weight/<task>``, ``kept/<task>`` (fraction of labelled samples with w > 0),
            ``loss/<task>``; NaN where a task had no labelled sample yet.
    """

    total: Tensor
    task_losses: dict[str, Tensor]
    task_weights: dict[str, float]
    sample_weights: dict[str, Tensor]
    logs: dict[str, float]


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


# --------------------------------------------------------------------------- distributed helpers


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum of ``tensor`` over all ranks (on the GPU for NCCL, which cannot reduce CPU tensors)."""
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    reduced = tensor.to(device=device, dtype=torch.float64)
    dist.all_reduce(reduced)
    return reduced.to(device=tensor.device, dtype=tensor.dtype)


def _mean_over_ranks(values: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over the ranks where ``present``; returns (mean, present on any rank)."""
    sums = _all_reduce_sum(torch.where(present, values, 0.0))
    counts = _all_reduce_sum(present.to(values.dtype))
    return torch.where(counts > 0, sums / counts.clamp(min=1), values), counts > 0


def _float_dict_to_tensor(values: Mapping[str, float | None], tasks: Sequence[str]) -> Tensor:
    return torch.tensor([math.nan if values.get(t) is None else values[t] for t in tasks])


# --------------------------------------------------------------------------- task level


class TaskWeighting(ABC):
    """Task-level rule: task -> W_t from the task KPIs (and, for GradNorm, the gradients)."""

    needs_shared_parameters = False

    @abstractmethod
    def __call__(
        self,
        kappa_bar: dict[str, float | None],
        task_losses: dict[str, Tensor],
        shared_parameters: Sequence[Tensor] | None,
    ) -> dict[str, float]:
        """Task weights from kappa_bar (None before a task's first KPI) and the L_t."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state

    def sync(self) -> None:  # noqa: B027 (a no-op default, not an abstract method)
        """Make the state equal on all DDP ranks (nothing to do for stateless rules)."""


class InverseKpiWeighting(TaskWeighting):
    """MDRP's task level (eq. 6): W_t = 1 / max(kappa_bar_t, kappa_min); 1 before any KPI."""

    def __init__(self, kappa_min: float = KAPPA_MIN) -> None:
        self.kappa_min = kappa_min

    def __call__(self, kappa_bar, task_losses, shared_parameters):
        return {
            t: 1.0 if kappa_bar[t] is None else 1.0 / max(kappa_bar[t], self.kappa_min)
            for t in task_losses
        }


class ConstantWeighting(TaskWeighting):
    """Fixed W_t (Table 5's constant rows; single-task training with a 0 weight)."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = dict(weights)

    def __call__(self, kappa_bar, task_losses, shared_parameters):
        missing = set(task_losses) - set(self.weights)
        if missing:
            raise ValueError(f"constant weights miss the tasks {sorted(missing)}")
        return {t: float(self.weights[t]) for t in task_losses}


class DynamicTaskPriority(TaskWeighting):
    """DTP (Guo et al. 2018): W_t = -(1 - kappa_bar_t)^gamma log kappa_bar_t; 1 before any KPI."""

    def __init__(self, gamma: float = 2.0, kappa_min: float = KAPPA_MIN) -> None:
        self.gamma = gamma
        self.kappa_min = kappa_min

    def __call__(self, kappa_bar, task_losses, shared_parameters):
        weights = {}
        for t in task_losses:
            if kappa_bar[t] is None:
                weights[t] = 1.0
                continue
            kappa = min(max(kappa_bar[t], self.kappa_min), 1.0)
            weights[t] = -((1 - kappa) ** self.gamma) * math.log(kappa)
        return weights


class GradNormWeighting(TaskWeighting):
    """GradNorm (Chen et al. 2018): learned task weights that balance gradient norms.

    Needs the parameters of the last shared layer (``needs_shared_parameters``); the trainer
    passes ``model.last_shared_parameters()`` to :meth:`Prioritization.weights`.
    """

    needs_shared_parameters = True

    def __init__(self, tasks: Sequence[str], alpha: float = 1.5, lr: float = 0.025) -> None:
        self.tasks = tuple(tasks)
        self.alpha = alpha
        self.weights = torch.ones(len(self.tasks), requires_grad=True)
        self.optimizer = torch.optim.Adam([self.weights], lr=lr)
        self.initial_losses = torch.full((len(self.tasks),), math.nan)

    def __call__(self, kappa_bar, task_losses, shared_parameters):
        if shared_parameters is None:
            raise ValueError(
                "gradnorm needs shared_parameters (e.g. model.last_shared_parameters())"
            )
        current = self.weights.detach().clone()
        losses = torch.stack([task_losses[t].detach().float().cpu() for t in self.tasks])
        if bool((losses > 0).all()):
            self._update(task_losses, losses, list(shared_parameters))
        return {t: float(w) for t, w in zip(self.tasks, current, strict=True)}

    def _update(self, task_losses: dict[str, Tensor], losses: Tensor, shared: list[Tensor]) -> None:
        norms = []
        for t in self.tasks:
            gradients = torch.autograd.grad(
                task_losses[t], shared, retain_graph=True, allow_unused=True
            )
            squared = sum(
                float(g.detach().float().pow(2).sum()) for g in gradients if g is not None
            )
            norms.append(math.sqrt(squared))
        norms = torch.tensor(norms)
        self.initial_losses = torch.where(
            torch.isnan(self.initial_losses), losses, self.initial_losses
        )
        ratios = losses / self.initial_losses
        relative = ratios / ratios.mean()
        weighted_norms = self.weights * norms
        target = (weighted_norms.mean() * relative**self.alpha).detach()
        self.optimizer.zero_grad()
        (weighted_norms - target).abs().sum().backward()
        self.optimizer.step()
        with torch.no_grad():
            self.weights.clamp_(min=1e-3)
            self.weights.mul_(len(self.tasks) / self.weights.sum())

    def state_dict(self) -> dict:
        return {
            "weights": self.weights.detach().clone(),
            "initial_losses": self.initial_losses.clone(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.weights.copy_(state["weights"])
        self.initial_losses = state["initial_losses"].clone()
        self.optimizer.load_state_dict(state["optimizer"])

    def sync(self) -> None:
        with torch.no_grad():
            present = torch.ones_like(self.weights, dtype=torch.bool)
            self.weights.copy_(_mean_over_ranks(self.weights.detach(), present)[0])
            self.initial_losses, _ = _mean_over_ranks(
                self.initial_losses, ~torch.isnan(self.initial_losses)
            )


# --------------------------------------------------------------------------- sample level


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
        values = _float_dict_to_tensor(self.thresholds, self.tasks)
        merged, present = _mean_over_ranks(values, ~torch.isnan(values))
        self.thresholds = {
            t: float(v) for t, v, p in zip(self.tasks, merged, present, strict=True) if p
        }


# --------------------------------------------------------------------------- per-sample memory


class SampleMemory:
    """Per-task KPI of every dataset sample, kept with momentum across visits.

    Args:
        tasks: task names.
        num_samples: dataset length (ids are dataset indices in [0, num_samples)); None: no
            memory, the batch's own KPIs are used and the batch is the Top-K population.
        momentum: m in kappa~ <- m kappa~ + (1 - m) kappa.

    State: ``values`` (T, N) float32 kappa~, ``seen`` (T, N) bool.
    """

    def __init__(self, tasks: Sequence[str], num_samples: int | None, momentum: float) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.tasks = tuple(tasks)
        self.num_samples = num_samples
        self.momentum = momentum
        size = (len(self.tasks), num_samples or 0)
        self.values = torch.zeros(size)
        self.seen = torch.zeros(size, dtype=torch.bool)
        self.written = torch.zeros(size, dtype=torch.bool)  # since the last sync

    def update(
        self, task: str, sample_ids: Tensor, kappa: Tensor, available: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Fold a batch's KPIs into the memory.

        Args:
            task: task name.
            sample_ids: (B,) int64 dataset indices.
            kappa: (B,) float32 batch KPIs.
            available: (B,) bool, only these samples are recorded.

        Returns:
            the batch's momentum KPIs (B,) (the raw KPI where unavailable) and the population
            (P,) of momentum KPIs of every sample seen with this task's labels. An id repeated
            within one batch is recorded once (one of its values wins).
        """
        if self.num_samples is None:
            return kappa, kappa[available]
        if bool(((sample_ids < 0) | (sample_ids >= self.num_samples)).any()):
            raise ValueError(
                f"sample ids must be dataset indices in [0, {self.num_samples}), "
                f"got {sample_ids.tolist()}"
            )
        row = self.tasks.index(task)
        ids = sample_ids[available]
        updated = torch.where(
            self.seen[row, ids],
            self.momentum * self.values[row, ids] + (1 - self.momentum) * kappa[available],
            kappa[available],
        )
        self.values[row, ids] = updated
        self.seen[row, ids] = True
        self.written[row, ids] = True
        smoothed = kappa.clone()
        smoothed[available] = updated
        return smoothed, self.values[row][self.seen[row]]

    def state_dict(self) -> dict:
        return {"values": self.values.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        if state["values"].shape != self.values.shape:
            raise ValueError(
                f"sample memory of shape {tuple(state['values'].shape)} does not fit "
                f"{tuple(self.values.shape)} (tasks x dataset length)"
            )
        self.values = state["values"].clone()
        self.seen = state["seen"].clone()
        self.written.zero_()

    def sync(self) -> None:
        """Merge the entries every rank wrote since the last sync (average where several did)."""
        merged, written = _mean_over_ranks(self.values, self.written)
        self.values = merged
        self.seen |= written
        self.written.zero_()


# --------------------------------------------------------------------------- the strategy


class Prioritization:
    """A task-level rule and a sample-level rule with the shared KPI bookkeeping.

    Args:
        task_weighting: the task level.
        sample_selection: the sample level.
        name: strategy name (recorded in the state dict, checked on load).
        tasks: task names, the keys of losses / kpis / available.
        kpi_ema: alpha of the task KPI's exponential moving average (per step).
        num_samples: dataset length for the per-sample memory (see :class:`SampleMemory`).
        sample_momentum: momentum of the per-sample memory.
    """

    def __init__(
        self,
        task_weighting: TaskWeighting,
        sample_selection: SampleSelection,
        name: str,
        tasks: Sequence[str] = TASKS,
        kpi_ema: float = 0.1,
        num_samples: int | None = None,
        sample_momentum: float = 0.7,
    ) -> None:
        if not 0 < kpi_ema <= 1:
            raise ValueError(f"kpi_ema must be in (0, 1], got {kpi_ema}")
        self.task_weighting = task_weighting
        self.sample_selection = sample_selection
        self.name = name
        self.tasks = tuple(tasks)
        self.kpi_ema = kpi_ema
        self.memory = SampleMemory(self.tasks, num_samples, sample_momentum)
        self.kappa_bar: dict[str, float | None] = {t: None for t in self.tasks}

    @property
    def needs_shared_parameters(self) -> bool:
        """True when :meth:`weights` needs ``shared_parameters`` (GradNorm)."""
        return self.task_weighting.needs_shared_parameters

    def weights(
        self,
        step: int,
        epoch: int,
        sample_ids: Tensor,
        losses: dict[str, Tensor],
        kpis: dict[str, Tensor],
        available: dict[str, Tensor],
        shared_parameters: Sequence[Tensor] | None = None,
    ) -> PrioritizationOutput:
        """Total loss of one training step.

        Args:
            step: global optimisation step (drives the Top-K schedule).
            epoch: epoch (drives the self-paced threshold).
            sample_ids: (B,) int64 dataset indices of the batch.
            losses: task -> (B,) per-sample losses in the autograd graph.
            kpis: task -> (B,) per-sample KPIs in [0, 1] (no gradient needed).
            available: task -> (B,) float or bool label availability (the paper's delta).
            shared_parameters: parameters of the last shared layer, for GradNorm.

        Returns:
            :class:`PrioritizationOutput`.
        """
        ids = sample_ids.detach().cpu().long()
        task_losses: dict[str, Tensor] = {}
        sample_weights: dict[str, Tensor] = {}
        logs: dict[str, float] = {}
        for task in self.tasks:
            per_sample = losses[task]
            labelled = available[task].detach().cpu() > 0.5
            kappa = kpis[task].detach().float().cpu()
            batch_kappa = float(kappa[labelled].mean()) if bool(labelled.any()) else None
            if batch_kappa is not None:
                previous = self.kappa_bar[task]
                self.kappa_bar[task] = (
                    batch_kappa
                    if previous is None
                    else self.kpi_ema * batch_kappa + (1 - self.kpi_ema) * previous
                )
            smoothed, population = self.memory.update(task, ids, kappa, labelled)
            weight = self.sample_selection(
                task, step, epoch, smoothed, population, per_sample.detach().float().cpu(), labelled
            )
            sample_weights[task] = weight
            task_losses[task] = weighted_batch_mean(
                per_sample, weight.to(device=per_sample.device, dtype=per_sample.dtype)
            )
            count = int(labelled.sum())
            logs[f"kappa/{task}"] = math.nan if batch_kappa is None else batch_kappa
            logs[f"kept/{task}"] = float((weight > 0).sum()) / count if count else math.nan
        task_weights = self.task_weighting(self.kappa_bar, task_losses, shared_parameters)
        total = sum(task_weights[t] * task_losses[t] for t in self.tasks)
        for task in self.tasks:
            kappa_bar = self.kappa_bar[task]
            logs[f"kappa_bar/{task}"] = math.nan if kappa_bar is None else kappa_bar
            logs[f"weight/{task}"] = task_weights[task]
            logs[f"loss/{task}"] = float(task_losses[task].detach())
        return PrioritizationOutput(total, task_losses, task_weights, sample_weights, logs)

    def state_dict(self) -> dict:
        """Everything ``--resume`` needs (tensors and plain Python values)."""
        return {
            "name": self.name,
            "kappa_bar": dict(self.kappa_bar),
            "memory": self.memory.state_dict(),
            "task_weighting": self.task_weighting.state_dict(),
            "sample_selection": self.sample_selection.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state["name"] != self.name:
            raise ValueError(f"state of strategy {state['name']!r} cannot load into {self.name!r}")
        self.kappa_bar = {t: state["kappa_bar"].get(t) for t in self.tasks}
        self.memory.load_state_dict(state["memory"])
        self.task_weighting.load_state_dict(state["task_weighting"])
        self.sample_selection.load_state_dict(state["sample_selection"])

    def sync(self) -> None:
        """Average / merge the state over DDP ranks (no-op without torch.distributed)."""
        if not _distributed():
            return
        values = _float_dict_to_tensor(self.kappa_bar, self.tasks)
        merged, present = _mean_over_ranks(values, ~torch.isnan(values))
        self.kappa_bar = {
            t: float(v) if p else None for t, v, p in zip(self.tasks, merged, present, strict=True)
        }
        if self.memory.num_samples is not None:
            self.memory.sync()
        self.task_weighting.sync()
        self.sample_selection.sync()


# --------------------------------------------------------------------------- factory


def _inverse_kpi_topk(soft: bool) -> Callable[..., tuple[TaskWeighting, SampleSelection]]:
    def build(tasks, kappa_min, keep: float = 0.7, warmup_steps: int = 500, ramp_steps: int = 2000):
        schedule = KeepSchedule(final=keep, warmup_steps=warmup_steps, ramp_steps=ramp_steps)
        return InverseKpiWeighting(kappa_min), TopK(schedule, soft=soft, kappa_min=kappa_min)

    return build


def _soft_assignment(tasks, kappa_min):
    return InverseKpiWeighting(kappa_min), SoftAssignment(kappa_min)


def _hard_threshold(tasks, kappa_min, threshold: float = 0.5):
    return InverseKpiWeighting(kappa_min), HardThreshold(threshold)


def _fixed_percent_hard(tasks, kappa_min, fraction: float = 0.7):
    schedule = KeepSchedule(final=fraction, warmup_steps=0, ramp_steps=0, initial=fraction)
    return InverseKpiWeighting(kappa_min), TopK(schedule)


def _single(task: str) -> Callable[..., tuple[TaskWeighting, SampleSelection]]:
    def build(tasks, kappa_min):
        return ConstantWeighting({t: float(t == task) for t in tasks}), AllSamples()

    return build


def _constant(tasks, kappa_min, weights: dict[str, float] | None = None):
    return ConstantWeighting(weights or {t: 1.0 for t in tasks}), AllSamples()


def _dtp(tasks, kappa_min, gamma: float = 2.0):
    return DynamicTaskPriority(gamma, kappa_min), AllSamples()


def _gradnorm(tasks, kappa_min, alpha: float = 1.5, lr: float = 0.025):
    return GradNormWeighting(tasks, alpha, lr), AllSamples()


def _self_paced(tasks, kappa_min, initial_threshold: float | None = None, growth: float = 1.1):
    return ConstantWeighting({t: 1.0 for t in tasks}), SelfPaced(tasks, initial_threshold, growth)


_STRATEGIES: dict[str, Callable[..., tuple[TaskWeighting, SampleSelection]]] = {
    "mdrp": _inverse_kpi_topk(soft=False),
    "topk_hard": _inverse_kpi_topk(soft=False),
    "topk_soft": _inverse_kpi_topk(soft=True),
    "soft_assignment": _soft_assignment,
    "hard_threshold": _hard_threshold,
    "fixed_percent_hard": _fixed_percent_hard,
    "single_det": _single("detection"),
    "single_seg": _single("segmentation"),
    "constant": _constant,
    "dtp": _dtp,
    "gradnorm": _gradnorm,
    "self_paced": _self_paced,
}
STRATEGIES: tuple[str, ...] = tuple(_STRATEGIES)


def build_prioritization(
    name: str,
    *,
    tasks: Sequence[str] = TASKS,
    num_samples: int | None = None,
    kpi_ema: float = 0.1,
    sample_momentum: float = 0.7,
    kappa_min: float = KAPPA_MIN,
    **params,
) -> Prioritization:
    """The strategy called ``name`` (see the module docstring for names and their parameters).

    Args:
        name: one of :data:`STRATEGIES`.
        tasks: task names.
        num_samples: dataset length for the per-sample memory (None: batch-level only).
        kpi_ema: alpha of the task KPI EMA.
        sample_momentum: momentum of the per-sample KPI memory.
        kappa_min: floor of kappa in 1 / kappa and log kappa.
        **params: the strategy's own parameters: ``keep``, ``warmup_steps``, ``ramp_steps``
            (mdrp, topk_hard, topk_soft), ``threshold`` (hard_threshold), ``fraction``
            (fixed_percent_hard), ``weights`` (constant), ``gamma`` (dtp), ``alpha``, ``lr``
            (gradnorm), ``initial_threshold``, ``growth`` (self_paced).

    Raises:
        ValueError: unknown name or a parameter the strategy does not take.
    """
    if name not in _STRATEGIES:
        raise ValueError(f"unknown prioritization {name!r}; choose one of {', '.join(STRATEGIES)}")
    factory = _STRATEGIES[name]
    accepted = [p for p in inspect.signature(factory).parameters if p not in ("tasks", "kappa_min")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"prioritization {name!r} takes {accepted or 'no parameters'}, not {unknown}"
        )
    task_weighting, sample_selection = factory(tasks, kappa_min, **params)
    return Prioritization(
        task_weighting,
        sample_selection,
        name=name,
        tasks=tasks,
        kpi_ema=kpi_ema,
        num_samples=num_samples,
        sample_momentum=sample_momentum,
    )
