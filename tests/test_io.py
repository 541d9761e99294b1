"""cathtrack.io: images, multi-page TIFF, video, DICOM, and graceful failure on bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cathtrack.io import Frame, ReadError, iter_inputs, read_frames

XA_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"


def _write_dicom(
    path: Path,
    frames: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    pixel_spacing: tuple[float, float] | None = None,
    imager_spacing: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
) -> Path:
    """Write a (F, H, W) uint16 stack as an XA DICOM file (multi-frame when F > 1)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XA_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = XA_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "XA"
    ds.Rows, ds.Columns = frames.shape[1:]
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if imager_spacing is not None:
        ds.ImagerPixelSpacing = list(imager_spacing)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = frames.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _frames_12bit(count: int, height: int = 6, width: int = 5) -> np.ndarray:
    values = np.arange(count * height * width, dtype=np.uint16).reshape(count, height, width)
    return values * 97 % 4096


def test_png_8_and_16_bit_and_colour_jpeg_keep_their_dtype(tmp_path):
    gray8 = np.arange(60, dtype=np.uint8).reshape(6, 10)
    gray16 = gray8.astype(np.uint16) * 1000
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 2] = 200  # red in BGR
    cv2.imwrite(str(tmp_path / "a.png"), gray8)
    cv2.imwrite(str(tmp_path / "b.png"), gray16)
    cv2.imwrite(str(tmp_path / "c.jpg"), colour)
    (a,) = read_frames(tmp_path / "a.png")
    (b,) = read_frames(tmp_path / "b.png")
    (c,) = read_frames(tmp_path / "c.jpg")
    np.testing.assert_array_equal(a.image, gray8)
    np.testing.assert_array_equal(b.image, gray16)
    assert b.image.dtype == np.uint16 and (a.index, a.source, a.pixel_spacing_mm) == (
        0,
        str(tmp_path / "a.png"),
        None,
    )
    assert (
        c.image.shape == (8, 8, 3)
        and abs(int(c.image[4, 4, 2]) - 200) <= 3
        and c.image[4, 4, 0] < 10
    )


def test_multi_page_tiff_gives_one_frame_per_page(tmp_path):
    pages = [np.full((5, 7), value, np.uint16) for value in (10, 2000, 65000)]
    assert cv2.imwritemulti(str(tmp_path / "stack.tiff"), pages)
    frames = list(read_frames(tmp_path / "stack.tiff"))
    assert [f.index for f in frames] == [0, 1, 2]
    for frame, page in zip(frames, pages, strict=True):
        np.testing.assert_array_equal(frame.image, page)


@pytest.mark.parametrize(("suffix", "codec"), [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_video_frames_in_order(tmp_path, suffix, codec):
    path = tmp_path / f"clip{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 10, (48, 32))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {codec} into {suffix}")
    levels = [30, 90, 150, 210]
    for level in levels:
        writer.write(np.full((32, 48, 3), level, np.uint8))
    writer.release()
    frames = list(read_frames(path))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert all(f.image.shape == (32, 48, 3) and f.image.dtype == np.uint8 for f in frames)
    np.testing.assert_allclose([f.image.mean() for f in frames], levels, atol=4)


def test_dicom_single_frame_12_bit_with_pixel_spacing(tmp_path):
    stored = _frames_12bit(1)
    noisy = stored | np.uint16(0xF000)  # garbage above BitsStored must be ignored
    path = _write_dicom(
        tmp_path / "single.dcm", noisy, pixel_spacing=(0.3, 0.3), imager_spacing=(0.4, 0.4)
    )
    (frame,) = read_frames(path)
    np.testing.assert_array_equal(frame.image, stored[0])
    assert frame.image.dtype == np.uint16
    assert frame.pixel_spacing_mm == pytest.approx(0.3)  # calibrated PixelSpacing wins


def test_dicom_multi_frame_xa_without_suffix_uses_imager_spacing(tmp_path):
    stored = _frames_12bit(4)
    path = _write_dicom(tmp_path / "IM000001", stored, imager_spacing=(0.2, 0.2))
    frames = list(read_frames(path))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for frame, expected in zip(frames, stored, strict=True):
        np.testing.assert_array_equal(frame.image, expected)
        assert frame.pixel_spacing_mm == pytest.approx(0.2)


def test_dicom_monochrome1_is_inverted_and_spacing_may_be_unknown(tmp_path):
    stored = _frames_12bit(2)
    path = _write_dicom(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1")
    frames = list(read_frames(path))
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), 4095 - stored)
    assert frames[0].pixel_spacing_mm is None


def test_dicom_rescale_slope_and_intercept(tmp_path):
    stored = _frames_12bit(1)
    path = _write_dicom(tmp_path / "rescaled.dcm", stored, rescale=(2.0, -1024.0))
    (frame,) = read_frames(path)
    assert frame.image.dtype == np.float32
    np.testing.assert_array_equal(frame.image, stored[0].astype(np.float32) * 2 - 1024)


def test_directory_reads_on_after_corrupt_files(tmp_path):
    good = tmp_path / "series"
    good.mkdir()
    for number in (10, 2):
        cv2.imwrite(str(good / f"frame{number}.png"), np.full((4, 4), number, np.uint8))
    (good / "notes.txt").write_text("ignored: unknown suffix")
    (good / ".hidden.png").write_bytes(b"ignored: hidden")
    (good / "broken.png").write_bytes(np.random.default_rng(0).bytes(300))
    dicom = _write_dicom(good / "xa.dcm", _frames_12bit(2))
    truncated = good / "truncated.dcm"
    truncated.write_bytes(dicom.read_bytes()[:-25])
    _write_dicom(good / "z_no_suffix", _frames_12bit(1))

    results = list(iter_inputs([good, tmp_path / "missing.png"]))
    frames = [r for r in results if isinstance(r, Frame)]
    errors = [r for r in results if isinstance(r, ReadError)]
    assert [(Path(f.source).name, f.index) for f in frames] == [
        ("frame2.png", 0),  # natural order: frame2 before frame10
        ("frame10.png", 0),
        ("xa.dcm", 0),
        ("xa.dcm", 1),
        ("z_no_suffix", 0),
    ]
    assert sorted(Path(e.path).name for e in errors) == [
        "broken.png",
        "missing.png",
        "truncated.dcm",
    ]
    for error in errors:
        message = str(error)
        assert (
            "\n" not in message and message.startswith(error.path + ": ") and len(error.reason) > 5
        )


def test_unsupported_file_named_explicitly_is_a_read_error(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ReadError, match="notes.txt: unsupported file type"):
        list(read_frames(text))
    (error,) = list(iter_inputs(text))
    assert isinstance(error, ReadError)
    (error,) = list(iter_inputs(tmp_path))  # holds only notes.txt
    assert str(error) == f"{tmp_path}: directory contains no file of a supported type"


def test_dicom_without_pixel_data_is_a_read_error(tmp_path):
    path = _write_dicom(tmp_path / "x.dcm", _frames_12bit(1))
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(ReadError, match="no pixel data"):
        list(read_frames(path))


def test_frames_say_how_many_frames_their_file_holds(tmp_path):
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.zeros((4, 5), np.uint8))
    pages = tmp_path / "pages.tif"
    assert cv2.imwritemulti(str(pages), [np.zeros((4, 5), np.uint8)] * 3)
    dicom = _write_dicom(tmp_path / "run.dcm", _frames_12bit(4))
    single = _write_dicom(tmp_path / "single.dcm", _frames_12bit(1))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (16, 16))
    for _ in range(2):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    writer.release()
    counts = {
        path.name: [frame.count for frame in read_frames(path)]
        for path in (image, pages, dicom, single, video)
    }
    assert counts == {
        "one.png": [1],
        "pages.tif": [3, 3, 3],
        "run.dcm": [4] * 4,
        "single.dcm": [1],
        "clip.avi": [None, None],  # a video is counted only by reading it
    }
