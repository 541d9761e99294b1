"""The architecture hyper-parameters of :class:`cathtrack.model.CathNet`, JSON round-trippable.

A checkpoint stores this dict beside the safetensors weights, so a model can be rebuilt without
pickles; exported model files carry it in their metadata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cathtrack.model.backbones import BACKBONES


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of CathNet.

    Attributes:
        backbone: one of :data:`cathtrack.model.backbones.BACKBONES`.
        width: channel multiplier of the backbone (1.0 = the paper's network; < 1 for a lite model).
        in_channels: image channels (1: X-ray).
        projection_channels: width of the latent embedding after the 3x3 projection (paper: 512).
        decoder_channels: widths of the decoder at strides 8 and 4.
        head_channels: width of the two 3x3 convs of each head (paper: 64).
        attention_reduction: hidden width of the channel-attention MLP is
            projection_channels / attention_reduction.
    """

    backbone: str = "resnet34"
    width: float = 1.0
    in_channels: int = 1
    projection_channels: int = 512
    decoder_channels: tuple[int, int] = (128, 64)
    head_channels: int = 64
    attention_reduction: int = 16

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}"
            )
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        # JSON gives lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "decoder_channels", tuple(int(c) for c in self.decoder_channels))
        if len(self.decoder_channels) != 2:
            raise ValueError(
                f"decoder_channels needs 2 widths (strides 8, 4), got {self.decoder_channels}"
            )
        counts = (
            self.in_channels,
            self.projection_channels,
            self.head_channels,
            self.attention_reduction,
            *self.decoder_channels,
        )
        if min(counts) <= 0:
            raise ValueError(f"channel counts must be positive, got {self}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""
        values = dataclasses.asdict(self)
        values["decoder_channels"] = list(self.decoder_channels)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a config from another version)."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {', '.join(unknown)}")
        return cls(**values)
