"""Every installed command and every ``cathtrack`` verb answers ``--help`` (with examples) and
``--version`` in a subprocess, without side effects: no file written, no model loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cathtrack
from cathtrack.cli import VERBS

BIN = Path(sys.executable).parent


def _run(tmp_path: Path, *command: str) -> subprocess.CompletedProcess:
    """``command`` in an empty working folder, with its home and caches there too."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "CATHTRACK_CACHE": str(tmp_path / "cathtrack-cache"),
    }
    return subprocess.run(
        command,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _written(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.name != "work")


def _script(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"the console script {name} is not installed beside {sys.executable}"
    return str(path)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_each_verb_answers_help_with_examples_and_writes_nothing(verb, tmp_path):
    done = _run(tmp_path, _script("cathtrack"), verb, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: cathtrack {verb}")
    assert "examples:" in done.stdout
    assert done.stderr == ""
    assert _written(tmp_path) == []


@pytest.mark.parametrize(
    ("command", "name"),
    [(("cathtrack",), "cathtrack"), (("cathtrack-train",), "cathtrack-train")],
)
def test_commands_answer_help_and_version(command, name, tmp_path):
    script = _script(command[0])
    helped = _run(tmp_path, script, "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith(f"usage: {name}") and "--version" in helped.stdout
    version = _run(tmp_path, script, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"{name} {cathtrack.__version__}"
    assert _written(tmp_path) == []


def test_python_m_cathtrack_cli_is_the_same_command(tmp_path):
    done = _run(tmp_path, sys.executable, "-m", "cathtrack.cli", "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"cathtrack {cathtrack.__version__}"


def test_help_does_not_load_torch():
    code = (
        "import sys\n"
        "from cathtrack.cli import build_parser\n"
        "from cathtrack.train.cli import build_parser as train_parser\n"
        "build_parser(); train_parser()\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
