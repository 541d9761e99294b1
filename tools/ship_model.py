"""Writes a trained checkpoint as a shipped model file: float16 weights plus a ``.json`` that keeps
the training facts and the evaluations measured on the checkpoint.

    python tools/ship_model.py runs/resnet34_real/checkpoints/best \\
        models/cathtrack_resnet34.safetensors \\
        --eval eval_clinical_seed1000=runs/eval/clinical.json \\
        --eval eval_real_seed1001=runs/eval/real.json \\
        --negatives runs/eval/negatives.json --recipe configs/cpu_resnet34.yaml

Each ``--eval KEY=FILE`` stores the JSON a ``cathtrack eval ... --json FILE`` wrote under
``training.KEY``; ``--negatives`` stores the summary of ``cathtrack negatives ... --json FILE``
under ``training.negatives_testing``. The file is reloaded after writing; exit 1 when it is over
``--max-mb`` (the size a repository can carry comfortably).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MAX_MB = 25.0


def parse_evals(items: list[str]) -> dict[str, Path]:
    evals = {}
    for item in items:
        key, separator, file = item.partition("=")
        if not separator or not key or not file:
            raise SystemExit(f"ship_model: --eval wants KEY=FILE, got {item!r}")
        evals[key] = Path(file)
    return evals


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"ship_model: cannot read {path}: {error}") from error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path, help="checkpoint directory or model file")
    parser.add_argument("out", type=Path, help="the .safetensors file to write")
    parser.add_argument("--eval", action="append", default=[], metavar="KEY=FILE")
    parser.add_argument("--negatives", type=Path, help="JSON written by cathtrack negatives")
    parser.add_argument("--recipe", help="how the model was trained (a config or a script)")
    parser.add_argument("--max-mb", type=float, default=MAX_MB)
    args = parser.parse_args(argv)
    evals = parse_evals(args.eval)
    documents = {key: read_json(path) for key, path in evals.items()}
    negatives = read_json(args.negatives)["summary"] if args.negatives else None

    import torch

    from cathtrack.checkpoint import file_sha256, load_model, save_model

    model, metadata = load_model(args.checkpoint)
    training = dict(metadata.get("training", {}))
    training.update(documents)
    if negatives is not None:
        training["negatives_testing"] = negatives
    if args.recipe:
        training["recipe"] = args.recipe
    path = save_model(
        args.out, model, input_size=metadata["input_size"], training=training, dtype=torch.float16
    )
    load_model(path)  # the written pair must load
    megabytes = path.stat().st_size / 1e6
    print(f"wrote {path} ({megabytes:.1f} MB, float16, sha256 {file_sha256(path)[:16]}...)")
    print(f"wrote {path.with_suffix('.json')}")
    if megabytes > args.max_mb:
        print(f"ship_model: {path} is {megabytes:.1f} MB, over {args.max_mb} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
