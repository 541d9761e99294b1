"""onnxruntime against OpenVINO on the same exported ONNX file, side by side in one process.

    python benchmarks/onnx_runtimes.py MODEL.onnx [--threads 1] [--repeats 30]
        [--json benchmarks/results/onnx_runtimes.json]

Times the forward pass alone (batch 1, a random frame of the model's input size) in an
onnxruntime CPU session (as ``Tracker(backend="onnxruntime")`` opens it) and in OpenVINO's CPU
plugin (``PERFORMANCE_HINT`` LATENCY), each with ``--threads`` threads. The two take turns call
by call (the first one alternating) so that load from other processes falls on both alike; the
first two calls of each are not timed. Prints the medians, the ratio and the largest output
difference between the two. Needs ``pip install 'cathtrack[onnx]' openvino``; export the file
with ``cathtrack export CKPT --format onnx``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an .onnx file written by cathtrack export")
    parser.add_argument("--threads", type=int, default=1, help="threads of each runtime")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls of each")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime
    import openvino

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(args.model), options, providers=["CPUExecutionProvider"]
    )
    compiled = openvino.Core().compile_model(
        str(args.model),
        "CPU",
        {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"},
    )
    request = compiled.create_infer_request()

    def outputs_of(result) -> list:  # one inference, its outputs in the file's order
        return [result[output] for output in compiled.outputs]

    metadata = session.get_modelmeta().custom_metadata_map
    size = int(metadata["input_size"])
    image = np.random.default_rng(0).random((1, 1, size, size), dtype=np.float32)
    runs = {
        "onnxruntime": lambda: session.run(None, {"image": image}),
        "openvino": lambda: outputs_of(request.infer({"image": image})),
    }
    difference = max(
        float(np.abs(a - b).max())
        for a, b in zip(runs["onnxruntime"](), runs["openvino"](), strict=True)
    )
    times: dict[str, list[float]] = {name: [] for name in runs}
    for k in range(args.repeats + 2):
        for name in list(runs)[:: 1 if k % 2 else -1]:
            start = time.perf_counter()
            runs[name]()
            if k >= 2:
                times[name].append(1e3 * (time.perf_counter() - start))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["onnxruntime"] / medians["openvino"]
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print(f"{args.model.name}: {size}x{size}, {args.threads} thread(s), batch 1")
    for name, median in medians.items():
        print(f"{name:<12} median {median:8.2f} ms")
    print(
        f"openvino speed-up over onnxruntime: {ratio:.2f}x (largest output difference "
        f"{difference:.2g}; inference precision {compiled.get_property('INFERENCE_PRECISION_HINT')})"
    )
    print(f"load average {load}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "model": args.model.name,
            "threads": args.threads,
            "repeats": args.repeats,
            "median_ms": medians,
            "openvino_speedup": ratio,
            "max_output_difference": difference,
            "onnxruntime": onnxruntime.__version__,
            "openvino": openvino.__version__,
            "load_average": load,
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
