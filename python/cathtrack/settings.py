"""The decoding settings: how network outputs become electrodes, a mask and catheters.

:class:`DecodeSettings` is the one definition of these settings in Python and holds their
defaults. The native engine has the same fields in its C++ struct (``DecodeSettings`` in
``src/cpp/runtime/decode_settings.hpp``, bound as ``cathtrack._native.DecodeSettings``), and a
test checks that its defaults equal these. ``Tracker.settings`` is a :class:`DecodeSettings`,
``Tracker.configure`` replaces fields of it, and the reference pipeline decodes with it.

Lengths are in model-input pixels (the model's S x S grid), so they do not depend on the size of
the frame.

Out-of-range values are refused when the settings are made (``DecodeSettings(...)``,
:meth:`DecodeSettings.replace`, so also ``Tracker(..., score_threshold=...)`` and
``Tracker.configure``), with a ``ValueError`` naming the field and the value. The native engine's
check (``check_decode_settings`` in ``src/cpp/runtime/decode_settings.cpp``) refuses the same
values with the same messages; tests/test_settings.py holds the two to that.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Scores that enter the electrode AP: low, so the precision-recall curve reaches far into recall
# (COCO AP integrates over every score). Validation during training and `cathtrack eval` use it.
EVAL_SCORE_THRESHOLD = 0.05

_INT32_MAX = 2**31 - 1


def _finite_non_negative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


# The range of each field, as (rule, test) pairs checked in order; the first field (in declaration
# order) whose value fails a test is refused with "<field> must be <rule>, got <value>". The same
# rules, in the same order and words, as check_decode_settings() in
# src/cpp/runtime/decode_settings.cpp. Float fields are tested at float32, the precision the engine
# holds them in, so both accept and refuse the same values (1e-50 is a spacing_tolerance of 0 there).
_RULES: dict[str, tuple[tuple[str, Callable[[float], bool]], ...]] = {
    "score_threshold": (
        ("finite and >= 0", _finite_non_negative),
        # A heatmap score is a sigmoid: above 1, no electrode could pass.
        ("<= 1 (a heatmap score is a probability)", lambda v: v <= 1),
    ),
    "max_peaks": ((">= 0", lambda v: v >= 0), (f"<= {_INT32_MAX}", lambda v: v <= _INT32_MAX)),
    "mask_threshold": (
        ("finite and >= 0", _finite_non_negative),
        # A pixel is catheter where its probability is strictly above the threshold.
        ("< 1 (a pixel is catheter where its probability is above it)", lambda v: v < 1),
    ),
    "min_centerline_length": (("finite and >= 0", _finite_non_negative),),
    "max_assign_distance": (("finite and >= 0", _finite_non_negative),),
    "spacing_tolerance": (("finite and > 0", lambda v: math.isfinite(v) and v > 0),),
    "tip_lookback": (("finite and >= 0", _finite_non_negative),),
}


def _as_float32(value: float) -> float:
    """The float32 nearest to ``value`` (+-inf beyond float32's range), as the engine holds it."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


@dataclass(frozen=True)
class DecodeSettings:
    """Thresholds and lengths of the decoding steps.

    Pixel sizes below are for the 256 x 256 input of the shipped models and the synthetic
    engine's 190-250 mm field of view: 0.74-0.98 mm per model pixel.

    Attributes:
        score_threshold: minimum heatmap probability of an electrode. 0.3: CenterNet's own
            display threshold for heatmaps trained with its focal loss and Gaussian targets,
            which cathtrack's are; the model card reports precision and recall at it, and
            ``cathtrack eval --score-threshold`` measures any other.
        max_peaks: at most this many electrodes per frame. 128: three times the 40 electrodes
            of one catheter of every catalogue type together, so no real scene is cut, while a
            noisy heatmap still gives a bounded amount of work.
        mask_threshold: probability above which a pixel is catheter. 0.5: the decision
            boundary of the per-pixel cross-entropy the segmentation head is trained with.
        min_centerline_length: shortest catheter centerline kept, model-input pixels. 10 (7-10
            mm): shorter skeleton pieces are spurs of the thinning and fragments at crossings,
            while the visible part of a catheter is several centimetres long.
        max_assign_distance: largest electrode-to-centerline distance, model-input pixels. 4:
            an electrode sits on its catheter's centerline; 4 px covers half the widest shaft (8
            Fr = 2.7 mm, under 4 px) plus a pixel of localisation error.
        spacing_tolerance: relative spacing error of the type match at which a template's
            shape score falls to exp(-1/2) (:func:`cathtrack.postprocess.classify_catheter`).
            0.15: the closest spacing patterns of the catalogue differ by about 20 % (a 2-5-2
            quadripolar and an ablation catheter), so a tolerance below that separates them,
            while 0.15 px of localisation noise stays inside it (measured: at least 90 % of
            every variant correct, docs/postprocess.md).
        tip_lookback: ``tip_direction`` is measured over this many model-input pixels of arc
            behind the tip. 10 (7-10 mm): the skeleton's pixel steps average out over it, and
            it is short enough to follow the bend of a deflected tip.
    """

    score_threshold: float = 0.3
    max_peaks: int = 128
    mask_threshold: float = 0.5
    min_centerline_length: float = 10.0
    max_assign_distance: float = 4.0
    spacing_tolerance: float = 0.15
    tip_lookback: float = 10.0

    def __post_init__(self) -> None:
        # Coerce, so that settings read from YAML, ROS parameters or the command line compare
        # and print the same as the defaults (an int 1 given for a float threshold, ...).
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            kind = int if item.type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{item.name} must be a number, got {value!r}")
            if kind is int and not (isinstance(value, int) or value.is_integer()):
                raise TypeError(f"{item.name} must be an integer, got {value!r}")
            if kind is float and isinstance(value, int) and abs(value) > 2**1023:
                value = math.inf if value > 0 else -math.inf  # beyond any float: refused below
            object.__setattr__(self, item.name, kind(value))
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Raises ValueError naming the first field out of its range (see _RULES)."""
        for name, rules in _RULES.items():
            value = getattr(self, name)
            held = value if isinstance(value, int) else _as_float32(value)
            for rule, test in rules:
                if not test(held):
                    raise ValueError(f"{name} must be {rule}, got {value!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(item.name for item in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> DecodeSettings:
        """A copy with some fields changed.

        Raises:
            ValueError: an unknown field name (the message lists the known ones), or a value out
                of its field's range (the message names both).
            TypeError: a value that is not a number.
        """
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(self.names())}"
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for JSON, ROS parameters and logs)."""
        return dataclasses.asdict(self)

    def to_native(self) -> Any:
        """The same settings as the native engine's ``cathtrack._native.DecodeSettings``."""
        from cathtrack import _native

        return _native.DecodeSettings(**self.as_dict())

    def check(self) -> DecodeSettings:
        """These settings, checked by both checks: this class's ranges (the ones every instance
        already passed when it was made) and the native engine's, which refuses the same values.

        Ranges: thresholds and lengths finite and >= 0; score_threshold <= 1 and
        mask_threshold < 1 (probabilities: beyond that nothing passes); max_peaks in
        [0, 2^31 - 1]; spacing_tolerance finite and > 0.

        Raises:
            ValueError: "<field> must be <rule>, got <value>" for the first bad field.
        """
        from cathtrack import _native

        self._check_ranges()
        _native.check_decode_settings(self.to_native())
        return self
