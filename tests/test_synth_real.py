"""The `real` preset: hard negatives, catheters without electrodes, the vendor image chain."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cathtrack.catheters import CATALOGUE, CATHETER_TYPES, TYPE_COLOURS, variants_of
from cathtrack.data.coco import CocoReader, write_coco
from cathtrack.data.synth import preset, render, render_sequence
from cathtrack.data.synth.scene import sample_scene
from cathtrack.postprocess import spacing_templates

PLAIN_TYPES = ("guiding_catheter", "diagnostic_catheter", "long_sheath")
# Everything off but one CS catheter, a wide field centred on the heart, no shutters.
BASE = dict(
    device_probability={t: float(t == "cs_decapolar") for t in CATHETER_TYPES},
    ecg_snaps=(0, 0),
    guidewires=(0, 0),
    temperature_probe_probability=0.0,
    field_of_view_mm=(300.0, 300.0),
    table_shift_mm=0.0,
    lao_deg=(-10.0, 10.0),
    cranial_deg=(-5.0, 5.0),
    contrast_mu=(0.2, 0.3),
)


def _digest(samples) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(np.round(s.image * 255).astype(np.uint8).tobytes())
        h.update(s.mask.tobytes())
        h.update(np.round(s.electrodes, 3).astype(np.float32).tobytes())
        h.update(",".join(c.type for c in s.catheters).encode())
    return h.hexdigest()


# Computed before the hard negatives, the catheters without electrodes and the vendor chain
# were added: the older presets must render the same frames for the same seeds.
FROZEN = {
    "easy": "f4bb08f7efab60fe0f4d8e0ba56c8ae9f00a8dd5fdfbdabbeb544a3db7b15e80",
    "clinical": "79236216c5ff1778bdf1f26fbd1e5eaa027c5301787425f624ee82885711460d",
    "hard": "b495ba489c0e4bb10e46d0e65b4c2d536441c7ae311bb952cc38f5d2192e48d1",
}
FROZEN_CLINICAL_SEQUENCE = "7061982115f4bc6b5653bc2ebc594bf6f7a727adaa9d23729efb97f55d316dbe"


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_older_presets_render_unchanged(name):
    assert _digest([render(preset(name, size=128), seed) for seed in range(3)]) == FROZEN[name]


def test_clinical_sequence_unchanged():
    frames = render_sequence(preset("clinical", size=128), 11, 3)
    assert _digest(frames) == FROZEN_CLINICAL_SEQUENCE


def test_real_preset_is_deterministic():
    config = preset("real", size=96)
    for seed in (0, 1, 2):
        a, b = render(config, seed), render(config, seed)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.electrodes, b.electrodes)
        assert [c.type for c in a.catheters] == [c.type for c in b.catheters]
        assert a.image.dtype == np.float32 and 0.0 <= a.image.min() and a.image.max() <= 1.0
    assert not np.array_equal(render(config, 0).image, render(config, 1).image)
    np.testing.assert_array_equal(render_sequence(config, 2, 2)[0].image, render(config, 2).image)


def _object_points(scene, field: str) -> np.ndarray:
    """Patient-mm points of the hard negative that ``field`` switches on."""
    kinds = {
        "coronary_wire_probability": "coronary_guidewire",
        "valve_ring_probability": "valve_ring",
        "surgical_clips": "surgical_clip",
        "tee_probe_probability": "tee_probe",
    }
    if field in ("coronary_probability", "venogram_probability"):
        return np.concatenate([v.points_mm for v in scene.vessels])
    if field == "pacemaker_probability":
        return np.concatenate([p.outline_mm for p in scene.plates])
    return np.concatenate([t.points_mm for t in scene.tubes if t.kind == kinds[field]])


@pytest.mark.parametrize(
    ("field", "on"),
    [
        ("coronary_probability", 1.0),
        ("venogram_probability", 1.0),
        ("coronary_wire_probability", 1.0),
        ("pacemaker_probability", 1.0),
        ("valve_ring_probability", 1.0),
        ("surgical_clips", (4, 4)),
        ("tee_probe_probability", 1.0),
    ],
)
def test_hard_negatives_change_the_image_never_the_labels(field, on):
    off_config = preset("easy", size=128, **BASE)
    on_config = preset("easy", size=128, **{**BASE, field: on})
    for seed in range(2):
        off, with_it = render(off_config, seed), render(on_config, seed)
        np.testing.assert_array_equal(with_it.mask, off.mask)
        np.testing.assert_array_equal(with_it.electrodes, off.electrodes)
        np.testing.assert_array_equal(with_it.electrode_catheter, off.electrode_catheter)
        targets = [(c.type, c.centerline.tobytes()) for c in with_it.catheters if c.target]
        assert targets == [(c.type, c.centerline.tobytes()) for c in off.catheters if c.target]
        # The object is there, and the image changed where it is.
        scene = sample_scene(on_config, seed)
        points = scene.motion.displace(_object_points(scene, field), 0.0, 1.0, 1.0)
        uv, _ = scene.view.project(points)
        near = np.zeros((128, 128), bool)
        inside = np.all((uv >= 0) & (uv < 127.5), axis=1)
        for x, y in np.round(uv[inside]).astype(int):
            near[max(y - 4, 0) : y + 5, max(x - 4, 0) : x + 5] = True
        # The noise is the same; a dense object may only move the automatic window a little
        # everywhere else.
        difference = np.abs(with_it.image - off.image)
        strongest = difference[near].max()
        assert strongest > 0.05, field
        assert strongest > 2 * np.percentile(difference[~near], 99.9), field


def test_overlay_and_export_change_the_image_never_the_labels():
    off_config = preset("easy", size=128, **BASE)
    on_config = preset(
        "easy", size=128, **BASE, overlay_probability=1.0, jpeg_probability=1.0,
        invert_probability=1.0,
    )  # fmt: skip
    off, on = render(off_config, 3), render(on_config, 3)
    np.testing.assert_array_equal(on.mask, off.mask)
    np.testing.assert_array_equal(on.electrodes, off.electrodes)
    assert sample_scene(on_config, 3).export.overlay is not None
    # Inverted: what was dark is bright.
    assert np.corrcoef(on.image.ravel(), off.image.ravel())[0, 1] < -0.8
    levels = np.unique(np.round(on.image * 255, 3))
    assert np.allclose(levels, np.round(levels))  # 8-bit


def test_catalogue_types_without_electrodes():
    for catheter_type in PLAIN_TYPES:
        assert catheter_type in TYPE_COLOURS
        assert all(v.n_electrodes == 0 for v in variants_of(catheter_type))
        assert all(v.electrode_centres_mm == () for v in variants_of(catheter_type))
    # Appended: the older types keep their indices.
    assert CATHETER_TYPES[:5] == (
        "cs_decapolar", "quadripolar", "ablation", "circular_mapping", "pacing_lead",
    )  # fmt: skip
    templates = spacing_templates()
    assert len(templates) == sum(v.n_electrodes >= 2 for v in CATALOGUE)
    assert {CATHETER_TYPES[i] for i, _ in templates}.isdisjoint(PLAIN_TYPES)


@pytest.mark.parametrize("catheter_type", PLAIN_TYPES)
def test_catheters_without_electrodes_are_in_the_mask(catheter_type):
    probability = {t: float(t == catheter_type) for t in CATHETER_TYPES}
    config = preset("easy", size=256, **{**BASE, "device_probability": probability})
    for seed in range(3):
        sample = render(config, seed)
        targets = [c for c in sample.catheters if c.target]
        assert [c.type for c in targets] == [catheter_type]
        assert len(sample.electrodes) == 0 and len(sample.boxes) == 0
        ix, iy = np.round(targets[0].centerline).astype(int).T
        assert sample.mask[iy, ix].mean() > 0.97 and sample.mask.sum() > 50


def test_sequences_keep_their_settings_and_the_filter_lags():
    config = preset("real", size=96, recursive_filter_probability=1.0, overlay_probability=1.0)
    frames = render_sequence(config, 4, 4)
    scene = sample_scene(config, 4)
    assert scene.imaging.recursive_weight < 1.0 and scene.export.overlay is not None
    assert len({f.pixel_spacing_mm for f in frames}) == 1
    for a, b in zip(frames, frames[1:], strict=False):
        assert not np.array_equal(a.image, b.image)


def test_coco_round_trip_of_real_frames(tmp_path):
    probability = {t: 1.0 for t in ("cs_decapolar", "guiding_catheter", "long_sheath")}
    config = preset("real", size=128, device_probability=probability, coronary_probability=1.0)
    samples = [render(config, seed) for seed in range(3)]
    reader = CocoReader(write_coco(tmp_path, samples, bits=8))
    for original, read in zip(samples, (reader[k] for k in range(len(reader))), strict=True):
        np.testing.assert_array_equal(read.mask, original.mask)
        np.testing.assert_allclose(read.image, original.image, atol=0.5 / 255 + 1e-6)
        np.testing.assert_allclose(read.electrodes, original.electrodes, atol=1e-3)
        targets = [c.type for c in original.catheters if c.target]
        assert [c.type for c in read.catheters] == targets


def test_real_backgrounds_add_no_labels(angiogram_dir):
    nothing = {t: 0.0 for t in CATHETER_TYPES}
    config = preset(
        "real", size=96, background_dir=str(angiogram_dir / "training"),
        background_probability=1.0, device_probability=nothing,
    )  # fmt: skip
    for seed in range(3):
        sample = render(config, seed)
        assert sample.mask.sum() == 0 and len(sample.electrodes) == 0
        assert not any(c.target for c in sample.catheters)
