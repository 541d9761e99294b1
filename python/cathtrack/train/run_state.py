"""What a run's progress is, besides weights and optimisation: counters and random generators.

:class:`TrainerState` is ``trainer_state.json`` in every checkpoint; :func:`rng_state` is
``rng.pt`` in ``last`` (torch, CUDA, Python and numpy generators), so a resumed run draws the same
random numbers as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TrainerState:
    """Progress counters kept in ``trainer_state.json``."""

    step: int = 0
    epoch: int = 0
    stage: str = ""
    best_metric: float = -math.inf
    best_step: int = -1
    last_metrics: dict | None = None

    def to_json(self, config_hash: str) -> dict:
        """The ``trainer_state.json`` document (with the run's config hash)."""
        best = self.best_metric
        return {
            "step": self.step,
            "epoch": self.epoch,
            "stage": self.stage,
            "best_metric": best if math.isfinite(best) else None,
            "best_step": self.best_step,
            "config_hash": config_hash,
            "last_metrics": self.last_metrics,
        }

    @classmethod
    def from_json(cls, saved: dict) -> TrainerState:
        """The state a :meth:`to_json` document describes."""
        return cls(
            step=saved["step"],
            epoch=saved["epoch"],
            stage=saved["stage"],
            best_metric=saved["best_metric"] if saved["best_metric"] is not None else -math.inf,
            best_step=saved["best_step"],
            last_metrics=saved.get("last_metrics"),
        )


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
