"""Training: targets, losses, KPIs and the multi-level dynamic resource prioritization (MDRP)."""

from cathtrack.train.kpi import batch_kpis
from cathtrack.train.losses import task_losses, weighted_batch_mean
from cathtrack.train.prioritization import (
    STRATEGIES,
    Prioritization,
    PrioritizationOutput,
    build_prioritization,
)
from cathtrack.train.targets import collate_batch

__all__ = [
    "STRATEGIES",
    "Prioritization",
    "PrioritizationOutput",
    "batch_kpis",
    "build_prioritization",
    "collate_batch",
    "task_losses",
    "weighted_batch_mean",
]
