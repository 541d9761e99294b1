"""Decoding settings have one definition (cathtrack.settings.DecodeSettings) that every user of
them takes: the tracker, the reference pipeline, the CLIs and the native engine's check."""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest

from cathtrack import catheters
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
