"""``cathtrack-train``: train CathNet from a YAML config (docs/training.md)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from cathtrack import __version__

EXAMPLES = """examples:
  cathtrack-train --config configs/paper.yaml
  cathtrack-train --config configs/cpu_small.yaml --out runs/small
  cathtrack-train --config configs/paper.yaml optimizer.lr=3e-4 model.backbone=resnet18 steps=2000 epochs=null
  cathtrack-train --config configs/dtp.yaml prioritization.params.gamma=1.0 --out runs/dtp_g1
  cathtrack-train --resume runs/small                    # continue where it stopped
  cathtrack-train --resume runs/small steps=8000         # ... and train longer
  torchrun --nproc_per_node 4 -m cathtrack.train.cli --config configs/paper.yaml --out runs/ddp

Overrides are dotted keys of the config (see configs/paper.yaml for all of them); values are
converted to the key's type, null clears an optional key, lists use YAML: optimizer.betas=[0.9,0.99].
The run directory gets config.yaml, train_log.csv, val_log.csv, tensorboard/, plots/*.png,
checkpoints/{last,best}/ and summary.json."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cathtrack-train",
        description="Train the catheter electrode detection + segmentation network (MDRP).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--config", type=Path, help="YAML training config")
    parser.add_argument(
        "--out", type=Path, help="run directory (default: runs/<config name>-<date-time>)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue a run (its directory or a checkpoint directory inside it)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--version", action="version", version=f"cathtrack-train {__version__}")
    return parser


def _fail(message: str) -> int:
    print(f"cathtrack-train: error: {message}", file=sys.stderr)
    return 2


def _check_data(config) -> int | None:
    """``cathtrack data check`` of every dataset on disk the run reads, before any step: the
    exit code and the same lines when one is not usable, None when all are."""
    from cathtrack.data.check import check_dataset

    sources = [config.data.train, config.data.val] + [s.train for s in config.stages if s.train]
    checked = set()
    for source in sources:
        key = (source.kind, source.path, source.images_dir, source.masks_dir, source.mask_suffix)
        if source.kind not in ("coco", "folder") or key in checked:
            continue
        checked.add(key)
        check = check_dataset(
            source.path,
            source.kind,
            images_dir=source.images_dir,
            masks_dir=source.masks_dir,
            mask_suffix=source.mask_suffix,
        )
        if not check.usable:
            for line in check.other_lines():
                print(line, file=sys.stderr)
            return _fail(check.refusal())
        if check.warnings:
            print(
                f"cathtrack-train: {check.path}: {len(check.warnings)} warnings "
                f"('cathtrack data check {check.path}' lists them)",
                file=sys.stderr,
            )
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported here so that --help and argument errors answer without loading torch.
    from cathtrack.train.checkpoints import CHECKPOINTS, checkpoint_dir, committed, run_dir_of
    from cathtrack.train.config import ConfigError, load_config
    from cathtrack.train.distributed import init_distributed
    from cathtrack.train.trainer import Trainer

    if args.config is None and args.resume is None:
        return _fail("give --config FILE (or --resume RUN_DIR)")
    try:
        if args.resume is not None:
            checkpoint = checkpoint_dir(args.resume)
            run_dir = run_dir_of(checkpoint)
            if args.out is not None and args.out.resolve() != run_dir.resolve():
                return _fail("--resume continues in its own run directory; leave out --out")
            if args.config is not None:
                config = load_config(args.config, args.overrides)
            else:
                saved = yaml.safe_load((run_dir / "config.yaml").read_text())
                config = load_config(None, args.overrides, base=saved)
        else:
            config = load_config(args.config, args.overrides)
            checkpoint = None
            run_dir = (
                args.out or Path("runs") / f"{args.config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
            )
            # A run with a checkpoint to resume; what a run killed before its first commit
            # left is cleaned up by the fresh start (cathtrack.train.checkpoints.recover).
            if committed(run_dir / CHECKPOINTS, "last") is not None:
                return _fail(
                    f"{run_dir} already holds a run; use --resume {run_dir} or another --out"
                )
    except (ConfigError, FileNotFoundError) as error:
        return _fail(str(error))
    refused = _check_data(config)
    if refused is not None:
        return refused

    distributed = init_distributed(config.device)
    if distributed.enabled and args.out is None and checkpoint is None:
        # Every process must write to the directory rank 0 named (its clock picked the time).
        import torch.distributed as dist

        shared = [str(run_dir)]
        dist.broadcast_object_list(shared, src=0)
        run_dir = Path(shared[0])
    try:  # setup errors (data paths, device, a checkpoint that does not fit) are bad input
        trainer = Trainer(config, run_dir, resume=checkpoint, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        return _fail(str(error).splitlines()[0])
    summary = trainer.fit()
    if distributed.is_main:
        best = summary.get("best_mean_kpi")
        best_text = "n/a" if best is None else f"{best:.4f} at step {summary['best_step']}"
        print(f"done: {summary['steps']} steps, best mean KPI {best_text}; run directory {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
