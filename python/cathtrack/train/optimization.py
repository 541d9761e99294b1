"""How a stage updates the weights: AdamW, the learning-rate schedule, the gradient scaler and the
prioritization (the total loss), built fresh for every stage and saved together in ``last``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from cathtrack.model import CathNet
from cathtrack.train.checkpoints import load_state
from cathtrack.train.config import PrioritizationConfig, ScheduleConfig, Stage, TrainConfig
from cathtrack.train.prioritization import Prioritization, build_prioritization

# Strategies whose Top-K schedule the trainer fits to the stage length (prioritization.py).
SCHEDULED_TOPK = ("mdrp", "topk_hard", "topk_soft")


def learning_rate_factor(step: int, total_steps: int, schedule: ScheduleConfig) -> float:
    """Multiplier of the base learning rate at a stage-local step (warm-up, then cosine/step)."""
    if step < schedule.warmup_steps:
        progress = step / schedule.warmup_steps
        return schedule.warmup_start_ratio + (1 - schedule.warmup_start_ratio) * progress
    if schedule.name == "step":
        passed = sum(step >= fraction * total_steps for fraction in schedule.milestones)
        return schedule.gamma**passed
    span = max(1, total_steps - schedule.warmup_steps)
    progress = min(1.0, (step - schedule.warmup_steps) / span)
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return schedule.min_lr_ratio + (1 - schedule.min_lr_ratio) * cosine


def build_strategy(
    config: PrioritizationConfig, num_samples: int | None, total_steps: int
) -> Prioritization:
    """The stage's prioritization; Top-K warm-up and ramp are fitted to the stage length."""
    params = dict(config.params)
    if config.name in SCHEDULED_TOPK:
        params.setdefault("warmup_steps", round(config.warmup_fraction * total_steps))
        params.setdefault("ramp_steps", round(config.ramp_fraction * total_steps))
    return build_prioritization(
        config.name,
        num_samples=num_samples,
        kpi_ema=config.kpi_ema,
        sample_momentum=config.sample_momentum,
        kappa_min=config.kappa_min,
        **params,
    )


@dataclass
class StageOptimizer:
    """The optimisation state of one stage (what ``last`` saves besides the weights)."""

    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    strategy: Prioritization

    @classmethod
    def build(
        cls,
        network: CathNet,
        config: TrainConfig,
        stage: Stage,
        length: int,
        num_samples: int | None,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
    ) -> StageOptimizer:
        """Fresh AdamW, schedule over the stage's ``length`` steps, scaler and prioritization."""
        optimizer = torch.optim.AdamW(
            network.parameters(),
            lr=config.optimizer.lr,
            betas=config.optimizer.betas,
            weight_decay=config.optimizer.weight_decay,
            eps=config.optimizer.eps,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(step, length, config.schedule)
        )
        # Gradient scaling guards float16's narrow exponent; bfloat16 has float32's.
        scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
        strategy = build_strategy(stage.prioritization, num_samples, length)
        return cls(optimizer, scheduler, scaler, strategy)

    def state_files(self) -> dict[str, dict]:
        """File name -> state dict, for a resumable checkpoint."""
        return {
            "optimizer.pt": self.optimizer.state_dict(),
            "scheduler.pt": self.scheduler.state_dict(),
            "scaler.pt": self.scaler.state_dict(),
            "prioritization.pt": self.strategy.state_dict(),
        }

    def load_state_files(self, directory: Path) -> None:
        """Restores the :meth:`state_files` of a checkpoint directory."""
        self.optimizer.load_state_dict(load_state(directory / "optimizer.pt"))
        self.scheduler.load_state_dict(load_state(directory / "scheduler.pt"))
        self.scaler.load_state_dict(load_state(directory / "scaler.pt"))
        self.strategy.load_state_dict(load_state(directory / "prioritization.pt"))

    def step(self, loss: Tensor, parameters: list[Tensor], grad_clip: float | None) -> tuple:
        """Back-propagates ``loss`` and updates the weights and the learning rate.

        Returns:
            (learning rate the step used, gradient norm before clipping).
        """
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip or math.inf)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        learning_rate = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return learning_rate, grad_norm
