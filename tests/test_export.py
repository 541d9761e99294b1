"""cathtrack export: model files with metadata, atomic writes, the export cache, the CLI verb."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from runtime_support import TINY_SIZE, TRAINING_CONFIG_HASH, tiny_checkpoint, tiny_export

from cathtrack import _native, device, export
from cathtrack.checkpoint import load_model, save_model
from cathtrack.cli import main
from cathtrack.data.synth import preset, render


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


def expected_metadata(checkpoint: Path, model_format: str) -> dict[str, str]:
    sha = export.file_sha256(checkpoint)
    return {
        "format": "cathtrack-model-file",
        "format_version": "1",
        "model_format": model_format,
        "input_size": str(TINY_SIZE),
        "in_channels": "1",
        "normalization": "percentile-stretch+bilinear-antialias",
        "normalization_version": "1",
        "output_strides": "1,4,4",
        "heads": "segmentation_logits,center_heatmap,size",
        "model_version": sha[:16],
        "training_config_hash": TRAINING_CONFIG_HASH,
        "source_sha256": sha,
        "dtype": "float32",
        "device": "cpu",
        "torch_version": torch.__version__,
    }


@pytest.mark.slow  # the .pt2 compiles C++ (~30 s on 2 cores, once per session)
@pytest.mark.parametrize("model_format", ["ts", "pt2"])
def test_exported_files_carry_their_metadata(tmp_path_factory, checkpoint, model_format):
    path = tiny_export(tmp_path_factory, model_format)
    metadata = export.read_model_metadata(path)
    assert metadata.items() >= expected_metadata(checkpoint, model_format).items()
    model, _ = load_model(checkpoint)
    assert metadata["model_config"] == json.dumps(model.config.to_dict(), sort_keys=True)
    if model_format == "pt2":
        assert metadata["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        assert metadata["AOTI_DEVICE_KEY"] == "cpu"  # AOTInductor's own keys sit beside ours
    engine = _native.Engine(str(path))
    assert engine.metadata() == metadata and engine.input_size == TINY_SIZE


@pytest.mark.parametrize("stride", [2, 1])
def test_a_finer_heatmap_stride_is_written_to_output_strides(tmp_path_factory, stride):
    checkpoint = tiny_checkpoint(tmp_path_factory, stride)
    path = tiny_export(tmp_path_factory, "ts", stride)
    metadata = export.read_model_metadata(path)
    expected = {**expected_metadata(checkpoint, "ts"), "output_strides": f"1,{stride},{stride}"}
    assert metadata.items() >= expected.items()
    assert json.loads(metadata["model_config"])["heatmap_stride"] == stride
    assert export.output_strides(stride) == f"1,{stride},{stride}"
    engine = _native.Engine(str(path))
    frame = render(preset("clinical", size=TINY_SIZE), seed=7).image
    assert engine(frame)["mask"].shape == (TINY_SIZE, TINY_SIZE)


def test_a_checkpoint_from_before_heatmap_strides_exports_as_stride_4(checkpoint, tmp_path):
    """Model JSON written before ModelConfig had heatmap_stride / fine_channels (the shipped
    models/*.json): loads as stride 4 with strict key matching and exports "1,4,4"."""
    old = tmp_path / "old.safetensors"
    old.write_bytes(checkpoint.read_bytes())
    document = json.loads(checkpoint.with_suffix(".json").read_text())
    for key in ("heatmap_stride", "fine_channels"):
        document["model"].pop(key)
    old.with_suffix(".json").write_text(json.dumps(document))
    model, _ = load_model(old)
    assert model.output_stride == 4
    metadata = export.read_model_metadata(export.export_model(old, tmp_path / "old.ts", "ts"))
    assert metadata["output_strides"] == "1,4,4" == export.OUTPUT_STRIDES
    assert "heatmap_stride" not in json.loads(metadata["model_config"])  # the file's own dict


def test_export_refuses_bad_requests(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="must end in .ts"):
        export.export_model(checkpoint, tmp_path / "model.pt2", "ts")
    with pytest.raises(ValueError, match="format must be one of"):
        export.export_model(checkpoint, tmp_path / "model.tflite", "tflite")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            export.export_model(checkpoint, tmp_path / "model.ts", "ts", device="cuda")
    with pytest.raises(FileNotFoundError):
        export.export_model(tmp_path / "absent.safetensors", tmp_path / "model.ts", "ts")
    assert list(tmp_path.iterdir()) == []


def test_half_on_a_cpu_without_native_bfloat16_is_refused(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(device, "cpu_has_native_bfloat16", lambda: False)
    with pytest.raises(ValueError, match="native bfloat16"):
        export.export_model(checkpoint, tmp_path / "model.ts", "ts", half=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    not device.cpu_has_native_bfloat16(), reason="this CPU computes no bfloat16 natively"
)
def test_half_on_the_cpu_exports_bfloat16_that_the_engine_runs(checkpoint, tmp_path):
    path = export.export_model(checkpoint, tmp_path / "model.ts", "ts", half=True)
    metadata = export.read_model_metadata(path)
    assert metadata["dtype"] == "bfloat16"
    full = _native.Engine(str(export.export_model(checkpoint, tmp_path / "full.ts", "ts")))
    half = _native.Engine(str(path))
    frame = render(preset("clinical", size=TINY_SIZE), seed=7).image
    reference, result = full(frame), half(frame)
    # bfloat16 keeps 8 significant bits: close to float32, not bit for bit.
    mask, mask_half = reference["mask"] >= 128, result["mask"] >= 128
    assert np.sum(mask & mask_half) / np.sum(mask | mask_half) > 0.97
    electrodes, electrodes_half = reference["electrodes"], result["electrodes"]
    assert len(electrodes) >= 5 and abs(len(electrodes) - len(electrodes_half)) <= 1
    distance = np.linalg.norm(electrodes[:, None] - electrodes_half[None], axis=-1).min(axis=1)
    assert np.median(distance) < 0.1, distance


def test_a_failed_export_leaves_no_file_and_keeps_the_old_one(checkpoint, tmp_path, monkeypatch):
    target = tmp_path / "model.ts"
    target.write_bytes(b"previous file")

    def fail_halfway(model, metadata, path):
        path.write_bytes(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "_write_torchscript", fail_halfway)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_model(checkpoint, target, "ts")
    assert target.read_bytes() == b"previous file"
    assert [p.name for p in tmp_path.iterdir()] == ["model.ts"]  # no temporary file left


# ---------------------------------------------------------------- the cache


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CATHTRACK_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert export.cache_dir() == tmp_path / "home" / ".cache" / "cathtrack"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert export.cache_dir() == tmp_path / "xdg" / "cathtrack"
    monkeypatch.setenv("CATHTRACK_CACHE", str(tmp_path / "mine"))
    assert export.cache_dir() == tmp_path / "mine"


def test_cache_key_changes_with_everything_a_compiled_file_depends_on(
    checkpoint, tmp_path, monkeypatch
):
    base = export.cache_key(checkpoint)
    assert export.cache_key(checkpoint) == base  # stable
    assert export.cache_key(checkpoint, "ts") != base
    assert export.cache_key(checkpoint, "pt2", half=True) != base
    model, document = load_model(checkpoint)
    copy = save_model(tmp_path / "copy.safetensors", model, input_size=TINY_SIZE,
                      training=document["training"])  # fmt: skip
    assert export.cache_key(copy) == base  # same weights and JSON in another place: same key
    with torch.no_grad():
        model.size_head.out.bias.add_(1.0)
    changed = save_model(tmp_path / "changed.safetensors", model, input_size=TINY_SIZE,
                         training=document["training"])  # fmt: skip
    assert export.cache_key(changed) != base
    with monkeypatch.context() as patch:
        patch.setattr(export, "machine_features", lambda device: "another instruction set")
        assert export.cache_key(checkpoint) != base
    with monkeypatch.context() as patch:
        patch.setattr(export, "machine_features", lambda device: f"{device} features")
        assert export.cache_key(checkpoint, device="cuda") != export.cache_key(checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "__version__", "99.0.0")
        assert export.cache_key(checkpoint) != base


def test_cached_export_exports_once_and_concurrent_exports_are_whole(
    checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setenv("CATHTRACK_CACHE", str(tmp_path / "cache"))
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(export.cached_export(checkpoint, "ts")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 1 and paths[0].parent == tmp_path / "cache"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [paths[0].name]
    assert export.read_model_metadata(paths[0])["model_format"] == "ts"

    def no_second_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the file")

    monkeypatch.setattr(export, "export_model", no_second_export)
    assert export.cached_export(checkpoint, "ts") == paths[0]


# ---------------------------------------------------------------- the verb


def test_cli_export_writes_a_loadable_file(checkpoint, tmp_path, capsys):
    out = tmp_path / "deploy" / "tiny.ts"
    assert main(["export", str(checkpoint), "--format", "ts", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    engine = _native.Engine(str(out))
    frame = np.random.default_rng(0).integers(0, 255, (100, 90), dtype=np.uint8)
    assert engine(frame)["mask"].shape == (100, 90)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--format", "ts", "--out", "x.pt2"], "must end in .ts"),
        (["--format", "ts", "--half"], "native bfloat16"),  # on a CPU without it (patched)
    ],
)
def test_cli_export_rejects_bad_input_with_one_line(
    checkpoint, capsys, monkeypatch, arguments, message
):
    monkeypatch.setattr(device, "cpu_has_native_bfloat16", lambda: False)
    assert main(["export", str(checkpoint), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cathtrack export: error:") and message in error
    assert "\n" not in error


def test_cli_export_names_a_missing_checkpoint(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing"), "--format", "ts"]) == 2
    assert "no model found" in capsys.readouterr().err


# ---------------------------------------------------------------- refusing bad model files

CORPUS_MODELS = Path(__file__).resolve().parent / "data" / "malformed" / "models"


def _package_of_torch(path: Path, torch_version: str) -> Path:
    """The corpus's metadata-only .pt2 with ``torch_version`` recorded."""
    import zipfile

    with zipfile.ZipFile(CORPUS_MODELS / "foreign_torch.pt2") as source:
        entries = {info.filename: source.read(info) for info in source.infolist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            if name.endswith("_metadata.json"):
                data = json.dumps({**json.loads(data), "torch_version": torch_version})
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_pt2_of_another_torch_is_refused_before_it_is_loaded(monkeypatch, backend):
    import cathtrack

    def must_not_load(*args, **kwargs):
        raise AssertionError("the package was opened")

    monkeypatch.setattr(_native, "Engine", must_not_load)
    monkeypatch.setattr(torch._inductor, "aoti_load_package", must_not_load)
    path = CORPUS_MODELS / "foreign_torch.pt2"
    with pytest.raises(ValueError) as raised:
        cathtrack.Tracker(path, device="cpu", backend=backend)
    message = str(raised.value)
    assert message.startswith(f"{path}: compiled by torch 2.1.0+cpu but this is torch ")
    assert torch.__version__ in message and "export it again" in message and "\n" not in message


def test_a_pt2_of_this_torch_passes_the_check(tmp_path):
    path = _package_of_torch(tmp_path / "here.pt2", torch.__version__)
    assert export.check_model_file(path)["torch_version"] == torch.__version__
    assert export.running_torch_version() == torch.__version__


def test_an_unloadable_package_is_refused_on_one_line(tmp_path):
    import cathtrack

    path = _package_of_torch(tmp_path / "empty.pt2", torch.__version__)  # no compiled code
    with pytest.raises(_native.ModelFileError) as raised:
        cathtrack.Tracker(path, device="cpu")
    assert str(raised.value).startswith(f"{path}: cannot load the AOTInductor package")
    assert "\n" not in str(raised.value)


def test_cached_export_names_a_missing_json_instead_of_errno(checkpoint, tmp_path):
    weights = tmp_path / "alone.safetensors"
    weights.write_bytes(checkpoint.read_bytes())
    with pytest.raises(FileNotFoundError) as raised:
        export.cached_export(weights, "ts")
    assert str(raised.value).startswith(f"{tmp_path / 'alone.json'}: model metadata not found")
    assert "Errno" not in str(raised.value)


def test_export_refuses_corrupt_weights_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="bitflip.safetensors: the weights are corrupt"):
        export.export_model(CORPUS_MODELS / "bitflip.safetensors", tmp_path / "m.ts", "ts")
    assert list(tmp_path.iterdir()) == []


def test_exports_of_a_hashed_checkpoint_record_the_same_hash(checkpoint):
    document = json.loads(checkpoint.with_suffix(".json").read_text())
    metadata = export.build_metadata(checkpoint, document, "ts", "cpu", False)
    assert metadata["source_sha256"] == document["weights_sha256"]


def test_the_native_engine_itself_refuses_a_pt2_of_another_torch(tmp_path):
    # C++ users of the engine get the same protection as the Tracker's Python check.
    with pytest.raises(_native.ModelFileError) as raised:
        _native.Engine(str(CORPUS_MODELS / "foreign_torch.pt2"), device="cpu")
    message = str(raised.value)
    assert "compiled by torch 2.1.0+cpu but this engine links torch" in message
    assert "export the model again" in message
    release = torch.__version__.split("+")[0]
    assert f"links torch {release};" in message
    # The same release with another local label ("+cpu", "+cu130") is not refused for it.
    other_label = _package_of_torch(tmp_path / "label.pt2", release + "+cu999")
    with pytest.raises(_native.ModelFileError) as raised:
        _native.Engine(str(other_label), device="cpu")
    assert "compiled by torch" not in str(raised.value)
