"""The shipped models on fresh synthetic frames: accuracy above the thresholds of their card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cathtrack.checkpoint import load_model, read_metadata
from cathtrack.data.synth import preset, render
from cathtrack.metrics import evaluate
from cathtrack.pipeline import predict
from cathtrack.settings import EVAL_SCORE_THRESHOLD, DecodeSettings
from cathtrack.tracker import default_model_path

# models/MODEL_CARD.md states these thresholds and what was measured on these 24 frames per
# preset (`real` over the vendored training angiograms); the margins absorb torch/BLAS
# differences across machines.
FRESH_SEED = 4242
REPO = Path(__file__).resolve().parents[1]
SHIPPED = {
    # measured: F1 0.859, precision 0.906, mean J 0.550, MAE 0.32 px
    ("cathtrack_resnet34.safetensors", "clinical"): {
        "f1_2px": 0.75,
        "precision_2px": 0.80,
        "mean_j": 0.47,
        "max_mae_px": 0.6,
    },
    # measured: F1 0.525, precision 0.635, mean J 0.396, MAE 0.46 px
    ("cathtrack_resnet34.safetensors", "real"): {
        "f1_2px": 0.42,
        "precision_2px": 0.50,
        "mean_j": 0.32,
        "max_mae_px": 0.8,
    },
    # measured: F1 0.477, precision 0.684, mean J 0.526, MAE 1.24 px
    ("cathtrack_lite.safetensors", "clinical"): {
        "f1_2px": 0.30,
        "precision_2px": 0.55,
        "mean_j": 0.42,
        "max_mae_px": 1.6,
    },
}
FILES = sorted({name for name, _ in SHIPPED})


def shipped_path(name: str):
    return default_model_path().parent / name


def test_the_default_is_the_papers_architecture_at_heatmap_stride_1():
    assert default_model_path().name == "cathtrack_resnet34.safetensors"
    model = read_metadata(default_model_path())["model"]
    assert model["backbone"] == "resnet34" and model["heatmap_stride"] == 1


@pytest.mark.parametrize("name", FILES)
def test_shipped_model_metadata_is_complete(name):
    path = shipped_path(name)
    metadata = read_metadata(path)
    assert metadata["input_size"] == 256
    assert metadata["training"]["config_hash"]
    assert path.stat().st_size <= 25 * 1024 * 1024


@pytest.mark.parametrize(("name", "preset_name"), SHIPPED)
def test_shipped_model_accuracy_on_a_fresh_seed(name, preset_name):
    model, metadata = load_model(shipped_path(name))
    backgrounds = {"background_dir": str(REPO / "data" / "angiograms" / "training")}
    extra = backgrounds if preset_name == "real" else {}
    config = preset(preset_name, size=metadata["input_size"], **extra)
    samples = [render(config, FRESH_SEED + i) for i in range(24)]
    predictions = predict(
        model,
        [s.image for s in samples],
        metadata["input_size"],
        DecodeSettings(score_threshold=EVAL_SCORE_THRESHOLD),  # as cathtrack eval decodes
    )
    metrics = evaluate(samples, predictions)
    thresholds = dict(SHIPPED[name, preset_name])
    assert metrics["mae_px"] <= thresholds.pop("max_mae_px"), metrics["mae_px"]
    for key, threshold in thresholds.items():
        assert metrics[key] >= threshold, (key, metrics[key])


def test_the_default_on_real_angiograms_without_electrode_catheters(tmp_path):
    """The card's real-frame check, all 40 testing angiograms (contrast-filled vessels, no
    electrode catheter): measured 21.7 % of vessel pixels marked catheter and 0.65 false
    electrodes per frame; the targets (2 %, 0.1) are not met, so this guards against getting
    worse."""
    from cathtrack.cli import main

    out = tmp_path / "negatives.json"
    folder = REPO / "data" / "angiograms" / "testing"
    arguments = ["negatives", str(folder), "--backend", "python", "--device", "cpu"]
    assert main(arguments + ["--json", str(out)]) == 0
    summary = json.loads(out.read_text())["summary"]
    assert summary["frames"] == 40
    assert summary["vessel_marked_pooled"] <= 0.26, summary["vessel_marked_pooled"]
    assert summary["electrodes_mean"] <= 1.0, summary["electrodes_mean"]
