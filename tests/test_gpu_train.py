"""tools/gpu_train.sh: the one-call GPU recipe, dry-run on the CPU with a tiny model and budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cathtrack.checkpoint import load_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "tools" / "gpu_train.sh"
MINUTES = 0.3

# A network small enough for a few hundred steps in 18 s on 2 busy cores.
TINY_MODEL = [
    "model.backbone=resnet18",
    "model.width=0.25",
    "model.projection_channels=32",
    "model.decoder_channels=[16,16]",
    "model.head_channels=16",
    "threads=1",
]
EVAL_KEYS = {"ap", "f1_2px", "precision_2px", "recall_2px", "point_ap_2px", "mean_j", "dice"}
EVAL_KEYS |= {"type_accuracy", "frames", "model", "data", "device"}


def run_script(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    """The script as a user runs it: python from PATH (this interpreter's), no install step."""
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "PYTHON")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["CATHTRACK_SKIP_INSTALL"] = "1"
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cuda_missing_fails_early_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result = run_script([str(tmp_path / "out"), "--device", "cuda"], tmp_path, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sees no CUDA GPU" in lines[0], result.stderr
    assert not (tmp_path / "out" / "data").exists()  # nothing rendered


def test_bad_option_is_refused(tmp_path):
    result = run_script([str(tmp_path / "out"), "--minutes", "soon"], tmp_path, timeout=60)
    assert result.returncode == 1
    assert "--minutes must be a positive number" in result.stderr


@pytest.mark.slow
def test_cpu_dry_run_writes_every_output_within_the_budget(tmp_path):
    out = tmp_path / "out"
    args = ["out", "--device", "cpu", "--minutes", str(MINUTES), "--frames", "32"]
    args += ["--size", "64", "--batch", "4", "--val-frames", "4", "--test-frames", "4"]
    args += ["--negatives-limit", "2", "--calibration-steps", "10", "--validations", "1"]
    # Started from another directory: the script finds the repository itself, and OUT_DIR is
    # relative to the caller's directory.
    result = run_script([*args, "--", *TINY_MODEL], tmp_path, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Model files: fp16 weights that load as float32, with the evaluation in the metadata.
    model, metadata = load_model(out / "model" / "model.safetensors")
    assert model.config.backbone == "resnet18" and metadata["input_size"] == 64
    from safetensors import safe_open

    with safe_open(str(out / "model" / "model.safetensors"), "pt") as weights:
        dtypes = {str(weights.get_tensor(name).dtype) for name in weights.keys()}
    assert "torch.float16" in dtypes and "torch.float32" not in dtypes
    training = metadata["training"]
    assert {"eval_clinical_seed1000", "eval_real_seed1001", "negatives_testing"} <= set(training)

    for name in ("clinical_seed1000", "real_seed1001"):
        metrics = json.loads((out / "eval" / f"{name}.json").read_text())
        assert EVAL_KEYS <= set(metrics), EVAL_KEYS - set(metrics)
        assert metrics["frames"] == 4 and metrics["device"] == "cpu"
    negatives = json.loads((out / "eval" / "negatives_testing.json").read_text())
    assert negatives["summary"]["frames"] == 2
    assert {"vessel_marked_pooled", "electrodes_mean"} <= set(negatives["summary"])

    for name in ("train_log.csv", "val_log.csv", "config.yaml", "train_summary.json"):
        assert (out / name).is_file(), name
    assert {p.name for p in (out / "plots").glob("*.png")} >= {"losses.png", "validation.png"}
    for phase in ("data-train", "calibrate", "train", "eval-clinical", "negatives", "export"):
        assert (out / "logs" / f"{phase}.log").is_file(), phase
    assert not (out / "data").exists() and not (out / "run" / "checkpoints").exists()

    summary = (out / "summary.txt").read_text()
    assert "| clinical seed 1000 (4 frames) |" in summary and "| real seed 1001" in summary
    assert "vessel pixels marked catheter" in summary and "phase timings" in summary
    assert summary in result.stdout

    # The budget: the plan fits it; the run keeps to it roughly (2 shared cores are noisy).
    plan = json.loads((out / "calibration.json").read_text())
    train_summary = json.loads((out / "train_summary.json").read_text())
    assert train_summary["steps"] == plan["steps"] >= 10
    assert plan["expected_s"] <= MINUTES * 60
    timings = dict(line.split("\t") for line in (out / "timings.tsv").read_text().splitlines())
    assert float(timings["train"]) <= 2 * MINUTES * 60 + 15, timings
