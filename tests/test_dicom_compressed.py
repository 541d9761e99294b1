"""Compressed DICOM on pydicom's own test files (written by dcmtk, GDCM and others): what the
extra ``cathtrack[dicom]`` (GDCM) decodes equals the uncompressed or RLE copy of the same image,
decoded without GDCM; without the extra the refusal names the extra to install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from cathtrack.io import ReadError, read_frames

CORPUS = Path(__file__).resolve().parent / "data" / "malformed"
# (compressed file, a copy of the same pixels decoded without GDCM: uncompressed or RLE)
LOSSLESS_PAIRS = [
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS lossless, 16-bit signed
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # JPEG Lossless (Process 14), RGB
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),  # JPEG 2000 lossless
]
# Files that need the extra: no decoder of pydicom's own or Pillow's reads them.
NEEDS_EXTRA = [
    "MR_small_jpeg_ls_lossless.dcm",
    "SC_rgb_jpeg_gdcm.dcm",
    "JPEGLSNearLossless_16.dcm",
    "SC_rgb_jls_lossy_line.dcm",
    "GDCMJ2K_TextGBR.dcm",
]
# Refused even with the extra, each for a reason its message gives.
STILL_REFUSED = {
    "JPGExtended.dcm": "pylibjpeg-libjpeg (GPL)",  # 12-bit JPEG Extended
    "JPEG-lossy.dcm": "pylibjpeg-libjpeg (GPL)",
    "JPEG2000-embedded-sequence-delimiter.dcm": "cannot decode compressed pixel data",
}


def _test_file(name: str) -> str:
    path = get_testdata_file(name, download=False)  # the ones inside pydicom's wheel
    if path is None:
        pytest.skip(f"pydicom's test file {name} is not installed with pydicom here")
    return path


def _frames(path: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.stack([frame.image for frame in read_frames(path)])


def _has_gdcm() -> bool:
    import importlib.util

    return importlib.util.find_spec("gdcm") is not None


needs_gdcm = pytest.mark.skipif(
    not _has_gdcm(), reason="the optional extra cathtrack[dicom] (python-gdcm) is not installed"
)


@needs_gdcm
@pytest.mark.parametrize(("compressed", "reference"), LOSSLESS_PAIRS)
def test_lossless_compressed_frames_equal_their_uncompressed_copy(compressed, reference):
    frames = _frames(_test_file(compressed))
    expected = _frames(_test_file(reference))
    assert frames.dtype == expected.dtype
    np.testing.assert_array_equal(frames, expected)


def _blocking_gdcm(code: str) -> list[str]:
    """A Python command that runs ``code`` with GDCM made unimportable (as without the extra)."""
    return [sys.executable, "-c", f"import sys; sys.modules['gdcm'] = None\n{code}"]


@pytest.mark.parametrize("name", NEEDS_EXTRA)
def test_without_the_extra_the_error_names_it(name):
    path = _test_file(name)
    code = (
        "from cathtrack.io import read_frames, ReadError\n"
        f"try:\n    list(read_frames({path!r}))\n"
        "except ReadError as error:\n    print(error.reason)\n"
        "else:\n    print('decoded')\n"
    )
    done = subprocess.run(_blocking_gdcm(code), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    reason = done.stdout.strip()
    assert "pip install 'cathtrack[dicom]'" in reason, reason
    assert "\n" not in reason


@needs_gdcm
@pytest.mark.parametrize("name", NEEDS_EXTRA)
def test_with_the_extra_these_files_decode(name):
    frames = _frames(_test_file(name))
    assert frames.ndim in (3, 4) and frames.size > 0


@needs_gdcm
@pytest.mark.parametrize(("name", "reason"), STILL_REFUSED.items())
def test_what_no_installed_decoder_reads_is_refused_on_one_line(name, reason):
    with pytest.raises(ReadError) as caught:
        _frames(_test_file(name))
    assert reason in caught.value.reason and "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def tiny_ts(tmp_path_factory) -> Path:
    from cathtrack.export import export_model

    path = tmp_path_factory.mktemp("tiny") / "tiny.ts"
    export_model(CORPUS / "models" / "tiny.safetensors", path, "ts")
    return path


def _compressed_test_files(folder: Path) -> list[str]:
    """Copies of every compressed DICOM test file shipped with pydicom into ``folder``."""
    import pydicom

    source = Path(pydicom.__file__).parent / "data" / "test_files"
    names = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(source.glob("*.dcm")):
            try:
                dataset = pydicom.dcmread(path, stop_before_pixels=True)
                syntax = dataset.file_meta.TransferSyntaxUID
            except Exception:  # noqa: BLE001 (not a file with a transfer syntax: not ours)
                continue
            if syntax.is_compressed:
                shutil.copy(path, folder / path.name)
                names.append(path.name)
    return names


@needs_gdcm
def test_predict_tracks_every_compressed_test_file_it_can_decode(tiny_ts, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    names = _compressed_test_files(inputs)
    assert len(names) >= 30 and set(NEEDS_EXTRA) <= set(names)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cathtrack.cli", "predict", str(inputs), "--out", str(out),
               "--model", str(tiny_ts), "--device", "cpu", "--threads", "1"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 1, done.stderr  # some files are refused
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    refused = {Path(r["source"]).name: r["error"] for r in records if "error" in r}
    tracked = {Path(r["source"]).name for r in records if "error" not in r}
    # what no installed decoder reads, and one file without pixel data, are refused; the rest
    # (RLE, baseline JPEG, JPEG Lossless, JPEG-LS, JPEG 2000; multi-frame ones too) is tracked
    assert set(refused) - {"UN_sequence.dcm"} == set(STILL_REFUSED)
    assert tracked == set(names) - set(refused)
    lines = [line for line in done.stderr.splitlines() if "cathtrack predict: " in line]
    assert len(lines) == len(refused)  # one line each
