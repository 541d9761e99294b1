"""CBAM-like attention (Woo et al. 2018): channel attention, then spatial attention.

The paper applies "attention along two separate dimensions as in CBAM" to the 512-channel
stride-16 embedding. The channel MLP is written with 1x1 convolutions on the pooled (B, C, 1, 1)
descriptors so the module needs no reshape (simpler graphs for torch.export and TorchScript).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelAttention(nn.Module):
    """Per-channel gate sigmoid(MLP(avg-pool(x)) + MLP(max-pool(x))) with a shared MLP.

    Args:
        channels: C.
        reduction: hidden width of the MLP is C / reduction (at least 8).

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        average = self.mlp(torch.mean(x, dim=(2, 3), keepdim=True))
        maximum = self.mlp(torch.amax(x, dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(average + maximum)


class SpatialAttention(nn.Module):
    """Per-position gate sigmoid(conv7x7([mean_c(x), max_c(x)])).

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat(
            [torch.mean(x, dim=1, keepdim=True), torch.amax(x, dim=1, keepdim=True)], dim=1
        )
        return x * torch.sigmoid(self.conv(pooled))


class ChannelSpatialAttention(nn.Module):
    """Channel attention followed by spatial attention (CBAM's sequential order).

    Shape:
        (B, C, H, W) -> (B, C, H, W)
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.spatial(self.channel(x))
