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

The task level lives in :mod:`cathtrack.train.task_weighting`, the sample level in
:mod:`cathtrack.train.sample_selection`, the per-sample memory in
:mod:`cathtrack.train.sample_memory`; this module combines them and names the strategies.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cathtrack.data.sample import TASKS
from cathtrack.train.distributed import float_dict_to_tensor, is_distributed, mean_over_ranks
from cathtrack.train.kpi import KAPPA_MIN
from cathtrack.train.losses import weighted_batch_mean
from cathtrack.train.sample_memory import SampleMemory
from cathtrack.train.sample_selection import (
    AllSamples,
    HardThreshold,
    KeepSchedule,
    SampleSelection,
    SelfPaced,
    SoftAssignment,
    TopK,
)
from cathtrack.train.task_weighting import (
    ConstantWeighting,
    DynamicTaskPriority,
    GradNormWeighting,
    InverseKpiWeighting,
    TaskWeighting,
)


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
        if not is_distributed():
            return
        values = float_dict_to_tensor(self.kappa_bar, self.tasks)
        merged, present = mean_over_ranks(values, ~torch.isnan(values))
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
