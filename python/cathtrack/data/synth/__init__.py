"""Synthetic electrophysiology fluoroscopy with exact ground truth (docs/design.md section 8).

    from cathtrack.data.synth import preset, render, render_sequence
    sample = render(preset("clinical", size=256), seed=7)

See docs/synthetic.md for the model and its parameters.
"""

from .config import PRESETS, SynthConfig, preset
from .render import render, render_sequence

__all__ = ["PRESETS", "SynthConfig", "preset", "render", "render_sequence"]
