"""The task level of a prioritization: the weight W_t of each task's loss (eq. 4 / 6).

The rules of :mod:`cathtrack.train.prioritization`'s strategies: MDRP's 1 / kappa_bar_t, fixed
weights, DTP and GradNorm (their choices are described there).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from cathtrack.train.distributed import mean_over_ranks
from cathtrack.train.kpi import KAPPA_MIN


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
            self.weights.copy_(mean_over_ranks(self.weights.detach(), present)[0])
            self.initial_losses, _ = mean_over_ranks(
                self.initial_losses, ~torch.isnan(self.initial_losses)
            )
