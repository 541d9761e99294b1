"""Per-frame cost of the temporal tracker (cathtrack.tracking.SequenceTracker).

    python benchmarks/tracking.py [--frames 300] [--catheters 5] [--electrodes 8]

A scene of C straight catheters with E electrodes each (5 x 8 = 40 by default: a busy EP study)
moves with a cardiac (1 Hz) and respiratory (0.25 Hz) motion at 15 frames/s; detections get
0.5 px noise, 10 % of them are dropped and 3 false ones are added per frame. Prints the median
and p99 time of `SequenceTracker.update` after 20 warm-up frames, and the same for the
per-frame post-processing it follows (`cathtrack.postprocess` on a 256x256 mask and heatmap), so
the two can be compared on the same machine.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from cathtrack import postprocess as pp
from cathtrack.tracking import CatheterDetection, SequenceTracker


def scene(frame: int, catheters: int, electrodes: int, fps: float = 15.0) -> list[np.ndarray]:
    t = frame / fps
    motion = np.array([3.0 * np.sin(2 * np.pi * t), 4.0 * np.sin(2 * np.pi * 0.25 * t)])
    lines = []
    for c in range(catheters):
        start = np.array([30.0 + 40 * c, 230.0])
        direction = np.array([np.sin(0.3 * c - 0.6), -1.0])
        direction /= np.linalg.norm(direction)
        lines.append(start + motion + np.outer(np.linspace(0, 160, 40), direction))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--catheters", type=int, default=5)
    parser.add_argument("--electrodes", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    tracker = SequenceTracker()
    tracker_ms, postprocess_ms = [], []
    for frame in range(args.frames + 20):
        lines = scene(frame, args.catheters, args.electrodes)
        points, detections = [], []
        for line in lines:
            tip_first = line[::-1]
            chosen = tip_first[: 4 * args.electrodes : 4] + rng.normal(0, 0.5, (args.electrodes, 2))
            keep = rng.random(args.electrodes) > 0.1
            offset = sum(len(p) for p in points)
            indices = np.arange(offset, offset + int(keep.sum()), dtype=np.int64)
            detections.append(CatheterDetection(tip_first, "cs_decapolar", indices))
            points.append(chosen[keep])
        electrodes = np.concatenate(points + [rng.uniform(0, 256, (3, 2))])
        start = time.perf_counter()
        tracker.update(electrodes, detections)
        elapsed = time.perf_counter() - start
        # the per-frame post-processing the tracker runs after, for scale
        mask = np.zeros((256, 256), np.uint8)
        for line in lines:
            cv2.polylines(mask, [np.round(line).astype(np.int32)], False, 1, 3)
        heat = np.zeros((64, 64), np.float32)
        start_post = time.perf_counter()
        pp.find_peaks(heat)
        pp.assign_electrodes(pp.trace_centerlines(pp.thin(mask)), electrodes)
        post = time.perf_counter() - start_post
        if frame >= 20:
            tracker_ms.append(1e3 * elapsed)
            postprocess_ms.append(1e3 * post)
    tracker_ms, postprocess_ms = np.array(tracker_ms), np.array(postprocess_ms)
    n = args.catheters * args.electrodes
    print(f"{args.catheters} catheters x {args.electrodes} electrodes ({n}), {args.frames} frames")
    for name, values in (("tracker update", tracker_ms), ("post-processing", postprocess_ms)):
        print(
            f"{name:<16} median {np.median(values):.3f} ms   p99 {np.percentile(values, 99):.3f} ms"
        )
    print(f"tracker / post-processing: {np.median(tracker_ms) / np.median(postprocess_ms):.2f}x")


if __name__ == "__main__":
    main()
