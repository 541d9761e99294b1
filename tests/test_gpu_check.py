"""tools/gpu_check.sh: the one-call GPU check, dry-run on the CPU with a small model and budget."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tools" / "gpu_check.sh"
LITE_MODEL = REPO_ROOT / "models" / "cathtrack_lite.safetensors"
CHECKS = [
    "build-info",
    "pytest-cuda",
    "cuda-parity",
    "data",
    "eval-cpu",
    "eval-device",
    "eval-compare",
    "engine-parity",
    "bench",
]
SMALL_RUN = ["--model", str(LITE_MODEL), "--frames", "4", "--parity-frames", "2"]
SMALL_RUN += ["--bench-frames", "3", "--size", "128"]


def run_script(
    args: list[str], cwd: Path, timeout: float, hide_nvcc: bool = False, cache: Path | None = None
) -> subprocess.CompletedProcess:
    """The script as a user runs it: python from PATH (this interpreter's), no install step, the
    session's export cache (or ``cache``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "PYTHON")}
    if cache is not None:
        env["CATHTRACK_CACHE"] = str(cache)
    path = [str(Path(sys.executable).parent), *env.get("PATH", "").split(os.pathsep)]
    if hide_nvcc:  # as on a machine without the CUDA toolkit
        path = [folder for folder in path if not (Path(folder) / "nvcc").exists()]
    env["PATH"] = os.pathsep.join(path)
    env["CATHTRACK_SKIP_INSTALL"] = "1"
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def statuses(out: Path) -> dict[str, str]:
    rows = [line.split("\t") for line in (out / "checks.tsv").read_text().splitlines()]
    return {name: status for name, status, _ in rows}


def test_cuda_missing_fails_early_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result = run_script([str(tmp_path / "out"), "--device", "cuda"], tmp_path, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sees no CUDA GPU" in lines[0], result.stderr
    assert not (tmp_path / "out" / "checks.tsv").read_text()  # no check ran


@pytest.mark.parametrize(
    "args, message",
    [
        (["--minutes", "soon"], "--minutes must be a positive number"),
        (["--frames", "0"], "--frames must be a positive integer"),
        (["--only", "bench,speed"], "--only: no check named speed"),
        (["--model", "missing.safetensors"], "no model file"),
    ],
)
def test_bad_option_is_refused_in_one_line(tmp_path, args, message):
    result = run_script([str(tmp_path / "out"), *args], tmp_path, timeout=60)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_budget_stops_a_running_check_and_still_summarises(tmp_path):
    """--minutes 0.5: 30 s, of which the summary keeps 15. Rendering fits; the engine check,
    which must first export the ResNet34 to a .pt2 (an empty export cache) and then run 50
    frames twice, is stopped at the budget's end; the bench is not started; the table still
    comes, and the run fails."""
    started = time.monotonic()
    args = ["out", "--device", "cpu", "--minutes", "0.5", "--frames", "50", "--size", "128"]
    args += ["--parity-frames", "50", "--only", "data,engine-parity,bench"]
    result = run_script(args, tmp_path, 120, cache=tmp_path / "empty_cache")
    took = time.monotonic() - started
    out = tmp_path / "out"
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert statuses(out) == {"data": "pass", "engine-parity": "timeout", "bench": "not-run"}
    assert "| engine-parity | timeout |" in result.stdout
    assert "result: not passed: engine-parity, bench" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] is False and summary["seconds"] <= 30 + 5
    assert took < 30 + 15  # the budget, bash and the summary's own start-up


@pytest.mark.slow  # the .pt2 export of the lite model (~45 s on 2 busy cores), two evaluations
def test_cpu_dry_run_runs_every_check_and_writes_every_output(tmp_path):
    out = tmp_path / "out"
    # Started from another directory: OUT_DIR and --model are relative to the caller's.
    args = ["out", "--device", "cpu", "--minutes", "4", *SMALL_RUN]
    result = run_script(args, tmp_path, timeout=300, hide_nvcc=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    status = statuses(out)
    assert status == {
        **{name: "pass" for name in CHECKS},
        "pytest-cuda": "skip",  # the CUDA tests skip without a GPU
        "cuda-parity": "skip",  # no nvcc: nothing to build
    }
    assert "no nvcc" in (out / "logs" / "cuda-parity.log").read_text()
    for name in CHECKS:
        assert (out / "logs" / f"{name}.log").is_file(), name

    info = json.loads((out / "build_info.json").read_text())
    assert {"cuda_kernels", "cuda_engine", "cuda_available", "torch_cuda"} <= set(info)

    # CPU against CPU: the same figures, every one.
    compare = json.loads((out / "eval_compare.json").read_text())
    assert compare["ok"] and compare["frames"] == 4 and compare["device"] == "cpu"
    assert {"ap", "f1_2px", "mean_j", "dice", "mae_px"} <= set(compare["metrics"])
    differences = [row["difference"] for row in compare["metrics"].values()]
    assert all(d is None or d == 0.0 for d in differences), compare

    parity = json.loads((out / "engine_parity.json").read_text())
    assert parity["ok"] and parity["frames"] == 2 and parity["electrodes_reference"] > 0
    assert parity["matched_reference"] >= 0.99 and parity["mask_iou_mean"] >= 0.99

    bench = json.loads((out / "bench.json").read_text())
    assert set(bench["backends"]) == {"native pt2", "native ts", "python"}
    assert bench["frames"] == 3 and bench["size"] == 128 and bench["machine"]["device"] == "cpu"

    summary = (out / "summary.md").read_text()
    assert summary in result.stdout
    assert "| cuda-parity | skip |" in summary and "| engine-parity | pass |" in summary
    assert "| native pt2 | float32 |" in summary and "| f1_2px | " in summary
    assert "result: every check passed or was skipped" in summary
    report = json.loads((out / "summary.json").read_text())
    assert report["passed"] and report["seconds"] <= 4 * 60
    assert not (out / "data").exists() and not (out / ".cache").exists()


@pytest.mark.slow  # compiles the CUDA kernels and the driver for one architecture (~1 min)
def test_cuda_parity_driver_builds_and_runs_where_nvcc_is(tmp_path):
    import torch

    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc on this machine")
    out = tmp_path / "out"
    args = [str(out), "--device", "cpu", "--only", "cuda-parity", "--cuda-arch", "90"]
    result = run_script(args, tmp_path, timeout=600)
    log = (out / "logs" / "cuda-parity.log").read_text()
    if torch.cuda.is_available():
        assert result.returncode == 0 and "equals the CPU reference bit for bit" in log, log
    else:  # built, run, and told it found no GPU (exit 77)
        assert result.returncode == 0, result.stdout[-3000:] + log[-3000:]
        assert statuses(out) == {"cuda-parity": "skip"}
        assert "no CUDA device, kernels not run" in log
    assert (REPO_ROOT / "build" / "gpu-check" / "cpp-90" / "cathtrack" / "cuda_parity").is_file()
