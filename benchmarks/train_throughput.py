"""Training throughput on this machine: the old CPU recipe against the new one, in one process.

    python benchmarks/train_throughput.py [--config configs/cpu_resnet34.yaml] [--steps 12]
        [--json benchmarks/results/train_throughput.json] [KEY=VALUE ...]

Both rows train the same network on the same data (``--config`` plus overrides); they differ in
the levers only:

- ``before``: the old recipe: one torch thread, frames rendered in the training process every
  epoch, full 256x256 frames, the default memory layout (``threads=1 data.num_workers=0
  data.crop=null data.cache_frames=false channels_last=false``);
- ``after (crops)``: every core for torch, one loader process that renders ahead and keeps the
  rendered frames, random crops, channels-last (the config's own ``threads``, ``num_workers``,
  ``crop``, ``cache_frames``, ``channels_last``): the first ``crop_fraction`` of a run;
- ``after (full frames)``: the same with whole frames: the last steps of a run.

Each row runs the real training step (losses, MDRP, AdamW) through the trainer's own loader, so
the time includes waiting for data. A small fixed set of frames (``--frames``) is first loaded for
a full epoch without timing, so the cache is warm, as it is for all but the first epoch of a
run; then ``--steps`` steps are timed. ``after`` for a whole run weighs the two ``after`` rows by
``crop_fraction``. bfloat16 autocast (``cpu_bf16``) is used where the config asks for it and the
CPU has it; on a CPU without it the rows run in float32 and the JSON says so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BEFORE = ["threads=1", "data.num_workers=0", "data.crop=null", "data.cache_frames=false",
          "channels_last=false"]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python benchmarks/train_throughput.py --steps 12 --json out.json",
    )
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cpu_resnet34.yaml")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per row")
    parser.add_argument("--frames", type=int, default=64, help="size of the fixed training set")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("overrides", nargs="*", help="config overrides for every row")
    return parser.parse_args(argv)


def time_row(config_path: Path, overrides: list[str], steps: int, frames: int, crop: bool) -> dict:
    """Samples/s of ``steps`` training steps after one untimed epoch (see the module docstring)."""
    import torch

    from cathtrack.device import cpu_has_native_bfloat16
    from cathtrack.train.batches import StepBatches, dataset_length
    from cathtrack.train.config import load_config
    from cathtrack.train.trainer import Trainer

    # `threads: null` leaves torch's count as it is: start each row from every core, as a fresh
    # process would, so an earlier row's `threads=1` does not carry over.
    torch.set_num_threads(os.cpu_count() or 1)
    bf16 = ["cpu_bf16=false"] if not cpu_has_native_bfloat16() else []
    config = load_config(
        config_path, [f"data.train.length={frames}", "val_at_start=false", *bf16, *overrides]
    )
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, run_dir, progress=False)
        stage, dataset = trainer.stages[0], trainer.train_sets[0]
        batch = config.batch_size
        warm = frames // batch
        total = warm + steps
        crop_steps = total if crop and config.data.crop else 0
        sampler = StepBatches(dataset_length(dataset), batch, config.seed, 0, 0, total,
                              crop_steps=crop_steps)  # fmt: skip
        optimization = trainer._stage_optimizer(stage, total, dataset_length(dataset), 0)
        parameters = [p for p in trainer.network.parameters() if p.requires_grad]
        trainer.model.train()
        started = None
        for step, samples in enumerate(trainer._loader(dataset, sampler)):
            if step == warm:
                started = time.perf_counter()
            trainer._train_step(samples, step, sampler.epoch(step), optimization, parameters, None)
        seconds = time.perf_counter() - started
        side = samples["image"].shape[-1]
    return {
        "steps_per_second": steps / seconds,
        "samples_per_second": steps * batch / seconds,
        "side": int(side),
        "threads": torch.get_num_threads(),
        "num_workers": config.data.num_workers,
        "channels_last": config.channels_last,
        "cache_frames": config.data.cache_frames,
        "autocast": str(trainer.autocast_dtype) if trainer.autocast_dtype else "float32",
        "crop_fraction": config.data.crop_fraction,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT / "python"))
    rows = {
        "before": time_row(args.config, [*args.overrides, *BEFORE], args.steps, args.frames, False),
        "after (crops)": time_row(args.config, args.overrides, args.steps, args.frames, True),
        "after (full frames)": time_row(
            args.config, args.overrides, args.steps, args.frames, False
        ),
    }
    crop_share = rows["after (crops)"]["crop_fraction"] if rows["after (crops)"]["side"] < rows[
        "after (full frames)"]["side"] else 0.0  # fmt: skip
    # A run's average: the time per sample of each phase weighted by its share of the steps.
    per_sample = crop_share / rows["after (crops)"]["samples_per_second"] + (1 - crop_share) / rows[
        "after (full frames)"]["samples_per_second"]  # fmt: skip
    rows["after (whole run)"] = {"samples_per_second": 1 / per_sample}
    before = rows["before"]["samples_per_second"]
    print(f"{'row':22s} {'side':>5s} {'steps/s':>8s} {'samples/s':>10s} {'x before':>9s}")
    for name, row in rows.items():
        steps = row.get("steps_per_second")
        print(
            f"{name:22s} {row.get('side', ''):>5} "
            f"{'' if steps is None else f'{steps:.3f}':>8s} {row['samples_per_second']:10.2f} "
            f"{row['samples_per_second'] / before:9.2f}"
        )
    if args.json:
        result = {
            "config": str(
                args.config.relative_to(ROOT) if args.config.is_absolute() else args.config
            ),
            "overrides": args.overrides,
            "steps": args.steps,
            "machine": {"processor": platform.processor(), "cpus": os.cpu_count()},
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
