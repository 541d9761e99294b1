"""The per-sample memory of a prioritization: each sample's KPI per task, kept with momentum
across its visits (kappa~, the difficulty D = 1 / kappa~ that Top-K ranks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cathtrack.train.distributed import mean_over_ranks


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
        merged, written = mean_over_ranks(self.values, self.written)
        self.values = merged
        self.seen |= written
        self.written.zero_()
