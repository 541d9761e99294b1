"""`cathtrack export`: a checkpoint -> a model file the runtime loads (.pt2 or .ts) with metadata.

``.pt2`` is compiled by AOTInductor for this machine (its CPU instruction set, or its GPU): export
on the machine that will run it. ``.ts`` (TorchScript) is portable but deprecated by torch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "export a checkpoint to a .pt2 (AOTInductor) or .ts (TorchScript) model file"
EXAMPLES = """  cathtrack export runs/paper --format pt2
  cathtrack export models/cathtrack_resnet34.safetensors --format ts --out deploy/model.ts
  cathtrack export runs/paper/checkpoints/best --format pt2 --device cuda --half
  cathtrack export models/cathtrack_resnet34.safetensors --format pt2 --half   # bfloat16 CPU
  (then: cathtrack.Tracker("runs/paper/checkpoints/best/model.pt2"))"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="model .safetensors/.json, checkpoint or run")
    parser.add_argument("--format", choices=("pt2", "ts"), default="pt2", help="(default pt2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default cpu)")
    parser.add_argument(
        "--half",
        action="store_true",
        help="16-bit weights and input: float16 on CUDA, bfloat16 on a CPU with native bfloat16",
    )
    parser.add_argument(
        "--out", type=Path, help="model file to write (default: beside the weights, new suffix)"
    )


def run(args: argparse.Namespace) -> int:
    from cathtrack.checkpoint import model_paths
    from cathtrack.cli import CliError
    from cathtrack.cli.eval import resolve_model
    from cathtrack.export import export_model, read_model_metadata

    checkpoint = resolve_model(args.checkpoint)
    out = args.out or model_paths(checkpoint)[0].with_suffix(f".{args.format}")
    if out.suffix != f".{args.format}":
        raise CliError(f"--out {out}: a {args.format} model file must end in .{args.format}")
    start = time.perf_counter()
    try:
        export_model(checkpoint, out, args.format, args.device, args.half)
    except (FileNotFoundError, ValueError) as error:
        raise CliError(str(error)) from error
    metadata = read_model_metadata(out)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.0f} s): "
        f"input {metadata['input_size']}x{metadata['input_size']}, {metadata['dtype']} on "
        f"{metadata['device']}, model_version {metadata['model_version']}"
    )
    return 0
