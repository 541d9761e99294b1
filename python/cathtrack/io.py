"""Reading frames for inference: images, multi-page TIFF, video files and DICOM.

Frames come back in their native dtype and layout (no normalisation: that is
:func:`cathtrack.data.normalize.normalize_frame`, applied by whoever feeds the model). Colour frames
are in OpenCV's BGR order. The file type is decided by content where it is cheap (the DICOM
"DICM" magic at byte 128, since DICOM files often have no suffix) and by suffix otherwise.

A file that cannot be read is reported as a :class:`ReadError` whose message is one line naming the
file and the reason; :func:`iter_inputs` yields those and carries on with the remaining inputs.
A file that is read only in part (a truncated video or JPEG, a TIFF with undecodable pages) is
never passed off as whole: its readable frames come first, then a ReadError saying how many of
how many frames were read. Values that would make every frame meaningless (a DICOM rescale of
NaN or infinity) are refused. Frames always come back in native byte order. The decoders' own
chatter on stderr (FFmpeg's) is silenced, since the ReadError says what went wrong; set
``OPENCV_FFMPEG_LOGLEVEL`` (e.g. 24) before importing cathtrack to see it again.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# FFmpeg (inside OpenCV) prints its own lines ("moov atom not found") for a damaged video, and
# reads this variable only when OpenCV is first imported: quiet unless the user says otherwise.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

import cv2  # noqa: E402 (after the variable above)
import numpy as np  # noqa: E402

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})
KNOWN_SUFFIXES = IMAGE_SUFFIXES | TIFF_SUFFIXES | VIDEO_SUFFIXES | DICOM_SUFFIXES
# Containers whose frame count comes from an index (exact); others (MKV) estimate it from the
# duration, so a shortfall of a frame or 2 % is tolerated there before a video counts as cut.
INDEXED_VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov"})
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})

# The optional extra with decoders for compressed DICOM pixel data (GDCM: JPEG Lossless,
# JPEG-LS, JPEG 2000, 8-bit JPEG; pydicom itself decodes RLE and, through Pillow, baseline JPEG
# and most JPEG 2000).
DICOM_EXTRA = "dicom"
JPEG_EXTENDED_12_BIT = "1.2.840.10008.1.2.4.51"
_DICOM_MAGIC_OFFSET = 128
_DICOM_MAGIC = b"DICM"


@dataclass
class Frame:
    """One input frame.

    Attributes:
        image: (H, W) or (H, W, C) in the file's native dtype (uint8, uint16, int16, float32 after
            a DICOM rescale, ...); colour is BGR / BGRA.
        index: position of the frame within its file (0 for a single image).
        source: path of the file it came from.
        pixel_spacing_mm: physical size of one pixel when the file says so (DICOM), else None.
        count: frames in the file, known before its first frame for images (1), TIFF and DICOM
            (the pages or frames decoded); None for a video (counted only by reading it).
    """

    image: np.ndarray
    index: int
    source: str
    pixel_spacing_mm: float | None = None
    count: int | None = None


class ReadError(Exception):
    """A file that could not be read; ``str()`` is one line: ``<path>: <reason>``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, whatever the library said
        super().__init__(f"{self.path}: {self.reason}")


def read_frames(path: str | os.PathLike) -> Iterator[Frame]:
    """Yield the frames of one file in order.

    Supported: PNG, JPEG, BMP (8/16-bit, gray or colour), TIFF (every page of a multi-page file),
    video (MP4, AVI, MOV, MKV through OpenCV/FFmpeg; 8-bit BGR frames) and DICOM (single- and
    multi-frame, e.g. XA/RF; uncompressed, RLE, and through Pillow baseline JPEG and most JPEG
    2000 out of the box; JPEG Lossless, JPEG-LS and the rest of JPEG 2000 with the extra
    ``cathtrack[dicom]``, which the ReadError of such a file names when it is missing).

    Raises:
        ReadError: missing, unsupported, corrupt or undecodable file (possibly after some frames
            of a damaged video were already yielded).
    """
    path = Path(path)
    if not path.is_file():
        raise ReadError(path, "no such file")
    kind = detect_kind(path)
    if kind is None:
        raise ReadError(
            path, f"unsupported file type (known suffixes: {', '.join(sorted(KNOWN_SUFFIXES))})"
        )
    readers = {"image": _read_image, "tiff": _read_tiff, "video": _read_video, "dicom": _read_dicom}
    try:
        yield from readers[kind](path)
    except ReadError:
        raise
    except Exception as error:  # decoders raise anything from ValueError to struct.error
        raise ReadError(path, f"cannot read {kind}: {error}") from error


def iter_inputs(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
) -> Iterator[Frame | ReadError]:
    """Frames of every input in order; a :class:`ReadError` in place of each unreadable file.

    Directories are expanded recursively in natural order ("frame2" before "frame10"), keeping
    files with a known suffix and suffix-less files that carry the DICOM magic; hidden files and
    DICOMDIR index files are skipped; a directory without any such file is a ReadError. Paths
    named explicitly are always tried.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for path in paths:
        path = Path(path)
        files = _expand_directory(path) if path.is_dir() else [path]
        if not files:
            yield ReadError(path, "directory contains no file of a supported type")
        for file in files:
            try:
                yield from read_frames(file)
            except ReadError as error:
                yield error


def detect_kind(path: Path) -> str | None:
    """ "dicom", "tiff", "image", "video" or None (unsupported) for one file."""
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES or _has_dicom_magic(path):
        return "dicom"
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def _expand_directory(directory: Path) -> list[Path]:
    found = []
    for path in directory.rglob("*"):
        relative_parts = path.relative_to(directory).parts
        if any(part.startswith(".") for part in relative_parts) or not path.is_file():
            continue
        if path.name.upper() == "DICOMDIR":
            continue
        if path.suffix.lower() in KNOWN_SUFFIXES or (not path.suffix and _has_dicom_magic(path)):
            found.append(path)
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            file.seek(_DICOM_MAGIC_OFFSET)
            return file.read(len(_DICOM_MAGIC)) == _DICOM_MAGIC
    except OSError:
        return False


def _native_order(image: np.ndarray) -> np.ndarray:
    """The array in the machine's byte order (big-endian DICOM pixels come back swapped)."""
    if image.dtype.isnative:
        return image
    return image.astype(image.dtype.newbyteorder("="))


def _read_image(path: Path) -> Iterator[Frame]:
    if path.suffix.lower() in JPEG_SUFFIXES and _jpeg_is_truncated(path):
        # libjpeg would decode the part that is there, grey below, and only print a warning.
        raise ReadError(path, "truncated JPEG (its last scan has no end-of-image marker)")
    # IMREAD_UNCHANGED keeps 16-bit depth and the channel count (gray stays (H, W)).
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ReadError(path, "not a readable image (corrupt or unsupported encoding)")
    yield Frame(_native_order(image), 0, str(path), count=1)


def _jpeg_is_truncated(path: Path) -> bool:
    """Whether a JPEG's last start-of-scan marker (FF DA) has no end-of-image marker (FF D9)
    after it. Entropy-coded data never holds FF D9 (FF is stuffed as FF 00), so a file cut
    anywhere in its scans has none; a thumbnail's EOI comes before the main image's scans."""
    data = path.read_bytes()
    if not data.startswith(b"\xff\xd8"):
        return False  # not a JPEG at all: cv2 says so
    return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


def _read_tiff(path: Path) -> Iterator[Frame]:
    try:
        expected = int(cv2.imcount(str(path), cv2.IMREAD_UNCHANGED))
    except cv2.error:
        expected = 0
    ok, pages = cv2.imreadmulti(str(path), flags=cv2.IMREAD_UNCHANGED)
    if not pages:
        raise ReadError(path, "not a readable TIFF (corrupt or unsupported encoding)")
    for index, page in enumerate(pages):  # pages of different sizes are all kept
        yield Frame(_native_order(page), index, str(path), count=len(pages))
    if len(pages) < expected:
        raise ReadError(path, f"damaged TIFF: decoded {len(pages)} of {expected} pages")
    if not ok:
        raise ReadError(path, f"damaged TIFF: decoded {len(pages)} pages, then a page failed")


def _read_video(path: Path) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ReadError(path, "not a readable video (corrupt or no decoder for its codec)")
        expected = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            yield Frame(image, index, str(path))
            index += 1
        if index == 0:
            raise ReadError(path, "video contains no decodable frame")
        tolerance = 0 if path.suffix.lower() in INDEXED_VIDEO_SUFFIXES else max(1, expected // 50)
        if expected - index > tolerance:
            raise ReadError(
                path,
                f"truncated or damaged video: decoded {index} of {expected} frames "
                "(the frames before the damage were read)",
            )
    finally:
        capture.release()


def _read_dicom(path: Path) -> Iterator[Frame]:
    pixels, spacing = _decode_dicom(path)
    for index, image in enumerate(pixels):
        yield Frame(np.ascontiguousarray(image), index, str(path), spacing, len(pixels))


def _decode_dicom(path: Path) -> tuple[np.ndarray, float | None]:
    """(frames, H, W[, 3]) display values in native byte order, and the pixel spacing."""
    import pydicom  # imported on first use: most callers never touch DICOM

    # pydicom warns (on stderr) about every malformed value it converts; what matters is
    # refused below with a ReadError, the rest is read as pydicom best can.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(str(path), force=not _has_dicom_magic(path))
        if "PixelData" not in dataset:
            raise ReadError(path, "DICOM file has no pixel data (not an image, or truncated)")
        pixels = _native_order(_decode_pixels(dataset, path))
        frame_count = int(dataset.get("NumberOfFrames", 1) or 1)
        if frame_count == 1:
            pixels = pixels[None]  # pixel_array drops the frame axis of single-frame files
        pixels = _dicom_to_display_values(dataset, pixels, path)
        spacing = dicom_pixel_spacing_mm(dataset)
    if pixels.ndim == 4:  # (frames, H, W, 3) colour; pydicom returns RGB, cathtrack uses BGR
        pixels = pixels[..., ::-1]
    return pixels, spacing


def _decode_pixels(dataset, path: Path) -> np.ndarray:
    """``dataset.pixel_array``; for compressed pixel data a ReadError that names the transfer
    syntax and, when no decoder for it is installed, the extra that brings one."""
    transfer_syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if transfer_syntax is None or not transfer_syntax.is_compressed:
        return dataset.pixel_array
    from pydicom.pixels import get_decoder

    name = transfer_syntax.name
    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError:
        raise ReadError(path, f"compressed pixel data ({name}): no decoder for it") from None
    if not decoder.is_available:
        raise ReadError(
            path,
            f"compressed pixel data ({name}) needs a decoder: pip install 'cathtrack[{DICOM_EXTRA}]'",
        )
    try:
        return dataset.pixel_array
    except Exception as error:  # every decoder plugin refused: say why, on one line
        reason = " ".join(str(error).split())
        if importlib.util.find_spec("gdcm") is None:
            hint = f"; the decoders of pip install 'cathtrack[{DICOM_EXTRA}]' may read it"
        elif transfer_syntax == JPEG_EXTENDED_12_BIT and int(dataset.get("BitsStored", 8)) > 8:
            hint = (
                "; 12-bit JPEG Extended is decoded only by pylibjpeg-libjpeg (GPL), which "
                "cathtrack does not install"
            )
        else:
            hint = ""
        raise ReadError(
            path, f"cannot decode compressed pixel data ({name}): {reason}{hint}"
        ) from error


def _dicom_to_display_values(dataset, pixels: np.ndarray, path: str | Path = "") -> np.ndarray:
    """Stored values -> values where larger = brighter: mask unused bits, invert MONOCHROME1, rescale.

    MONOCHROME1 ("minimum is white") is inverted within the stored bit range so that, as for
    MONOCHROME2, dense objects are dark. RescaleSlope/RescaleIntercept (the modality LUT) are
    applied when present and not the identity; the result is then float32. A rescale that is
    not a finite number (NaN, infinity, text) is a ReadError naming ``path``: applied, it would
    turn every pixel into NaN and the frame into zero detections without a word.
    """
    bits_stored = int(dataset.get("BitsStored", pixels.dtype.itemsize * 8))
    signed = int(dataset.get("PixelRepresentation", 0)) == 1
    if not signed and pixels.dtype.kind == "u" and bits_stored < pixels.dtype.itemsize * 8:
        # Bits above BitsStored are not pixel data (historically overlays): drop them.
        pixels = pixels & pixels.dtype.type((1 << bits_stored) - 1)
    if dataset.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        low, high = (
            (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1)
            if signed
            else (0, (1 << bits_stored) - 1)
        )
        pixels = (low + high - pixels.astype(np.int64)).astype(pixels.dtype)
    slope = _rescale_value(dataset, "RescaleSlope", 1.0, path)
    intercept = _rescale_value(dataset, "RescaleIntercept", 0.0, path)
    if (slope, intercept) != (1.0, 0.0):
        pixels = pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return pixels


def _rescale_value(dataset, keyword: str, default: float, path: str | Path) -> float:
    """A modality-LUT value; absent or empty -> ``default``; not a finite number -> ReadError."""
    value = dataset.get(keyword)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ReadError(
            path, f"{keyword} is {value!r}, not a finite number: the pixel values cannot be used"
        )
    return number if number != 0 or keyword != "RescaleSlope" else default


def dicom_pixel_spacing_mm(dataset) -> float | None:
    """Pixel size in mm of a pydicom dataset, or None when it records none.

    PixelSpacing (0028,0030) is the spacing in the patient (calibrated to the anatomy, i.e. the
    geometric magnification of the divergent beam already removed); ImagerPixelSpacing
    (0018,1164) is the spacing at the detector front plane, larger than anatomy by the
    magnification SID/SOD (typically 1.2-1.5 in fluoroscopy). XA files usually carry only the
    latter. The calibrated PixelSpacing wins when both exist. Rows and columns spacings are
    averaged (they are equal on fluoroscopy detectors).
    """
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            return (float(value[0]) + float(value[1])) / 2
    return None
