"""The detection ceiling of each heatmap stride: what a perfect network would find.

    python benchmarks/ceiling.py [--preset clinical] [--size 256] [--frames 100] [--seed 0]
                                 [--radius 2] [--json benchmarks/results/ceiling.json]

For every stride of :data:`cathtrack.coordinates.HEATMAP_STRIDES`, the training targets of
synthetic frames (``cathtrack.data.synth.render(preset(PRESET, size=SIZE), seed)`` for seeds
SEED .. SEED + FRAMES - 1) are taken as the network's outputs (``train.targets.collate_batch`` at
that stride, then ``train.targets.target_outputs``: the Gaussian heatmap target, the true box
sizes at the centre cells, the true mask as logits), decoded by the reference pipeline
(``cathtrack.pipeline.decode`` with the default ``DecodeSettings``, no catheter tracing) and
matched to the true electrodes within RADIUS px (``cathtrack.metrics.match_electrodes``, greedy
by score, as ``cathtrack eval``). Recall below 1 is what the stride itself loses: electrodes
whose centre cells are the same or 8-neighbours give one peak (docs/training.md, "Heatmap
targets at any stride"). Prints the table and writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cathtrack.coordinates import HEATMAP_STRIDES
from cathtrack.data.synth import PRESETS, preset, render
from cathtrack.metrics import match_electrodes
from cathtrack.pipeline import decode
from cathtrack.settings import DecodeSettings
from cathtrack.train.targets import collate_batch, target_outputs


def ceiling(samples: list, stride: int, radius: float, settings: DecodeSettings) -> dict:
    """Recall, precision, F1 and MAE of the decoded targets of ``samples`` at ``stride``."""
    matched = predicted = true = 0
    errors: list[float] = []
    for sample in samples:  # one at a time: a batch pads every frame to the most electrodes
        segmentation, heatmap, size = target_outputs(collate_batch([sample], stride=stride))
        prediction = decode(segmentation[0], heatmap[0], size[0], settings, catheters=False)
        pairs = match_electrodes(
            prediction.electrodes, prediction.scores, sample.electrodes, radius
        )
        matched += len(pairs)
        predicted += len(prediction.electrodes)
        true += len(sample.electrodes)
        errors += [distance for _, _, distance in pairs]
    recall = matched / true if true else float("nan")
    precision = matched / predicted if predicted else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    return {
        "stride": stride,
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "mae_px": float(np.mean(errors)) if errors else float("nan"),
        "electrodes": true,
        "predicted": predicted,
        "matched": matched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="clinical", choices=sorted(PRESETS))
    parser.add_argument("--size", type=int, default=256, help="model input size S (S x S)")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seed of the first frame")
    parser.add_argument("--radius", type=float, default=2.0, help="matching distance, px")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/ceiling.json"))
    args = parser.parse_args()

    started = time.perf_counter()
    config = preset(args.preset, size=args.size)
    samples = [render(config, seed) for seed in range(args.seed, args.seed + args.frames)]
    settings = DecodeSettings()
    rows = [ceiling(samples, stride, args.radius, settings) for stride in HEATMAP_STRIDES]

    print(
        f"{args.frames} '{args.preset}' frames at {args.size}x{args.size} (seeds {args.seed}.."
        f"{args.seed + args.frames - 1}), perfect targets, matched at {args.radius:g} px"
    )
    print(
        f"{'stride':>6} {'recall':>8} {'precision':>10} {'F1':>7} {'MAE px':>7} {'electrodes':>11}"
    )
    for row in rows:
        print(
            f"{row['stride']:>6} {row['recall']:>8.3f} {row['precision']:>10.3f} "
            f"{row['f1']:>7.3f} {row['mae_px']:>7.3f} {row['electrodes']:>11}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "preset": args.preset,
                "size": args.size,
                "frames": args.frames,
                "seed": args.seed,
                "radius": args.radius,
                "score_threshold": settings.score_threshold,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
