"""The checkpoints of a run, committed so that a crash never leaves neither the old nor the new one.

``RUN_DIR/checkpoints``::

    last -> last.12      relative symlink to the committed version of ``last``
    last.12/             model.safetensors + model.json (cathtrack.checkpoint), trainer_state.json,
                         optimizer.pt, scheduler.pt, scaler.pt, rng.pt, prioritization.pt,
                         difficulty.pt (torch.save of tensors and plain containers)
    best -> best.9
    best.9/              model.safetensors + model.json + trainer_state.json

Readers open ``checkpoints/last`` and ``checkpoints/best`` as plain directories (``--resume``,
``cathtrack eval``, ``cathtrack export``, :func:`cathtrack.checkpoint.load_model`).

A commit (:func:`write_checkpoint`) writes a new version directory ``NAME.<n+1>`` completely, every
file through :func:`cathtrack.checkpoint.atomic_file` (fsync'ed) and ``trainer_state.json`` last,
so a version holding ``trainer_state.json`` is complete; fsyncs the directory and
``checkpoints/``; then renames a new symlink onto ``NAME`` (``os.replace``, atomic: the commit
point) and fsyncs ``checkpoints/`` again; only then deletes the old version. Killed before the
rename, ``NAME`` still names the old version; after it, the new one.

:func:`recover` (on the trainer's start) deletes what a killed commit left: versions nothing
points to, temporary files and links. If ``NAME`` is missing or broken, :func:`committed` takes the
newest complete version (and :func:`recover` points ``NAME`` at it again).

Runs written before versioned checkpoints have plain ``last``/``best`` directories. They load as
they are; their next commit renames the old directory to ``NAME.0`` before the link takes its
place (a crash in between leaves ``NAME`` missing, and :func:`committed` finds the newest complete
version), and a ``.NAME.tmp`` directory left by the old scheme's crashes counts as a version.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from cathtrack.checkpoint import (
    atomic_file,
    fsync_directory,
    remove_temporaries,
    temporary_path,
)

CHECKPOINTS = "checkpoints"
CHECKPOINT_NAMES = ("last", "best")
STATE_FILE = "trainer_state.json"


def load_state(path: Path) -> dict:
    """A ``*.pt`` checkpoint part: tensors and plain containers only (weights_only=True)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def save_state(path: Path, state: dict) -> None:
    """Writes a ``*.pt`` checkpoint part (torch.save, atomically)."""
    with atomic_file(path) as handle:
        torch.save(state, handle)


def is_complete(directory: Path) -> bool:
    """Whether a checkpoint directory is whole (its ``trainer_state.json`` is written last)."""
    return (directory / STATE_FILE).is_file()


def versions(folder: Path, name: str) -> list[Path]:
    """The ``NAME.<n>`` directories in ``folder``, oldest (smallest n) first."""
    pattern = re.compile(rf"{re.escape(name)}\.(\d+)")
    found = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = pattern.fullmatch(path.name)
            if match and path.is_dir() and not path.is_symlink():
                found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def _next_version(folder: Path, name: str) -> Path:
    numbers = [int(path.name.rpartition(".")[2]) for path in versions(folder, name)]
    return folder / f"{name}.{max(numbers, default=0) + 1}"


def committed(folder: Path, name: str) -> Path | None:
    """The committed checkpoint ``name`` in ``folder``: ``folder/name`` when it is complete,
    else (a crash while it was re-pointed) the newest complete version; None if there is none."""
    pointer = folder / name
    legacy = folder / f".{name}.tmp"
    if not pointer.is_symlink() and is_complete(legacy):
        # The unversioned scheme was killed while it replaced NAME: this copy is the whole one.
        return legacy
    if is_complete(pointer):
        return pointer
    complete = [path for path in versions(folder, name) if is_complete(path)]
    return complete[-1] if complete else None


def write_checkpoint(folder: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Commits a new version of checkpoint ``name`` (see the module docstring).

    Args:
        folder: the run's ``checkpoints`` directory (created).
        name: ``last`` or ``best``.
        write: writes the files into the empty directory it is given, each through
            :func:`cathtrack.checkpoint.atomic_file`, :data:`STATE_FILE` last.

    Returns:
        the new version's directory.
    """
    folder.mkdir(parents=True, exist_ok=True)
    directory = _next_version(folder, name)
    directory.mkdir()
    write(directory)
    if not is_complete(directory):
        raise RuntimeError(f"{directory}: the checkpoint was written without {STATE_FILE}")
    fsync_directory(directory)
    fsync_directory(folder)
    _point(folder, name, directory)
    _remove_versions(folder, name, keep=directory)
    return directory


def recover(folder: Path) -> None:
    """Cleans up after a commit that was killed: re-points a missing or broken ``last``/``best``
    at its newest complete version, deletes the versions nothing points to and temporary files.
    """
    if not folder.is_dir():
        return
    for name in CHECKPOINT_NAMES:
        found = committed(folder, name)
        pointer = folder / name
        if found is not None and found != pointer:
            if found.name == f".{name}.tmp":
                found = found.rename(_next_version(folder, name))
            if pointer.is_dir() and not pointer.is_symlink():
                shutil.rmtree(pointer)  # the unversioned scheme's outdated or partial directory
            _point(folder, name, found)
        keep = pointer.resolve() if pointer.is_symlink() and found is not None else None
        _remove_versions(folder, name, keep)
        if keep is not None:
            remove_temporaries(keep)
        elif found is not None:
            remove_temporaries(found)
    remove_temporaries(folder)


def _point(folder: Path, name: str, directory: Path) -> None:
    """Makes ``folder/name`` a symlink to ``directory`` (in ``folder``) in one atomic rename."""
    pointer = folder / name
    if pointer.is_dir() and not pointer.is_symlink():
        # A directory of the unversioned scheme: a rename cannot replace it, so move it aside
        # (fails if NAME.0 exists: recover() deletes versions nothing points to first).
        pointer.rename(folder / f"{name}.0")
    link = temporary_path(pointer)
    os.symlink(directory.name, link)
    try:
        os.replace(link, pointer)
    except Exception:
        link.unlink(missing_ok=True)
        raise
    fsync_directory(folder)


def _remove_versions(folder: Path, name: str, keep: Path | None) -> None:
    """Deletes every version of ``name`` but ``keep`` (and the unversioned scheme's debris)."""
    for path in versions(folder, name):
        if keep is None or path.name != keep.name:
            shutil.rmtree(path)
    shutil.rmtree(folder / f".{name}.tmp", ignore_errors=True)


def checkpoint_dir(path: Path) -> Path:
    """The checkpoint directory meant by ``--resume PATH`` (a run dir or a checkpoint dir).

    A run directory means its committed ``last``; a checkpoint directory that a commit or
    :func:`recover` replaced since it was named means the committed checkpoint of its name.
    """
    path = Path(path)
    if is_complete(path):
        return path
    name = re.sub(r"\.(\d+|tmp)$", "", path.name).lstrip(".")
    if path.parent.name == CHECKPOINTS and name in CHECKPOINT_NAMES:
        found = committed(path.parent, name)
    else:
        found = committed(path / CHECKPOINTS, "last")
    if found is not None:
        return found
    candidate = path / CHECKPOINTS / "last"
    raise FileNotFoundError(f"{path}: no checkpoint ({STATE_FILE}) in it or in {candidate}")


def run_dir_of(checkpoint: Path) -> Path:
    """RUN_DIR of RUN_DIR/checkpoints/<name>."""
    return checkpoint.parent.parent
