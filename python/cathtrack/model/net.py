"""CathNet: the paper's multi-task encoder-decoder (section 2.1).

::

    image (B,1,H,W) -> backbone -> strides 4, 8, 16
    stride 16 -> 3x3 conv projection to 512 channels (linear: no BN, no ReLU) -> CBAM attention
              -> decoder stage (upsample x2, + skip from stride 8) -> decoder stage (+ stride 4)
    stride 4 features U -> segmentation head -> bilinear x4 -> (B,1,H,W) logits
                        -> centre head -> sigmoid -> (B,1,H/4,W/4) probabilities
                        -> size head -> (B,2,H/4,W/4) electrode box (w, h) in input pixels

Heatmap cell u covers input pixels [4u - 0.5, 4u + 3.5): :mod:`cathtrack.coordinates` holds
the stride and the mapping that the targets, the pipeline and the native engine share.

Each decoder stage projects the coarse map with a 1x1 conv + BN (at the coarse resolution, where
it is cheapest), upsamples it bilinearly, adds the 1x1 conv + BN projection of the skip feature
(an FPN-style lateral) and fuses with a 3x3 conv + BN + ReLU. Each head is two 3x3 convs of 64
channels with ReLU and a final 1x1 conv (the paper's section 3.1), without BN as in CenterNet.

Outputs are a plain tuple so that ``torch.export`` and ``torch.jit.script`` both accept the
module. The centre heatmap leaves the network as probabilities (the post-processing's log-parabola
sub-pixel fit and its score threshold work on probabilities; the focal loss clamps them away from
0 and 1 as CenterNet does); the segmentation leaves as logits, so training uses the numerically
stable BCE-with-logits and the runtime applies the sigmoid when it builds ``Result.mask``.

Input size: H and W must be multiples of 32 (the design's contract; the maps at stride 16 then
have even sizes). The check is a plain Python ``if`` on the input shape: in eager mode and in
TorchScript it raises a ValueError naming the size; under ``torch.export`` with static shapes the
shape is a Python int at trace time, so the check runs once during export and leaves no node (and
no graph break) in the exported graph, whose own input-shape guard then rejects other sizes.
(Exporting with dynamic H/W needs dims declared as multiples of 32, e.g. ``32 * Dim("h32")``.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cathtrack.coordinates import OUTPUT_STRIDE
from cathtrack.model.attention import ChannelSpatialAttention
from cathtrack.model.backbones import build_backbone, initialize_weights
from cathtrack.model.config import ModelConfig

INPUT_MULTIPLE = 32  # H and W must be multiples of this
CENTER_PRIOR = 0.1  # CenterNet's initial heatmap probability: bias = -log((1 - p) / p) = -2.19


class DecoderStage(nn.Module):
    """Upsample x2 and merge one skip connection.

    Shape:
        coarse (B, C_in, h, w), skip (B, C_skip, 2h, 2w) -> (B, C_out, 2h, 2w)
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.lateral = nn.Sequential(
            nn.Conv2d(skip_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, coarse: Tensor, skip: Tensor) -> Tensor:
        upsampled = F.interpolate(
            self.reduce(coarse), size=skip.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.fuse(upsampled + self.lateral(skip))


class Head(nn.Module):
    """Two 3x3 conv + ReLU layers and a 1x1 output conv.

    Shape:
        (B, C_in, h, w) -> (B, out_channels, h, w)
    """

    def __init__(self, in_channels: int, channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x))


class CathNet(nn.Module):
    """Multi-task network: catheter segmentation + electrode centre heatmap + electrode size.

    Args:
        config: architecture (:class:`ModelConfig`); the default is the paper's ResNet34 model.

    Shape:
        input: (B, in_channels, H, W) float32, H and W multiples of 32 (images in [0, 1]).
        output: tuple of
            - segmentation logits (B, 1, H, W) (apply a sigmoid for the catheter probability),
            - centre heatmap (B, 1, H/4, W/4) probabilities in (0, 1),
            - size (B, 2, H/4, W/4) electrode box width, height in input pixels (read at a peak).

    Raises:
        ValueError: input that is not 4-D with ``in_channels`` channels and H, W multiples of 32.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ModelConfig()
        cfg = self.config
        self.in_channels = cfg.in_channels
        self.input_multiple = INPUT_MULTIPLE  # an attribute: TorchScript cannot read int globals
        # heatmap and size maps come out at this stride (cathtrack.coordinates maps their cells)
        self.output_stride = OUTPUT_STRIDE
        self.backbone = build_backbone(cfg.backbone, cfg.in_channels, cfg.width)
        stride4_channels, stride8_channels, stride16_channels = self.backbone.channels
        self.projection = nn.Conv2d(stride16_channels, cfg.projection_channels, 3, padding=1)
        self.attention = ChannelSpatialAttention(cfg.projection_channels, cfg.attention_reduction)
        decoder8, decoder4 = cfg.decoder_channels
        self.decoder_stride8 = DecoderStage(cfg.projection_channels, stride8_channels, decoder8)
        self.decoder_stride4 = DecoderStage(decoder8, stride4_channels, decoder4)
        self.segmentation_head = Head(decoder4, cfg.head_channels, 1)
        self.center_head = Head(decoder4, cfg.head_channels, 1)
        self.size_head = Head(decoder4, cfg.head_channels, 2)
        self._initialize()

    def _initialize(self) -> None:
        initialize_weights(self)
        # The 1x1 output convs start near zero so that every head starts at its bias: the centre
        # heatmap at CenterNet's prior probability 0.1, the mask at 0.5, the sizes at 0. (Kaiming
        # fan-out on a 1-channel output would give a saturated random heatmap instead.)
        for head in (self.segmentation_head, self.center_head, self.size_head):
            nn.init.normal_(head.out.weight, std=1e-3)
        nn.init.constant_(self.center_head.out.bias, -math.log((1 - CENTER_PRIOR) / CENTER_PRIOR))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weights of the last layer shared by all heads (GradNorm measures gradients there)."""
        return [self.decoder_stride4.fuse[0].weight]

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if image.dim() != 4 or image.shape[1] != self.in_channels:
            raise ValueError(
                f"CathNet expects input (B, {self.in_channels}, H, W), got {list(image.shape)}"
            )
        height, width = image.shape[2], image.shape[3]
        if height % self.input_multiple != 0 or width % self.input_multiple != 0:
            raise ValueError(
                f"CathNet input height and width must be multiples of {self.input_multiple}, "
                f"got {height}x{width}"
            )
        stride4, stride8, stride16 = self.backbone(image)
        embedding = self.attention(self.projection(stride16))
        features = self.decoder_stride4(self.decoder_stride8(embedding, stride8), stride4)
        segmentation = F.interpolate(
            self.segmentation_head(features),
            size=[height, width],
            mode="bilinear",
            align_corners=False,
        )
        heatmap = torch.sigmoid(self.center_head(features))
        size = self.size_head(features)
        return segmentation, heatmap, size


def build_model(config: ModelConfig | None = None) -> CathNet:
    """A freshly initialised :class:`CathNet` for ``config`` (default: the paper's ResNet34)."""
    return CathNet(config)
