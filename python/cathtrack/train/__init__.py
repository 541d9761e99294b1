"""Training: targets, losses, KPIs and the multi-level dynamic resource prioritization (MDRP).

``import cathtrack.train`` stays light: the names below load their module (and torch) on first
access. Modules, one job each: ``trainer`` (the loop), ``batches``, ``optimization``,
``validation``, ``checkpoints``, ``run_state``, ``history``, ``distributed``, ``prioritization``
(with ``task_weighting``, ``sample_selection``, ``sample_memory``), ``targets``, ``losses``,
``kpi``, ``logs``, ``plots``, ``config`` and ``cli``. Inference code never imports this package.
"""

from __future__ import annotations

import importlib

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

# Public name -> the module of this package that defines it.
_MODULES = {
    "STRATEGIES": "prioritization",
    "Prioritization": "prioritization",
    "PrioritizationOutput": "prioritization",
    "batch_kpis": "kpi",
    "build_prioritization": "prioritization",
    "collate_batch": "targets",
    "task_losses": "losses",
    "weighted_batch_mean": "losses",
}


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value  # later accesses skip this function
    return value
