"""Model weights on disk: safetensors + JSON, never pickles.

A model file pair is ``NAME.safetensors`` (the state dict) and ``NAME.json`` beside it::

    {"format": "cathtrack-model", "version": 1,
     "model": {...ModelConfig...}, "input_size": 256,
     "weights_sha256": "<hex SHA-256 of NAME.safetensors>",
     "training": {...free-form: config hash, data, strategy, metrics...}}

``load_model`` accepts the ``.safetensors`` file, the ``.json`` file, or a directory holding
``model.safetensors`` + ``model.json`` (a training checkpoint directory).

Loading checks the files before it trusts them (docs/reliability.md): the JSON must be an object
of this format with a valid architecture and input size, the architecture must stay under
:data:`MAX_PARAMETERS` (checked on torch's "meta" device, before anything is allocated), and the
weights must hash to the ``weights_sha256`` recorded at save, so a bit flip or a swapped file is
an error naming the file instead of a model that quietly finds nothing. Files written before the
hash existed load with an :class:`UnverifiedWeightsWarning` (:func:`record_weights_hash` adds the
hash to a file you trust). Every refusal is a ``ValueError`` (``FileNotFoundError`` for a missing
file) whose one-line message starts with the file's path.

Files are written atomically (:func:`atomic_file`): to a temporary file beside the target,
flushed to the disk (fsync), renamed onto the target (``os.replace``) and the directory fsync'ed,
so a reader finds the old file or the new one, never a part, even after a crash or power loss.
The trainer writes every file it rewrites the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import load_file, save

from cathtrack.model import CathNet, ModelConfig

FORMAT = "cathtrack-model"
VERSION = 1
DEFAULT_STEM = "model"
HASH_KEY = "weights_sha256"
# The largest network a model file may describe: 250 M parameters (1 GB in float32; the paper's
# ResNet34 CathNet has ~10 M). A larger one is a corrupt or hostile file, refused before torch
# tries to allocate it.
MAX_PARAMETERS = 250_000_000
# Input sides a model file may state: multiples of the network's stride 32, up to 8192.
INPUT_MULTIPLE = 32
MAX_INPUT_SIZE = 8192
_SHA256 = re.compile(r"[0-9a-f]{64}")
_warned_unverified: set[str] = set()  # metadata files already warned about in this process


class UnverifiedWeightsWarning(UserWarning):
    """A model file written before weights hashes: its weights cannot be checked."""


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
    data = save(state)
    write_bytes_atomic(weights, data)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_dict(),
        "input_size": int(input_size),
        HASH_KEY: hashlib.sha256(data).hexdigest(),
        "training": training or {},
    }
    write_text_atomic(metadata, json.dumps(document, indent=2, sort_keys=True))
    return weights


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_weights_hash(path: str | Path) -> str:
    """Writes the SHA-256 of the weights into the JSON of a model file written before weights
    hashes (atomically; the rest of the JSON is kept). Only for weights you trust: from then on
    they are checked against this hash at every load. Returns the hash."""
    weights, metadata = model_paths(path)
    document = read_metadata(path)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: model weights not found")
    document[HASH_KEY] = file_sha256(weights)
    write_text_atomic(metadata, json.dumps(document, indent=2, sort_keys=True))
    return document[HASH_KEY]


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The checked JSON metadata of a model.

    Raises:
        FileNotFoundError: the JSON is missing (the message names the path it was expected at).
        ValueError: not valid JSON, not an object, not a cathtrack model file, an unsupported
            version, or a missing/invalid ``model``, ``input_size`` or ``weights_sha256``; the
            message names the file.
    """
    _, metadata = model_paths(path)
    if not metadata.is_file():
        raise FileNotFoundError(
            f"{metadata}: model metadata not found (the .json written beside the weights by "
            "cathtrack.checkpoint.save_model; it must sit in the same folder with the same name)"
        )
    try:
        document = json.loads(metadata.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{metadata}: not valid JSON ({error})") from error
    if not isinstance(document, dict):
        raise ValueError(
            f"{metadata}: not a cathtrack model file (a JSON {type(document).__name__}, "
            "expected an object)"
        )
    if document.get("format") != FORMAT:
        raise ValueError(
            f"{metadata}: not a cathtrack model file (format {document.get('format')!r})"
        )
    if document.get("version") != VERSION:
        raise ValueError(
            f"{metadata}: model format version {document.get('version')} is not supported"
        )
    if not isinstance(document.get("model"), dict):
        problem = "missing" if "model" not in document else "not an object"
        raise ValueError(f"{metadata}: the architecture (key 'model') is {problem}")
    size = document.get("input_size")
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or not INPUT_MULTIPLE <= size <= MAX_INPUT_SIZE
        or size % INPUT_MULTIPLE
    ):
        raise ValueError(
            f"{metadata}: input_size must be a multiple of {INPUT_MULTIPLE} in "
            f"[{INPUT_MULTIPLE}, {MAX_INPUT_SIZE}], got {size!r}"
        )
    digest = document.get(HASH_KEY)
    if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        raise ValueError(f"{metadata}: {HASH_KEY} must be 64 lowercase hex digits, got {digest!r}")
    return document


def model_config(document: dict[str, Any], source: str | Path) -> ModelConfig:
    """The checked architecture of a model's metadata (:func:`read_metadata`).

    The network is built on torch's "meta" device (no memory) and its parameters counted; more
    than :data:`MAX_PARAMETERS` is refused before anything is allocated.

    Raises:
        ValueError: an invalid architecture or one too large; the message names ``source``.
    """
    try:
        config = ModelConfig.from_dict(document["model"])
    except (TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{source}: invalid architecture in 'model' ({error})") from error
    try:
        with torch.device("meta"):
            count = sum(p.numel() for p in CathNet(config).parameters())
    except Exception as error:  # absurd sizes overflow inside torch (RuntimeError, ...)
        raise ValueError(
            f"{source}: the architecture in 'model' cannot be built ({' '.join(str(error).split())})"
        ) from error
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"{source}: the architecture in 'model' has {count:.3g} parameters "
            f"({_gigabytes(4 * count)} in float32), over the limit of {MAX_PARAMETERS:.3g} "
            f"({_gigabytes(4 * MAX_PARAMETERS)}): a corrupt or foreign model file"
        )
    return config


def _gigabytes(size: float) -> str:
    return f"{size / 1e9:.3g} GB" if math.isfinite(size) else "inf GB"


def verify_weights(weights: Path, document: dict[str, Any], metadata: Path) -> None:
    """Compares the weights file with the hash its metadata records.

    Raises:
        ValueError: the hash differs (a corrupt, truncated or replaced weights file).

    Warns:
        UnverifiedWeightsWarning: the metadata has no hash (written before hashes existed);
            once per file and process.
    """
    expected = document.get(HASH_KEY)
    if expected is None:
        if str(metadata) in _warned_unverified:
            return
        _warned_unverified.add(str(metadata))
        warnings.warn_explicit(
            f"{metadata}: no {HASH_KEY} (written before weights hashes), so {weights.name} "
            "cannot be checked for corruption; save the model again or run "
            "cathtrack.checkpoint.record_weights_hash on weights you trust",
            UnverifiedWeightsWarning,
            filename="cathtrack",
            lineno=0,  # no source line: the warning prints as one line
        )
        return
    actual = file_sha256(weights)
    if actual != expected:
        raise ValueError(
            f"{weights}: the weights are corrupt or were replaced (SHA-256 {actual[:16]}..., "
            f"{metadata.name} records {expected[:16]}...); restore the file or export/save "
            "the model again"
        )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[CathNet, dict]:
    """Rebuilds the network from its files, in eval mode, float32, on ``device``.

    The metadata, the architecture's size and the weights' hash are checked first (module
    docstring).

    Returns:
        (model, metadata dict).

    Raises:
        FileNotFoundError: a missing file (named).
        ValueError: a file that fails a check, or weights that do not fit the architecture.
    """
    weights, metadata = model_paths(path)
    document = read_metadata(path)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: model weights not found (named by {metadata.name})")
    config = model_config(document, metadata)
    verify_weights(weights, document, metadata)
    try:
        state = load_file(str(weights))
    except Exception as error:  # safetensors raises several types for corrupt files
        reason = " ".join(str(error).split())
        raise ValueError(f"{weights}: cannot read weights ({reason})") from error
    state = {
        name: tensor.float() if tensor.is_floating_point() else tensor
        for name, tensor in state.items()
    }
    model = CathNet(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(
            f"{weights}: the weights do not fit the architecture in {metadata.name} "
            f"({_state_mismatch(model.state_dict(), state)})"
        ) from error
    return model.to(device).eval(), document


def _state_mismatch(expected: dict, found: dict) -> str:
    """One line saying how a state dict differs from the model's."""
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    shapes = [
        f"{name} {tuple(found[name].shape)} vs {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in found and found[name].shape != tensor.shape
    ]
    parts = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if names:
            parts.append(f"{len(names)} {label}, e.g. {names[0]}")
    return "; ".join(parts) or "the tensors differ"
