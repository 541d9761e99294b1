"""int8 in the native engine: the quantised graph, its metadata and calibration, the engine
against the Python pipeline on the same file, and the shipped model's accuracy kept."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from runtime_support import PARITY_SETTINGS, TINY_SIZE, sample_frames, tiny_checkpoint

pytest.importorskip("torchao", reason="int8 export needs torchao (the int8 extra)")

from test_tracker import assert_same_result  # noqa: E402

import cathtrack  # noqa: E402
from cathtrack import export, quantize  # noqa: E402
from cathtrack.checkpoint import load_model  # noqa: E402
from cathtrack.cli import main  # noqa: E402
from cathtrack.data.synth import preset, render  # noqa: E402
from cathtrack.metrics import evaluate  # noqa: E402
from cathtrack.pipeline import predict  # noqa: E402
from cathtrack.settings import EVAL_SCORE_THRESHOLD, DecodeSettings  # noqa: E402
from cathtrack.tracker import default_model_path  # noqa: E402

pytestmark = pytest.mark.slow  # each int8 export calibrates and compiles C++ (~45 s on 2 cores)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def recorded_frames(tmp_path_factory):
    """A folder of 16-bit PNG frames, as a user's recordings would be."""
    folder = tmp_path_factory.mktemp("recordings")
    for seed in range(4):
        image = render(preset("clinical", size=160), seed=300 + seed).image
        cv2.imwrite(str(folder / f"frame{seed:02d}.png"), np.rint(image * 65535).astype(np.uint16))
    return folder


@pytest.fixture(scope="module")
def int8_file(checkpoint, recorded_frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "tiny.int8.pt2"
    return export.export_model(
        checkpoint, out, int8=True, calibration=recorded_frames, calibration_frames=3
    )


def test_the_metadata_says_int8_and_how_it_was_calibrated(int8_file, checkpoint, recorded_frames):
    metadata = export.read_model_metadata(int8_file)
    assert metadata["quantization"] == "int8-static-pt2e-x86"
    assert metadata["quantization_calibration"] == f"3 frames of {recorded_frames.name}"
    assert metadata["quantization_float_modules"] == (
        "segmentation_head.out,center_head.out,size_head.out"
    )
    seven_bit = not torch.cpu._is_vnni_supported()
    assert metadata["quantization_activations"].endswith(", 7-bit range") == seven_bit
    # the engine feeds and reads float32, as for any other .pt2 of this machine
    assert metadata["dtype"] == "float32" and metadata["device"] == "cpu"
    assert metadata["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert metadata["source_sha256"] == export.file_sha256(checkpoint)


def test_convolutions_are_int8_except_the_heads_last_ones(checkpoint):
    model, _ = load_model(checkpoint)
    images, description = quantize.calibration_images(TINY_SIZE, None, 2)
    assert images.shape == (2, 1, TINY_SIZE, TINY_SIZE) and images.dtype == np.float32
    assert description == "2 synthetic clinical frames (dataset seed 2)"
    graph = quantize.quantize_int8(model, images).graph
    quantized, floating = set(), set()
    for node in graph.nodes:
        if node.target is not torch.ops.aten.conv2d.default:
            continue
        module = list(node.meta["nn_module_stack"].values())[-1][0]
        weight = node.args[1]
        is_int8 = weight.op == "call_function" and "dequantize" in str(weight.target)
        (quantized if is_int8 else floating).add(module.removeprefix("L['self'].").strip())
    float_modules = {name for name in floating if name.endswith(".out")}
    assert float_modules == set(quantize.FLOAT_MODULES)
    assert not any(name.startswith("backbone") for name in floating)
    assert len(quantized) >= 20  # the backbone, decoder and heads' hidden convs


def test_the_engine_runs_the_int8_file_as_the_python_pipeline_does(int8_file):
    native = cathtrack.Tracker(int8_file, device="cpu", **PARITY_SETTINGS)
    reference = cathtrack.Tracker(int8_file, device="cpu", backend="python", **PARITY_SETTINGS)
    assert native.metadata["quantization"] == "int8-static-pt2e-x86"
    electrodes = 0
    for frame in sample_frames():
        ours, theirs = native(frame), reference(frame)
        assert_same_result(ours, theirs)
        electrodes += len(ours.electrodes)
    assert electrodes >= 15  # the int8 network still finds peaks to compare


def test_int8_keeps_the_shipped_lite_models_accuracy(tmp_path):
    """The card's metrics of the lite model on 24 fresh frames, float32 against int8."""
    weights = default_model_path().parent / "cathtrack_lite.safetensors"
    model, metadata = load_model(weights)
    size = metadata["input_size"]
    samples = [render(preset("clinical", size=size), 4242 + i) for i in range(24)]
    settings = DecodeSettings(score_threshold=EVAL_SCORE_THRESHOLD)
    int8 = export.PackagedNetwork(export.export_model(weights, tmp_path / "lite.pt2", int8=True))
    scores = {
        name: evaluate(samples, predict(network, [s.image for s in samples], size, settings))
        for name, network in (("float32", model), ("int8", int8))
    }
    for key in ("f1_2px", "mean_j", "dice"):
        assert abs(scores["int8"][key] - scores["float32"][key]) <= 0.02, (key, scores)
    assert scores["int8"]["mae_px"] <= scores["float32"]["mae_px"] + 0.1, scores


def test_tracker_int8_exports_a_checkpoint_once_and_eval_scores_that_file(
    checkpoint, tmp_path, capsys
):
    tracker = cathtrack.Tracker(checkpoint, device="cpu", int8=True, **PARITY_SETTINGS)
    assert tracker.model_path.suffix == ".pt2" and tracker.metadata["quantization"]
    assert tracker.metadata["quantization_calibration"].startswith("32 synthetic clinical")
    assert len(tracker(sample_frames()[0]).mask) == TINY_SIZE
    again = cathtrack.Tracker(checkpoint, device="cpu", int8=True)
    assert again.model_path == tracker.model_path  # from the cache, not exported again
    float_file = export.cached_export(checkpoint, "pt2")
    assert float_file != tracker.model_path  # int8 is its own cache entry

    data = tmp_path / "data"
    arguments = ["synth", "--out", str(data), "--n", "3", "--size", str(TINY_SIZE)]
    assert main([*arguments, "--seed", "5", "--workers", "1"]) == 0
    report = tmp_path / "eval.json"
    code = main(
        ["eval", str(checkpoint), str(data), "--int8", "--device", "cpu", "--json", str(report)]
    )
    assert code == 0
    metrics = json.loads(report.read_text())
    assert metrics["dtype"] == "int8" and metrics["fps"] > 0 and 0 <= metrics["mean_j"] <= 1
    capsys.readouterr()


def test_bad_int8_requests_are_refused_before_anything_is_written(
    checkpoint, recorded_frames, tmp_path, capsys
):
    for options in ({"model_format": "ts"}, {"half": True}, {"device": "cuda"}):
        suffix = options.get("model_format", "pt2")
        with pytest.raises(ValueError, match="int8 is a .pt2 for the CPU"):
            export.export_model(checkpoint, tmp_path / f"model.{suffix}", int8=True, **options)
    with pytest.raises(ValueError, match="calibration frames are for an int8 export"):
        export.export_model(checkpoint, tmp_path / "model.pt2", calibration=recorded_frames)
    with pytest.raises(FileNotFoundError, match="calibration frames not found"):
        export.export_model(
            checkpoint, tmp_path / "model.pt2", int8=True, calibration=tmp_path / "absent"
        )
    with pytest.raises(ValueError, match="at least 1 frame"):
        quantize.calibration_images(TINY_SIZE, recorded_frames, 0)
    with pytest.raises(ValueError, match="int8 runs in the native backend"):
        cathtrack.Tracker(checkpoint, backend="python", int8=True)
    assert list(tmp_path.iterdir()) == []
    assert main(["export", str(checkpoint), "--int8", "--calibration-frames", "0"]) == 2
    assert main(["export", str(checkpoint), "--calibration", str(recorded_frames)]) == 2
    assert main(["export", str(checkpoint), "--int8", "--format", "ts"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and "--calibration-frames must be >= 1" in errors[0]
    assert "not --format ts" in errors[2]
