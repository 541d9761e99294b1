"""CathNet: the paper's multi-task encoder-decoder (section 2.1), with an optional finer heatmap.

::

    image (B,1,H,W) -> backbone -> strides 2, 4, 8, 16
    stride 16 -> 3x3 conv projection to 512 channels (linear: no BN, no ReLU) -> CBAM attention
              -> decoder stage (upsample x2, + skip from stride 8) -> decoder stage (+ stride 4)
    stride 4 features U -> segmentation head -> bilinear x4 -> (B,1,H,W) logits
    heatmap stride s = 4 (the paper's): the centre and size heads read U
    s = 2: U -> narrow decoder stage (+ the backbone's stride-2 feature) -> F2
    s = 1: F2 -> narrow decoder stage (+ the image, its lateral a 3x3 conv + BN) -> F1
    finest features -> centre head -> sigmoid -> (B,1,H/s,W/s) probabilities
                    -> size head -> (B,2,H/s,W/s) electrode box (w, h) in input pixels

Heatmap cell u covers input pixels [s u - 0.5, s u + s - 0.5): :mod:`cathtrack.coordinates` holds
the mapping that the targets, the pipeline and the native engine share. The paper's stride 4
puts electrodes 3-4 px apart (at 256²) into one cell or adjacent ones, so NMS keeps one of them:
a perfect network finds about 30 % of the electrodes at stride 4, 70 % at stride 2 and 93 % at
stride 1 (docs/training.md: "Heatmap targets at any stride" for that ceiling, "Heatmap stride"
for these stages and their cost).

Each decoder stage projects the coarse map with a 1x1 conv + BN (at the coarse resolution, where
it is cheapest), upsamples it bilinearly, adds the 1x1 conv + BN projection of the skip feature
(an FPN-style lateral) and fuses with a 3x3 conv + BN + ReLU. Each head is two 3x3 convs with ReLU
and a final 1x1 conv (the paper's section 3.1), without BN as in CenterNet: 64 channels
(``head_channels``) on the stride-4 features; on the stride-2 and stride-1 features the centre
and size heads are as narrow as their stage (``fine_channels``), which keeps the ResNet34
model's forward time at strides 2 and 1 within ~6 % of the paper's on the CPU (two 64-channel
convs at 256² would cost ~2.4 GFLOP per head).
The segmentation head stays on the stride-4 features at every heatmap stride, and a stride-4
model has exactly the paper's modules (the state-dict keys of files from before strides 2 and 1).

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

from cathtrack.model.attention import ChannelSpatialAttention
from cathtrack.model.backbones import build_backbone, initialize_weights
from cathtrack.model.config import ModelConfig

INPUT_MULTIPLE = 32  # H and W must be multiples of this
CENTER_PRIOR = 0.1  # CenterNet's initial heatmap probability at stride 4: bias = -2.19


def center_prior(stride: int) -> float:
    """Initial heatmap probability of a model whose heatmap has this stride.

    CenterNet's 0.1 at stride 4 (the paper's, bit for bit), scaled by (s / 4)^2 at finer strides
    (0.025 at stride 2, 0.00625 at stride 1) so that a frame starts with the same expected
    probability mass over its cells at every stride. Why: a stride-1 map has 16 times the
    negative cells of a stride-4 one for the same electrodes. At 0.1 their focal-loss gradient
    outweighs the positives' about 5 to 1 in the first steps and drives every weight of the
    centre head's output conv negative (its inputs are ReLU features, never negative); the head
    then marks electrodes as the places where no feature fires, and its probability can never
    exceed sigmoid(bias), about 0.2. Every stride-1 ResNet34 run trained from 0.1 ended there
    (docs/training.md, "The stride-1 head's starting probability"). RetinaNet's 0.01 prior has
    the same reason.
    """
    return CENTER_PRIOR * (stride / 4) ** 2


class DecoderStage(nn.Module):
    """Upsample x2 and merge one skip connection.

    Args:
        in_channels, skip_channels, out_channels: widths of the coarse map, the skip, the output.
        lateral_kernel: kernel of the lateral conv: 1 (a projection of encoder features), or 3
            where the skip is the image itself (the stride-1 stage; a 1x1 conv of one channel
            would only scale it).

    Shape:
        coarse (B, C_in, h, w), skip (B, C_skip, 2h, 2w) -> (B, C_out, 2h, 2w)
    """

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, lateral_kernel: int = 1
    ) -> None:
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.lateral = nn.Sequential(
            nn.Conv2d(
                skip_channels,
                out_channels,
                lateral_kernel,
                padding=lateral_kernel // 2,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
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
        output: tuple of, with s = ``config.heatmap_stride`` (4, 2 or 1; ``output_stride``):
            - segmentation logits (B, 1, H, W) (apply a sigmoid for the catheter probability),
            - centre heatmap (B, 1, H/s, W/s) probabilities in (0, 1),
            - size (B, 2, H/s, W/s) electrode box width, height in input pixels (read at a peak).

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
        self.output_stride = cfg.heatmap_stride
        self.backbone = build_backbone(cfg.backbone, cfg.in_channels, cfg.width)
        stride2_channels, stride4_channels, stride8_channels, stride16_channels = (
            self.backbone.channels
        )
        self.projection = nn.Conv2d(stride16_channels, cfg.projection_channels, 3, padding=1)
        self.attention = ChannelSpatialAttention(cfg.projection_channels, cfg.attention_reduction)
        decoder8, decoder4 = cfg.decoder_channels
        self.decoder_stride8 = DecoderStage(cfg.projection_channels, stride8_channels, decoder8)
        self.decoder_stride4 = DecoderStage(decoder8, stride4_channels, decoder4)
        # The narrow stages of a finer heatmap; None (no module, no state-dict key) where unused,
        # so a stride-4 model is the paper's network, key for key.
        self.decoder_stride2: DecoderStage | None = None
        self.decoder_stride1: DecoderStage | None = None
        fine2, fine1 = cfg.fine_channels
        head_input, head_width = decoder4, cfg.head_channels
        if cfg.heatmap_stride <= 2:
            self.decoder_stride2 = DecoderStage(decoder4, stride2_channels, fine2)
            head_input = head_width = fine2
        if cfg.heatmap_stride == 1:
            # the skip is the image: its lateral, a 3x3 conv + BN, is the shallow image feature
            self.decoder_stride1 = DecoderStage(fine2, cfg.in_channels, fine1, lateral_kernel=3)
            head_input = head_width = fine1
        self.segmentation_head = Head(decoder4, cfg.head_channels, 1)
        self.center_head = Head(head_input, head_width, 1)
        self.size_head = Head(head_input, head_width, 2)
        self._initialize()

    def _initialize(self) -> None:
        initialize_weights(self)
        # The 1x1 output convs start near zero so that every head starts at its bias: the centre
        # heatmap at its prior probability (center_prior), the mask at 0.5, the sizes at 0. (Kaiming
        # fan-out on a 1-channel output would give a saturated random heatmap instead.)
        for head in (self.segmentation_head, self.center_head, self.size_head):
            nn.init.normal_(head.out.weight, std=1e-3)
        prior = center_prior(self.output_stride)
        nn.init.constant_(self.center_head.out.bias, -math.log((1 - prior) / prior))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Weights of the last layer shared by all heads (GradNorm measures gradients there).

        At every heatmap stride: the stride-2 and stride-1 stages feed the centre and size heads
        only, the segmentation head reads the stride-4 features.
        """
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
        stride2, stride4, stride8, stride16 = self.backbone(image)
        embedding = self.attention(self.projection(stride16))
        features = self.decoder_stride4(self.decoder_stride8(embedding, stride8), stride4)
        segmentation = F.interpolate(
            self.segmentation_head(features),
            size=[height, width],
            mode="bilinear",
            align_corners=False,
        )
        fine = features  # the features the centre and size heads read: stride 4, 2 or 1
        if self.decoder_stride2 is not None:
            fine = self.decoder_stride2(fine, stride2)
        if self.decoder_stride1 is not None:
            fine = self.decoder_stride1(fine, image)
        heatmap = torch.sigmoid(self.center_head(fine))
        size = self.size_head(fine)
        return segmentation, heatmap, size


def build_model(config: ModelConfig | None = None) -> CathNet:
    """A freshly initialised :class:`CathNet` for ``config`` (default: the paper's ResNet34)."""
    return CathNet(config)
