"""The network: backbones truncated at stride 16, CBAM attention, decoder, three heads.

``summary(config, size)`` reports parameters and GFLOPs; ``python -m cathtrack.model.profiling``
prints them for every backbone.
"""

from __future__ import annotations

from cathtrack.model.config import ModelConfig
from cathtrack.model.net import CathNet, build_model
from cathtrack.model.profiling import summary

__all__ = ["CathNet", "ModelConfig", "build_model", "summary"]
