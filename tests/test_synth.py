"""Synthetic fluoroscopy engine and the `cathtrack synth` verb."""

from __future__ import annotations

import dataclasses
import filecmp
import inspect
import json
import shutil

import cv2
import numpy as np
import pytest

import cathtrack.cli as cli
from cathtrack.catheters import CATHETER_TYPES, variants_of
from cathtrack.data.coco import CocoReader
from cathtrack.data.synth import PRESETS, SynthConfig, preset, render, render_sequence

NO_DISTRACTORS = dict(
    ecg_snaps=(0, 0), sternal_wires=(0, 0), guidewires=(0, 0), temperature_probe_probability=0.0
)


def only(device_type: str, **overrides) -> SynthConfig:
    """Easy preset with exactly one device of ``device_type`` and nothing else."""
    probability = {t: float(t == device_type) for t in CATHETER_TYPES}
    return preset("easy", device_probability=probability, **{**NO_DISTRACTORS, **overrides})


def test_presets_and_config_validation():
    assert set(PRESETS) == {"easy", "clinical", "hard", "real"}
    assert preset("hard", size=128).size == 128
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nightmare")
    with pytest.raises(ValueError, match="unknown SynthConfig field"):
        preset("easy", sise=128)
    with pytest.raises(ValueError, match="range"):
        SynthConfig(lao_deg=(10.0, -10.0))
    with pytest.raises(ValueError, match="unknown device types"):
        SynthConfig(device_probability={"stent": 1.0})
    # Every field is documented.
    lines = inspect.getsource(SynthConfig).splitlines()
    for f in dataclasses.fields(SynthConfig):
        line = next(i for i, text in enumerate(lines) if text.startswith(f"    {f.name}:"))
        assert lines[line + 1].strip().startswith('"""'), f"{f.name} has no docstring"


def test_deterministic_from_seed():
    config = preset("hard", size=96)
    a, b, c = render(config, 5), render(config, 5), render(config, 6)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.electrodes, b.electrodes)
    assert not np.array_equal(a.image, c.image)
    assert a.image.dtype == np.float32 and a.image.shape == (96, 96)
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    assert a.mask.dtype == np.uint8 and set(np.unique(a.mask)) <= {0, 1}
    assert a.available == {"segmentation": True, "detection": True}
    # Frame 0 of a sequence is the single frame of the same seed.
    np.testing.assert_array_equal(render_sequence(config, 5, 2)[0].image, a.image)


@pytest.mark.parametrize("device_type", CATHETER_TYPES)
def test_every_device_type_with_catalogue_electrodes(device_type):
    counts = {v.n_electrodes for v in variants_of(device_type)}
    # A wide field keeps the whole distal end in view.
    config = only(device_type, size=256, field_of_view_mm=(380.0, 380.0))
    for seed in range(3):
        sample = render(config, seed)
        targets = [c for c in sample.catheters if c.target]
        assert [c.type for c in targets] == [device_type]
        assert len(sample.electrodes) in counts
        assert sample.electrode_index.tolist() == list(range(len(sample.electrodes)))
        owners = {targets[0].id} if max(counts) > 0 else set()  # some catheters have none
        assert set(sample.electrode_catheter.tolist()) == owners


def _disc_mean(image, x, y, r0, r1, select=None):
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    d = np.hypot(cols - x, rows - y)
    ring = (d >= r0) & (d <= r1)
    if select is not None:
        ring &= select
    return image[ring].mean() if ring.any() else np.nan


def test_ground_truth_matches_the_pixels():
    config = preset("easy", size=256, **NO_DISTRACTORS)
    darker_than_shaft, darker_than_background, checked = 0, 0, 0
    for seed in range(4):
        sample = render(config, seed)
        image, mask = sample.image, sample.mask.astype(bool)
        # Centerlines lie in the mask (the mask covers the shaft).
        for catheter in sample.catheters:
            ix, iy = np.round(catheter.centerline).astype(int).T
            assert mask[iy, ix].mean() > 0.97
        # Electrode centres sit on the metal: darker than the nearby shaft and background.
        far_from_electrodes = np.ones_like(mask)
        rows, cols = np.mgrid[:256, :256]
        for x, y in sample.electrodes:
            far_from_electrodes &= np.hypot(cols - x, rows - y) > 3.5
        for (x, y), (bx, by, bw, bh) in zip(sample.electrodes, sample.boxes, strict=True):
            assert bx <= x <= bx + bw and by <= y <= by + bh
            assert mask[int(round(y)), int(round(x))]
            centre = image[int(round(y)), int(round(x))]
            shaft = _disc_mean(image, x, y, 2.0, 8.0, mask & far_from_electrodes)
            background = _disc_mean(image, x, y, 5.0, 9.0, ~mask)
            checked += 1
            darker_than_shaft += bool(np.isnan(shaft) or centre < shaft)
            darker_than_background += bool(centre < background)
    assert checked > 20
    assert darker_than_shaft / checked > 0.9
    assert darker_than_background / checked > 0.95


def test_distractors_are_never_labelled():
    nothing = {t: 0.0 for t in CATHETER_TYPES}
    config = preset(
        "hard", size=128, device_probability=nothing, min_devices=0,
        ecg_snaps=(3, 3), sternal_wires=(4, 4), guidewires=(2, 2), temperature_probe_probability=1.0,
        collimation_probability=0.0,
    )  # fmt: skip
    for seed in range(3):
        sample = render(config, seed)
        assert sample.mask.sum() == 0
        assert len(sample.electrodes) == 0 and len(sample.boxes) == 0
        assert sample.catheters and not any(c.target for c in sample.catheters)
        # They are in the image: it is not a plain background.
        assert {c.type for c in sample.catheters} >= {"guidewire", "temperature_probe"}


def test_sequences_move_smoothly():
    config = only("cs_decapolar", size=256, field_of_view_mm=(300.0, 300.0), fps=15.0)
    frames = render_sequence(config, 3, 8)
    assert len({f.name for f in frames}) == 8
    steps = []
    for a, b in zip(frames, frames[1:], strict=False):
        assert len(a.electrodes) == len(b.electrodes) == 10
        steps.append(np.linalg.norm(a.electrodes - b.electrodes, axis=1).max())
    steps = np.array(steps)
    assert steps.max() < 6.0  # a few pixels per frame at most
    assert (steps > 0.0).all() and steps.mean() > 0.05


def test_real_backgrounds(angiogram_dir):
    config = preset("clinical", size=128, background_dir=str(angiogram_dir / "training"))
    sample = render(config, 1)
    assert sample.mask.any() and 0.0 <= sample.image.min() and sample.image.max() <= 1.0
    np.testing.assert_array_equal(render(config, 1).image, sample.image)


def test_background_exclude_list(tmp_path, angiogram_dir):
    from cathtrack.data.synth.backgrounds import load_backgrounds

    source = angiogram_dir / "training"
    for name in ("2.png", "3.png", "2_gt.png"):
        shutil.copy(source / name, tmp_path / name)
    assert len(load_backgrounds(str(tmp_path))) == 2  # the mask is never a background
    (tmp_path / "background_exclude.txt").write_text("# shows a catheter\n3.png  # reason\n\n")
    load_backgrounds.cache_clear()
    (kept,) = load_backgrounds(str(tmp_path))
    expected = cv2.imread(str(source / "2.png"), cv2.IMREAD_GRAYSCALE) / 255.0
    np.testing.assert_allclose(kept, expected, atol=1e-6)
    # The vendored list names real files, and leaves most of the split in use.
    listed = (source / "background_exclude.txt").read_text().split()
    names = {word for word in listed if word.endswith(".png")}
    assert names and all((source / name).is_file() for name in names)
    assert len(load_backgrounds(str(source))) == 40 - len(names) >= 30


@pytest.fixture
def synth_cli(monkeypatch):
    """`cathtrack.cli.main` with only the synth verb registered (other verbs load their own deps)."""
    monkeypatch.setattr(cli, "VERBS", {"synth": "synth"})
    return cli.main


def test_cli_round_trip_and_worker_independence(tmp_path, synth_cli):
    args = ["synth", "--n", "5", "--sequences", "2", "--frames", "3", "--size", "64", "--seed", "4"]
    assert synth_cli([*args, "--out", str(tmp_path / "one"), "--workers", "1"]) == 0
    assert synth_cli([*args, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    comparison = filecmp.dircmp(tmp_path / "one", tmp_path / "two")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    images = filecmp.cmpfiles(tmp_path / "one" / "images", tmp_path / "two" / "images",
                              sorted(p.name for p in (tmp_path / "one" / "images").iterdir()), shallow=False)  # fmt: skip
    assert len(images[0]) == 11 and not images[1] and not images[2]
    reader = CocoReader(tmp_path / "one")
    assert len(reader) == 11
    assert reader.sequences == [[5, 6, 7], [8, 9, 10]]
    assert (
        json.loads((tmp_path / "one" / "sequences.json").read_text())["sequences"][0]["fps"] == 15.0
    )
    assert reader[0].name == "frame_000000" and reader[0].image.shape == (64, 64)
    # --overwrite replaces the dataset.
    assert (
        synth_cli(
            [
                "synth",
                "--n",
                "2",
                "--size",
                "64",
                "--out",
                str(tmp_path / "one"),
                "--overwrite",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert (
        len(CocoReader(tmp_path / "one")) == 2
        and not (tmp_path / "one" / "sequences.json").exists()
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n", "-1"], "--n must be >= 0"),
        (["--preset", "nope"], "unknown preset"),
        (["--backgrounds", "/nonexistent/folder"], "is not a folder"),
        (["--frames", "0"], "--frames must be >= 1"),
    ],
)
def test_cli_errors(tmp_path, synth_cli, capsys, extra, message):
    assert synth_cli(["synth", "--out", str(tmp_path / "d"), *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


def test_cli_refuses_a_non_empty_out_dir(tmp_path, synth_cli, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert synth_cli(["synth", "--out", str(tmp_path), "--n", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_preview(tmp_path, synth_cli):
    import cv2

    path = tmp_path / "preview.png"
    assert synth_cli(["synth", "--preview", str(path), "--size", "64"]) == 0
    grid = cv2.imread(str(path))
    assert grid.shape == (len(PRESETS) * 64, 6 * 64, 3)


def test_cli_preview_beside_reference_images(tmp_path, synth_cli, angiogram_dir):
    import cv2

    path = tmp_path / "real.png"
    reference = angiogram_dir / "training"
    args = ["synth", "--preview", str(path), "--size", "64", "--preset", "real"]
    assert synth_cli([*args, "--reference", str(reference)]) == 0
    grid = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert grid.shape == (3 * 64, 3 * 64)  # two rows of synthetic frames, one of real images
