"""`cathtrack export`: a checkpoint -> a model file (.pt2, .ts or .onnx) with its metadata.

``.pt2`` is compiled by AOTInductor for this machine (its CPU instruction set, or its GPU): export
on the machine that will run it; ``--int8`` quantises it to int8 first (CPU). ``.ts``
(TorchScript) is portable but deprecated by torch. ``.onnx`` is for onnxruntime, OpenVINO and
TensorRT (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "export a checkpoint to a .pt2 (AOTInductor), .ts (TorchScript) or .onnx model file"
EXAMPLES = """  cathtrack export runs/paper --format pt2
  cathtrack export models/cathtrack_resnet34.safetensors --format ts --out deploy/model.ts
  cathtrack export runs/paper/checkpoints/best --format pt2 --device cuda --half
  cathtrack export models/cathtrack_resnet34.safetensors --format pt2 --half   # bfloat16 CPU
  cathtrack export models/cathtrack_resnet34.safetensors --int8 --out deploy/int8.pt2
  cathtrack export models/cathtrack_resnet34.safetensors --int8 --calibration recordings/
  cathtrack export models/cathtrack_resnet34.safetensors --format onnx [--half]   # float16
  (then: cathtrack.Tracker("runs/paper/checkpoints/best/model.pt2"),
   cathtrack.Tracker("model.onnx", backend="onnxruntime"))"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="model .safetensors/.json, checkpoint or run")
    parser.add_argument(
        "--format", choices=("pt2", "ts", "onnx"), default="pt2", help="(default pt2)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="(default cpu)")
    parser.add_argument(
        "--half",
        action="store_true",
        help="16-bit weights and input: float16 on CUDA and in ONNX, bfloat16 on a CPU with "
        "native bfloat16",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="quantise to int8 (static, calibrated; .pt2 for the CPU; needs torchao)",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="frames to calibrate --int8 on: images, TIFF, video, DICOM or a folder of them "
        "(default: synthetic clinical frames)",
    )
    parser.add_argument(
        "--calibration-frames",
        type=int,
        help="how many frames calibrate --int8 (default 32)",
    )
    parser.add_argument(
        "--out", type=Path, help="model file to write (default: beside the weights, new suffix)"
    )


def run(args: argparse.Namespace) -> int:
    from cathtrack.checkpoint import model_paths
    from cathtrack.cli import CliError
    from cathtrack.cli.eval import resolve_model
    from cathtrack.export import export_model, read_model_metadata

    if args.int8 and args.format != "pt2":
        raise CliError(f"--int8 makes a .pt2 for the CPU, not --format {args.format}")
    if (args.calibration or args.calibration_frames is not None) and not args.int8:
        raise CliError("--calibration and --calibration-frames go with --int8")
    if args.calibration_frames is not None and args.calibration_frames < 1:
        raise CliError(f"--calibration-frames must be >= 1, got {args.calibration_frames}")
    checkpoint = resolve_model(args.checkpoint)
    suffix = ".int8.pt2" if args.int8 else f".{args.format}"
    out = args.out or model_paths(checkpoint)[0].with_suffix(suffix)
    if out.suffix != f".{args.format}":
        raise CliError(f"--out {out}: a {args.format} model file must end in .{args.format}")
    start = time.perf_counter()
    try:
        export_model(
            checkpoint,
            out,
            args.format,
            args.device,
            args.half,
            int8=args.int8,
            calibration=args.calibration,
            calibration_frames=args.calibration_frames,
        )
    except (FileNotFoundError, ValueError, ModuleNotFoundError) as error:
        raise CliError(str(error)) from error
    metadata = read_model_metadata(out)
    where = f" on {metadata['device']}" if "device" in metadata else ""
    precision = "int8" if "quantization" in metadata else metadata["dtype"]
    extra = ""
    if args.format == "onnx":
        extra = f", opset {metadata['onnx_opset']}, dynamic batch"
    if "quantization_calibration" in metadata:
        extra += f", calibrated on {metadata['quantization_calibration']}"
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.0f} s): "
        f"input {metadata['input_size']}x{metadata['input_size']}, {precision}{where}{extra}, "
        f"model_version {metadata['model_version']}"
    )
    return 0
