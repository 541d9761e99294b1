"""The malformed-input corpus (tests/data/malformed, written by its make_corpus.py) through every
verb that reads files, each in its own process as a user runs it, and the readers and model
loading under it in this process. docs/reliability.md has the table these tests hold to.

Every bad input must end in: the documented exit status, exactly one line on stderr naming it (no
traceback, no decoder chatter), and every good input of the same run still processed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cathtrack import checkpoint
from cathtrack.checkpoint import (
    UnverifiedWeightsWarning,
    load_model,
    read_metadata,
    record_weights_hash,
    save_model,
)
from cathtrack.io import Frame, ReadError, read_frames
from cathtrack.model import ModelConfig, build_model

CORPUS = Path(__file__).resolve().parent / "data" / "malformed"
FRAMES, MODELS, COCO = CORPUS / "frames", CORPUS / "models", CORPUS / "coco"
TINY = MODELS / "tiny.safetensors"
CLI_TIMEOUT = 300  # seconds per command: generous for 2 shared cores

# ---------------------------------------------------------------- the table

# frames/ through `cathtrack predict`: (stderr/results reason, frames tracked)
FRAME_OUTCOMES = {
    "truncated.png": ("not a readable image", 0),
    "truncated.jpg": ("truncated JPEG", 0),
    "empty.png": ("not a readable image", 0),
    "huge_side.png": ("frame is too large", 0),  # read, then refused by the engine
    "truncated.dcm": ("cannot read dicom", 0),
    "big_endian.dcm": (None, 1),
    "rescale_nan.dcm": ("RescaleSlope is 'NaN'", 0),
    "truncated.mp4": ("not a readable video", 0),
    "truncated.avi": ("decoded 12 of 20 frames", 12),
    "mixed_sizes.tif": (None, 3),
}

# models/ as the MODEL of each verb: the message of its one line (exit status 2).
MODEL_ERRORS = {
    "bitflip.safetensors": "bitflip.safetensors: the weights are corrupt or were replaced",
    "truncated_weights.safetensors": "the weights are corrupt or were replaced",
    "wrong_arch.safetensors": "do not fit the architecture in wrong_arch.json",
    "no_model_key.safetensors": "no_model_key.json: the architecture (key 'model') is missing",
    "list.safetensors": "list.json: not a cathtrack model file (a JSON list",
    "negative_size.safetensors": "negative_size.json: input_size must be a multiple of 32",
    "huge_width.safetensors": "over the limit of 2.5e+08",
    "huge_channels.safetensors": "over the limit of 2.5e+08",
    "missing_json.safetensors": "missing_json.json: model metadata not found",
    "foreign_torch.pt2": "compiled by torch 2.1.0+cpu",
}
# Verbs that take only checkpoints say so for a .pt2 before reading it.
CHECKPOINT_ONLY = {
    "eval": "no model found",
    "export": "no model found",
    "bench": "give a checkpoint",
}
MODEL_VERBS = ("predict", "eval", "export", "bench", "negatives")


def model_error(verb: str, name: str) -> str:
    if name.endswith(".pt2") and verb in CHECKPOINT_ONLY:
        return CHECKPOINT_ONLY[verb]
    return MODEL_ERRORS[name]


# ---------------------------------------------------------------- running the verbs


def cathtrack(*arguments: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``cathtrack ARGUMENTS`` in a fresh process (the test session's export cache)."""
    environment = dict(os.environ)
    environment.pop("OPENCV_FFMPEG_LOGLEVEL", None)  # cathtrack's own default must hold
    return subprocess.run(
        [sys.executable, "-m", "cathtrack.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=environment,
        cwd=cwd,
    )


def run_all(commands: dict) -> dict:
    """Runs ``{key: arguments}`` three at a time (each is mostly torch's import)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {key: pool.submit(cathtrack, *arguments) for key, arguments in commands.items()}
        return {key: future.result() for key, future in futures.items()}


def stderr_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]


def assert_one_clean_line(stderr: str, verb: str, message: str) -> None:
    lines = stderr_lines(stderr)
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"cathtrack {verb}: error: "), lines[0]
    assert message in lines[0], lines[0]


@pytest.fixture(scope="session")
def tiny_ts(tmp_path_factory) -> Path:
    """The corpus's tiny model exported to TorchScript (fast to export, run by the engine)."""
    from cathtrack.export import export_model

    path = tmp_path_factory.getbasetemp() / "corpus-tiny.ts"
    if not path.is_file():
        export_model(TINY, path, "ts")
    return path


@pytest.fixture(scope="module")
def good_inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("good")
    sys.path.insert(0, str(CORPUS))
    try:
        from make_corpus import frame
    finally:
        sys.path.remove(str(CORPUS))
    cv2.imwrite(str(folder / "a_good.png"), frame(96, 5))
    negatives = folder / "negatives"
    negatives.mkdir()
    for name in ("1.png", "1_gt.png"):
        (negatives / name).write_bytes((CORPUS / "negatives" / name).read_bytes())
    return {"frame": folder / "a_good.png", "negatives": negatives, "root": folder}


@pytest.fixture(scope="module")
def frame_batch(tiny_ts, good_inputs, tmp_path_factory):
    """One `cathtrack predict` over every frame of the corpus plus a good frame."""
    out = tmp_path_factory.mktemp("predict_corpus") / "out"
    process = cathtrack(
        "predict", FRAMES, good_inputs["frame"], "--out", out, "--model", tiny_ts, "--device", "cpu"
    )
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return process, out, records


def model_command(verb: str, model: Path, out: Path, good: dict[str, Path]) -> list:
    """The arguments of ``verb`` reading ``model`` (its outputs under ``out``)."""
    return {
        "predict": ["predict", good["frame"], "--out", out, "--model", model, "--device", "cpu"],
        "eval": ["eval", model, COCO / "good", "--device", "cpu", "--json", out / "m.json"],
        "export": ["export", model, "--format", "ts", "--out", out / "model.ts"],
        "bench": ["bench", model, "--size", "64", "--frames", "1", "--warmup", "0",
                  "--device", "cpu", "--json", out / "bench.json"],
        "negatives": ["negatives", good["negatives"], "--model", model, "--device", "cpu"],
    }[verb]  # fmt: skip


@pytest.fixture(scope="module")
def model_runs(tiny_ts, good_inputs, tmp_path_factory):
    """In separate processes: every corrupt model file through `predict` (the path into the
    native engine, where a bad file could crash the process rather than raise), the good files
    (where a warning must stay one line), and the broken data sets. The other verbs get every
    corrupt model file in this process (test_..._in_every_verb)."""
    root = tmp_path_factory.mktemp("model_runs")

    def command(verb: str, model: Path, key: str) -> list:
        return model_command(verb, model, root / key.replace("/", "_"), good_inputs)

    commands = {f"predict/{name}": command("predict", MODELS / name, f"predict/{name}")
                for name in MODEL_ERRORS}  # fmt: skip
    # the good files: tiny (hashed) and no_hash (written before hashes: one warning line)
    for name in ("tiny", "no_hash"):
        weights = MODELS / f"{name}.safetensors"
        commands[f"eval/{name}"] = command("eval", weights, f"eval/{name}")
        commands[f"predict/{name}"] = command("predict", weights, f"predict/{name}") + [
            "--backend", "python"
        ]  # fmt: skip
    commands["negatives/tiny.ts"] = command("negatives", tiny_ts, "negatives/tiny.ts")
    # broken data sets through eval, and a folder with a corrupt image through negatives
    for name in ("truncated_json", "list_json", "missing_image", "corrupt_image"):
        commands[f"eval-data/{name}"] = ["eval", TINY, COCO / name, "--device", "cpu"]
    commands["negatives-data/corrupt"] = [
        "negatives", CORPUS / "negatives", "--model", tiny_ts, "--device", "cpu"
    ]  # fmt: skip
    return root, run_all(commands)


# ---------------------------------------------------------------- frames through predict


def test_the_corpus_files_are_small():
    files = [path for path in CORPUS.rglob("*") if path.is_file()]
    assert len(files) > 40
    assert max(path.stat().st_size for path in files) < 100_000


def test_predict_isolates_every_bad_frame_and_tracks_the_good_ones(frame_batch, good_inputs):
    process, out, records = frame_batch
    assert "Traceback" not in process.stderr, process.stderr
    assert process.returncode == 1  # some inputs failed, the rest was processed
    lines = stderr_lines(process.stderr)
    for name, (reason, tracked) in FRAME_OUTCOMES.items():
        mentions = [line for line in lines if f"/{name}" in line]
        mine = [r for r in records if Path(r["source"]).name == name]
        assert len([r for r in mine if "error" not in r]) == tracked, name
        if reason is None:
            assert mentions == [] and all("error" not in r for r in mine), name
        else:
            assert len(mentions) == 1 and reason in mentions[0], (name, mentions)
            assert mentions[0].startswith("cathtrack predict: ")
            (error,) = [r for r in mine if "error" in r]
            assert reason in error["error"]
    # nothing but one line per failure and the closing summary: no decoder chatter (FFmpeg)
    failures = sum(reason is not None for reason, _ in FRAME_OUTCOMES.values())
    assert len(lines) == failures + 1 and "refused" in lines[-1], lines
    good = [r for r in records if r["source"] == str(good_inputs["frame"])]
    assert len(good) == 1 and "electrodes" in good[0] and good[0]["image_size"] == [96, 96]


def _video_frames(path: Path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def test_predict_overlays_of_the_corpus_are_whole(frame_batch):
    _, out, records = frame_batch
    # every page of the TIFF with pages of different sizes is in its video (none dropped)
    assert len(_video_frames(out / "mixed_sizes.mp4")) == 3
    assert len(_video_frames(out / "truncated.mp4")) == 12  # the readable part of the AVI
    assert cv2.imread(str(out / "big_endian.png")).shape == (48, 48, 3)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporaries
    tracked = [r for r in records if "error" not in r]
    assert all(Path(r["overlay"]).is_file() for r in tracked)


# ---------------------------------------------------------------- models through every verb


@pytest.mark.parametrize("name", sorted(MODEL_ERRORS))
def test_a_bad_model_file_is_one_line_and_exit_2_in_its_own_process(model_runs, name):
    root, runs = model_runs
    process = runs[f"predict/{name}"]
    assert process.returncode == 2, process.stderr
    assert_one_clean_line(process.stderr, "predict", model_error("predict", name))
    assert not (root / f"predict_{name}").exists()  # no output folder, no results.jsonl


@pytest.mark.parametrize("verb", MODEL_VERBS)
@pytest.mark.parametrize("name", sorted(MODEL_ERRORS))
def test_a_bad_model_file_is_one_line_and_exit_2_in_every_verb(
    good_inputs, tmp_path, capsys, verb, name
):
    from cathtrack.cli import main

    out = tmp_path / "out"
    arguments = model_command(verb, MODELS / name, out, good_inputs)
    assert main([str(a) for a in arguments]) == 2
    captured = capsys.readouterr()
    assert_one_clean_line(captured.err, verb, model_error(verb, name))
    assert not out.exists()  # nothing written: no results, no model file, no metrics


@pytest.mark.parametrize("verb", ["eval", "predict"])
def test_good_model_files_work_and_old_ones_warn_on_one_line(model_runs, verb):
    _, runs = model_runs
    for name in ("tiny", "no_hash"):
        process = runs[f"{verb}/{name}"]
        assert process.returncode == 0, process.stderr
        assert "Traceback" not in process.stderr
        warned = [line for line in stderr_lines(process.stderr) if "weights_sha256" in line]
        assert len(warned) == (name == "no_hash"), process.stderr
        if warned:
            assert "UnverifiedWeightsWarning" in warned[0] and "no_hash.json" in warned[0]


def test_negatives_runs_the_good_model(model_runs):
    _, runs = model_runs
    process = runs["negatives/tiny.ts"]
    assert process.returncode == 0 and "Traceback" not in process.stderr, process.stderr
    assert "1 frames of" in process.stdout


# ---------------------------------------------------------------- broken data sets


def test_eval_on_a_truncated_annotation_file_is_one_line(model_runs):
    _, runs = model_runs
    process = runs["eval-data/truncated_json"]
    assert process.returncode == 2
    assert_one_clean_line(process.stderr, "eval", "Unterminated string")


# The data readers and the eval/negatives loops are not guarded yet (python/cathtrack/data/coco.py,
# data/folders.py, cli/eval.py, cli/negatives.py belong to other work): these document the gap and
# turn into failures (XPASS, strict) once it is closed, to be made plain tests then.
@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("eval-data/list_json", "annotations.json"),
        ("eval-data/missing_image", "frame1.png"),
        ("eval-data/corrupt_image", "frame1.png"),
        ("negatives-data/corrupt", "2.png"),
    ],
)
def test_broken_data_sets_are_one_line_naming_the_file(model_runs, key, name):
    _, runs = model_runs
    process = runs[key]
    assert "Traceback" not in process.stderr
    mentions = [line for line in stderr_lines(process.stderr) if name in line]
    assert process.returncode != 0 and len(mentions) == 1


# ---------------------------------------------------------------- the readers, in process


def test_a_big_endian_dicom_comes_back_in_native_byte_order():
    import pydicom

    (frame,) = read_frames(FRAMES / "big_endian.dcm")
    stored = pydicom.dcmread(FRAMES / "big_endian.dcm").pixel_array
    assert stored.dtype.byteorder == ">"  # what pydicom hands over
    assert frame.image.dtype == np.uint16 and frame.image.dtype.isnative
    np.testing.assert_array_equal(frame.image, stored.astype(np.uint16))


@pytest.mark.parametrize(("slope", "intercept"), [("NaN", "0"), ("1", "inf"), ("-inf", "0")])
def test_a_dicom_rescale_that_is_not_finite_is_refused(tmp_path, slope, intercept):
    import pydicom

    dataset = pydicom.dcmread(FRAMES / "big_endian.dcm")
    path = tmp_path / "rescale.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom: "NaN" is not a valid DS (that's the point)
        dataset.RescaleSlope, dataset.RescaleIntercept = slope, intercept
        dataset.save_as(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and reading it warns about nothing: one clear error
        with pytest.raises(ReadError, match="not a finite number") as raised:
            list(read_frames(path))
    assert "\n" not in str(raised.value) and str(raised.value).startswith(str(path))


def test_a_truncated_video_gives_its_frames_then_says_how_many_of_how_many():
    frames, error = [], None
    try:
        for frame in read_frames(FRAMES / "truncated.avi"):
            frames.append(frame)
    except ReadError as raised:
        error = raised
    assert [f.index for f in frames] == list(range(12))
    assert error is not None and "decoded 12 of 20 frames" in str(error)


def test_a_truncated_jpeg_is_refused_instead_of_greyed(tmp_path):
    with pytest.raises(ReadError, match="truncated JPEG"):
        list(read_frames(FRAMES / "truncated.jpg"))
    whole = cv2.imencode(".jpg", np.full((16, 16), 100, np.uint8))[1].tobytes()
    (tmp_path / "whole.jpg").write_bytes(whole + b"\0\0")  # padding after the EOI is fine
    (frame,) = read_frames(tmp_path / "whole.jpg")
    assert isinstance(frame, Frame) and frame.image.shape == (16, 16)


def test_every_page_of_a_tiff_with_pages_of_different_sizes_is_read():
    shapes = [frame.image.shape for frame in read_frames(FRAMES / "mixed_sizes.tif")]
    assert shapes == [(64, 64), (48, 48), (64, 64)]


# ---------------------------------------------------------------- model files, in process


def _small_model():
    return build_model(ModelConfig(backbone="resnet18", width=0.03125, projection_channels=8,
                                   decoder_channels=(4, 4), head_channels=4,
                                   attention_reduction=4, fine_channels=(4, 4)))  # fmt: skip


def test_save_records_the_weights_hash_and_load_checks_it(tmp_path):
    weights = save_model(tmp_path / "m.safetensors", _small_model(), input_size=64)
    document = read_metadata(weights)
    assert document["weights_sha256"] == checkpoint.file_sha256(weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(weights)  # hashed: no warning
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # one bit of the last weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="m.safetensors: the weights are corrupt or were replaced"):
        load_model(weights)


def test_a_file_without_a_hash_loads_with_one_warning_until_the_hash_is_recorded(tmp_path):
    weights = save_model(tmp_path / "old.safetensors", _small_model(), input_size=64)
    document = read_metadata(weights)
    del document["weights_sha256"]
    weights.with_suffix(".json").write_text(json.dumps(document))
    with pytest.warns(UnverifiedWeightsWarning, match="old.json: no weights_sha256") as caught:
        model, _ = load_model(weights)
        load_model(weights)  # once per file and process: bench loads a model three times
    assert len(caught) == 1 and model.config.width == 0.03125
    assert record_weights_hash(weights) == checkpoint.file_sha256(weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(weights)


@pytest.mark.parametrize("name", sorted(n for n in MODEL_ERRORS if n.endswith(".safetensors")))
def test_each_corrupt_model_file_is_one_clear_value_error(name):
    expected = FileNotFoundError if name.startswith("missing_json") else ValueError
    with pytest.raises(expected) as raised:
        load_model(MODELS / name)
    assert type(raised.value) is expected  # not RuntimeError, KeyError or AttributeError
    message = str(raised.value)
    assert MODEL_ERRORS[name] in message and "\n" not in message
    assert message.startswith(str(MODELS / Path(name).stem))


def test_a_huge_architecture_is_refused_before_anything_is_allocated(monkeypatch):
    built = []
    original = checkpoint.CathNet

    def counting(config):
        built.append(torch.get_default_device())
        return original(config)

    monkeypatch.setattr(checkpoint, "CathNet", counting)
    with pytest.raises(ValueError, match=r"1\.86e\+05 GB in float32"):
        load_model(MODELS / "huge_width.safetensors")
    assert [device.type for device in built] == ["meta"]  # only ever counted on "meta"


def test_a_missing_json_names_the_path_it_was_expected_at():
    with pytest.raises(FileNotFoundError) as raised:
        load_model(MODELS / "missing_json.safetensors")
    assert str(raised.value).startswith(str(MODELS / "missing_json.json"))
    assert "Errno" not in str(raised.value)


def test_the_shipped_models_carry_the_hash_of_their_weights():
    from cathtrack.tracker import DEFAULT_MODEL_FILES, default_model_path

    folder = default_model_path().parent
    for name in DEFAULT_MODEL_FILES:
        weights = folder / name
        assert read_metadata(weights)["weights_sha256"] == checkpoint.file_sha256(weights)
