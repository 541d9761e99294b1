"""Frames/s of one tracker with 1 thread against all cores, with and without other jobs running.

    python benchmarks/predict_threads.py [--model PATH] [--size 256] [--frames 30]
                                         [--rounds 3] [--compete N] [--json FILE]

Both settings run in this process on the same synthetic frames (``clinical`` preset), through
the native engine (``cathtrack.Tracker``), in alternating rounds so that both see the same
background load: round r tracks every frame once with ``threads=1`` and once with ``threads``
equal to the cores this process may use. ``--compete N`` starts N extra busy processes (each a
torch matmul loop on one thread) for the whole measurement, to see what a job sharing the
machine does. Prints the median frame time of each setting, frames/s, their ratio, the load
average before and after, and the thread count ``cathtrack predict`` would pick by default
(:func:`cathtrack.cli.predict.default_threads`, read before the competing jobs start).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np


def _busy(stop) -> None:
    """One competing job: a single-threaded matmul loop until ``stop`` is set."""
    import torch

    torch.set_num_threads(1)
    a = torch.rand(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def measure(tracker_by_threads: dict, frames: list, rounds: int) -> dict[int, list[float]]:
    times: dict[int, list[float]] = {threads: [] for threads in tracker_by_threads}
    for _ in range(rounds):
        for threads, tracker in tracker_by_threads.items():
            for frame in frames:
                start = time.perf_counter()
                tracker(frame)
                times[threads].append(time.perf_counter() - start)
    return times


def main() -> None:
    from cathtrack.cli.predict import default_threads
    from cathtrack.data.synth import preset, render_sequence
    from cathtrack.tracker import Tracker

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model (default: the shipped one)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compete", type=int, default=0, help="extra busy processes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    cores = len(os.sched_getaffinity(0))
    chosen = default_threads()
    load_before = os.getloadavg()[0]
    frames = [
        np.rint(s.image * 255).astype(np.uint8)
        for s in render_sequence(preset("clinical", size=args.size), 0, args.frames)
    ]
    trackers = {t: Tracker(args.model, device="cpu", threads=t) for t in sorted({1, cores})}
    for tracker in trackers.values():
        tracker(frames[0])  # warm-up: first-call allocations

    stop = multiprocessing.Event()
    jobs = [multiprocessing.Process(target=_busy, args=(stop,)) for _ in range(args.compete)]
    for job in jobs:
        job.start()
    try:
        time.sleep(1.0 if jobs else 0.0)
        times = measure(trackers, frames, args.rounds)
    finally:
        stop.set()
        for job in jobs:
            job.join()
    load_after = os.getloadavg()[0]

    medians = {t: float(np.median(v)) for t, v in times.items()}
    print(f"cores {cores}, extra busy processes {args.compete}, load average before "
          f"{load_before:.2f} after {load_after:.2f}; predict's default now: {chosen} thread(s)")  # fmt: skip
    for threads, median in medians.items():
        print(f"threads={threads}: median {1e3 * median:.1f} ms/frame, {1 / median:.1f} frames/s")
    if cores > 1:
        ratio = medians[cores] / medians[1]
        print(f"ratio (threads={cores} time / threads=1 time): {ratio:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "cores": cores,
            "compete": args.compete,
            "load_before": load_before,
            "load_after": load_after,
            "default_threads": chosen,
            "median_ms": {str(t): 1e3 * m for t, m in medians.items()},
            "size": args.size,
            "frames": args.frames,
            "rounds": args.rounds,
        }
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
