"""Compute devices and number formats: which device runs, and in which float type.

"Device" in cathtrack means where torch computes (``"cpu"`` or ``"cuda"``; the trainer also
accepts ``"mps"``). The catheter models the tracker recognises are in :mod:`cathtrack.catheters`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads on first use: the post-processing checks names without it
    import torch

INFERENCE_DEVICES = ("cpu", "cuda")


def check_device_name(device: str) -> str:
    """``device`` when it names an inference device ('cpu' or 'cuda'); ValueError otherwise."""
    if device not in INFERENCE_DEVICES:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return device


def check_device(device: str, half: bool = False) -> str:
    """``device`` when it is 'cpu' or 'cuda' and usable here, and ``half`` can run on it.

    Raises:
        ValueError: another name, CUDA without a GPU, or ``half`` on a CPU without native
            bfloat16 (:func:`half_dtype`).
    """
    import torch

    check_device_name(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA GPU")
    if half:
        half_dtype(device)
    return device


def pick_device(device: str) -> str:
    """ "auto" -> "cuda" when torch sees a GPU, else "cpu"; other names as :func:`check_device`."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in INFERENCE_DEVICES:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return check_device(device)


def training_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device of a training process: ``auto`` -> CUDA (this process's GPU), else MPS,
    else CPU; an explicit name must exist.

    Raises:
        RuntimeError: a requested CUDA or MPS backend that is not available.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device cuda requested but torch sees no CUDA GPU")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device mps requested but the MPS backend is not available")
    return torch.device(name)


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), as oneDNN sees it."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def half_dtype(device: str) -> torch.dtype:
    """The 16-bit float type of ``--half`` on a device: float16 on CUDA; bfloat16 on a CPU
    that computes it natively (AVX512-BF16 or AMX: about 2x the float32 speed of ResNet34),
    which keeps float32's exponent range so the network needs no rescaling.

    Raises:
        ValueError: a CPU without native bfloat16 (emulated, it would be slower than float32).
    """
    import torch

    if device == "cuda":
        return torch.float16
    if not cpu_has_native_bfloat16():
        raise ValueError(
            "half precision on the CPU needs native bfloat16 (AVX512-BF16 or AMX), which this "
            "CPU lacks; export without --half"
        )
    return torch.bfloat16


def dtype_name(dtype: torch.dtype) -> str:
    """'float32', 'float16' or 'bfloat16': the ``dtype`` metadata value of model files."""
    return str(dtype).removeprefix("torch.")


def autocast_dtype(device: torch.device, amp: bool, cpu_bf16: bool | None) -> torch.dtype | None:
    """The autocast dtype of a training run: float16 on CUDA with ``amp``, bfloat16 on the CPU
    with ``cpu_bf16`` (None: where the CPU computes bfloat16 natively), else None (float32).

    Raises:
        ValueError: ``cpu_bf16`` on a CPU without native bfloat16 (emulated, it would be slower
            than float32).
    """
    import torch

    if device.type == "cuda":
        return torch.float16 if amp else None
    if device.type == "cpu" and cpu_bf16 is None:
        return torch.bfloat16 if cpu_has_native_bfloat16() else None
    if device.type == "cpu" and cpu_bf16:
        if not cpu_has_native_bfloat16():
            raise ValueError(
                "cpu_bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); "
                "set cpu_bf16: false"
            )
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast for ``dtype``, or a no-op for None."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
