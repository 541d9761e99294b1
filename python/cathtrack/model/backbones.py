"""Encoders truncated at stride 16, written in plain PyTorch (no torchvision, no timm).

Every backbone maps a (B, C_in, H, W) image to four feature maps at strides 2, 4, 8 and 16
(``.channels`` gives their widths in that order):

- ResNet (He et al. 2016): the stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and ``layer1``..``layer3``
  (the paper's ``res2``..``res4``); ``layer4`` (``res5``, stride 32) is discarded as in the paper.
  The stride-2 feature is the stem's conv + BN + ReLU output, before the max-pool.
- VGG16 (Simonyan & Zisserman 2015) with batch normalisation (the network is trained from scratch
  on one-channel X-ray, where BN makes the 13-conv stack trainable): blocks 1..4, the stride-2,
  stride-4 and stride-8 features are the outputs of blocks 2, 3 and 4 (before their pooling), the
  stride-16 feature is block 4 after its max-pool. Block 5 (at stride 16) is not used, mirroring
  the ResNets stopping at stride 16 with the paper's table of backbones.

The paper's decoder reads the strides 4, 8 and 16; the stride-2 feature is the skip of the
narrow stride-2 decoder stage of models with a finer heatmap (``ModelConfig.heatmap_stride``).
It is computed on the way anyway, so returning it costs nothing, and the modules (and so the
state-dict keys) are the same as before it was returned.

``width`` scales every channel count (the lite variant); counts are rounded to multiples of 8 so
that the kernels stay vector-friendly.
"""

from __future__ import annotations

from torch import Tensor, nn

BACKBONES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "vgg16")

# blocks per stage of layer1..layer3 (layer4 is discarded)
_RESNET_DEPTHS: dict[str, tuple[int, int, int]] = {
    "resnet18": (2, 2, 2),
    "resnet34": (3, 4, 6),
    "resnet50": (3, 4, 6),
}
_RESNET_STAGE_CHANNELS: tuple[int, int, int] = (64, 128, 256)
# convolutions per VGG16 block and their channels (blocks 1..4)
_VGG16_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 512))


def scale_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded to the nearest multiple of 8 (at least 8)."""
    return max(8, int(round(channels * width / 8)) * 8)


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet-18/34 residual block: two 3x3 convs, identity or 1x1 projection shortcut."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet-50 block: 1x1 reduce, 3x3 (carrying the stride, as in ResNet v1.5), 1x1 expand x4."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class ResNetEncoder(nn.Module):
    """ResNet stem + layer1..layer3.

    Args:
        name: "resnet18", "resnet34" or "resnet50".
        in_channels: image channels (1 for X-ray).
        width: channel multiplier.

    Shape:
        input (B, in_channels, H, W) -> tuple of (B, channels[i], H / s, W / s), s = 2, 4, 8, 16.
    """

    def __init__(self, name: str, in_channels: int = 1, width: float = 1.0) -> None:
        super().__init__()
        block = Bottleneck if name == "resnet50" else BasicBlock
        stem_channels = scale_channels(64, width)
        self.stem = nn.Sequential(
            _conv_bn_relu(in_channels, stem_channels, 7, 2), nn.MaxPool2d(3, 2, padding=1)
        )
        stages = []
        current = stem_channels
        for index, (depth, base) in enumerate(
            zip(_RESNET_DEPTHS[name], _RESNET_STAGE_CHANNELS, strict=True)
        ):
            channels = scale_channels(base, width)
            blocks = []
            for block_index in range(depth):
                stride = 2 if index > 0 and block_index == 0 else 1
                blocks.append(block(current, channels, stride))
                current = channels * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.channels: tuple[int, int, int, int] = (
            stem_channels,
            *(scale_channels(base, width) * block.expansion for base in _RESNET_STAGE_CHANNELS),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        stride2 = self.stem[0](x)  # conv + BN + ReLU, before the max-pool
        stride4 = self.layer1(self.stem[1](stride2))
        stride8 = self.layer2(stride4)
        stride16 = self.layer3(stride8)
        return stride2, stride4, stride8, stride16


class Vgg16Encoder(nn.Module):
    """VGG16-BN blocks 1..4 (see the module docstring for where the four features are taken).

    Shape:
        input (B, in_channels, H, W) -> tuple of (B, channels[i], H / s, W / s), s = 2, 4, 8, 16.
    """

    def __init__(self, in_channels: int = 1, width: float = 1.0) -> None:
        super().__init__()
        blocks = []
        current = in_channels
        for convs, base in _VGG16_BLOCKS:
            channels = scale_channels(base, width)
            layers = [
                _conv_bn_relu(current if i == 0 else channels, channels, 3, 1) for i in range(convs)
            ]
            blocks.append(nn.Sequential(*layers))
            current = channels
        self.block1, self.block2, self.block3, self.block4 = blocks
        self.pool = nn.MaxPool2d(2, 2)
        last = scale_channels(_VGG16_BLOCKS[3][1], width)
        self.channels: tuple[int, int, int, int] = (
            scale_channels(_VGG16_BLOCKS[1][1], width),
            scale_channels(_VGG16_BLOCKS[2][1], width),
            last,
            last,
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        stride2 = self.block2(self.pool(self.block1(x)))
        stride4 = self.block3(self.pool(stride2))
        stride8 = self.block4(self.pool(stride4))
        stride16 = self.pool(stride8)
        return stride2, stride4, stride8, stride16


def build_backbone(name: str, in_channels: int = 1, width: float = 1.0) -> nn.Module:
    """The encoder called ``name`` (one of :data:`BACKBONES`); ``.channels`` gives its widths."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if name == "vgg16":
        return Vgg16Encoder(in_channels, width)
    return ResNetEncoder(name, in_channels, width)


def initialize_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan-out, ReLU) convolutions with zero bias, BatchNorm weight 1 / bias 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
