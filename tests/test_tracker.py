"""cathtrack.Tracker: native and python backends agree, the Result API, frames, threads, draw."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
from runtime_support import PARITY_SETTINGS, sample_frames, tiny_checkpoint, tiny_export

import cathtrack
from cathtrack import tracker as tracker_module
from cathtrack.catheters import CATHETER_TYPES


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(checkpoint):
    return cathtrack.Tracker(checkpoint, device="cpu", backend="python", **PARITY_SETTINGS)


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    return cathtrack.Tracker(tiny_export(tmp_path_factory, "ts"), device="cpu", **PARITY_SETTINGS)


@pytest.fixture(scope="module")
def frames():
    return sample_frames()


def assert_same_result(ours: cathtrack.Result, theirs: cathtrack.Result) -> None:
    """The parity contract of docs/runtime.md."""
    assert ours.mask.shape == theirs.mask.shape
    np.testing.assert_allclose(ours.electrodes, theirs.electrodes, atol=0.1)
    np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-4)
    np.testing.assert_allclose(ours.sizes, theirs.sizes, atol=1e-3)
    union = np.logical_or(ours.binary, theirs.binary).sum()
    assert np.logical_and(ours.binary, theirs.binary).sum() >= 0.99 * union
    assert [c.type for c in ours.catheters] == [c.type for c in theirs.catheters]
    for a, b in zip(ours.catheters, theirs.catheters, strict=True):
        assert a.id == b.id
        np.testing.assert_array_equal(a.electrodes, b.electrodes)
        np.testing.assert_allclose(a.centerline, b.centerline, atol=0.1)
        np.testing.assert_allclose(a.type_score, b.type_score, atol=1e-4)
        np.testing.assert_allclose(a.tip, b.tip, atol=0.1)
        np.testing.assert_allclose(a.tip_direction, b.tip_direction, atol=1e-3)


# ---------------------------------------------------------------- backends agree


@pytest.mark.slow  # the .pt2 export compiles C++ (~30 s on 2 cores, once per session)
@pytest.mark.parametrize("model_format", ["ts", "pt2"])
def test_native_and_python_backends_agree(tmp_path_factory, reference, frames, model_format):
    path = tiny_export(tmp_path_factory, model_format)
    tracker = cathtrack.Tracker(path, device="cpu", **PARITY_SETTINGS)
    typed = 0
    for frame in frames:
        ours, theirs = tracker(frame), reference(frame)
        assert_same_result(ours, theirs)
        typed += sum(c.type != "unknown" for c in ours.catheters)
    assert typed >= 2  # type names and scores were compared, not only "unknown"


def test_a_checkpoint_is_exported_to_the_cache_on_first_use(
    checkpoint, reference, frames, tmp_path, monkeypatch
):
    monkeypatch.setenv("CATHTRACK_CACHE", str(tmp_path / "cache"))
    tracker = cathtrack.Tracker(checkpoint, device="cpu", export_format="ts", **PARITY_SETTINGS)
    assert tracker.model_path.parent == tmp_path / "cache" and tracker.model_path.suffix == ".ts"
    assert_same_result(tracker(frames[1]), reference(frames[1]))


def test_frames_of_other_dtypes_and_colour_frames_are_normalised_identically(
    native, reference, frames
):
    gray = frames[1]
    colour = cv2.merge([gray, gray, gray])  # BGR with equal channels: the same grey frame
    np.testing.assert_array_equal(native(colour).electrodes, native(gray).electrodes)
    for frame in (frames[0].astype(np.float64), frames[0].astype(np.int32), colour):
        assert_same_result(native(frame), reference(frame))


# ---------------------------------------------------------------- the Result API


def test_result_fields_follow_the_contract(native, frames):
    frame = frames[1]
    result = native(frame)
    n = len(result.electrodes)
    assert result.mask.shape == frame.shape and result.mask.dtype == np.uint8
    assert result.binary.dtype == bool
    np.testing.assert_array_equal(result.binary, result.mask > 127)
    assert result.electrodes.shape == (n, 2) and result.electrodes.dtype == np.float32
    assert result.scores.shape == (n,) and result.sizes.shape == (n, 2)
    assert np.all(np.diff(result.scores) <= 0)  # best first
    assert set(result.timings) == {"preprocess", "inference", "postprocess", "total"}
    assert result.catheters, "the test model should find catheters in this frame"
    for index, catheter in enumerate(result.catheters):
        assert catheter.id == index
        assert catheter.type in (*CATHETER_TYPES, "unknown")
        assert catheter.centerline.dtype == np.float32 and catheter.centerline.shape[1] == 2
        np.testing.assert_allclose(catheter.tip, catheter.centerline[0])
        assert np.hypot(*catheter.tip_direction) == pytest.approx(1.0, abs=1e-5)
        # it points from the shaft towards the tip
        shaft = catheter.centerline[min(8, len(catheter.centerline) - 1)]
        assert np.dot(catheter.tip_direction, catheter.centerline[0] - shaft) > 0
        assert set(catheter.electrodes) <= set(range(n))


def test_to_dict_is_json_and_the_mask_round_trips(native, frames):
    from pycocotools import mask as rle

    result = native(frames[2])
    document = json.loads(json.dumps(result.to_dict(include_mask=True)))
    np.testing.assert_allclose(document["electrodes"], result.electrodes, atol=1e-6)
    assert document["image_size"] == [frames[2].shape[1], frames[2].shape[0]]
    assert [c["type"] for c in document["catheters"]] == [c.type for c in result.catheters]
    encoded = {"size": document["mask"]["size"], "counts": document["mask"]["counts"].encode()}
    np.testing.assert_array_equal(rle.decode(encoded).astype(bool), result.binary)
    assert "mask" not in result.to_dict()


def test_run_tracks_an_iterable_lazily(native, frames):
    results = native.run(iter(frames))
    first = next(results)
    np.testing.assert_array_equal(first.electrodes, native(frames[0]).electrodes)
    assert len(list(results)) == len(frames) - 1


def test_trackers_in_threads_give_the_sequential_results(tmp_path_factory, frames):
    path = tiny_export(tmp_path_factory, "ts")
    trackers = [
        cathtrack.Tracker(path, device="cpu", threads=1, **PARITY_SETTINGS) for _ in range(3)
    ]
    sequential = [[t(f).electrodes for f in frames] for t in trackers[:1]][0]
    outputs: dict[int, list] = {}

    def work(index: int) -> None:
        outputs[index] = [trackers[index](f).electrodes for f in frames * 3]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(3):
        for got, expected in zip(outputs[index], sequential * 3, strict=True):
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- errors and the package face


def test_bad_arguments_and_missing_models_are_clear(checkpoint, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="backend"):
        cathtrack.Tracker(checkpoint, backend="onnx")
    with pytest.raises(ValueError, match="device"):
        cathtrack.Tracker(checkpoint, device="tpu")
    with pytest.raises(FileNotFoundError, match="absent.pt2"):
        cathtrack.Tracker(tmp_path / "absent.pt2")
    monkeypatch.setattr(tracker_module, "DEFAULT_MODEL_FILES", ("not-shipped.safetensors",))
    with pytest.raises(FileNotFoundError, match="no default model weights are shipped"):
        cathtrack.Tracker()


def test_the_shipped_default_model_is_found():
    path = tracker_module.default_model_path()
    assert path.name in tracker_module.DEFAULT_MODEL_FILES and path.with_suffix(".json").is_file()


@pytest.mark.parametrize("backend", ["native", "python"])
def test_configure_changes_thresholds_without_reloading(tmp_path_factory, frames, backend):
    model = (
        tiny_export(tmp_path_factory, "ts")
        if backend == "native"
        else tiny_checkpoint(tmp_path_factory)
    )
    tracker = cathtrack.Tracker(model, device="cpu", backend=backend, **PARITY_SETTINGS)
    strict = {**PARITY_SETTINGS, "score_threshold": 0.5, "max_assign_distance": 2.0}
    fresh = cathtrack.Tracker(model, device="cpu", backend=backend, **strict)
    before = tracker(frames[0])
    tracker.configure(score_threshold=0.5, max_assign_distance=2.0)
    after, expected = tracker(frames[0]), fresh(frames[0])
    assert len(after.electrodes) < len(before.electrodes)
    np.testing.assert_array_equal(after.electrodes, expected.electrodes)
    assert [c.electrodes.tolist() for c in after.catheters] == [
        c.electrodes.tolist() for c in expected.catheters
    ]
    with pytest.raises(ValueError, match="unknown setting"):
        tracker.configure(threshold=0.2)
    with pytest.raises(ValueError, match="finite and >= 0"):
        tracker.configure(score_threshold=float("nan"), mask_threshold=0.9)
    assert tracker.settings == fresh.settings  # a refused change changes nothing
    np.testing.assert_array_equal(tracker(frames[0]).mask, expected.mask)


def test_bad_frames_raise_clear_errors(native):
    with pytest.raises(ValueError, match="empty"):
        native(np.zeros((0, 4), np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        native(np.zeros((4, 4), bool))
    with pytest.raises(TypeError, match="numpy array"):
        native([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="shape"):
        native(np.zeros((4, 4, 2), np.uint8))


def test_draw_marks_mask_electrodes_and_centerlines(native, frames):
    frame = frames[1]
    result = native(frame)
    overlay = cathtrack.draw(frame, result, scale=2)
    assert overlay.shape == (2 * frame.shape[0], 2 * frame.shape[1], 3)
    assert any(len(c.electrodes) for c in result.catheters)
    plain = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), None, fx=2, fy=2,
                       interpolation=cv2.INTER_NEAREST)  # fmt: skip
    # every electrode is ringed (colours: tests/test_result_helpers.py)
    for x, y in np.round((result.electrodes + 0.5) * 2 - 0.5).astype(int):
        window = np.s_[max(0, y - 3) : y + 4, max(0, x - 3) : x + 4]
        assert np.any(overlay[window] != plain[window])
    rows, cols = np.nonzero(result.binary)
    tinted = overlay[2 * rows, 2 * cols].astype(int) - plain[2 * rows, 2 * cols]
    assert np.mean(np.any(tinted != 0, axis=-1)) > 0.9  # the mask is tinted


def test_import_cathtrack_stays_light_and_exports_the_tracker():
    code = (
        "import sys, cathtrack; assert 'torch' not in sys.modules; "
        "from cathtrack import Tracker, Result, Catheter, draw; "
        "assert Tracker.__module__ == 'cathtrack.tracker'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'Trackr'"):
        cathtrack.Trackr  # noqa: B018
