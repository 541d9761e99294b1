"""The architecture hyper-parameters of :class:`cathtrack.model.CathNet`, JSON round-trippable.

A checkpoint stores this dict beside the safetensors weights, so a model can be rebuilt without
pickles; exported model files carry it in their metadata.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cathtrack.coordinates import HEATMAP_STRIDES
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
        head_channels: width of the two 3x3 convs of each head (paper: 64); at heatmap stride 2
            or 1 it is the segmentation head's only (the centre and size heads there are as wide
            as the finest decoder stage).
        attention_reduction: hidden width of the channel-attention MLP is
            projection_channels / attention_reduction.
        heatmap_stride: stride of the centre heatmap and size maps, one of
            :data:`cathtrack.coordinates.HEATMAP_STRIDES`: 4 (the paper's, the default), 2 or 1.
            Model files written before this key existed hold stride-4 models and load as 4.
        fine_channels: widths of the narrow decoder stages at strides 2 and 1 (heatmap stride 2
            uses the first, stride 1 both, stride 4 none); the centre and size heads on a fine
            stage are as wide as it. Default (32, 8): the ResNet34 model at stride 2 or 1 runs
            ~1.05x the paper's forward time at 256² on the CPU; 16 channels at full resolution
            would cost 1.2x (docs/training.md, "Heatmap stride").
    """

    backbone: str = "resnet34"
    width: float = 1.0
    in_channels: int = 1
    projection_channels: int = 512
    decoder_channels: tuple[int, int] = (128, 64)
    head_channels: int = 64
    attention_reduction: int = 16
    heatmap_stride: int = 4
    fine_channels: tuple[int, int] = (32, 8)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}"
            )
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width}")
        # JSON gives lists; keep the dataclass hashable and comparable.
        object.__setattr__(self, "decoder_channels", tuple(int(c) for c in self.decoder_channels))
        object.__setattr__(self, "fine_channels", tuple(int(c) for c in self.fine_channels))
        if len(self.decoder_channels) != 2:
            raise ValueError(
                f"decoder_channels needs 2 widths (strides 8, 4), got {self.decoder_channels}"
            )
        if len(self.fine_channels) != 2:
            raise ValueError(
                f"fine_channels needs 2 widths (strides 2, 1), got {self.fine_channels}"
            )
        stride = self.heatmap_stride
        if isinstance(stride, bool) or not isinstance(stride, int) or stride not in HEATMAP_STRIDES:
            raise ValueError(
                f"heatmap_stride must be one of {', '.join(map(str, HEATMAP_STRIDES))}, "
                f"got {self.heatmap_stride!r}"
            )
        counts = (
            self.in_channels,
            self.projection_channels,
            self.head_channels,
            self.attention_reduction,
            *self.decoder_channels,
            *self.fine_channels,
        )
        if min(counts) <= 0:
            raise ValueError(f"channel counts must be positive, got {self}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (tuples become lists)."""
        values = dataclasses.asdict(self)
        values["decoder_channels"] = list(self.decoder_channels)
        values["fine_channels"] = list(self.fine_channels)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a config from another version).

        Keys added since a file was written take their defaults: a dict without
        ``heatmap_stride`` (every file from before strides 2 and 1) is a stride-4 model.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys: {', '.join(unknown)}")
        return cls(**values)
