"""Model weights on disk: safetensors + JSON, never pickles.

A model file pair is ``NAME.safetensors`` (the state dict) and ``NAME.json`` beside it::

    {"format": "cathtrack-model", "version": 1,
     "model": {...ModelConfig...}, "input_size": 256,
     "training": {...free-form: config hash, data, strategy, metrics...}}

``load_model`` accepts the ``.safetensors`` file, the ``.json`` file, or a directory holding
``model.safetensors`` + ``model.json`` (a training checkpoint directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from cathtrack.model import CathNet, ModelConfig

FORMAT = "cathtrack-model"
VERSION = 1
DEFAULT_STEM = "model"


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths for a model file, its JSON or a checkpoint directory."""
    path = Path(path)
    if path.is_dir():
        path = path / f"{DEFAULT_STEM}.safetensors"
    if path.suffix not in (".safetensors", ".json"):
        raise ValueError(f"{path}: expected a .safetensors or .json model file or a directory")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_model(
    path: str | Path,
    model: CathNet,
    *,
    input_size: int,
    training: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Writes the weights and metadata; returns the ``.safetensors`` path.

    Args:
        path: a ``.safetensors`` path or a directory (``model.safetensors`` inside it).
        model: the network; its ``config`` is stored.
        input_size: side of the square input the model was trained at.
        training: free-form JSON-serialisable facts about how it was trained.
        dtype: cast floating tensors (e.g. ``torch.float16`` for shipped weights).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path.mkdir(parents=True, exist_ok=True)
        path = path / f"{DEFAULT_STEM}.safetensors"
    weights, metadata = model_paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[name] = tensor
    save_file(state, str(weights))
    document = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_dict(),
        "input_size": int(input_size),
        "training": training or {},
    }
    metadata.write_text(json.dumps(document, indent=2, sort_keys=True))
    return weights


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a model; ``ValueError`` naming the file when it is not ours."""
    _, metadata = model_paths(path)
    if not metadata.is_file():
        raise FileNotFoundError(
            f"{metadata}: model metadata not found (it sits beside the weights)"
        )
    try:
        document = json.loads(metadata.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{metadata}: not valid JSON ({error})") from error
    if document.get("format") != FORMAT:
        raise ValueError(
            f"{metadata}: not a cathtrack model file (format {document.get('format')!r})"
        )
    if document.get("version") != VERSION:
        raise ValueError(
            f"{metadata}: model format version {document.get('version')} is not supported"
        )
    return document


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[CathNet, dict]:
    """Rebuilds the network from its files, in eval mode, float32, on ``device``.

    Returns:
        (model, metadata dict).
    """
    weights, _ = model_paths(path)
    document = read_metadata(path)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: model weights not found")
    model = CathNet(ModelConfig.from_dict(document["model"]))
    try:
        state = load_file(str(weights))
    except Exception as error:  # safetensors raises several types for corrupt files
        raise ValueError(f"{weights}: cannot read weights ({error})") from error
    state = {
        name: tensor.float() if tensor.is_floating_point() else tensor
        for name, tensor in state.items()
    }
    model.load_state_dict(state)
    return model.to(device).eval(), document
