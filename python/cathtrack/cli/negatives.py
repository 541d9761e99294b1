"""`cathtrack negatives`: what a model marks on real frames that hold no electrode catheter.

Contrast-filled vessels, guidewires and bones are the false positives that matter in the clinic:
a tracker that paints a coronary tree as a catheter sends a robot the wrong pose. This verb runs
the tracker on a folder of real frames whose contrast-filled vessels are masked (image/mask pairs,
e.g. ``data/angiograms/testing``: coronary angiograms with vessel masks and no electrode
catheter) and reports, per frame and over the folder:

- ``vessel_marked``: the share of vessel pixels the mask marks as catheter (per frame, and
  ``vessel_marked_pooled`` over all the folder's vessel pixels together);
- ``frame_marked``: the share of the frame marked as catheter;
- ``catheters`` and ``electrodes``: how many the tracker reports (all of them false, unless a
  frame shows a catheter: then the catheter may be right, the electrodes are still false).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cathtrack.settings import DecodeSettings

HELP = "false positives on real frames without electrode catheters (vessel masks given)"
EXAMPLES = """  cathtrack negatives data/angiograms/testing
  cathtrack negatives data/angiograms/testing --model runs/real/checkpoints/best --json out.json
  cathtrack negatives my_frames --images-dir images --masks-dir vessels --mask-suffix "" \\
      --overlays overlays

The folder holds image/mask pairs (same stem; masks non-zero on contrast-filled vessels).
exit status: 0 on success, 1 when some image/mask pair could not be read (one line each; the
rest are scored), 2 on bad arguments or an unreadable folder."""

# Figures per frame; the summary gives their mean, median and 90th percentile.
FRAME_KEYS = ("vessel_marked", "frame_marked", "catheters", "electrodes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="folder of image/mask pairs")
    parser.add_argument("--images-dir", default=".", help="images, relative to FOLDER (default .)")
    parser.add_argument("--masks-dir", default=".", help="vessel masks, relative to FOLDER")
    parser.add_argument(
        "--mask-suffix", default="_gt", help="stem suffix of the masks (default _gt: N_gt.png)"
    )
    parser.add_argument(
        "--model", type=Path, help="checkpoint or exported .pt2/.ts (default: the shipped model)"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--backend", default="native", help="native | python (default native)")
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=DecodeSettings.score_threshold,
        help=f"minimum electrode score (default {DecodeSettings.score_threshold})",
    )
    parser.add_argument("--limit", type=int, help="only the first N frames")
    parser.add_argument("--json", type=Path, help="write the summary and per-frame figures here")
    parser.add_argument("--overlays", type=Path, help="write an overlay PNG per frame here")


def frame_figures(result, vessels) -> dict[str, float]:
    """The figures of one frame from a tracker ``Result`` and its (H, W) vessel mask."""
    import numpy as np

    marked = result.binary
    vessels = np.asarray(vessels) > 0
    return {
        "vessel_pixels": float(vessels.sum()),
        "vessel_marked_pixels": float((marked & vessels).sum()),
        "vessel_marked": float((marked & vessels).sum() / max(int(vessels.sum()), 1)),
        "frame_marked": float(marked.mean()),
        "catheters": float(len(result.catheters)),
        "electrodes": float(len(result.electrodes)),
    }


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean, median and 90th percentile of every figure, and the share of frames with a false
    electrode."""
    import numpy as np

    summary: dict[str, float] = {"frames": float(len(rows))}
    for key in FRAME_KEYS:
        values = np.array([row[key] for row in rows], np.float64)
        summary[f"{key}_mean"] = float(values.mean())
        summary[f"{key}_median"] = float(np.median(values))
        summary[f"{key}_p90"] = float(np.percentile(values, 90))
    summary["vessel_marked_pooled"] = float(
        sum(row["vessel_marked_pixels"] for row in rows)
        / max(sum(row["vessel_pixels"] for row in rows), 1.0)
    )
    summary["frames_with_electrodes"] = float(np.mean([row["electrodes"] > 0 for row in rows]))
    return summary


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from cathtrack.cli import CliError
    from cathtrack.data.folders import FolderReader
    from cathtrack.tracker import Tracker, draw

    if args.limit is not None and args.limit < 1:
        raise CliError(f"--limit must be >= 1, got {args.limit}")
    try:
        reader = FolderReader(args.folder, args.images_dir, args.masks_dir, args.mask_suffix)
        tracker = Tracker(
            args.model,
            device=args.device,
            backend=args.backend,
            score_threshold=args.score_threshold,
        )
    except (FileNotFoundError, ValueError) as error:
        raise CliError(str(error)) from error
    count = len(reader) if args.limit is None else min(args.limit, len(reader))
    if count == 0:
        raise CliError(f"{args.folder}: no image/mask pairs found")
    if args.overlays is not None:
        args.overlays.mkdir(parents=True, exist_ok=True)

    rows, failed = [], 0
    for index in tqdm(range(count), desc="negatives", unit="frame"):
        try:
            sample = reader[index]
        except (OSError, ValueError) as error:  # one unreadable pair: say so, score the rest
            print(f"cathtrack negatives: {error}", file=sys.stderr)
            failed += 1
            continue
        result = tracker(sample.image)
        row = {"image": reader.pairs[index][0].name, **frame_figures(result, sample.mask)}
        rows.append(row)
        if args.overlays is not None:
            overlay = draw(sample.image, result, scale=2)
            cv2.imwrite(str(args.overlays / f"{Path(row['image']).stem}.png"), overlay)
    if not rows:
        raise CliError(f"{args.folder}: no frame could be read")
    summary = summarise(rows)
    summary_text = (
        f"{int(summary['frames'])} frames of {args.folder}\n"
        f"vessel pixels marked catheter: {100 * summary['vessel_marked_pooled']:.2f} % of all; "
        f"per frame mean {100 * summary['vessel_marked_mean']:.2f} %, "
        f"median {100 * summary['vessel_marked_median']:.2f} %, "
        f"p90 {100 * summary['vessel_marked_p90']:.2f} %\n"
        f"frame marked catheter: mean {100 * summary['frame_marked_mean']:.2f} %, "
        f"median {100 * summary['frame_marked_median']:.2f} %, "
        f"p90 {100 * summary['frame_marked_p90']:.2f} %\n"
        f"catheters per frame: mean {summary['catheters_mean']:.2f}\n"
        f"electrodes per frame: mean {summary['electrodes_mean']:.2f} "
        f"({100 * summary['frames_with_electrodes']:.0f} % of frames have at least one)"
    )
    print(summary_text)
    if args.json is not None:
        document = {
            "folder": str(args.folder),
            "model": str(tracker.model_path),
            "settings": tracker.settings.as_dict(),
            "summary": summary,
            "frames": rows,
        }
        from cathtrack.checkpoint import write_text_atomic

        write_text_atomic(args.json, json.dumps(document, indent=2) + "\n")
    return 1 if failed else 0
