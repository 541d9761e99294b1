"""The native engine (src/cpp/runtime via cathtrack._native): parity with the Python reference
pipeline, preprocessing parity, model-file refusal, bad frames, threads."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import threading
import time
import zipfile

import numpy as np
import pytest
import torch
from runtime_support import PARITY_SETTINGS, TINY_SIZE, sample_frames, tiny_checkpoint, tiny_export

from cathtrack import _native
from cathtrack import postprocess as pp
from cathtrack.catheters import type_name
from cathtrack.checkpoint import load_model
from cathtrack.data.normalize import normalize_frame, resize_frame
from cathtrack.pipeline import predict
from cathtrack.settings import DecodeSettings

TEMPLATES = [(index, list(spacing)) for index, spacing in pp.spacing_templates()]


def make_engine(path, **settings) -> _native.Engine:
    native_settings = _native.DecodeSettings(**{**PARITY_SETTINGS, **settings})
    return _native.Engine(str(path), templates=TEMPLATES, settings=native_settings)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def torchscript_file(tmp_path_factory):
    return tiny_export(tmp_path_factory, "ts")


@pytest.fixture(scope="module")
def frames():
    return sample_frames()


def binary_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


# ---------------------------------------------------------------- parity with cathtrack.pipeline


def assert_engine_matches_the_python_reference(engine, checkpoint, frames) -> None:
    """The native engine's results on ``frames`` equal cathtrack.pipeline.predict's."""
    model, _ = load_model(checkpoint)
    settings = DecodeSettings(
        score_threshold=PARITY_SETTINGS["score_threshold"],
        max_assign_distance=PARITY_SETTINGS["max_assign_distance"],
    )
    electrodes_seen, classified = 0, 0
    for frame in frames:
        native = engine(frame)
        (reference,) = predict(model, [frame], TINY_SIZE, settings)
        assert native["mask"].shape == frame.shape and native["mask"].dtype == np.uint8
        assert len(native["electrodes"]) == len(reference.electrodes)
        np.testing.assert_allclose(native["electrodes"], reference.electrodes, atol=0.1)
        np.testing.assert_allclose(native["scores"], reference.scores, atol=1e-4)
        np.testing.assert_allclose(native["sizes"], reference.sizes, atol=1e-3)
        assert binary_iou(native["mask"] > 127, reference.mask > 0.5) >= 0.99
        assert len(native["catheters"]) == len(reference.catheters)
        for ours, (reference_type, group), line in zip(
            native["catheters"], reference.catheters, reference.centerlines, strict=True
        ):
            ours_type = type_name(ours["type"])
            assert ours_type == reference_type
            np.testing.assert_array_equal(ours["electrodes"], group)
            np.testing.assert_allclose(ours["centerline"], line, atol=0.1)
            classified += len(group) >= 2
        electrodes_seen += len(reference.electrodes)
    # the comparison had something to compare (see runtime_support for how the model is built)
    assert electrodes_seen >= 30 and classified >= 3


@pytest.mark.slow  # the .pt2 export compiles C++ (~30 s on 2 cores, once per session)
@pytest.mark.parametrize("model_format", ["ts", "pt2"])
def test_engine_matches_the_python_reference(tmp_path_factory, checkpoint, frames, model_format):
    engine = make_engine(tiny_export(tmp_path_factory, model_format))
    assert_engine_matches_the_python_reference(engine, checkpoint, frames)


@pytest.mark.parametrize(
    "model_format",
    ["ts", pytest.param("pt2", marks=pytest.mark.slow)],  # .pt2: ~30 s each
)
@pytest.mark.parametrize("stride", [2, 1])
def test_engine_matches_the_python_reference_at_finer_heatmap_strides(
    tmp_path_factory, frames, model_format, stride
):
    """Models with a stride-2 or stride-1 heatmap (ModelConfig.heatmap_stride): the engine reads
    the stride from the metadata, checks the output shapes with it and maps peaks with
    x = s (u + 0.5) - 0.5; the Python pipeline infers it from the shapes."""
    checkpoint = tiny_checkpoint(tmp_path_factory, stride)
    path = tiny_export(tmp_path_factory, model_format, stride)
    engine = make_engine(path)
    assert engine.metadata()["output_strides"] == f"1,{stride},{stride}"
    assert_engine_matches_the_python_reference(engine, checkpoint, frames)


def test_engine_reports_metadata_timings_and_its_input_size(torchscript_file, frames):
    engine = make_engine(torchscript_file)
    assert engine.input_size == TINY_SIZE and engine.device == "cpu"
    assert engine.metadata()["model_format"] == "ts"
    timings = engine(frames[1])["timings"]
    assert set(timings) == {"preprocess", "inference", "postprocess", "total"}
    assert all(value > 0 for value in timings.values())
    parts = timings["preprocess"] + timings["inference"] + timings["postprocess"]
    assert timings["total"] == pytest.approx(parts, rel=1e-6, abs=1e-6)


# ---------------------------------------------------------------- decoding settings


def assert_same_settings(native, python) -> None:
    """Every field of a _native.DecodeSettings equals the Python dataclass' (float32 in C++)."""
    for name in DecodeSettings.names():
        expected = getattr(python, name)
        if isinstance(expected, int):
            assert getattr(native, name) == expected, name
        else:
            assert getattr(native, name) == pytest.approx(expected, rel=1e-6), name


def test_native_decode_settings_defaults_equal_the_python_defaults():
    native, python = _native.DecodeSettings(), DecodeSettings()
    assert_same_settings(native, python)
    assert_same_settings(python.to_native(), python)
    assert native == python.to_native()
    text = repr(native)
    assert text.startswith("DecodeSettings(")
    assert all(f"{name}=" in text for name in DecodeSettings.names())


def test_native_decode_settings_compare_copy_and_pickle():
    settings = _native.DecodeSettings(score_threshold=0.25, max_peaks=7, tip_lookback=3.0)
    assert settings != _native.DecodeSettings()
    assert pickle.loads(pickle.dumps(settings)) == settings
    copied = copy.copy(settings)
    copied.max_peaks = 8
    assert copied != settings and settings.max_peaks == 7
    with pytest.raises(TypeError):
        _native.DecodeSettings(0.3)  # keyword-only


def test_engine_settings_round_trip_and_bad_values_change_nothing(torchscript_file, frames):
    engine = make_engine(torchscript_file)
    assert_same_settings(engine.settings, DecodeSettings(**PARITY_SETTINGS))
    wanted = DecodeSettings(
        score_threshold=0.2,
        max_peaks=9,
        mask_threshold=0.4,
        min_centerline_length=12.0,
        max_assign_distance=6.0,
        spacing_tolerance=0.2,
        tip_lookback=8.0,
    )
    engine.set_settings(wanted.to_native())
    assert engine.settings == wanted.to_native()
    assert_same_settings(engine.settings, wanted)
    returned = engine.settings  # a copy: changing it changes nothing in the engine
    returned.max_peaks = 1
    assert engine.settings.max_peaks == 9
    with pytest.raises(AttributeError):
        engine.settings = _native.DecodeSettings()
    for bad, message in (
        ({"score_threshold": -1.0}, "finite and >= 0"),
        ({"score_threshold": float("nan")}, "finite and >= 0"),
        ({"tip_lookback": float("inf")}, "finite and >= 0"),
        ({"max_peaks": -1}, "max_peaks must be >= 0"),
        ({"spacing_tolerance": 0.0}, "spacing_tolerance must be finite and > 0"),
        # probabilities: beyond these no electrode, no catheter pixel could pass
        ({"score_threshold": 2.0}, r"score_threshold must be <= 1 \(.*\), got 2.0"),
        ({"mask_threshold": 1.0}, r"mask_threshold must be < 1 \(.*\), got 1.0"),
    ):
        native = _native.DecodeSettings(**{**dataclasses.asdict(wanted), **bad})
        with pytest.raises(ValueError, match=message):
            _native.check_decode_settings(native)
        with pytest.raises(ValueError, match=message):
            engine.set_settings(native)
        assert engine.settings == wanted.to_native()
        with pytest.raises(ValueError, match=message):
            _native.Engine(str(torchscript_file), settings=native)
    _native.check_decode_settings(wanted.to_native())
    assert len(engine(frames[0])["electrodes"]) <= 9  # the new max_peaks is in use


# ---------------------------------------------------------------- preprocessing parity


def normalisation_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    floats = rng.normal(100.0, 30.0, (67, 45)).astype(np.float32)
    floats[3, 4], floats[10, 11], floats[20, 2] = np.nan, np.inf, -np.inf
    saturated = rng.integers(0, 256, (50, 61), dtype=np.uint8)
    saturated[:10] = 255
    return [
        rng.integers(0, 4096, (90, 70), dtype=np.uint16),  # 12-bit in 16-bit words
        rng.integers(0, 65536, (33, 200), dtype=np.uint16),
        saturated,
        floats,
        rng.random((128, 128), dtype=np.float32) * 1e-30,  # tiny range, still stretched
        np.full((9, 7), 1234, np.uint16),  # constant: 0.5
        np.full((4, 4), np.nan, np.float32),  # nothing finite: 0
        np.array([[3.0]], np.float32),  # 1x1
        np.arange(17, dtype=np.uint8)[None],  # one row
    ]


@pytest.mark.parametrize("case", range(len(normalisation_cases())))
def test_native_normalisation_equals_normalize_frame_exactly(case):
    frame = normalisation_cases()[case]
    np.testing.assert_array_equal(_native.normalize_frame(frame), normalize_frame(frame))


@pytest.mark.parametrize("shape", [(300, 200), (64, 64), (40, 90), (1, 1), (128, 128)])
def test_native_resize_equals_resize_frame(shape):
    frame = np.random.default_rng(3).integers(0, 4096, shape, dtype=np.uint16)
    expected = resize_frame(normalize_frame(frame), TINY_SIZE)
    np.testing.assert_allclose(_native.preprocess_frame(frame, TINY_SIZE), expected, atol=1e-5)


# ---------------------------------------------------------------- model files the engine refuses


def test_refuses_a_wrong_suffix_a_missing_file_and_corrupt_files(tmp_path, torchscript_file):
    other = tmp_path / "model.onnx"
    other.write_bytes(torchscript_file.read_bytes())
    with pytest.raises(_native.ModelFileError, match=r"model\.onnx: unknown model file suffix"):
        make_engine(other)
    with pytest.raises(ValueError, match="not found"):
        make_engine(tmp_path / "absent.pt2")
    for suffix in (".pt2", ".ts"):
        corrupt = tmp_path / f"corrupt{suffix}"
        corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
        with pytest.raises(_native.ModelFileError, match=f"corrupt\\{suffix}: cannot read"):
            make_engine(corrupt)
    truncated = tmp_path / "truncated.ts"
    truncated.write_bytes(torchscript_file.read_bytes()[:5000])
    with pytest.raises(_native.ModelFileError, match="truncated.ts"):
        make_engine(truncated)
    renamed = tmp_path / "renamed.pt2"  # a TorchScript archive is not an AOTInductor package
    renamed.write_bytes(torchscript_file.read_bytes())
    with pytest.raises(_native.ModelFileError, match="renamed.pt2"):
        make_engine(renamed)


def test_refuses_torchscript_without_cathtrack_metadata(tmp_path):
    plain = tmp_path / "plain.ts"
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(plain))
    with pytest.raises(_native.ModelFileError, match="plain.ts: not a cathtrack model file"):
        make_engine(plain)


def rewrite_metadata(source, target, **changes) -> None:
    """Copies a model file with its metadata changed (None removes a key): the .ts record
    extra/cathtrack.json, or the .pt2 package's *_metadata.json files."""
    with zipfile.ZipFile(source) as archive_in, zipfile.ZipFile(target, "w") as archive_out:
        for item in archive_in.infolist():
            data = archive_in.read(item)
            if item.filename.endswith(("extra/cathtrack.json", "_metadata.json")):
                metadata = json.loads(data)
                for key, value in changes.items():
                    if value is None:
                        metadata.pop(key)
                    else:
                        metadata[key] = value
                data = json.dumps(metadata).encode()
            archive_out.writestr(item, data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": "2"}, "format_version '2' is not supported.*upgrade"),
        ({"normalization": "minmax"}, "normalization is 'minmax'"),
        ({"heads": "segmentation_logits"}, "heads is 'segmentation_logits'"),
        ({"input_size": "100"}, "input_size '100' is not a multiple of 32"),
        ({"dtype": "int8"}, "dtype 'int8' is not supported"),
        ({"model_format": "pt2"}, "model_format is 'pt2'"),
        ({"format": "someone-else"}, "format is 'someone-else'"),
        ({"input_size": None}, "'input_size' is missing"),
        ({"training_config_hash": None}, "'training_config_hash' is missing"),
        ({"dtype": "float16"}, "float16 model runs only on CUDA"),
        (
            {"output_strides": "1,3,3"},
            "output_strides is '1,3,3', .* only '1,4,4', '1,2,2', '1,1,1'",
        ),
        ({"output_strides": "1,2,4"}, "output_strides is '1,2,4'"),
        ({"output_strides": "2,2,2"}, "output_strides is '2,2,2'"),
        ({"output_strides": None}, "'output_strides' is missing"),
    ],
)
def test_refuses_metadata_this_build_does_not_understand(
    tmp_path, torchscript_file, changes, message
):
    edited = tmp_path / "edited.ts"
    rewrite_metadata(torchscript_file, edited, **changes)
    with pytest.raises(_native.ModelFileError, match=f"edited.ts: .*{message}"):
        make_engine(edited)


def test_a_model_whose_outputs_do_not_match_its_output_strides_is_refused(
    tmp_path, torchscript_file, frames
):
    """A stride-4 model whose metadata claims stride 2: the first frame's outputs are checked
    against the stride the metadata names, and the error says which shapes were expected."""
    edited = tmp_path / "edited.ts"
    rewrite_metadata(torchscript_file, edited, output_strides="1,2,2")
    engine = make_engine(edited)
    with pytest.raises(_native.ModelFileError, match=r"edited.ts: .*S/s.*S = 128, s = 2"):
        engine(frames[0])


@pytest.mark.slow  # needs the session's .pt2 (compiled once, ~30 s)
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cpu_capability": "SVE256"}, "compiled for CPU capability 'SVE256'"),
        ({"device": "cuda"}, "compiled for device 'cuda', cannot run on 'cpu'"),
        ({"format_version": "7"}, "format_version '7' is not supported"),
    ],
)
def test_refuses_a_package_for_another_machine(tmp_path, tmp_path_factory, changes, message):
    edited = tmp_path / "edited.pt2"
    rewrite_metadata(tiny_export(tmp_path_factory, "pt2"), edited, **changes)
    with pytest.raises(_native.ModelFileError, match=f"edited.pt2: .*{message}"):
        make_engine(edited)


def test_refuses_metadata_that_is_not_a_flat_json_object_of_strings(tmp_path, torchscript_file):
    for number, text in enumerate(
        ['{"format": 1}', '["format"]', '{"a": "b"} x', '{"a": {"b": "c"}}']
    ):
        target = tmp_path / f"bad{number}.ts"
        with zipfile.ZipFile(torchscript_file) as archive_in, zipfile.ZipFile(target, "w") as out:
            for item in archive_in.infolist():
                data = archive_in.read(item)
                out.writestr(item, text if item.filename.endswith("cathtrack.json") else data)
        with pytest.raises(_native.ModelFileError, match="not a flat JSON object of strings"):
            make_engine(target)


# ---------------------------------------------------------------- frames


def test_bad_frames_raise_clear_errors_and_the_engine_keeps_working(torchscript_file, frames):
    engine = make_engine(torchscript_file)
    expected = engine(frames[0])
    with pytest.raises(ValueError, match="empty"):
        engine(np.zeros((0, 5), np.uint8))
    with pytest.raises(ValueError, match="2-D"):
        engine(np.zeros((4, 4, 3), np.uint8))
    for dtype in (np.float64, np.int32, np.bool_, np.int16):
        with pytest.raises(TypeError, match="uint8, uint16 or float32"):
            engine(np.zeros((8, 8), dtype))
    with pytest.raises(ValueError, match="too large"):
        engine(np.zeros((1, 70000), np.uint8))
    again = engine(frames[0])
    np.testing.assert_array_equal(again["electrodes"], expected["electrodes"])
    np.testing.assert_array_equal(again["mask"], expected["mask"])


def test_degenerate_and_huge_frames_give_sane_results(torchscript_file, frames):
    engine = make_engine(torchscript_file)
    for frame in (
        np.array([[7]], np.uint8),
        np.full((50, 40), np.nan, np.float32),
        np.zeros((3, 500), np.uint16),
    ):
        result = engine(frame)
        assert result["mask"].shape == frame.shape
        assert np.isfinite(result["electrodes"]).all()
    huge = np.random.default_rng(0).integers(0, 4096, (4096, 4096), dtype=np.uint16)
    result = engine(huge)
    assert result["mask"].shape == (4096, 4096)
    xy = result["electrodes"]
    assert np.isfinite(xy).all() and (xy >= -0.5).all() and (xy <= 4095.5).all()
    # a strided view is taken as the same frame
    view = np.asfortranarray(frames[1])
    np.testing.assert_array_equal(engine(view)["electrodes"], engine(frames[1])["electrodes"])


def test_the_gil_is_released_for_the_whole_call(torchscript_file):
    engine = make_engine(torchscript_file)
    huge = np.random.default_rng(1).integers(0, 4096, (4096, 4096), dtype=np.uint16)
    engine(huge)  # warm-up: TorchScript's first calls profile the graph
    duration = []
    worker = threading.Thread(target=lambda: duration.append(engine(huge)["timings"]["total"]))
    last = time.perf_counter()
    longest_gap = 0.0
    worker.start()
    while worker.is_alive():  # runs only while the engine does not hold the GIL
        now = time.perf_counter()
        longest_gap, last = max(longest_gap, now - last), now
    worker.join()
    assert 1e3 * longest_gap < 0.5 * duration[0]
