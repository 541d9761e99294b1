"""Forward time of CathNet at heatmap strides 4, 2 and 1, side by side in one process.

    python benchmarks/forward_stride.py [--threads 1] [--repeats 40] [--backbone resnet34]
        [--lite | --no-lite] [--fine-channels 32,16 16,8 ...]
        [--json benchmarks/results/forward_stride.json]

For the paper's model (``--backbone``, full width) and the lite model (the architecture of
models/cathtrack_lite.json: ResNet18 at width 0.5), builds the network at heatmap stride 4 (the
paper's), 2 and 1 (``ModelConfig.heatmap_stride``; the narrow stride-2/1 stages are
``fine_channels`` wide) and times one forward pass of a 256 x 256 frame, batch 1, on the CPU under
``torch.inference_mode`` (eager PyTorch, float32). Every model is warmed up first; then the models
run round-robin, one call each per round, so that load from other processes on the machine falls
on all of them alike, and the median over the rounds is reported with its ratio to the same
model at stride 4 and the GFLOPs (2 x MACs of convolutions, ``cathtrack.model.profiling``).
Beside the wall-clock time it reports the process's CPU time per call (``time.process_time``:
all threads together), which a busy shared machine disturbs less. ``--fine-channels`` adds
rows at strides 2 and 1 with other widths of the narrow stages (the default is
``ModelConfig.fine_channels``). The weights are freshly initialised: the time does not depend
on their values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LITE_MODEL = ROOT / "models" / "cathtrack_lite.json"
STRIDES = (4, 2, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python benchmarks/forward_stride.py --threads 1 --repeats 40",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=40, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per model first")
    parser.add_argument("--size", type=int, default=256, help="square input side (default 256)")
    parser.add_argument(
        "--backbone", default="resnet34", help="backbone of the full-width model (default resnet34)"
    )
    parser.add_argument(
        "--lite",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the lite model of models/cathtrack_lite.json (default: yes)",
    )
    parser.add_argument(
        "--fine-channels",
        type=_channel_pair,
        nargs="*",
        default=[],
        metavar="C2,C1",
        help="also time every model at strides 2 and 1 with these fine_channels",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "forward_stride.json",
        help="where to write the results",
    )
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--threads and --repeats must be >= 1, --warmup >= 0")
    return args


def _channel_pair(text: str) -> tuple[int, int]:
    try:
        first, second = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two widths like 32,16, got {text!r}") from None
    return first, second


def variants(args: argparse.Namespace) -> list[tuple[str, object]]:
    """(family, ModelConfig) of every model to time, stride 4 first within each family."""
    from cathtrack.model import ModelConfig

    families = [(args.backbone, ModelConfig(backbone=args.backbone))]
    if args.lite:
        families.append(
            ("lite", ModelConfig.from_dict(json.loads(LITE_MODEL.read_text())["model"]))
        )
    rows = []
    for name, base in families:
        rows += [(name, dataclasses.replace(base, heatmap_stride=s)) for s in STRIDES]
        for fine in args.fine_channels:
            for stride in STRIDES[1:]:
                config = dataclasses.replace(base, heatmap_stride=stride, fine_channels=fine)
                # the stride-2 model uses only the first width: skip networks already listed
                if not any(_same_network(config, other) for _, other in rows):
                    rows.append((name, config))
    return rows


def _same_network(a, b) -> bool:
    """Whether two configs build the same network (fine widths a stride does not use aside)."""
    used = {4: 0, 2: 1, 1: 2}[a.heatmap_stride]
    rest_a, rest_b = a.to_dict(), b.to_dict()
    fine_a, fine_b = rest_a.pop("fine_channels"), rest_b.pop("fine_channels")
    return rest_a == rest_b and fine_a[:used] == fine_b[:used]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from cathtrack.model import CathNet, summary

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = torch.rand(1, 1, args.size, args.size)
    rows = []
    for name, config in variants(args):
        model = CathNet(config).eval()
        costs = summary(config, args.size)
        rows.append(
            {
                "model": name,
                "config": config,
                "network": model,
                "heatmap_stride": config.heatmap_stride,
                "fine_channels": list(config.fine_channels) if config.heatmap_stride < 4 else None,
                "parameters": costs["parameters"],
                "gflops": costs["gflops"],
                "times": [],
                "cpu_times": [],
            }
        )
    with torch.inference_mode():
        for row in rows:
            for _ in range(args.warmup):
                row["network"](image)
        for _ in range(args.repeats):
            for row in rows:
                start, cpu_start = time.perf_counter(), time.process_time()
                row["network"](image)
                row["times"].append(1e3 * (time.perf_counter() - start))
                row["cpu_times"].append(1e3 * (time.process_time() - cpu_start))

    base = {}
    for row in rows:
        row["ms"] = statistics.median(row["times"])
        row["cpu_ms"] = statistics.median(row["cpu_times"])
        quartiles = statistics.quantiles(row["times"], n=4) if len(row["times"]) > 1 else [0, 0, 0]
        row["ms_iqr"] = quartiles[2] - quartiles[0]
        if row["heatmap_stride"] == 4:
            base[row["model"]] = row
    for row in rows:
        reference = base[row["model"]]
        row["ratio"] = row["ms"] / reference["ms"]
        row["cpu_ratio"] = row["cpu_ms"] / reference["cpu_ms"]
        row["gflops_ratio"] = row["gflops"] / reference["gflops"]

    print(
        f"CathNet forward, {args.size}x{args.size}, batch 1, CPU float32 eager, "
        f"{args.threads} thread(s), median of {args.repeats} (torch {torch.__version__})"
    )
    header = (
        f"{'model':<10} {'stride':>6} {'fine':>6} {'params M':>8} {'GFLOPs':>6} {'x s4':>5} "
        f"{'ms':>7} {'IQR':>5} {'x s4':>5} {'cpu ms':>7} {'x s4':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        fine = ",".join(map(str, row["fine_channels"])) if row["fine_channels"] else "-"
        print(
            f"{row['model']:<10} {row['heatmap_stride']:>6} {fine:>6} "
            f"{row['parameters'] / 1e6:>8.2f} {row['gflops']:>6.2f} {row['gflops_ratio']:>5.2f} "
            f"{row['ms']:>7.1f} {row['ms_iqr']:>5.1f} {row['ratio']:>5.2f} "
            f"{row['cpu_ms']:>7.1f} {row['cpu_ratio']:>5.2f}"
        )

    document = {
        "command": "python benchmarks/forward_stride.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "torch": torch.__version__,
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "input_size": args.size,
        "results": [
            {
                "model": row["model"],
                "model_config": row["config"].to_dict(),
                "heatmap_stride": row["heatmap_stride"],
                "parameters": row["parameters"],
                "gflops": row["gflops"],
                "gflops_ratio_to_stride4": row["gflops_ratio"],
                "ms_median": row["ms"],
                "ms_iqr": row["ms_iqr"],
                "ratio_to_stride4": row["ratio"],
                "cpu_ms_median": row["cpu_ms"],
                "cpu_ratio_to_stride4": row["cpu_ratio"],
            }
            for row in rows
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
