"""Crash safety of the checkpoints: a training run killed at any file operation can be resumed.

Each test first counts the file operations of a real tiny run (os.replace, os.rename, os.fsync,
os.symlink, os.mkdir, os.unlink, os.rmdir, shutil.rmtree, and the ``open`` with which
:func:`cathtrack.checkpoint.atomic_file` starts every file), then repeats the run from the same
start once for every k = 1 .. N with a simulated kill in place of the k-th operation (just after
it for ``open``), and checks what the kill left.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import cathtrack.checkpoint
from cathtrack.checkpoint import load_model, write_text_atomic
from cathtrack.train.checkpoints import committed
from cathtrack.train.cli import main
from cathtrack.train.config import load_config
from cathtrack.train.trainer import Trainer
from cathtrack.train.validation import validate

# The tiny run of tests/test_trainer.py, validated every step so that ``best`` is committed too.
TINY = {
    "model": {"backbone": "resnet18", "width": 0.25},
    "data": {
        "size": 64,
        "train": {"kind": "synthetic", "preset": "easy", "seed": 0, "length": 16},
        "val": {"kind": "synthetic", "preset": "easy", "seed": 1, "length": 4},
        "num_workers": 0,
    },
    "batch_size": 4,
    "steps": 5,
    "epochs": None,
    "threads": 1,
    "val_every": 1,
    "val_at_start": False,
    "checkpoint_every": 100,
    "prioritization": {"name": "mdrp", "params": {"warmup_steps": 1, "ramp_steps": 2}},
}

# The file operations a kill may interrupt: (module, attribute).
OPERATIONS = [
    (os, "replace"),
    (os, "rename"),
    (os, "fsync"),
    (os, "symlink"),
    (os, "mkdir"),
    (os, "unlink"),
    (os, "rmdir"),
    (shutil, "rmtree"),
]


class Killed(BaseException):
    """A simulated ``kill -9``. Not an Exception, so that no ``except Exception`` clean-up runs
    (a killed process cleans up nothing); ``finally`` blocks still run, which only closes files."""


@contextlib.contextmanager
def kill_at(k: int | None) -> Iterator[list[str]]:
    """Counts the file operations in the block (yields their list) and raises :class:`Killed`
    in place of the ``k``-th one (None: never)."""
    calls: list[str] = []

    def wrap(function, label, after=False):
        def operation(*args, **kwargs):
            calls.append(f"{label}({args[0] if args else ''})")
            if len(calls) == k and not after:
                raise Killed(calls[-1])
            result = function(*args, **kwargs)
            if len(calls) == k:  # after: the file is created (or truncated), nothing written
                result.close()
                raise Killed(calls[-1])
            return result

        return operation

    with pytest.MonkeyPatch.context() as patch:
        for module, name in OPERATIONS:
            patch.setattr(module, name, wrap(getattr(module, name), f"{module.__name__}.{name}"))
        # The open of cathtrack.checkpoint.atomic_file, which writes every file: killed just
        # after it, with the file created (or truncated, were it written in place) and empty.
        opening = wrap(builtins.open, "open", after=True)
        patch.setattr(cathtrack.checkpoint, "open", opening, raising=False)
        yield calls


def _run(config, run: Path, stop_at: int | None, resume: bool, k: int | None = None) -> tuple:
    """Trains ``run`` to ``stop_at`` under :func:`kill_at`; returns (killed, operations)."""
    trainer = None
    try:
        with kill_at(k) as calls:
            trainer = Trainer(config, run, resume=run if resume else None, progress=False)
            trainer.fit(stop_at=stop_at)
    except Killed:
        return True, calls
    finally:
        if trainer is not None:
            trainer.logger.close()  # a killed process's TensorBoard thread would be gone too
    return False, calls


def _copy(source: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, symlinks=True)
    return target


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def _snapshot(run: Path, name: str) -> dict | None:
    """Weights and trainer state of ``run``'s checkpoint ``name`` (None if there is none)."""
    directory = run / "checkpoints" / name
    if not directory.exists():
        return None
    model, metadata = load_model(directory)  # model_paths takes the link as a directory
    return {
        "weights": load_file(directory / "model.safetensors"),
        "state": (directory / "trainer_state.json").read_text(),
        "step": metadata["training"]["step"],
    }


def _version_of(found: dict | None, old: dict | None, new: dict | None) -> str:
    """'old' or 'new': which whole checkpoint ``found`` is (its weights and state together)."""
    for label, version in (("old", old), ("new", new)):
        if (found is None) == (version is None) and (
            found is None
            or (_same(found["weights"], version["weights"]) and found["state"] == version["state"])
        ):
            return label
    raise AssertionError("the checkpoint is neither the old nor the new one, or a mix of both")


def _leftovers(run: Path) -> list[str]:
    """Checkpoint versions nothing points to and temporary files (a recovered run has none)."""
    folder = run / "checkpoints"
    names = sorted(path.name for path in folder.iterdir())
    linked = {os.readlink(folder / name) for name in ("last", "best") if (folder / name).exists()}
    return [
        name
        for name in names
        if name not in ("last", "best") and name not in linked or name.endswith(".tmp")
    ]


def _improving_validate(model, *args, **kwargs) -> dict:
    """The real validation, with a mean KPI that grows with the training steps (a count kept in
    the weights, so resumed runs agree), so that every validation commits ``best``."""
    metrics = validate(model, *args, **kwargs)
    steps = next(b for n, b in model.named_buffers() if n.endswith("num_batches_tracked"))
    return {**metrics, "mean_kpi": float(steps) / 1000}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """(config file, config) of the tiny run; ``best`` improves at every validation."""
    monkeypatch.setattr("cathtrack.train.trainer.validate", _improving_validate)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path, load_config(path)


@pytest.mark.slow
def test_a_kill_at_any_step_of_a_commit_leaves_the_old_or_the_new_checkpoint(tmp_path, tiny):
    """Resumed from step 2, the run commits ``best`` and then ``last`` at step 3.

    A kill at any of its file operations leaves ``last`` and ``best`` each whole at their old or
    new version, ``--resume`` continues to the weights of an uninterrupted run, and a fresh start
    in the same folder is refused (it holds a run to resume).
    """
    config_path, config = tiny
    start = tmp_path / "start"
    assert not _run(config, start, stop_at=2, resume=False)[0]
    old = {name: _snapshot(start, name) for name in ("last", "best")}
    assert old["last"]["step"] == 2

    clean = _copy(start, tmp_path / "clean")
    killed, operations = _run(config, clean, stop_at=3, resume=True)
    assert not killed
    new = {name: _snapshot(clean, name) for name in ("last", "best")}
    assert new["last"]["step"] == new["best"]["step"] == 3
    assert not _same(new["last"]["weights"], old["last"]["weights"])
    _run(config, clean, stop_at=4, resume=True)
    final = load_file(clean / "checkpoints/last/model.safetensors")

    run = tmp_path / "run"
    seen = {"last": set(), "best": set()}
    for k in range(1, len(operations) + 2):
        _copy(start, run)
        killed, _ = _run(config, run, stop_at=3, resume=True, k=k)
        assert killed == (k <= len(operations)), f"kill at {k} of {len(operations)}"
        where = f"killed at {operations[k - 1] if killed else 'no operation'} (call {k})"
        for name in ("last", "best"):
            found = _snapshot(run, name)
            seen[name].add(_version_of(found, old[name], new[name]))
            assert found is None or json.loads(found["state"])["step"] == found["step"], where

        # A fresh start refuses the folder: it holds a run to resume.
        code = main(["--config", str(config_path), "--out", str(run), "--no-progress"])
        assert code == 2, where

        assert not _run(config, run, stop_at=4, resume=True)[0]
        assert _same(load_file(run / "checkpoints/last/model.safetensors"), final), where
        assert _leftovers(run) == [], where
    # The sweep covered kills on both sides of both commit points.
    assert seen == {"last": {"old", "new"}, "best": {"old", "new"}}


@pytest.mark.slow
def test_trainer_state_json_is_never_missing_or_partial(tmp_path, tiny, monkeypatch):
    """From step 4 to the end (commits at step 5, then the final rewrite of ``last``'s
    trainer_state.json and summary.json), a kill at any file operation leaves a whole
    trainer_state.json in ``last`` and ``best``: the old text or the new one."""
    _, config = tiny
    monkeypatch.setattr("cathtrack.train.plots.plot_run", lambda run_dir: [])  # not under test
    start = tmp_path / "start"
    _run(config, start, stop_at=4, resume=False)
    old = {
        name: (start / "checkpoints" / name / "trainer_state.json").read_text()
        for name in ("last", "best")
    }

    clean = _copy(start, tmp_path / "clean")
    killed, operations = _run(config, clean, stop_at=None, resume=True)
    assert not killed and (clean / "summary.json").is_file()
    new = {
        name: (clean / "checkpoints" / name / "trainer_state.json").read_text()
        for name in ("last", "best")
    }
    assert new["last"] != old["last"]

    run = tmp_path / "run"
    for k in range(1, len(operations) + 1):
        _copy(start, run)
        assert _run(config, run, stop_at=None, resume=True, k=k)[0]
        for name in ("last", "best"):
            text = (run / "checkpoints" / name / "trainer_state.json").read_text()
            json.loads(text)  # whole JSON
            assert text in (old[name], new[name]), f"{name} after a kill at {operations[k - 1]}"


@pytest.mark.slow
def test_a_run_killed_in_its_first_commit_resumes_or_starts_afresh(tmp_path, tiny, monkeypatch):
    """No old checkpoint: a kill before the first ``last`` is committed leaves a folder that
    ``--resume`` reports as holding no checkpoint and a fresh start accepts (and cleans up); a
    kill after it leaves a run that resumes."""
    config_path, config = tiny
    clean = tmp_path / "clean"
    killed, operations = _run(config, clean, stop_at=1, resume=False)
    assert not killed
    _run(config, clean, stop_at=2, resume=True)
    final = load_file(clean / "checkpoints/last/model.safetensors")

    started = []

    class Recorder:  # the CLI's Trainer, to see what it would do without training
        def __init__(self, config, run_dir, resume=None, progress=True):
            started.append(resume)

        def fit(self):
            return {"steps": 0, "best_step": -1, "best_mean_kpi": None}

    run = tmp_path / "run"
    outcomes = set()
    for k in range(1, len(operations) + 1):
        shutil.rmtree(run, ignore_errors=True)
        assert _run(config, run, stop_at=1, resume=False, k=k)[0]
        where = f"killed at {operations[k - 1]} (call {k})"
        if committed(run / "checkpoints", "last") is None:
            outcomes.add("fresh")
            with monkeypatch.context() as patch:
                patch.setattr("cathtrack.train.trainer.Trainer", Recorder)
                assert main(["--resume", str(run), "--no-progress"]) == 2, where
                code = main(["--config", str(config_path), "--out", str(run), "--no-progress"])
            assert code == 0 and started[-1] is None, where
        else:
            outcomes.add("resume")
            assert not _run(config, run, stop_at=2, resume=True)[0]
            assert _same(load_file(run / "checkpoints/last/model.safetensors"), final), where
    assert outcomes == {"fresh", "resume"}

    # A real fresh start over what a kill inside the first commit of `last` left.
    state_commit = next(
        i + 1
        for i, call in enumerate(operations)
        if call.startswith("os.replace(") and "last.1/.trainer_state.json" in call
    )
    shutil.rmtree(run)
    assert _run(config, run, stop_at=1, resume=False, k=state_commit)[0]
    assert any(path.name.startswith("last.") for path in (run / "checkpoints").iterdir())
    assert main(["--config", str(config_path), "--out", str(run), "--no-progress"]) == 0
    assert _same(load_file(run / "checkpoints/last/model.safetensors"), _final_of(config, tmp_path))
    rows = (run / "train_log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3", "4", "5"]  # a new run's
    assert _leftovers(run) == []


def _final_of(config, tmp_path: Path) -> dict:
    """Weights of an uninterrupted run of ``config``."""
    run = tmp_path / "uninterrupted"
    Trainer(config, run, progress=False).fit()
    return load_file(run / "checkpoints/last/model.safetensors")


def test_atomic_file_leaves_the_old_file_on_error(tmp_path):
    target = tmp_path / "state.json"
    write_text_atomic(target, "old")
    with pytest.raises(ValueError), cathtrack.checkpoint.atomic_file(target, "w") as handle:
        handle.write("half")
        raise ValueError("failed while writing")
    assert target.read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["state.json"]


def _unversion(run: Path) -> None:
    """Turns ``run``'s checkpoints into the layout of the unversioned scheme (plain folders)."""
    folder = run / "checkpoints"
    for name in ("last", "best"):
        target = folder / os.readlink(folder / name)
        (folder / name).unlink()
        target.rename(folder / name)


def test_runs_from_before_versioned_checkpoints_resume(tmp_path, tiny):
    """Plain ``last``/``best`` folders (and a ``.last.tmp`` that the unversioned scheme's kill
    left beside a half-deleted ``last``) resume; the next commit turns them into links."""
    _, config = tiny
    start = tmp_path / "start"
    _run(config, start, stop_at=2, resume=False)
    reference = _copy(start, tmp_path / "reference")
    _run(config, reference, stop_at=3, resume=True)
    expected = load_file(reference / "checkpoints/last/model.safetensors")

    plain = _copy(start, tmp_path / "plain")
    _unversion(plain)
    _run(config, plain, stop_at=3, resume=True)
    interrupted = _copy(start, tmp_path / "interrupted")
    _unversion(interrupted)
    folder = interrupted / "checkpoints"
    shutil.copytree(folder / "last", folder / ".last.tmp")
    (folder / "last/model.safetensors").unlink()  # killed while deleting the old `last`
    _run(config, interrupted, stop_at=3, resume=True)

    for run in (plain, interrupted):
        for name in ("last", "best"):
            assert (run / "checkpoints" / name).is_symlink(), (run, name)
        assert _same(load_file(run / "checkpoints/last/model.safetensors"), expected), run
        assert _leftovers(run) == [], run
