"""The decoding settings: how network outputs become electrodes, a mask and catheters.

:class:`DecodeSettings` is the one definition of these settings in Python and holds their
defaults. The native engine has the same fields in its C++ struct (``DecodeSettings`` in
``src/cpp/runtime/decode_settings.hpp``, bound as ``cathtrack._native.DecodeSettings``), and a
test checks that its defaults equal these. ``Tracker.settings`` is a :class:`DecodeSettings`,
``Tracker.configure`` replaces fields of it, and the reference pipeline decodes with it.

Lengths are in model-input pixels (the model's S x S grid), so they do not depend on the size of
the frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Scores that enter the electrode AP: low, so the precision-recall curve reaches far into recall
# (COCO AP integrates over every score). Validation during training and `cathtrack eval` use it.
EVAL_SCORE_THRESHOLD = 0.05


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
            if kind is int and float(value) != int(value):
                raise TypeError(f"{item.name} must be an integer, got {value!r}")
            object.__setattr__(self, item.name, kind(value))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(item.name for item in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> DecodeSettings:
        """A copy with some fields changed.

        Raises:
            ValueError: an unknown field name (the message lists the known ones).
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
        """These settings when the native engine accepts them (one check for both backends).

        Raises:
            ValueError: the engine's refusal, naming the bad value (negative or non-finite
                thresholds and lengths, negative max_peaks, a spacing_tolerance not > 0).
        """
        from cathtrack import _native

        _native.check_decode_settings(self.to_native())
        return self
