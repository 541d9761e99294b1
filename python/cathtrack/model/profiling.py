"""Parameter count and compute cost of CathNet per backbone.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the
multiply-accumulates of convolutions and matrix products as 2 FLOPs each (the "2 x MACs"
convention) and ignores element-wise work (BatchNorm, ReLU, attention gates, interpolation),
which is a few percent at most for this network.

Run ``python -m cathtrack.model.profiling [--size 256] [--width 1.0]`` for a table of every backbone.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from torch.utils.flop_counter import FlopCounterMode

from cathtrack.model.backbones import BACKBONES
from cathtrack.model.config import ModelConfig
from cathtrack.model.net import CathNet


def summary(config: ModelConfig | None = None, size: int = 256) -> dict:
    """Size and cost of one CathNet.

    Args:
        config: architecture (default: the paper's ResNet34 model).
        size: side of the square input frame in pixels (a multiple of 32).

    Returns:
        dict with ``backbone``, ``width``, ``input_size``, ``parameters`` (count of all
        parameters), ``backbone_parameters`` and ``gflops`` (10^9 FLOPs per frame, 2 x MACs).
    """
    model = CathNet(config).eval()
    image = torch.zeros(1, model.config.in_channels, size, size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image)
    return {
        "backbone": model.config.backbone,
        "width": model.config.width,
        "input_size": size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "backbone_parameters": sum(p.numel() for p in model.backbone.parameters()),
        "gflops": counter.get_total_flops() / 1e9,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="square input side in pixels")
    parser.add_argument("--width", type=float, default=1.0, help="backbone channel multiplier")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the forward is tiny; spare the shared cores
    print(f"input {args.size}x{args.size}, width {args.width}; GFLOPs = 2 x MACs of conv/linear")
    print(f"{'backbone':<10} {'params (M)':>11} {'backbone (M)':>13} {'GFLOPs':>8}")
    for backbone in BACKBONES:
        config = dataclasses.replace(ModelConfig(), backbone=backbone, width=args.width)
        row = summary(config, args.size)
        print(
            f"{backbone:<10} {row['parameters'] / 1e6:>11.2f} "
            f"{row['backbone_parameters'] / 1e6:>13.2f} {row['gflops']:>8.2f}"
        )


if __name__ == "__main__":
    main()
