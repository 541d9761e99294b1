"""`cathtrack synth`: write a synthetic fluoroscopy dataset (COCO, docs/design.md 4.1) or a preview.

Frame i of the dataset is rendered from a seed derived from (--seed, i) and sequence k from
(--seed, k), so the output does not depend on the number of worker processes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "generate a synthetic EP fluoroscopy dataset (COCO) or a preview grid"
EXAMPLES = """  cathtrack synth --out data/synth --n 2000
  cathtrack synth --out data/synth_hard --n 500 --preset hard --size 512 --bits 16 --seed 7
  cathtrack synth --out data/video --n 0 --sequences 20 --frames 30
  cathtrack synth --out data/real_bg --n 1000 --backgrounds data/angiograms/training
  cathtrack synth --out data/real --n 2000 --preset real --backgrounds data/angiograms/training
  cathtrack synth --preview docs/synth_preview.png
  cathtrack synth --preview real.png --preset real --reference data/angiograms/training"""

_SINGLE, _SEQUENCE = 0, 1  # seed streams: single frames and sequences never share a seed
_PREVIEW_SCENES = 3  # scenes per preset in the preview grid
_COMPARISON_SCENES = 6  # synthetic frames beside the reference images
_COMPARISON_REFERENCES = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, help="dataset folder to write (images/, annotations.json)"
    )
    parser.add_argument(
        "--n", type=int, default=1000, help="number of single frames (default 1000)"
    )
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument(
        "--preset", default="clinical", help="easy | clinical | hard | real (default clinical)"
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset seed, >= 0 (default 0)")
    parser.add_argument(
        "--sequences", type=int, default=0, help="number of video sequences (default 0)"
    )
    parser.add_argument("--frames", type=int, default=30, help="frames per sequence (default 30)")
    parser.add_argument(
        "--backgrounds", type=Path, help="folder of real X-ray images used as anatomy"
    )
    parser.add_argument(
        "--bits", type=int, default=8, choices=(8, 16), help="PNG bit depth (default 8)"
    )
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    parser.add_argument(
        "--preview", type=Path, help="also write a PNG grid of each preset with labels drawn"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="with --preview: show 6 frames of --preset beside 3 real images of this folder "
        "(e.g. data/angiograms/training) instead of the grid of presets",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a dataset already in --out"
    )


def derive_seed(seed: int, stream: int, index: int) -> int:
    """Seed of item ``index`` of ``stream`` (single frames / sequences) of a dataset ``seed``."""
    import numpy as np

    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1, np.uint64)[0])


def _render_job(job: tuple) -> list:
    """Worker: render one single frame or one sequence; returns its samples, named."""
    from cathtrack.data.synth import render, render_sequence

    config, seed, kind, index, n_frames = job
    if kind == _SINGLE:
        sample = render(config, derive_seed(seed, _SINGLE, index))
        sample.name = f"frame_{index:06d}"
        return [sample]
    samples = render_sequence(config, derive_seed(seed, _SEQUENCE, index), n_frames)
    for f, sample in enumerate(samples):
        sample.name = f"seq_{index:04d}_{f:03d}"
    return samples


def _limit_threads() -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the processes


def _validate(args: argparse.Namespace):
    from cathtrack.cli import CliError
    from cathtrack.data.synth import preset

    if args.out is None and args.preview is None:
        raise CliError("nothing to do: give --out DIR and/or --preview PNG")
    for name in ("n", "sequences", "seed"):
        if getattr(args, name) < 0:
            raise CliError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if args.frames < 1:
        raise CliError(f"--frames must be >= 1, got {args.frames}")
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}")
    if args.backgrounds is not None and not args.backgrounds.is_dir():
        raise CliError(f"--backgrounds: {args.backgrounds} is not a folder")
    if args.reference is not None and (args.preview is None or not args.reference.is_dir()):
        raise CliError(f"--reference: {args.reference} is not a folder (or no --preview)")
    if args.out is not None and args.out.exists():
        if not args.out.is_dir():
            raise CliError(f"--out: {args.out} exists and is not a folder")
        if any(args.out.iterdir()) and not args.overwrite:
            raise CliError(
                f"--out: {args.out} is not empty (add --overwrite to replace the dataset)"
            )
    background = str(args.backgrounds) if args.backgrounds is not None else None
    try:
        config = preset(args.preset, size=args.size, background_dir=background)
        if background is not None:
            from cathtrack.data.synth.backgrounds import load_backgrounds

            load_backgrounds(background)
    except ValueError as error:
        raise CliError(str(error)) from error
    return config


def _clear_dataset(out: Path) -> None:
    """Remove what a previous run wrote (only the dataset's own files)."""
    import shutil

    shutil.rmtree(out / "images", ignore_errors=True)
    for name in ("annotations.json", "sequences.json"):
        (out / name).unlink(missing_ok=True)


def _write_dataset(args: argparse.Namespace, config) -> None:
    import multiprocessing

    from tqdm import tqdm

    from cathtrack.data.coco import write_coco

    jobs = [(config, args.seed, _SINGLE, i, 1) for i in range(args.n)]
    jobs += [(config, args.seed, _SEQUENCE, k, args.frames) for k in range(args.sequences)]
    total = args.n + args.sequences * args.frames
    sequences = [
        {
            "name": f"seq_{k:04d}",
            "fps": config.fps,
            "frames": list(range(args.n + k * args.frames, args.n + (k + 1) * args.frames)),
        }
        for k in range(args.sequences)
    ]
    workers = min(args.workers or os.cpu_count() or 1, max(len(jobs), 1))
    if args.overwrite:
        _clear_dataset(args.out)

    def samples(results):
        with tqdm(total=total, unit="frame", desc="synth") as progress:
            for batch in results:
                yield from batch
                progress.update(len(batch))

    if workers == 1:
        write_coco(
            args.out, samples(map(_render_job, jobs)), bits=args.bits, sequences=sequences or None
        )
        return
    context = multiprocessing.get_context("spawn")  # no inherited OpenCV thread state
    with context.Pool(workers, initializer=_limit_threads) as pool:
        results = pool.imap(
            _render_job, jobs, chunksize=max(1, min(16, len(jobs) // (4 * workers)))
        )
        write_coco(args.out, samples(results), bits=args.bits, sequences=sequences or None)


def write_preview(path: Path, size: int, seed: int, background_dir: str | None = None) -> None:
    """A grid: one row per preset, each scene shown raw and with its labels drawn."""
    import cv2
    import numpy as np

    from cathtrack.data.synth import PRESETS, preset, render
    from cathtrack.viz import draw_overlay, to_bgr8

    rows = []
    for name in PRESETS:
        config = preset(name, size=size, background_dir=background_dir)
        tiles = []
        for k in range(_PREVIEW_SCENES):
            sample = render(config, derive_seed(seed, _SINGLE, k))
            raw = to_bgr8((sample.image * 255).astype(np.uint8))
            tiles += [raw, draw_overlay(sample.image, sample.mask, sample.electrodes)]
        row = np.hstack(tiles)
        cv2.putText(
            row, name, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 1, cv2.LINE_AA
        )
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")


def write_comparison(path: Path, config, seed: int, reference_dir: Path) -> None:
    """Frames of ``config`` (two rows of three) above real images of ``reference_dir``, labelled;
    grey PNG, every tile ``config.size`` square."""
    import cv2
    import numpy as np

    from cathtrack.data.synth import render
    from cathtrack.data.synth.backgrounds import load_backgrounds

    size = config.size

    def tile(image: np.ndarray, label: str) -> np.ndarray:
        pixels = cv2.resize((np.clip(image, 0, 1) * 255).astype(np.uint8), (size, size))
        cv2.rectangle(pixels, (0, size - 16), (size, size), 0, -1)
        cv2.putText(pixels, label, (4, size - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 255, 1)
        return pixels

    synthetic = [
        tile(render(config, derive_seed(seed, _SINGLE, k)).image, f"synthetic #{k}")
        for k in range(_COMPARISON_SCENES)
    ]
    images = load_backgrounds(str(reference_dir))
    picks = np.linspace(0, len(images) - 1, _COMPARISON_REFERENCES).astype(int)
    real = [tile(images[i], f"real: {reference_dir.name} #{i}") for i in picks]
    rows = [np.hstack(synthetic[k : k + 3]) for k in range(0, len(synthetic), 3)]
    grid = np.vstack([*rows, np.hstack(real)])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), grid, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")


def run(args: argparse.Namespace) -> int:
    config = _validate(args)
    if args.out is not None:
        _write_dataset(args, config)
        print(f"wrote {args.n + args.sequences * args.frames} frames to {args.out}")
    if args.preview is not None and args.reference is not None:
        write_comparison(args.preview, config, args.seed, args.reference)
        print(f"wrote preview {args.preview}")
    elif args.preview is not None:
        write_preview(args.preview, args.size, args.seed, config.background_dir)
        print(f"wrote preview {args.preview}")
    return 0
