"""Post-processing speed: cathtrack's native core against scikit-image and SciPy, in one process.

    python benchmarks/postprocess.py [--repeats 15] [--json benchmarks/results/postprocess.json]

Times `thin` against `skimage.morphology.thin` and `find_peaks` against a SciPy pipeline that
computes the same result (3x3 maximum filter NMS, threshold, sort, top-K, log-parabola
sub-pixel fit), on 256x256 and 1024x1024 inputs that look like the network's outputs (a thick
catheter mask; a heatmap of Gaussian electrode blobs with background noise). Everything runs on
one thread, interleaved, and the median of the repeats is reported with the speed-up ratio.
Both sides' outputs are checked equal before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402
from skimage.morphology import thin as skimage_thin  # noqa: E402

from cathtrack import postprocess as pp  # noqa: E402

cv2.setNumThreads(1)


def catheter_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Four thick smooth curves, as a thresholded segmentation of catheters (~2 % of the image)."""
    mask = np.zeros((size, size), np.uint8)
    scale = size / 256
    for _ in range(4):
        t = np.linspace(0, 1, 300)
        x = size * (rng.uniform(0.2, 0.8) + rng.uniform(-0.25, 0.25) * np.sin(np.pi * t))
        y = size - 1 - t * rng.uniform(0.5, 0.9) * size
        points = np.round(np.stack([x, y], 1) * 16).astype(np.int32)
        cv2.polylines(mask, [points], False, 1, max(2, round(3 * scale)), cv2.LINE_8, 4)
    return mask


def electrode_heatmap(size: int, rng: np.random.Generator) -> np.ndarray:
    """40 Gaussian electrode blobs (sigma 1 px at 256) on a low noisy background."""
    rows, cols = np.mgrid[:size, :size].astype(np.float32)
    heat = rng.uniform(0, 0.05, (size, size)).astype(np.float32)
    sigma = size / 256
    for x, y in rng.uniform(8, size - 8, (40, 2)):
        patch = np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2))
        np.maximum(heat, patch * rng.uniform(0.5, 1.0), out=heat)
    return heat


def scipy_find_peaks(heat: np.ndarray, threshold: float, max_peaks: int):
    local_max = ndi.maximum_filter(heat, size=3, mode="constant", cval=-np.inf)
    rows, cols = np.nonzero((heat == local_max) & (heat >= threshold))
    order = np.lexsort((rows * heat.shape[1] + cols, -heat[rows, cols]))[:max_peaks]
    rows, cols = rows[order], cols[order]
    padded = np.pad(heat, 1, mode="edge")
    logs = np.log(np.clip(padded, 1e-38, None))

    def offset(before, centre, after):
        curvature = before - 2 * centre + after
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(curvature < 0, 0.5 * (before - after) / curvature, 0.0)
        return np.clip(value, -0.5, 0.5)

    r, c = rows + 1, cols + 1
    dx = offset(logs[r, c - 1], logs[r, c], logs[r, c + 1])
    dy = offset(logs[r - 1, c], logs[r, c], logs[r + 1, c])
    dx[(cols == 0) | (cols == heat.shape[1] - 1)] = 0
    dy[(rows == 0) | (rows == heat.shape[0] - 1)] = 0
    xy = np.stack([cols + dx, rows + dy], 1).astype(np.float32)
    return xy, heat[rows, cols]


def median_ms(function, argument, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/postprocess.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for size in (256, 1024):
        mask = catheter_mask(size, rng)
        heat = electrode_heatmap(size, rng)
        # Same answers first, then time.
        assert np.array_equal(pp.thin(mask), skimage_thin(mask).astype(np.uint8))
        ours_xy, ours_scores = pp.find_peaks(heat, 0.3, 128)
        ref_xy, ref_scores = scipy_find_peaks(heat, 0.3, 128)
        assert np.array_equal(ours_scores, ref_scores)
        assert np.allclose(ours_xy, ref_xy, atol=1e-4)
        cases = [
            ("thin", "skimage.morphology.thin", mask, pp.thin, skimage_thin),
            (
                "find_peaks",
                "scipy maximum_filter pipeline",
                heat,
                lambda h: pp.find_peaks(h, 0.3, 128),
                lambda h: scipy_find_peaks(h, 0.3, 128),
            ),
        ]
        for name, reference_name, data, ours, reference in cases:
            ours_ms, reference_ms = [], []
            for _ in range(3):  # interleave to spread machine noise over both sides
                ours_ms.append(median_ms(ours, data, args.repeats))
                reference_ms.append(median_ms(reference, data, args.repeats))
            row = {
                "op": name,
                "size": size,
                "cathtrack_ms": float(np.median(ours_ms)),
                "reference": reference_name,
                "reference_ms": float(np.median(reference_ms)),
            }
            row["speedup"] = row["reference_ms"] / row["cathtrack_ms"]
            rows.append(row)
    print(
        f"{'op':<11} {'size':>9} {'cathtrack ms':>13} {'reference ms':>13} {'speed-up':>9}  reference"
    )
    for r in rows:
        print(
            f"{r['op']:<11} {r['size']:>4}x{r['size']:<4} {r['cathtrack_ms']:>13.3f} "
            f"{r['reference_ms']:>13.3f} {r['speedup']:>8.1f}x  {r['reference']}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
    }
    args.json.write_text(json.dumps({"machine": machine, "threads": 1, "results": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
