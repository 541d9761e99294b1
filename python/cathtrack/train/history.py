"""The difficulty history: snapshots of the per-sample difficulty table over training.

Saved in the checkpoints as ``difficulty.pt``; :func:`cathtrack.train.plots.plot_difficulty`
draws the paper's Fig. 3 from it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cathtrack.data.sample import TASKS
from cathtrack.train.prioritization import Prioritization
from cathtrack.train.sample_selection import TopK

# The difficulty history keeps at most this many samples (evenly spaced ids) per record.
HISTORY_SAMPLES = 2048


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
