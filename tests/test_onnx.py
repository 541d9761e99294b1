"""ONNX export and the onnxruntime backend: metadata, opset, dynamic batch, onnx's checker,
onnxruntime (the independent runtime) against eager torch, and the backend against the Python
reference."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from runtime_support import PARITY_SETTINGS, TINY_SIZE, sample_frames, tiny_checkpoint

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

from test_tracker import assert_same_result  # noqa: E402

import cathtrack  # noqa: E402
from cathtrack import _native, export  # noqa: E402
from cathtrack.checkpoint import load_model  # noqa: E402
from cathtrack.cli import main  # noqa: E402
from cathtrack.onnx_backend import OnnxNetwork, read_onnx_metadata  # noqa: E402
from cathtrack.pipeline import preprocess  # noqa: E402

HEADS = ["segmentation_logits", "center_heatmap", "size"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def onnx_file(checkpoint, tmp_path_factory):
    return export.export_model(checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx", "onnx")


@pytest.fixture(scope="module")
def frames():
    return sample_frames()


def batch_of(frames) -> np.ndarray:
    return np.stack([preprocess(frame, TINY_SIZE) for frame in frames])[:, None]


def test_the_file_passes_the_checker_with_opset_names_dynamic_batch_and_metadata(
    onnx_file, checkpoint
):
    proto = onnx.load(str(onnx_file))
    onnx.checker.check_model(proto, full_check=True)  # raises on a malformed graph
    assert {o.domain: o.version for o in proto.opset_import}[""] == export.ONNX_OPSET == 18
    (image,) = proto.graph.input
    assert image.name == "image"
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [1, TINY_SIZE, TINY_SIZE]
    assert [o.name for o in proto.graph.output] == HEADS
    for output in proto.graph.output:  # float32 out, the batch axis shared with the input
        assert output.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert output.type.tensor_type.shape.dim[0].dim_param == dims[0]

    metadata = {p.key: p.value for p in proto.metadata_props}
    sha = export.file_sha256(checkpoint)
    model, _ = load_model(checkpoint)
    expected = {
        "format": "cathtrack-model-file",
        "format_version": "1",
        "model_format": "onnx",
        "input_size": str(TINY_SIZE),
        "in_channels": "1",
        "normalization": "percentile-stretch+bilinear-antialias",
        "normalization_version": "1",
        "output_strides": "1,4,4",
        "heads": ",".join(HEADS),
        "model_version": sha[:16],
        "source_sha256": sha,
        "model_config": json.dumps(model.config.to_dict(), sort_keys=True),
        "dtype": "float32",
        "onnx_opset": "18",
        "input_name": "image",
        "torch_version": torch.__version__,
    }
    assert metadata.items() >= expected.items()
    assert "device" not in metadata  # an ONNX file is not tied to one
    assert export.read_model_metadata(onnx_file) == metadata
    # onnxruntime reads the same map from the file
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == metadata


def test_onnxruntime_equals_eager_torch_at_any_batch_size(onnx_file, checkpoint, frames):
    model, _ = load_model(checkpoint)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    for batch in (batch_of(frames[:1]), batch_of(frames)):  # 1 and 3 frames: a dynamic axis
        outputs = session.run(HEADS, {"image": batch})
        with torch.no_grad():
            expected = model(torch.from_numpy(batch))
        for ours, theirs in zip(outputs, expected, strict=True):
            assert ours.shape == tuple(theirs.shape)
            scale = float(theirs.abs().max())
            np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-4 * scale, rtol=1e-4)


def test_the_onnxruntime_backend_gives_the_python_reference_result(onnx_file, checkpoint, frames):
    ours = cathtrack.Tracker(onnx_file, device="cpu", backend="onnxruntime", **PARITY_SETTINGS)
    reference = cathtrack.Tracker(checkpoint, device="cpu", backend="python", **PARITY_SETTINGS)
    assert ours.input_size == TINY_SIZE and ours.metadata["model_format"] == "onnx"
    typed = 0
    for frame in frames:
        result = ours(frame)
        assert_same_result(result, reference(frame))
        assert set(result.timings) >= {"preprocess", "inference", "postprocess", "total"}
        typed += sum(c.type != "unknown" for c in result.catheters)
    assert typed >= 2  # catheter types were compared, not only "unknown"
    ours.configure(score_threshold=0.6)  # decoding settings apply as in the other backends
    reference.configure(score_threshold=0.6)
    assert_same_result(ours(frames[0]), reference(frames[0]))


def test_a_checkpoint_is_exported_to_onnx_in_the_cache(checkpoint, frames, tmp_path, monkeypatch):
    monkeypatch.setenv("CATHTRACK_CACHE", str(tmp_path / "cache"))
    tracker = cathtrack.Tracker(checkpoint, device="cpu", backend="onnxruntime", **PARITY_SETTINGS)
    assert tracker.model_path.parent == tmp_path / "cache"
    assert tracker.model_path.suffix == ".onnx"
    reference = cathtrack.Tracker(checkpoint, device="cpu", backend="python", **PARITY_SETTINGS)
    assert_same_result(tracker(frames[1]), reference(frames[1]))


def test_half_exports_float16_behind_float32_input_and_outputs(checkpoint, frames, tmp_path):
    path = export.export_model(checkpoint, tmp_path / "half.onnx", "onnx", half=True)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert export.read_model_metadata(path)["dtype"] == "float16"
    weights = [t for t in proto.graph.initializer if len(t.dims) == 4]  # conv kernels
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    for value in [*proto.graph.input, *proto.graph.output]:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    full = OnnxNetwork(export.export_model(checkpoint, tmp_path / "full.onnx", "onnx"))
    half = OnnxNetwork(path)
    batch = batch_of(frames)
    (mask, heatmap, _), (mask16, heatmap16, _) = full(batch), half(batch)
    # float16 keeps 11 significant bits: close to float32, not equal
    agree = np.sum((mask > 0) & (mask16 > 0)) / np.sum((mask > 0) | (mask16 > 0))
    assert agree > 0.98
    assert np.abs(heatmap - heatmap16).max() < 0.02


def test_foreign_corrupt_and_unknown_files_are_refused_naming_the_file(onnx_file, tmp_path):
    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(proto.SerializeToString())
    with pytest.raises(_native.ModelFileError, match=r"foreign\.onnx: metadata has no 'format'"):
        read_onnx_metadata(foreign)

    newer = onnx.load(str(onnx_file))
    onnx.helper.set_model_props(
        newer, {**{p.key: p.value for p in newer.metadata_props}, "format_version": "2"}
    )
    future = tmp_path / "future.onnx"
    future.write_bytes(newer.SerializeToString())
    with pytest.raises(ValueError, match="future.onnx: model file format_version '2'"):
        cathtrack.Tracker(future, device="cpu", backend="onnxruntime")

    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(onnx_file.read_bytes()[:1000])
    with pytest.raises(_native.ModelFileError, match="corrupt.onnx: not a readable ONNX file"):
        export.read_model_metadata(corrupt)
    with pytest.raises(FileNotFoundError):
        read_onnx_metadata(tmp_path / "absent.onnx")


def test_a_missing_runtime_is_named_with_the_extra_to_install(onnx_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(
        ModuleNotFoundError, match=r"onnxruntime is not installed.*cathtrack\[onnx\]"
    ):
        OnnxNetwork(onnx_file)


def test_bad_requests_are_refused_before_anything_is_written(onnx_file, checkpoint, tmp_path):
    with pytest.raises(ValueError, match="an ONNX file runs with backend='onnxruntime'"):
        cathtrack.Tracker(onnx_file, device="cpu")
    with pytest.raises(ValueError, match="export it with device 'cpu'"):
        export.export_model(checkpoint, tmp_path / "model.onnx", "onnx", device="cuda")
    with pytest.raises(ValueError, match="must end in .onnx"):
        export.export_model(checkpoint, tmp_path / "model.pt2", "onnx")
    with pytest.raises(ValueError, match="backend must be one of"):
        cathtrack.Tracker(checkpoint, backend="tensorrt")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_writes_an_onnx_file_and_says_what_it_is(checkpoint, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "float32, opset 18, dynamic batch" in printed
    assert read_onnx_metadata(out)["model_format"] == "onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
