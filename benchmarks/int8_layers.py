"""Per-layer time of the float32 and int8 networks on the CPU, side by side in one process.

    python benchmarks/int8_layers.py [MODEL] [--threads 1] [--repeats 10]
        [--calibration-frames 8] [--json benchmarks/results/int8_layers.json]

Builds both networks as the exports do: the float32 one with Inductor's weight freezing (its
convolutions become oneDNN ``mkldnn::_convolution_pointwise`` calls on pre-packed weights) and
the int8 one by :func:`cathtrack.quantize.quantize_int8` (``onednn::qconv_pointwise`` /
``qconv2d_pointwise`` with the ReLU or residual add fused). Both are compiled with
``torch.compile`` instead of AOTInductor, so that torch's profiler sees every oneDNN call with
its shapes (the Python wrapper calls them through the dispatcher; a ``.pt2`` calls them directly)
and Inductor's own kernels (``cpp.enable_kernel_profile``); the kernels are the same. The two
models run one after the other, ``--repeats`` profiled calls each after a warm-up, on one frame
of the model's input size; each layer counts at its fastest call (a shared machine's other
processes take the CPU mid-layer at random), the whole call at its median.

Prints, per convolution shape (input N x C x H x W, weight Cout x Cin x k x k), how many such
layers the network has, their milliseconds per frame in float32 and int8, the ratio, and the
GFLOP/s reached; then the time outside the convolutions (Inductor's fused elementwise kernels,
quantize/dequantize, copies, pooling) and the total. Weights are the model's own; the time does
not depend on their values, the int8 scales do a little.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "cathtrack_resnet34.safetensors"

# profiler event -> (index of the input activation, index of the weight) among its input shapes
CONV_EVENTS = {
    "mkldnn::_convolution_pointwise": (0, 1),
    "mkldnn::_convolution_pointwise_": (1, 2),  # in-place add: (other, input, weight, ...)
    "aten::_slow_conv2d_forward": (0, 1),
    "onednn::qconv_pointwise": (0, 3),
    "onednn::qconv2d_pointwise": (0, 3),  # with a binary post-op
}
# events that only wrap others (their self time is bookkeeping, not work on this frame)
WRAPPERS = ("## Call CompiledFxGraph", "Torch-Compiled Region", "TorchDynamo Cache Lookup")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python benchmarks/int8_layers.py --threads 1 --repeats 10",
    )
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=10, help="profiled calls per model")
    parser.add_argument("--calibration-frames", type=int, default=8, help="(default 8)")
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    return parser.parse_args(argv)


def conv_key(event) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    indices = CONV_EVENTS.get(event.name)
    if indices is None:
        return None
    shapes = event.input_shapes
    return tuple(shapes[indices[0]]), tuple(shapes[indices[1]])


def profile_calls(network, image, repeats: int) -> tuple[dict, dict, float]:
    """Milliseconds per call: per convolution key (with the count of layers), per other event
    name, and in all (the profiled wall time per call).

    Each call runs the same sequence of events, so the k-th event of every call is the same
    layer: each one is taken at its fastest over the calls, which drops the time the operating
    system gave to other processes of a shared machine mid-layer. The wall time is the median
    call.
    """
    import statistics

    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as trace:
        for _ in range(repeats):
            network(image)
    events = sorted(trace.events(), key=lambda event: event.time_range.start)
    calls = [e.cpu_time_total / 1e3 for e in events if e.name.startswith("## Call CompiledFxGraph")]
    work = [event for event in events if not event.name.startswith(WRAPPERS)]
    per_call = len(work) // repeats
    if per_call * repeats != len(work):
        raise RuntimeError("the profiled calls ran different events; cannot match layers")
    convs: dict = collections.defaultdict(lambda: [0, 0.0])
    others: dict = collections.defaultdict(float)
    for k in range(per_call):
        instances = work[k::per_call][:repeats]
        fastest = min(event.self_cpu_time_total for event in instances) / 1e3
        key = conv_key(instances[0])
        if key is None:
            others[instances[0].name] += fastest
        else:
            convs[key][0] += 1
            convs[key][1] += fastest
    return dict(convs), dict(others), statistics.median(calls)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT / "python"))
    import torch
    import torch._inductor.config as inductor

    from cathtrack import quantize
    from cathtrack.checkpoint import load_model

    torch.set_num_threads(args.threads)
    inductor.freezing = True  # as the .pt2 export (cathtrack.export.inductor_configs)
    inductor.cpp.enable_kernel_profile = True  # Inductor's own kernels appear in the profile
    model, document = load_model(args.model)
    size = int(document["input_size"])
    images, calibration = quantize.calibration_images(size, None, args.calibration_frames)
    networks = {
        "float32": torch.compile(model.eval()),
        "int8": torch.compile(quantize.quantize_int8(model, images)),
    }
    image = torch.from_numpy(images[:1])
    with torch.no_grad():
        for _ in range(3):  # compile, then warm up
            for network in networks.values():
                network(image)
    profiles = {
        name: profile_calls(network, image, args.repeats) for name, network in networks.items()
    }

    float_convs, int8_convs = profiles["float32"][0], profiles["int8"][0]
    rows = []
    for (activation, weight), (count, float_ms) in sorted(
        float_convs.items(), key=lambda item: -item[1][1]
    ):
        _, _, height, width = activation
        out_channels, in_channels, kernel_h, kernel_w = weight
        int8_count, int8_ms = int8_convs.get((activation, weight), (0, float("nan")))
        # 2 x MACs; output size taken as the input's (stride-2 layers count double, noted)
        gflop = 2 * out_channels * in_channels * kernel_h * kernel_w * height * width / 1e9
        rows.append(
            {
                "input": list(activation),
                "weight": list(weight),
                "layers": count,
                "int8_layers": int8_count,
                "float32_ms": float_ms,
                "int8_ms": int8_ms,
                "ratio": float_ms / int8_ms if int8_ms == int8_ms and int8_ms > 0 else None,
                "float32_gflops_per_s": count * gflop / (float_ms / 1e3) if float_ms else None,
            }
        )

    print(
        f"{args.model.name}: {size}x{size}, {args.threads} thread(s), "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"VNNI {torch.cpu._is_vnni_supported()}, int8 calibrated on {calibration}"
    )
    print(f"{'input':>16} {'weight':>16} {'n':>3} {'fp32 ms':>9} {'int8 ms':>9} {'ratio':>6}")
    for row in rows:
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else "float"
        print(
            f"{'x'.join(map(str, row['input'])):>16} {'x'.join(map(str, row['weight'])):>16} "
            f"{row['layers']:>3} {row['float32_ms']:>9.2f} {row['int8_ms']:>9.2f} {ratio:>6}"
        )
    summary = {}
    for name, (convs, others, wall) in profiles.items():
        conv_ms = sum(ms for _, ms in convs.values())
        other_ms = sum(others.values())
        top = sorted(others.items(), key=lambda item: -item[1])[:6]
        summary[name] = {
            "conv_ms": conv_ms,
            "other_ms": other_ms,
            "wall_ms": wall,
            "top_other": top,
        }
        print(
            f"{name}: convolutions {conv_ms:.1f} ms, everything else {other_ms:.1f} ms, "
            f"call {wall:.1f} ms per frame"
        )
        for event, ms in top:
            print(f"    {ms:8.2f} ms  {event[:70]}")
    ratio = summary["float32"]["wall_ms"] / summary["int8"]["wall_ms"]
    conv_ratio = summary["float32"]["conv_ms"] / summary["int8"]["conv_ms"]
    print(f"int8 / float32 speed-up: whole call {ratio:.2f}x, convolutions alone {conv_ratio:.2f}x")
    print(f"load average {os.getloadavg() if hasattr(os, 'getloadavg') else 'n/a'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "model": str(args.model),
            "threads": args.threads,
            "repeats": args.repeats,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "vnni": bool(torch.cpu._is_vnni_supported()),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "layers": rows,
            "summary": summary,
            "speedup_call": ratio,
            "speedup_convolutions": conv_ratio,
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
