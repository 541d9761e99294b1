"""`cathtrack bench`: latency of the native engine (.pt2 and .ts) against the Python reference.

Every backend runs in one process on the same weights and the same frames: synthetic clinical
frames rendered once up front, passed as uint16 so the input conversion is part of the timing.
Backends take turns frame by frame (the starting backend rotates) so slow phases of a shared
machine hit all of them alike; warm-up frames are not timed. Stage times come from
``Result.timings``; "end to end" is the wall time of the ``tracker(frame)`` call as a user sees it.
Optional rows: a 16-bit ``.pt2`` (``--half``), an int8 ``.pt2`` (``--int8``) and the ONNX file
in onnxruntime (``--onnxruntime``); each row's speed-up is given over the Python reference and
over the float32 ``.pt2``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

HELP = "time the native engine (.pt2, .ts) against the Python reference on the same frames"
EXAMPLES = """  cathtrack bench
  cathtrack bench models/cathtrack_lite.safetensors --size 256 --frames 200 --threads 2
  cathtrack bench models/cathtrack_resnet34.safetensors --half   # adds a bfloat16 pt2 row
  cathtrack bench models/cathtrack_resnet34.safetensors --int8 --onnxruntime --device cpu
  cathtrack bench model.safetensors --device cuda --half --json benchmarks/results/bench_gpu.json"""

DEFAULT_JSON = Path("benchmarks/results/bench.json")
# backend label -> Tracker arguments
BACKENDS = {
    "native pt2": {"backend": "native", "export_format": "pt2"},
    "native ts": {"backend": "native", "export_format": "ts"},
    "python": {"backend": "python"},
}
OPTIONAL_BACKENDS = {  # flag -> (label, Tracker arguments)
    "half": ("native pt2 half", {"backend": "native", "export_format": "pt2", "half": True}),
    "int8": ("native pt2 int8", {"backend": "native", "export_format": "pt2", "int8": True}),
    "onnxruntime": ("onnxruntime", {"backend": "onnxruntime"}),
}
FLOAT_BASELINE = "native pt2"
STAGES = ("preprocess", "inference", "postprocess", "end_to_end")
UINT16_MAX = 65535


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", nargs="?", type=Path, help="checkpoint .safetensors (default: the shipped model)"
    )
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (default 256)")
    parser.add_argument("--frames", type=int, default=200, help="timed frames (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames first (default 5)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op CPU threads (default: torch's setting)"
    )
    parser.add_argument("--seed", type=int, default=0, help="scene seed of the frames (default 0)")
    parser.add_argument(
        "--half",
        action="store_true",
        help="also time a 16-bit pt2 export (float16 on CUDA, bfloat16 on the CPU)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also time an int8 pt2 export (CPU; calibrated on synthetic frames; needs torchao)",
    )
    parser.add_argument(
        "--onnxruntime",
        action="store_true",
        help="also time the ONNX export in onnxruntime (needs the onnx extra)",
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"JSON output (default {DEFAULT_JSON})"
    )


def render_frames(size: int, count: int, seed: int) -> list:
    """``count`` clinical synthetic frames as (size, size) uint16."""
    import numpy as np

    from cathtrack.data.synth import preset, render_sequence

    samples = render_sequence(preset("clinical", size=size), seed, count)
    return [np.rint(s.image * UINT16_MAX).astype(np.uint16) for s in samples]


def summarize(milliseconds: dict[str, list[float]]) -> dict:
    """Median and p99 per stage, frames/s, and the share of pre+post-processing."""
    import numpy as np

    summary = {}
    for stage in STAGES:
        values = np.asarray(milliseconds[stage])
        summary[stage] = {
            "median_ms": float(np.median(values)),
            "p99_ms": float(np.percentile(values, 99)),
        }
    end_to_end = float(np.sum(milliseconds["end_to_end"]))
    summary["frames_per_s"] = 1e3 * len(milliseconds["end_to_end"]) / end_to_end
    pre_post = float(np.sum(milliseconds["preprocess"]) + np.sum(milliseconds["postprocess"]))
    summary["pre_post_share"] = pre_post / end_to_end
    return summary


def machine_facts(device: str) -> dict:
    import torch

    if device == "cuda":
        device_name = torch.cuda.get_device_name()
    else:
        device_name = _cpu_name()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": device_name,
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def format_table(report: dict) -> str:
    header = (
        f"{'backend':<16}"
        + "".join(f"{stage + ' med':>16}{'p99':>8}" for stage in STAGES)
        + f"{'frames/s':>10}{'pre+post':>10}"
    )
    lines = [header]
    for label, summary in report["backends"].items():
        cells = "".join(
            f"{summary[s]['median_ms']:>16.2f}{summary[s]['p99_ms']:>8.2f}" for s in STAGES
        )
        share = f"{100 * summary['pre_post_share']:.1f}%"
        lines.append(f"{label:<16}{cells}{summary['frames_per_s']:>10.1f}{share:>10}")
    lines.append("(ms; end_to_end = wall time of tracker(frame); pre+post = share of end to end)")
    for label, ratio in report["speedup_vs_python"].items():
        lines.append(f"speed-up {label} / python (median end to end): {ratio:.2f}x")
    for label, ratio in report["speedup_vs_float32_pt2"].items():
        lines.append(f"speed-up {label} / {FLOAT_BASELINE} (median end to end): {ratio:.2f}x")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from cathtrack.cli import CliError
    from cathtrack.tracker import Tracker, default_model_path

    if args.size < 32:
        raise CliError(f"--size must be >= 32, got {args.size}")
    if args.frames < 1 or args.warmup < 0:
        raise CliError("--frames must be >= 1 and --warmup >= 0")
    if args.threads < 0:
        raise CliError(f"--threads must be >= 0, got {args.threads}")
    model = args.model or default_model_path()
    if model.suffix in (".pt2", ".ts"):
        raise CliError(f"{model}: give a checkpoint (.safetensors), both formats are built from it")
    if args.threads:
        torch.set_num_threads(args.threads)

    backends = dict(BACKENDS)
    for flag, (label, options) in OPTIONAL_BACKENDS.items():
        if getattr(args, flag):
            backends[label] = options
    trackers = {}
    try:
        for label, options in backends.items():
            if options["backend"] != "python":
                wait = "1-2 min" if options.get("int8") else "~20 s"
                print(f"loading {label} (the first use exports the model, {wait})")
            trackers[label] = Tracker(model, device=args.device, threads=args.threads, **options)
    except (FileNotFoundError, ValueError, ModuleNotFoundError) as error:
        raise CliError(str(error)) from error
    device = trackers["python"].device

    frames = render_frames(args.size, args.warmup + args.frames, args.seed)
    labels = list(trackers)
    milliseconds = {label: {stage: [] for stage in STAGES} for label in labels}
    for k, frame in enumerate(tqdm(frames, desc="bench", unit="frame")):
        order = labels[k % len(labels) :] + labels[: k % len(labels)]
        for label in order:
            start = time.perf_counter()
            result = trackers[label](frame)
            elapsed_ms = 1e3 * (time.perf_counter() - start)
            if k < args.warmup:
                continue
            for stage in STAGES[:-1]:
                milliseconds[label][stage].append(result.timings[stage])
            milliseconds[label]["end_to_end"].append(elapsed_ms)

    summaries = {label: summarize(milliseconds[label]) for label in labels}
    for label in labels:
        metadata = trackers[label].metadata
        precision = "int8" if "quantization" in metadata else metadata.get("dtype", "float32")
        summaries[label]["dtype"] = precision
    python_median = summaries["python"]["end_to_end"]["median_ms"]
    float_median = summaries[FLOAT_BASELINE]["end_to_end"]["median_ms"]
    report = {
        "model": str(model),
        "size": args.size,
        "frames": args.frames,
        "warmup": args.warmup,
        "input_dtype": "uint16",
        "machine": machine_facts(device),
        "backends": summaries,
        "speedup_vs_python": {
            label: python_median / summaries[label]["end_to_end"]["median_ms"]
            for label in labels
            if label != "python"
        },
        "speedup_vs_float32_pt2": {
            label: float_median / summaries[label]["end_to_end"]["median_ms"]
            for label in labels
            if label not in ("python", FLOAT_BASELINE)
        },
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    print(format_table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0
