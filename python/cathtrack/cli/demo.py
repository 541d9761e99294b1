"""`cathtrack demo`: the shipped model tracking a generated fluoroscopy sequence, end to end.

A short synthetic sequence (heart beat and breathing) is rendered with its ground truth, tracked
frame by frame through the native engine (``cathtrack.Tracker()``), drawn, and scored against the
ground truth with :func:`cathtrack.metrics.evaluate`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

HELP = "track a generated fluoroscopy sequence with the shipped model; write overlays and scores"
EXAMPLES = """  cathtrack demo
  cathtrack demo --out demo_out --frames 60 --size 512 --seed 3 --preset hard
  cathtrack demo --threads 2          # both cores, when nothing else runs on them

overlay.mp4 is H.264 (plays in a browser) with the extra cathtrack[video], else mp4v with a
warning."""

STRIP_FRAMES = 6
# What a user should know about a shipped model before reading its scores.
MODEL_NOTES = {
    "cathtrack_resnet34": (
        "the shipped model is the paper's ResNet34 (electrode heatmap at stride 1) trained "
        "~2 h on a 2-core CPU on synthetic frames only: good electrodes, weak masks, far "
        "weaker than the paper's; see models/MODEL_CARD.md"
    ),
    "cathtrack_lite": (
        "the shipped model is a lite model (ResNet18 x0.5) trained ~24 min on one CPU core on "
        "synthetic frames, far from the paper's ResNet34; see models/MODEL_CARD.md"
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--frames", type=int, default=30, help="sequence length (default 30)")
    parser.add_argument("--size", type=int, default=256, help="frame side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    parser.add_argument("--preset", default="clinical", help="easy | clinical | hard")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: the cores not busy with other jobs, at least 1)",
    )


def prediction_from_result(result):
    """The metric-relevant part of a tracking Result (the binary mask, as the JSON file holds)."""
    import numpy as np

    from cathtrack.prediction import Prediction

    return Prediction(
        electrodes=result.electrodes,
        scores=result.scores,
        sizes=result.sizes,
        mask=result.binary.astype(np.float32),
        catheters=[(c.type, c.electrodes) for c in result.catheters],
        centerlines=[c.centerline for c in result.catheters],
    )


def strip_indices(frame_count: int) -> list[int]:
    """Up to STRIP_FRAMES frame indices spread evenly over the sequence."""
    import numpy as np

    count = min(STRIP_FRAMES, frame_count)
    return sorted({int(i) for i in np.linspace(0, frame_count - 1, count).round()})


def _write_strip(path: Path, samples, results, scale: int) -> None:
    import cv2
    import numpy as np

    from cathtrack.tracker import draw
    from cathtrack.viz import draw_overlay

    truth_row, predicted_row = [], []
    for k in strip_indices(len(samples)):
        sample = samples[k]
        target = [c for c in sample.catheters if c.target]
        truth_row.append(
            draw_overlay(
                sample.image,
                sample.mask,
                sample.electrodes,
                [c.centerline for c in target],
                [c.type for c in target],
                groups=[np.flatnonzero(sample.electrode_catheter == c.id) for c in target],
                tags=[str(k) for k in range(len(target))],
                scale=scale,
            )
        )
        predicted_row.append(draw(sample.image, results[k], scale=scale))
    for row, title in ((truth_row, "ground truth"), (predicted_row, "prediction")):
        _title(row[0], title)
    picture = np.concatenate(
        [np.concatenate(truth_row, axis=1), np.concatenate(predicted_row, axis=1)], axis=0
    )
    cv2.imwrite(str(path), picture)


def _title(image, text: str) -> None:
    """``text`` on a dark plate in the bottom-left corner (the legend takes a top corner)."""
    import cv2

    from cathtrack.viz import DARK, FONT, WHITE, Sizes

    sizes = Sizes.for_side(min(image.shape[:2]))
    width, height, depth = sizes.text_box(text)
    bottom = image.shape[0] - sizes.padding
    top = bottom - height - depth - 2 * sizes.padding
    cv2.rectangle(image, (0, top), (width + 2 * sizes.padding, bottom), DARK, -1)
    cv2.putText(image, text, (sizes.padding, bottom - sizes.padding - depth), FONT,
                sizes.font_scale, WHITE, sizes.text_thickness, cv2.LINE_AA)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from cathtrack.cli import CliError
    from cathtrack.cli.predict import OneLineWarnings, default_threads
    from cathtrack.data.synth import preset, render_sequence
    from cathtrack.metrics import evaluate
    from cathtrack.tracker import Tracker, default_model_path
    from cathtrack.video import Mp4Writer

    if args.size < 64 or args.size % 32:
        raise CliError(f"--size must be a multiple of 32 and >= 64, got {args.size}")
    if args.frames < 1:
        raise CliError(f"--frames must be >= 1, got {args.frames}")
    if args.threads is not None and args.threads < 1:
        raise CliError(f"--threads must be >= 1, got {args.threads}")
    try:
        config = preset(args.preset, size=args.size)
    except ValueError as error:
        raise CliError(str(error)) from error
    args.out.mkdir(parents=True, exist_ok=True)

    samples = render_sequence(config, args.seed, args.frames)
    model_path = default_model_path()
    print(f"model: {model_path} (the first run exports it for this machine, ~20 s)")
    threads = default_threads() if args.threads is None else args.threads
    tracker = Tracker(threads=threads)

    scale = max(1, 512 // args.size)  # small frames stay readable
    video_path = args.out / "overlay.mp4"
    height, width = samples[0].image.shape
    results = []
    tracking_seconds = 0.0
    with (
        OneLineWarnings("demo"),
        Mp4Writer(video_path, (width * scale, height * scale), config.fps) as writer,
        open(args.out / "results.jsonl", "w") as lines,
    ):
        for k, sample in enumerate(tqdm(samples, desc="demo", unit="frame")):
            start = time.perf_counter()
            result = tracker(sample.image)
            tracking_seconds += time.perf_counter() - start
            results.append(result)
            writer.write(result.plot(scale=scale))
            record = {"frame": k, "name": sample.name, **result.to_dict(include_mask=True)}
            lines.write(json.dumps(record) + "\n")
    _write_strip(args.out / "strip.png", samples, results, scale)

    metrics = evaluate(samples, [prediction_from_result(r) for r in results])
    engine_ms = float(np.mean([r.timings["total"] for r in results]))
    note = MODEL_NOTES.get(model_path.stem)
    if note:
        print(f"note: {note}")
    print(f"frames: {len(samples)} at {args.size}x{args.size} ({args.preset}, seed {args.seed})")
    print(f"threads: {threads} (--threads; the default leaves cores busy with other jobs alone)")
    print(f"frames/s end to end (wall): {len(samples) / tracking_seconds:.1f}")
    print(f"frames/s end to end (engine total, mean {engine_ms:.2f} ms): {1e3 / engine_ms:.1f}")
    print(f"F1 @2px: {metrics['f1_2px']:.4f}")
    print(f"MAE px: {metrics['mae_px']:.4f}")
    print(f"mean J: {metrics['mean_j']:.4f}")
    print(f"type accuracy: {metrics['type_accuracy']:.4f}")
    print(f"wrote {video_path}, {args.out / 'strip.png'}, {args.out / 'results.jsonl'}")
    return 0
