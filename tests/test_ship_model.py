"""tools/ship_model.py: a checkpoint becomes a float16 model file whose .json carries the
evaluations, and the file loads with the same outputs as the checkpoint (to float16 precision)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cathtrack.checkpoint import file_sha256, load_model, save_model
from cathtrack.model import ModelConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "ship_model.py"


def _ship(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18", width=0.25, heatmap_stride=1)).eval()
    training = {"best_step": 7, "config_hash": "abc"}
    return save_model(
        tmp_path / "ckpt" / "model.safetensors", model, input_size=64, training=training
    )


def test_ship_writes_float16_with_the_evaluations(tmp_path, checkpoint):
    clinical = tmp_path / "clinical.json"
    clinical.write_text(json.dumps({"f1_2px": 0.5, "frames": 200}))
    negatives = tmp_path / "negatives.json"
    negatives.write_text(json.dumps({"summary": {"vessel_fraction": 0.01}, "frames": []}))
    out = tmp_path / "models" / "shipped.safetensors"
    done = _ship(
        checkpoint, out, "--eval", f"eval_clinical_seed1000={clinical}",
        "--negatives", negatives, "--recipe", "configs/x.yaml", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert file_sha256(out)[:16] in done.stdout
    document = json.loads(out.with_suffix(".json").read_text())
    training = document["training"]
    assert training["eval_clinical_seed1000"] == {"f1_2px": 0.5, "frames": 200}
    assert training["negatives_testing"] == {"vessel_fraction": 0.01}
    assert training["recipe"] == "configs/x.yaml"
    assert training["best_step"] == 7 and training["config_hash"] == "abc"
    assert document["model"]["heatmap_stride"] == 1 and document["input_size"] == 64

    original, _ = load_model(checkpoint)
    shipped, _ = load_model(out)
    state = shipped.state_dict()
    for name, tensor in original.state_dict().items():
        if tensor.is_floating_point():
            assert torch.equal(state[name], tensor.half().float()), name
    frame = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = original(frame), shipped(frame)
    for ours, reference in zip(b, a, strict=True):  # segmentation, heatmap, size logits
        torch.testing.assert_close(ours, reference, atol=2e-2, rtol=2e-2)


def test_ship_refuses_bad_arguments_and_oversized_files(tmp_path, checkpoint):
    out = tmp_path / "shipped.safetensors"
    bad = _ship(checkpoint, out, "--eval", "no-equals-sign", cwd=tmp_path)
    assert bad.returncode != 0 and "KEY=FILE" in bad.stderr and not out.exists()
    missing = _ship(checkpoint, out, "--eval", f"k={tmp_path / 'absent.json'}", cwd=tmp_path)
    assert missing.returncode != 0 and "cannot read" in missing.stderr and not out.exists()
    oversized = _ship(checkpoint, out, "--max-mb", "0.001", cwd=tmp_path)
    assert oversized.returncode == 1 and "over 0.001 MB" in oversized.stderr
