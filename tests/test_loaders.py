"""Readers (UCL HDF5, image/mask folders), prepare_sample and the torch Datasets."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cathtrack.data.augment import Augment
from cathtrack.data.datasets import (
    FolderDataset,
    SampleDataset,
    SyntheticDataset,
    SyntheticFrames,
    SyntheticStream,
    UclDataset,
    collate_samples,
    frame_seed,
    prepare_sample,
)
from cathtrack.data.folders import FolderReader
from cathtrack.data.normalize import normalize_frame
from cathtrack.data.sample import CatheterLabel, Sample

SEGMENTATION_ONLY = {"segmentation": True, "detection": False}


def _images_equal(first: list[Sample], second: list[Sample]) -> bool:
    return len(first) == len(second) and all(
        np.array_equal(a.image, b.image) for a, b in zip(first, second, strict=True)
    )


# ---------------------------------------------------------------- UCL HDF5


def _write_ucl(root, name: str, count: int, height: int = 20, width: int = 24, seed: int = 0):
    h5py = pytest.importorskip("h5py", reason="h5py is needed to read the UCL HDF5 data set")
    rng = np.random.default_rng(seed)
    gray = rng.uniform(0, 255, (count, height, width))
    masks = (rng.random((count, height, width)) > 0.8).astype(np.uint8) * 255
    labels = np.stack([masks, np.full_like(masks, 7)], axis=-1)  # channel 1 is not the catheter
    with h5py.File(root / f"{name}.hdf5", "w") as file:
        file["test"] = np.repeat(gray[..., None], 3, axis=-1)
    with h5py.File(root / f"{name}_label.hdf5", "w") as file:
        file["label"] = labels
    return gray, masks > 0


def test_ucl_reader_flattens_files_in_natural_order(tmp_path):
    from cathtrack.data.ucl import UclReader

    gray10, masks10 = _write_ucl(tmp_path, "T10", 2, seed=1)
    gray2, masks2 = _write_ucl(tmp_path, "T2", 3, seed=2)
    reader = UclReader(tmp_path)
    assert len(reader) == 5
    sample = reader[3]  # T10 (after T2), frame 0
    assert sample.name == "T10/00000" and sample.available == SEGMENTATION_ONLY
    np.testing.assert_allclose(sample.image, normalize_frame(gray10[0]), atol=1e-6)
    np.testing.assert_array_equal(sample.mask, masks10[0])
    np.testing.assert_array_equal(reader[2].mask, masks2[2])
    assert sample.mask.dtype == np.uint8 and len(sample.electrodes) == 0


def test_ucl_reader_errors_name_the_problem(tmp_path):
    from cathtrack.data.ucl import UclReader

    with pytest.raises(FileNotFoundError, match="T\\*.hdf5"):
        UclReader(tmp_path)
    _write_ucl(tmp_path, "T1", 2)
    (tmp_path / "T1_label.hdf5").rename(tmp_path / "elsewhere.hdf5")
    with pytest.raises(FileNotFoundError, match="T1_label.hdf5 is missing"):
        UclReader(tmp_path)


def test_ucl_dataset_resizes_and_works_in_workers(tmp_path):
    _write_ucl(tmp_path, "T1", 4)
    dataset = UclDataset(tmp_path, size=16)
    serial = [dataset[i] for i in range(len(dataset))]
    assert serial[0].image.shape == (16, 16) and serial[0].mask.shape == (16, 16)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_samples)
    parallel = [sample for batch in loader for sample in batch]
    assert _images_equal(serial, parallel)
    # Open HDF5 handles are not pickled: a copy reopens its files (spawn/forkserver workers).
    assert np.array_equal(pickle.loads(pickle.dumps(dataset))[3].mask, serial[3].mask)


# ---------------------------------------------------------------- image/mask folders


def _write_folder_dataset(root):
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    image16 = (rng.random((30, 40)) * 4095).astype(np.uint16)  # 12 bits in 16
    cv2.imwrite(str(root / "images" / "b.png"), image16)
    cv2.imwrite(str(root / "images" / "a.jpg"), (rng.random((30, 40, 3)) * 255).astype(np.uint8))
    mask = np.zeros((30, 40), np.uint8)
    mask[10:20, 5:35] = 255
    cv2.imwrite(str(root / "masks" / "b.png"), mask)
    cv2.imwrite(str(root / "masks" / "a.png"), mask // 255)  # a 0/1 mask is fine too
    return image16, mask > 0


def test_folder_reader_matches_by_stem_across_formats(tmp_path):
    image16, mask = _write_folder_dataset(tmp_path)
    reader = FolderReader(tmp_path)
    assert [sample.name for sample in (reader[0], reader[1])] == ["a", "b"]
    np.testing.assert_array_equal(reader[1].image, normalize_frame(image16))
    for sample in (reader[0], reader[1]):
        np.testing.assert_array_equal(sample.mask, mask)
        assert sample.available == SEGMENTATION_ONLY and sample.image.shape == (30, 40)


def test_folder_reader_lists_unmatched_files(tmp_path):
    _write_folder_dataset(tmp_path)
    cv2.imwrite(str(tmp_path / "images" / "lonely.png"), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "orphan.png"), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="2 files without a partner.*lonely.png.*orphan.png"):
        FolderReader(tmp_path)


def test_folder_dataset_on_real_angiograms(angiogram_dir):
    reader = FolderReader(angiogram_dir, "training", "training", mask_suffix="_gt")
    assert len(reader) == 40 and reader[0].name == "1"
    dataset = FolderDataset(
        angiogram_dir, 128, images_dir="training", masks_dir="training", mask_suffix="_gt"
    )
    native, resized = reader[5], dataset[5]
    assert resized.image.shape == (128, 128) and set(np.unique(resized.mask)) == {0, 1}
    assert resized.mask.mean() == pytest.approx(native.mask.mean(), rel=0.1)  # vessels survive


# ---------------------------------------------------------------- prepare_sample and SampleDataset


def test_prepare_sample_scales_labels_with_the_pixels():
    # A dot at a sub-pixel position in a non-square frame must stay under its label after resizing.
    ys, xs = np.mgrid[0:60, 0:90].astype(np.float32)
    centre = np.array([[31.3, 22.6]], np.float32)
    image = np.exp(-((xs - centre[0, 0]) ** 2 + (ys - centre[0, 1]) ** 2) / (2 * 3.0**2))
    sample = Sample(
        image=image,
        mask=(image > 0.5).astype(np.uint8),
        electrodes=centre,
        boxes=np.array([[28.3, 19.6, 6, 6]], np.float32),
        electrode_catheter=np.array([1]),
        electrode_index=np.array([0]),
        catheters=[
            CatheterLabel(1, "ablation", np.array([[31.3, 22.6], [89.5, 59.5]], np.float32))
        ],
    )
    out = prepare_sample(sample, 45)
    expected = (centre + 0.5) * [45 / 90, 45 / 60] - 0.5
    np.testing.assert_allclose(out.electrodes, expected, rtol=1e-6)
    np.testing.assert_allclose(out.catheters[0].centerline[1], [44.5, 44.5])  # corner stays corner
    np.testing.assert_allclose(out.boxes[0, 2:], [3, 4.5])
    weights = out.image * (out.image > 0.1)
    oy, ox = np.mgrid[0:45, 0:45]
    centroid = [(weights * ox).sum() / weights.sum(), (weights * oy).sum() / weights.sum()]
    np.testing.assert_allclose(centroid, expected[0], atol=0.25)
    assert out.mask.shape == (45, 45) and out.mask.any()
    assert out.pixel_spacing_mm is None  # anisotropic resize


def _toy_reader(count: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    return [
        Sample(image=rng.random((24, 24)).astype(np.float32), name=str(i)) for i in range(count)
    ]


def test_sample_dataset_augmentation_depends_on_seed_epoch_index_not_workers():
    dataset = SampleDataset(
        _toy_reader(4), size=16, augment=Augment(noise_std=(0.02, 0.05)), seed=3
    )
    epoch0 = [dataset[i] for i in range(4)]
    again = [dataset[i] for i in range(4)]
    assert _images_equal(epoch0, again)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_samples)
    assert _images_equal(epoch0, [s for batch in loader for s in batch])
    dataset.set_epoch(1)
    assert not np.array_equal(dataset[0].image, epoch0[0].image)


# ---------------------------------------------------------------- COCO


def _labelled_sample(name: str, available: dict[str, bool]) -> Sample:
    image = np.full((48, 64), 0.8, np.float32)
    line = np.array([[10.0, 8.0], [30.0, 24.0], [50.0, 47.0]], np.float32)
    mask = np.zeros((48, 64), np.uint8)
    cv2.polylines(mask, [line.round().astype(np.int32)], False, 1, thickness=3)
    image[mask > 0] = 0.4
    electrodes = np.array([[10.0, 8.0], [20.0, 16.0]], np.float32)
    return Sample(
        image=image,
        mask=mask if available["segmentation"] else None,
        electrodes=electrodes if available["detection"] else np.zeros((0, 2), np.float32),
        boxes=np.hstack([electrodes - 1.5, np.full_like(electrodes, 3.0)])
        if available["detection"]
        else np.zeros((0, 4), np.float32),
        electrode_catheter=np.array([1, 1]) if available["detection"] else np.zeros(0, np.int64),
        electrode_index=np.array([0, 1]) if available["detection"] else np.zeros(0, np.int64),
        catheters=[CatheterLabel(1, "quadripolar", line)],
        available=available,
        name=name,
    )


def test_coco_dataset_resizes_labels_and_keeps_availability(tmp_path):
    from cathtrack.data.coco import write_coco
    from cathtrack.data.datasets import CocoDataset

    both = {"segmentation": True, "detection": True}
    samples = [_labelled_sample("full", both), _labelled_sample("seg", SEGMENTATION_ONLY)]
    write_coco(tmp_path, samples, bits=16)
    dataset = CocoDataset(tmp_path, size=32)
    full, seg_only = dataset[0], dataset[1]
    assert full.image.shape == (32, 32) and full.mask.shape == (32, 32)
    expected = (samples[0].electrodes + 0.5) * [32 / 64, 32 / 48] - 0.5
    np.testing.assert_allclose(full.electrodes, expected, atol=1e-4)
    np.testing.assert_array_equal(full.electrode_index, [0, 1])
    assert full.available == both and seg_only.available == SEGMENTATION_ONLY
    assert len(seg_only.electrodes) == 0 and seg_only.mask.any()
    # The stored image is the original under the shared normalisation.
    np.testing.assert_allclose(full.image, prepare_sample(samples[0], 32).image, atol=1e-4)


# ---------------------------------------------------------------- synthetic


SYNTH_SIZE = 96


@pytest.fixture(scope="module")
def small_config():
    from cathtrack.data.synth import preset

    return preset("easy", size=SYNTH_SIZE)


def test_synthetic_dataset_is_deterministic_per_seed_and_index(small_config):
    from cathtrack.data.synth import render

    frames = SyntheticDataset(small_config, length=3, seed=5)
    assert isinstance(frames, SyntheticFrames) and len(frames) == 3
    first = frames[1]
    assert first.image.shape == (SYNTH_SIZE, SYNTH_SIZE) and first.image.dtype == np.float32
    assert np.array_equal(first.image, SyntheticDataset(small_config, length=3, seed=5)[1].image)
    assert not np.array_equal(first.image, frames[2].image)
    assert not np.array_equal(
        first.image, SyntheticDataset(small_config, length=3, seed=6)[1].image
    )
    # Picklable, for DataLoader workers started with spawn/forkserver.
    assert np.array_equal(pickle.loads(pickle.dumps(frames))[1].image, first.image)
    direct = render(small_config, frame_seed(5, 1))
    np.testing.assert_array_equal(first.image, normalize_frame(direct.image))
    assert set(first.available) == {"segmentation", "detection"}
    with pytest.raises(IndexError):
        frames[3]


def test_synthetic_map_style_gives_the_same_frames_for_any_worker_count(small_config):
    frames = SyntheticDataset(small_config, length=4, seed=2, augment=Augment())
    serial = [
        s for batch in DataLoader(frames, batch_size=2, collate_fn=collate_samples) for s in batch
    ]
    loader = DataLoader(frames, batch_size=2, num_workers=2, collate_fn=collate_samples)
    assert _images_equal(serial, [s for batch in loader for s in batch])


def test_synthetic_stream_workers_render_distinct_frames(small_config):
    stream = SyntheticDataset(small_config, seed=9)
    assert isinstance(stream, SyntheticStream) and isinstance(
        stream, torch.utils.data.IterableDataset
    )
    loader = DataLoader(stream, batch_size=1, num_workers=2, collate_fn=collate_samples)
    parallel = []
    for batch in loader:  # worker 0 renders indices 0, 2, ...; worker 1 renders 1, 3, ...
        parallel.extend(batch)
        if len(parallel) == 4:
            break
    images = [s.image.tobytes() for s in parallel]
    assert len(set(images)) == 4
    assert _images_equal(parallel, [stream.frame(i) for i in range(4)])
