"""Model weights on disk: safetensors + JSON, never pickles.

A model file pair is ``NAME.safetensors`` (the state dict) and ``NAME.json`` beside it::

    {"format": "cathtrack-model", "version": 1,
     "model": {...ModelConfig...}, "input_size": 256,
     "training": {...free-form: config hash, data, strategy, metrics...}}

``load_model`` accepts the ``.safetensors`` file, the ``.json`` file, or a directory holding
``model.safetensors`` + ``model.json`` (a training checkpoint directory).

Files are written atomically (:func:`atomic_file`): to a temporary file beside the target,
flushed to the disk (fsync), renamed onto the target (``os.replace``) and the directory fsync'ed,
so a reader finds the old file or the new one, never a part, even after a crash or power loss.
The trainer writes every file it rewrites the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import load_file, save

from cathtrack.model import CathNet, ModelConfig

FORMAT = "cathtrack-model"
VERSION = 1
DEFAULT_STEM = "model"


_TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")


def temporary_path(target: Path) -> Path:
    """A fresh hidden name beside ``target``: ``.NAME.<12 hex digits>.tmp`` (found by
    :func:`remove_temporaries` when a crash left it behind)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is named like a :func:`temporary_path`."""
    return _TEMPORARY_NAME.fullmatch(path.name) is not None


def fsync_directory(path: str | Path) -> None:
    """Makes a directory's entries (files created, renamed or removed in it) durable.

    A no-op where directories cannot be opened (Windows, which has no ``O_DIRECTORY``).
    """
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb", **options: Any) -> Iterator[IO]:
    """An open temporary file that replaces ``path`` when the block ends without error.

    The data is flushed and fsync'ed, the file renamed onto ``path`` (``os.replace``: a reader
    sees the old file or the new one, never a part) and the directory fsync'ed. On an error the
    temporary file is removed and ``path`` is left as it was; a process killed (or interrupted)
    in the block leaves a hidden ``.NAME.<random>.tmp`` (:func:`remove_temporaries`).

    Args:
        path: the file to (re)write.
        mode: ``"wb"`` or ``"w"`` (``open``'s mode; the file is always created new).
        **options: more ``open`` arguments (``newline``, ``encoding``).
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        with open(temporary, mode.replace("w", "x"), **options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except Exception:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """``Path.write_bytes`` through :func:`atomic_file`."""
    with atomic_file(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """``Path.write_text`` through :func:`atomic_file`."""
    with atomic_file(path, "w") as handle:
        handle.write(text)


def remove_temporaries(directory: str | Path) -> None:
    """Deletes the temporary files (and links) a killed :func:`atomic_file` left in
    ``directory``."""
    directory = Path(directory)
    if directory.is_dir():
        for path in directory.iterdir():
            if is_temporary(path) and (path.is_symlink() or not path.is_dir()):
                path.unlink(missing_ok=True)


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
    """Writes the weights and metadata (each atomically, :func:`atomic_file`); returns the
    ``.safetensors`` path.

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
    write_bytes_atomic(weights, save(state))
    document = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_dict(),
        "input_size": int(input_size),
        "training": training or {},
    }
    write_text_atomic(metadata, json.dumps(document, indent=2, sort_keys=True))
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
