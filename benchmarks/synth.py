"""Throughput of the synthetic fluoroscopy engine: frames/s on one core, per preset and size.

    PYTHONPATH=python python benchmarks/synth.py [--frames 200] [--preset clinical --preset real]

Single process, OpenCV limited to one thread, CPU time (so other load on the machine does not
count). Writes nothing. The target is >= 100 frames/s per core at 256 x 256, enough to feed
a GPU from a few data-loader workers.
"""

from __future__ import annotations

import argparse
import time

import cv2

from cathtrack.data.synth import PRESETS, preset, render

SIZES = (256, 512)


def frames_per_second(preset_name: str, size: int, n_frames: int) -> float:
    config = preset(preset_name, size=size)
    render(config, 0)  # warm-up: kernel and LUT caches
    start = time.process_time()
    for seed in range(1, n_frames + 1):
        render(config, seed)
    return n_frames / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per measurement")
    parser.add_argument(
        "--preset",
        action="append",
        choices=sorted(PRESETS),
        help="preset to measure (repeatable; default: all)",
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"{'preset':<10}" + "".join(f"{f'{s}x{s} fps':>14}" for s in SIZES))
    for name in args.preset or PRESETS:
        rates = [frames_per_second(name, size, args.frames) for size in SIZES]
        print(f"{name:<10}" + "".join(f"{rate:>14.1f}" for rate in rates))


if __name__ == "__main__":
    main()
