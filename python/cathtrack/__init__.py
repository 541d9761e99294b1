"""cathtrack: real-time catheter electrode detection and catheter segmentation in X-ray fluoroscopy.

Heavy parts load on first use: ``import cathtrack`` stays cheap and works before the native
extension is built (the data and training code do not need it). ``cathtrack.Tracker``,
``Result``, ``Catheter`` and ``draw`` come from :mod:`cathtrack.tracker` when first accessed.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "build_info", "Tracker", "Result", "Catheter", "draw"]

# Public names of cathtrack.tracker, imported on first access so `import cathtrack` stays light.
_TRACKER_NAMES = ("Tracker", "Result", "Catheter", "draw")


def __getattr__(name: str):
    if name in _TRACKER_NAMES:
        from cathtrack import tracker

        return getattr(tracker, name)
    raise AttributeError(f"module 'cathtrack' has no attribute {name!r}")


def build_info() -> dict:
    """How the native extension was built and what it can use now.

    Returns a dict with ``version``, ``torch_version`` (the torch the extension was compiled
    against), ``torch_runtime_version`` (the torch imported now), ``compiler``, ``cxx_standard``,
    ``cuda_kernels`` (CUDA post-processing kernels compiled in), ``cuda_architectures`` (theirs,
    comma-separated), ``cuda_engine`` (the engine's CUDA stages compiled in: a CUDA torch and the
    kernels; docs/cuda.md) and ``cuda_available`` (the kernels can run now: compiled in, torch
    sees a GPU).
    """
    import torch

    from cathtrack import _native

    info = dict(_native.build_info())
    info["version"] = __version__
    info["torch_runtime_version"] = torch.__version__
    info["cuda_available"] = bool(info["cuda_kernels"] and torch.cuda.is_available())
    return info
