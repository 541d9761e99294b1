"""Decoding settings have one definition (cathtrack.settings.DecodeSettings) that every user of
them takes: the tracker, the reference pipeline, the CLIs and the native engine's check."""

from __future__ import annotations

import argparse
import dataclasses
import math
import random

import pytest
from runtime_support import PARITY_SETTINGS, sample_frames, tiny_checkpoint, tiny_export

import cathtrack
from cathtrack import _native, catheters
from cathtrack.cli import eval as eval_cli
from cathtrack.cli import predict as predict_cli
from cathtrack.settings import EVAL_SCORE_THRESHOLD, DecodeSettings

FIELDS = (
    "score_threshold",
    "max_peaks",
    "mask_threshold",
    "min_centerline_length",
    "max_assign_distance",
    "spacing_tolerance",
    "tip_lookback",
)


def test_every_field_has_a_default_and_a_documented_reason():
    settings = DecodeSettings()
    assert DecodeSettings.names() == FIELDS
    assert settings.score_threshold == 0.3 and settings.max_peaks == 128
    for name in FIELDS:
        assert f"{name}:" in DecodeSettings.__doc__  # each default says why it is what it is
    assert EVAL_SCORE_THRESHOLD < settings.score_threshold


def test_replace_checks_names_and_types_and_keeps_the_original():
    settings = DecodeSettings()
    changed = settings.replace(score_threshold=1, max_peaks=64.0)
    assert changed.score_threshold == 1.0 and isinstance(changed.score_threshold, float)
    assert changed.max_peaks == 64 and isinstance(changed.max_peaks, int)
    assert settings == DecodeSettings()  # frozen: the original is untouched
    with pytest.raises(ValueError, match="unknown setting.*threshold.*known: score_threshold"):
        settings.replace(threshold=0.2)
    with pytest.raises(TypeError, match="max_peaks must be an integer"):
        settings.replace(max_peaks=2.5)
    with pytest.raises(TypeError, match="score_threshold must be a number"):
        settings.replace(score_threshold="0.3")
    with pytest.raises(TypeError, match="must be a number"):
        settings.replace(mask_threshold=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.score_threshold = 0.5  # type: ignore[misc]


def test_the_engine_check_refuses_bad_values_with_the_name():
    assert DecodeSettings().check() == DecodeSettings()
    with pytest.raises(ValueError, match="score_threshold"):
        DecodeSettings(score_threshold=-0.1).check()
    with pytest.raises(ValueError, match="min_centerline_length"):
        DecodeSettings(min_centerline_length=math.inf).check()
    with pytest.raises(ValueError, match="spacing_tolerance"):
        DecodeSettings(spacing_tolerance=0.0).check()
    with pytest.raises(ValueError, match="max_peaks"):
        DecodeSettings(max_peaks=-1).check()


def python_refusal(values: dict) -> str | None:
    """The message the dataclass refuses these values with; None when it takes them."""
    try:
        DecodeSettings(**values)
    except ValueError as error:
        return str(error)
    return None


def native_refusal(values: dict) -> str | None:
    """The message the native engine's check refuses these values with; None when it takes them."""
    try:
        _native.check_decode_settings(_native.DecodeSettings(**values))
    except ValueError as error:
        return str(error)
    return None


NAN, INF = math.nan, math.inf
# Values a float32 holds exactly as Python prints them, so both messages print the same digits.
FLOAT_CASES = [-INF, -1.0, -1e-45, -0.0, 0.0, 1e-45, 1e-05, 0.15, 0.5, 0.999, 1.0, 1.5, 2, 100000.0]
FLOAT_CASES += [3.4028235e38, INF, NAN]
INT_CASES = [-(2**31), -1, 0, 1, 128, 2**31 - 1]


@pytest.mark.parametrize("name", FIELDS)
def test_the_python_and_the_native_checks_refuse_the_same_values_with_the_same_words(name):
    cases = INT_CASES if name == "max_peaks" else FLOAT_CASES
    refused = 0
    for value in cases:
        python, native = python_refusal({name: value}), native_refusal({name: value})
        assert python == native, (name, value)
        if python is not None:
            refused += 1
            shown = value if name == "max_peaks" else float(value)
            assert python.startswith(f"{name} must be ") and python.endswith(f", got {shown!r}")
    assert 0 < refused < len(cases)  # each field has values on both sides of its range


def test_both_checks_name_the_same_field_first():
    rng = random.Random(17)
    bad = {
        "score_threshold": [2.0, -1.0, NAN],
        "max_peaks": [-1],
        "mask_threshold": [1.0, INF],
        "min_centerline_length": [-3.0],
        "max_assign_distance": [NAN],
        "spacing_tolerance": [0.0],
        "tip_lookback": [-INF],
    }
    for _ in range(200):
        names = rng.sample(FIELDS, rng.randint(1, len(FIELDS)))
        values = {name: rng.choice(bad[name]) for name in names}
        python = python_refusal(values)
        assert python is not None and python == native_refusal(values), values
        first = next(name for name in FIELDS if name in values)
        assert python.startswith(f"{first} must be ")


def test_both_checks_judge_a_value_at_the_float32_the_engine_holds():
    """Values a float32 rounds: both accept or refuse them alike (the messages print the value
    each side holds, so only the rule is compared)."""
    for values in (
        {"score_threshold": 1.00000001},  # 1.0f: accepted
        {"mask_threshold": 0.99999999},  # 1.0f: refused
        {"spacing_tolerance": 1e-50},  # 0.0f: refused
        {"tip_lookback": 1e39},  # inf: refused
        {"max_assign_distance": -1e-50},  # -0.0f: accepted
    ):
        python, native = python_refusal(values), native_refusal(values)
        assert (python is None) == (native is None), values
        if python is not None:
            assert python.split(", got ")[0] == native.split(", got ")[0]


def test_out_of_range_values_are_refused_when_the_settings_are_made():
    with pytest.raises(ValueError) as caught:
        DecodeSettings(score_threshold=2)
    assert (
        str(caught.value)
        == "score_threshold must be <= 1 (a heatmap score is a probability), got 2.0"
    )
    with pytest.raises(ValueError, match=r"mask_threshold must be < 1 .*, got 1.0"):
        DecodeSettings().replace(mask_threshold=1)
    with pytest.raises(ValueError, match="max_peaks must be <= 2147483647, got 2147483648"):
        DecodeSettings(max_peaks=2**31)  # an int the engine could not even hold
    with pytest.raises(TypeError, match="max_peaks must be an integer, got inf"):
        DecodeSettings(max_peaks=math.inf)
    with pytest.raises(ValueError, match="tip_lookback must be finite and >= 0, got inf"):
        DecodeSettings(tip_lookback=10**400)
    assert DecodeSettings(score_threshold=1, mask_threshold=0).check().score_threshold == 1.0


@pytest.mark.parametrize("backend", ["native", "python"])
def test_the_tracker_refuses_a_score_threshold_no_electrode_can_pass(tmp_path_factory, backend):
    model = (
        tiny_export(tmp_path_factory, "ts")
        if backend == "native"
        else tiny_checkpoint(tmp_path_factory)
    )
    tracker = cathtrack.Tracker(model, device="cpu", backend=backend, **PARITY_SETTINGS)
    before = tracker.settings
    for changes in ({"score_threshold": 2}, {"mask_threshold": 1.0}, {"score_threshold": 1.5}):
        with pytest.raises(ValueError, match=f"{next(iter(changes))} must be"):
            tracker.configure(**changes)
        with pytest.raises(ValueError, match=f"{next(iter(changes))} must be"):
            cathtrack.Tracker(model, device="cpu", backend=backend, **changes)
    assert tracker.settings == before
    assert len(tracker(sample_frames()[0]).electrodes) > 0


def test_the_native_struct_takes_the_dataclass_and_round_trips():
    native = DecodeSettings(score_threshold=0.25, max_peaks=7, tip_lookback=3.0).to_native()
    back = {name: getattr(native, name) for name in FIELDS}  # float32 in C++
    wanted = DecodeSettings(score_threshold=0.25, max_peaks=7, tip_lookback=3.0).as_dict()
    assert back == pytest.approx(wanted, rel=1e-7)


def test_the_command_lines_default_to_the_dataclass():
    for module in (eval_cli, predict_cli):
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        action = next(a for a in parser._actions if a.dest == "score_threshold")
        assert action.default == DecodeSettings().score_threshold


def test_every_catheter_type_has_a_colour_and_a_name_for_its_index():
    assert set(catheters.TYPE_COLOURS) == set(catheters.CATHETER_TYPES)
    assert catheters.type_colour("no such type") == catheters.UNKNOWN_COLOUR
    assert catheters.type_name(-1) == catheters.UNKNOWN_TYPE
    assert [catheters.type_name(i) for i in range(len(catheters.CATHETER_TYPES))] == list(
        catheters.CATHETER_TYPES
    )
