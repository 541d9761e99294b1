"""Distributed data parallel: this process's place in a ``torchrun`` job, and averaging over ranks.

``torchrun`` describes the job in the environment (RANK / WORLD_SIZE / LOCAL_RANK);
:func:`init_distributed` joins its process group (NCCL on CUDA, gloo on the CPU). Without it the
run is one process and every helper here is a no-op.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Distributed:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


SINGLE_PROCESS = Distributed()


def init_distributed(device_name: str) -> Distributed:
    """Joins the process group ``torchrun`` describes in the environment (no-op without it).

    NCCL when the run uses CUDA, gloo otherwise (CPU DDP, e.g. for tests).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    context = Distributed(
        int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0"))
    )
    if not dist.is_initialized():
        uses_cuda = device_name == "cuda" or (device_name == "auto" and torch.cuda.is_available())
        dist.init_process_group("nccl" if uses_cuda else "gloo")
    return context


def is_distributed() -> bool:
    """Whether a process group is running (the prioritization then syncs its state)."""
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum of ``tensor`` over all ranks (on the GPU for NCCL, which cannot reduce CPU tensors)."""
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if dist.get_backend() == "nccl"
        else torch.device("cpu")
    )
    reduced = tensor.to(device=device, dtype=torch.float64)
    dist.all_reduce(reduced)
    return reduced.to(device=tensor.device, dtype=tensor.dtype)


def mean_over_ranks(values: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over the ranks where ``present``; returns (mean, present on any rank)."""
    sums = all_reduce_sum(torch.where(present, values, 0.0))
    counts = all_reduce_sum(present.to(values.dtype))
    return torch.where(counts > 0, sums / counts.clamp(min=1), values), counts > 0


def float_dict_to_tensor(values: Mapping[str, float | None], keys: Sequence[str]) -> Tensor:
    """``values[key]`` for each key as a float tensor, NaN for a missing or None value."""
    return torch.tensor([math.nan if values.get(k) is None else values[k] for k in keys])
