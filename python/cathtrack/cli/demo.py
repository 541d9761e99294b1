"""`cathtrack demo`: the post-processing chain end to end on a generated fluoroscopy frame.

Until the trained model and runtime exist, the network's two outputs are stood in for by what
a good network would produce from the frame's ground truth: the catheter mask, and a heatmap of
Gaussian blobs at the electrode centres plus noise. The demo runs the real native chain on them
(peaks -> thinning -> centerlines -> electrode assignment -> type) and scores the result against
the ground truth.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "run the post-processing chain on a generated fluoroscopy frame and write pictures"
EXAMPLES = """  cathtrack demo
  cathtrack demo --out demo_out --seed 3 --preset hard --size 512"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    parser.add_argument("--preset", default="clinical", help="easy | clinical | hard")
    parser.add_argument("--size", type=int, default=512, help="frame side in pixels")


def _stand_in_heatmap(shape, centres, rng, sigma: float):
    import numpy as np

    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    heat = rng.uniform(0.0, 0.08, shape).astype(np.float32)
    for x, y in centres:
        np.maximum(heat, np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2)), out=heat)
    return heat


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from cathtrack import postprocess as pp
    from cathtrack.cli import CliError
    from cathtrack.data.synth import preset, render
    from cathtrack.viz import draw_overlay

    if args.size < 64 or args.size % 32:
        raise CliError(f"--size must be a multiple of 32 and >= 64, got {args.size}")
    try:
        config = preset(args.preset, size=args.size)
    except ValueError as error:
        raise CliError(str(error)) from error
    args.out.mkdir(parents=True, exist_ok=True)
    sample = render(config, args.seed)
    rng = np.random.default_rng(args.seed)
    heatmap = _stand_in_heatmap(sample.mask.shape, sample.electrodes, rng, sigma=args.size / 256)

    timings = {}
    start = time.perf_counter()
    xy, scores = pp.find_peaks(heatmap, threshold=0.3, max_peaks=128)
    timings["find_peaks"] = time.perf_counter()
    skeleton = pp.thin(sample.mask)
    timings["thin"] = time.perf_counter()
    lines = pp.trace_centerlines(skeleton, min_length=10 * args.size / 256)
    timings["trace_centerlines"] = time.perf_counter()
    groups = pp.assign_electrodes(lines, xy, max_distance=4.0 * args.size / 256)
    timings["assign_electrodes"] = time.perf_counter()
    types = [
        pp.classify_catheter(xy[group]) if len(group) >= 2 else ("unknown", 0.0) for group in groups
    ]
    timings["classify_catheter"] = time.perf_counter()
    stage_ms, previous = {}, start
    for stage, stamp in timings.items():
        stage_ms[stage] = round((stamp - previous) * 1e3, 3)
        previous = stamp

    # Accuracy against the ground truth: electrodes matched within 2 px.
    truth = sample.electrodes
    if len(truth) and len(xy):
        distance = np.linalg.norm(xy[:, None] - truth[None], axis=2)
        matched = distance.min(axis=1) <= 2.0
        recall = float(np.mean(distance.min(axis=0) <= 2.0))
        error_px = float(np.mean(distance.min(axis=1)[matched])) if matched.any() else float("nan")
    else:
        matched, recall, error_px = np.zeros(len(xy), bool), 0.0, float("nan")
    precision = float(np.mean(matched)) if len(xy) else 0.0
    true_types = sorted({c.type for c in sample.catheters if c.target})
    found_types = sorted({t for t, _ in types if t != "unknown"})

    labels = [f"{t} {s:.2f}" if t != "unknown" else "" for t, s in types]
    scale = max(1, 768 // args.size)
    panels = [
        draw_overlay(sample.image, scale=scale),
        draw_overlay(sample.image, sample.mask, sample.electrodes, scale=scale),
        draw_overlay(sample.image, skeleton, xy, lines, labels, scale=scale),
    ]
    for panel, title in zip(panels, ("frame", "ground truth", "post-processing"), strict=True):
        cv2.putText(
            panel, title, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA
        )
    picture = args.out / "postprocess.png"
    cv2.imwrite(str(picture), np.concatenate(panels, axis=1))
    summary = {
        "seed": args.seed,
        "preset": args.preset,
        "size": args.size,
        "electrodes_true": int(len(truth)),
        "electrodes_found": int(len(xy)),
        "precision_2px": round(precision, 4),
        "recall_2px": round(recall, 4),
        "mean_error_px": round(error_px, 4),
        "catheter_types_true": true_types,
        "catheter_types_found": found_types,
        "centerlines": len(lines),
        "stage_ms": stage_ms,
    }
    (args.out / "postprocess.json").write_text(json.dumps(summary, indent=2))
    print("network outputs stood in by ground truth + noise (the trained model comes later)")
    for key, value in summary.items():
        print(f"  {key:<22} {value}")
    print(f"wrote {picture} and {args.out / 'postprocess.json'}")
    return 0
