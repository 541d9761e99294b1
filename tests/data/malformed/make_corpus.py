"""Writes the malformed-input corpus of tests/test_malformed_inputs.py (docs/reliability.md).

Run from the repository root after changing it (the files are committed; the output is
deterministic apart from the zip/PNG encoders' own versions)::

    .venv/bin/python tests/data/malformed/make_corpus.py

Every file is small (< 100 kB). What each one is, and what every verb must do with it, is the
table in docs/reliability.md; in short:

frames/ (inputs of ``cathtrack predict``)
    truncated.png       a PNG cut in the middle of its image data
    truncated.jpg       a JPEG cut in the middle of its scan (libjpeg would grey the rest)
    empty.png           0 bytes
    huge_side.png       a valid 1 x 70000 PNG: readable, refused by the engine (side > 65536)
    truncated.dcm       a DICOM cut in the middle of its pixel data
    big_endian.dcm      a valid Explicit VR Big Endian DICOM (16 bits stored): must be tracked
    rescale_nan.dcm     a DICOM whose RescaleSlope is NaN
    truncated.mp4       an MP4 cut in half (its index, at the end, is gone)
    truncated.avi       a 20-frame MJPG AVI cut after frame 12 of 20
    mixed_sizes.tif     a 3-page TIFF whose middle page has another size
models/ (the MODEL argument of predict, eval, export, bench and negatives)
    tiny.*              a valid tiny model (10 k parameters, float16) with its weights hash
    no_hash.*           the same, its JSON written before weights hashes (loads with a warning)
    bitflip.*           one bit of a weight flipped after saving (hash mismatch)
    truncated_weights.* the weights file cut in half (hash mismatch)
    wrong_arch.*        a JSON naming another architecture than its weights
    no_model_key.*      a JSON without its "model" key
    list.*              a JSON that is a list, not an object
    negative_size.*     input_size -256
    huge_width.*        width 4096 (a network of hundreds of GB)
    huge_channels.*     projection_channels 10**9
    missing_json.safetensors  weights without their JSON
    foreign_torch.pt2   an AOTInductor package recording another torch version
negatives/ (the FOLDER argument of negatives: image/mask pairs, masks N_gt.png)
    1.png, 1_gt.png     a good pair
    2.png, 2_gt.png     an image that is not a PNG, with a good mask
coco/ (the DATA argument of eval)
    good/               a valid 3-image COCO set (the baseline)
    truncated_json/     annotations.json cut in the middle
    list_json/          annotations.json holding a list
    missing_image/      3 images listed, the second one's file absent
    corrupt_image/      3 images listed, the second one's file not an image
"""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
TINY_CONFIG = {
    "backbone": "resnet18",
    "width": 0.03125,
    "projection_channels": 8,
    "decoder_channels": [4, 4],
    "head_channels": 4,
    "attention_reduction": 4,
    "fine_channels": [4, 4],
}
TINY_SIZE = 64
FOREIGN_TORCH = "2.1.0+cpu"


def frame(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth uint8 test frame with a few dark blobs (deterministic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    image = 160 + 40 * np.sin(x / 9.0) * np.cos(y / 13.0)
    for cx, cy in rng.uniform(8, size - 8, (6, 2)):
        image -= 70 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 6.0)
    return np.clip(image, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- frames


def _dicom(
    path: Path, pixels: np.ndarray, big_endian: bool = False, bits: int = 12, **attributes
) -> Path:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

    xa = "1.2.840.10008.5.1.4.1.1.12.1"
    uid = "1.2.826.0.1.3680043.8.498.1"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = xa
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRBigEndian if big_endian else ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID, dataset.SOPInstanceUID, dataset.Modality = xa, uid, "XA"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, bits, bits - 1
    dataset.PixelRepresentation = 0
    for name, value in attributes.items():
        setattr(dataset, name, value)
    dataset.PixelData = pixels.astype(">u2" if big_endian else "<u2").tobytes()
    if big_endian:
        # pydicom 3 writes big endian only through this private switch (it deprecates writing it).
        dataset._read_little, dataset._read_implicit = False, False
        dataset.save_as(path, enforce_file_format=True, little_endian=False, implicit_vr=False)
    else:
        dataset.save_as(path, enforce_file_format=True)
    return path


def _video(path: Path, fourcc: str, count: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (64, 64))
    for k in range(count):
        writer.write(cv2.cvtColor(frame(seed=k), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def _readable_video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.isOpened() and capture.read()[0]:
        count += 1
    capture.release()
    return count


def write_frames(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    png = cv2.imencode(".png", frame())[1].tobytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    jpeg = cv2.imencode(".jpg", frame())[1].tobytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "empty.png").write_bytes(b"")
    cv2.imwrite(str(folder / "huge_side.png"), np.full((1, 70000), 128, np.uint8))

    stored = (frame().astype(np.uint16) * 16)[:48, :48]  # 12-bit values
    dicom = _dicom(folder / "truncated.dcm", stored).read_bytes()
    (folder / "truncated.dcm").write_bytes(dicom[: len(dicom) - stored.nbytes // 2])
    # 16 bits stored: no masking of unused bits, which would hand back a native-order copy.
    _dicom(folder / "big_endian.dcm", stored * 16, big_endian=True, bits=16)
    with warnings.catch_warnings():  # pydicom warns that "NaN" is not a valid DS: that's the point
        warnings.simplefilter("ignore")
        _dicom(folder / "rescale_nan.dcm", stored, RescaleSlope="NaN", RescaleIntercept="0")

    mp4 = _video(folder / "truncated.mp4", "mp4v", 5).read_bytes()
    (folder / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])
    # Cut the AVI after its 12th frame: MJPG frames are whole JPEGs in "00dc" chunks (the first
    # "00dc" is the stream header's, the frames' chunks follow in the "movi" list).
    avi = _video(folder / "truncated.avi", "MJPG", 20).read_bytes()
    movi = avi.index(b"movi")
    starts = [i for i in range(movi, len(avi)) if avi.startswith(b"00dc", i)]
    (folder / "truncated.avi").write_bytes(avi[: starts[12]])
    assert _readable_video_frames(folder / "truncated.avi") == 12

    import tifffile

    with tifffile.TiffWriter(folder / "mixed_sizes.tif") as tiff:
        for size, seed in ((64, 0), (48, 1), (64, 2)):
            tiff.write(frame(size, seed), photometric="minisblack")


# ---------------------------------------------------------------- models


def _save_tiny(path: Path) -> Path:
    import torch

    from cathtrack.checkpoint import save_model
    from cathtrack.model import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY_CONFIG)).eval()
    training = {"config_hash": "malformed-corpus"}
    return save_model(path, model, input_size=TINY_SIZE, training=training, dtype=torch.float16)


def _variant(folder: Path, name: str, edit=None, weights: bytes | None = None) -> None:
    """A copy of tiny.* named ``name``, its JSON document changed by ``edit``."""
    document = json.loads((folder / "tiny.json").read_text())
    if edit is not None:
        document = edit(document)
    (folder / f"{name}.json").write_text(json.dumps(document, indent=2, sort_keys=True))
    tiny = (folder / "tiny.safetensors").read_bytes()
    (folder / f"{name}.safetensors").write_bytes(tiny if weights is None else weights)


def _without(key: str):
    def edit(document: dict) -> dict:
        document.pop(key)
        return document

    return edit


def _with_model(**changes):
    def edit(document: dict) -> dict:
        document["model"].update(changes)
        return document

    return edit


def _with_input_size(size: int):
    def edit(document: dict) -> dict:
        document["input_size"] = size
        return document

    return edit


def _foreign_package(path: Path, weights: Path) -> None:
    """A .pt2 archive holding only the metadata of an export made with another torch (what the
    engine reads before it loads anything); compiled code is not needed for the refusal."""
    from cathtrack.checkpoint import read_metadata
    from cathtrack.export import build_metadata

    metadata = build_metadata(weights, read_metadata(weights), "pt2", "cpu", False)
    metadata.update(
        torch_version=FOREIGN_TORCH,
        cathtrack_version="0.1.0",
        cpu_capability="DEFAULT",
        AOTI_DEVICE_KEY="cpu",
        AOTI_PLATFORM="linux",
        AOTI_MACHINE="x86_64",
        AOTI_CPU_ISA="DEFAULT",
        AOTI_COMPUTE_CAPABILITY="",
    )
    root = path.stem
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in (
            ("archive_format", b"pt2"),
            ("archive_version", b"0"),
            (".data/version", b"6\n"),
            ("byteorder", b"little"),
        ):
            archive.writestr(zipfile.ZipInfo(f"{root}/{name}", (2020, 1, 1, 0, 0, 0)), data)
        archive.writestr(
            zipfile.ZipInfo(f"{root}/data/aotinductor/model/m.wrapper_metadata.json",
                            (2020, 1, 1, 0, 0, 0)),
            json.dumps(metadata),
        )  # fmt: skip


def write_models(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tiny = _save_tiny(folder / "tiny.safetensors")
    weights = tiny.read_bytes()

    _variant(folder, "no_hash", _without("weights_sha256"))
    header = 8 + int.from_bytes(weights[:8], "little")
    flipped = bytearray(weights)
    flipped[header + (len(weights) - header) // 2] ^= 0x40  # an exponent bit of a float16
    _variant(folder, "bitflip", weights=bytes(flipped))
    _variant(folder, "truncated_weights", weights=weights[: len(weights) // 2])
    _variant(folder, "wrong_arch", _with_model(backbone="resnet34", width=0.0625))
    _variant(folder, "no_model_key", _without("model"))
    _variant(folder, "list", lambda document: [document])
    _variant(folder, "negative_size", _with_input_size(-256))
    _variant(folder, "huge_width", _with_model(width=4096.0))
    _variant(folder, "huge_channels", _with_model(projection_channels=10**9))
    (folder / "missing_json.safetensors").write_bytes(weights)
    _foreign_package(folder / "foreign_torch.pt2", tiny)


# ---------------------------------------------------------------- COCO data sets


def _coco(folder: Path, count: int = 3) -> dict:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k in range(count):
        name = f"frame{k}.png"
        cv2.imwrite(str(folder / "images" / name), frame(seed=10 + k))
        images.append({"id": k + 1, "file_name": name, "width": 64, "height": 64})
        annotations.append(
            {
                "id": k + 1,
                "image_id": k + 1,
                "category_id": 2,
                "bbox": [30.0, 30.0, 3.0, 3.0],
                "area": 9.0,
                "iscrowd": 0,
                "keypoints": [31.5, 31.5, 2],
                "num_keypoints": 1,
            }
        )
    categories = [{"id": 1, "name": "catheter"}, {"id": 2, "name": "electrode"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(folder: Path) -> None:
    dataset = _coco(folder / "good")
    (folder / "good" / "annotations.json").write_text(json.dumps(dataset))

    dataset = _coco(folder / "truncated_json")
    text = json.dumps(dataset)
    (folder / "truncated_json" / "annotations.json").write_text(text[: len(text) // 2])

    dataset = _coco(folder / "list_json")
    (folder / "list_json" / "annotations.json").write_text(json.dumps([dataset]))

    dataset = _coco(folder / "missing_image")
    (folder / "missing_image" / "images" / "frame1.png").unlink()
    (folder / "missing_image" / "annotations.json").write_text(json.dumps(dataset))

    dataset = _coco(folder / "corrupt_image")
    (folder / "corrupt_image" / "images" / "frame1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "corrupt_image" / "annotations.json").write_text(json.dumps(dataset))


def write_negatives(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    vessels = np.zeros((64, 64), np.uint8)
    vessels[30:34, 8:56] = 255
    cv2.imwrite(str(folder / "1.png"), frame(seed=20))
    cv2.imwrite(str(folder / "1_gt.png"), vessels)
    (folder / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cv2.imwrite(str(folder / "2_gt.png"), vessels)


def main() -> None:
    for name in ("frames", "models", "coco", "negatives"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    write_frames(HERE / "frames")
    write_models(HERE / "models")
    write_coco(HERE / "coco")
    write_negatives(HERE / "negatives")
    for path in sorted(HERE.rglob("*")):
        if path.is_file() and path.name != Path(__file__).name:
            size = path.stat().st_size
            assert size < 100_000, f"{path} is {size} bytes: the corpus keeps files < 100 kB"


if __name__ == "__main__":
    main()
