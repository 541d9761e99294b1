"""The paper's Table 3 in miniature: one network and budget, five ways to weigh the two tasks.

    python benchmarks/prioritization_table.py --out runs/table3 --steps 800 \\
        --test runs/real_seed1001 [--parallel 2] [--json benchmarks/results/prioritization.json]

Each strategy trains ``--config`` (default: the lite model at heatmap stride 1 on the ``real``
preset) for ``--steps`` steps with one prioritization override, ``--parallel`` runs at a time
with one torch thread each. Every run's best checkpoint (selected on its validation seed, as
any run) is then evaluated with ``cathtrack eval`` on ``--test`` (frames of a seed no run saw,
e.g. ``cathtrack synth --out runs/real_seed1001 --n 200 --size 256 --preset real --seed 1001
--backgrounds data/angiograms/training``) and with ``cathtrack negatives`` on the real
angiograms of ``--negatives``. A run that already has its summary.json is not trained again,
and an interrupted one resumes from its last checkpoint, so the command can be repeated.

Writes OUT/table.md (the best and the last checkpoint of each run), OUT/table.json and
OUT/validation.png (validation F1 and mean J per step).
Single-task rows leave the other head untrained: their figures for that task are what an
untrained head gives, shown for completeness.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STRATEGIES = {
    "mdrp": [],
    "constant": [
        "prioritization.name=constant",
        "prioritization.params={weights: {detection: 1.0, segmentation: 1.0}}",
    ],
    "single_seg": ["prioritization.name=single_seg"],
    "single_det": ["prioritization.name=single_det"],
    "dtp": ["prioritization.name=dtp", "prioritization.params={gamma: 2.0}"],
}
COLUMNS = [  # (key in the eval JSON, header)
    ("f1_2px", "F1 at 2 px"),
    ("point_ap_2px", "point AP (2 px)"),
    ("precision_2px", "precision"),
    ("recall_2px", "recall"),
    ("mean_j", "mean J"),
    ("dice", "Dice"),
    ("type_accuracy", "type acc."),
    ("catheter_count_accuracy", "right count"),
]
NEGATIVE_COLUMNS = [
    ("vessel_marked_pooled", "vessel px marked"),
    ("electrodes_mean", "false electrodes/frame"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--out", type=Path, required=True, help="folder of the runs and tables")
    parser.add_argument("--test", type=Path, required=True, help="held-out frames (COCO folder)")
    parser.add_argument(
        "--config", type=Path, default=ROOT / "configs" / "cpu_lite_real_stride1.yaml"
    )
    parser.add_argument("--steps", type=int, default=800, help="training steps per strategy")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (1 thread each)")
    parser.add_argument(
        "--negatives", type=Path, default=ROOT / "data" / "angiograms" / "testing",
        help="real frames without electrode catheters, with vessel masks",
    )  # fmt: skip
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--json", type=Path, help="also write the table's JSON here")
    return parser.parse_args(argv)


def shown(path: Path) -> str:
    """``path`` as written into the results: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cathtrack.cli", *args]


def train_command(args: argparse.Namespace, name: str) -> list[str] | None:
    """The training command of one strategy, None when its run is complete."""
    run = args.out / name
    if (run / "summary.json").is_file():
        return None
    command = [
        sys.executable, "-m", "cathtrack.train.cli", "--config", str(args.config),
        "--out", str(run), "--no-progress", f"steps={args.steps}", "threads=1",
        *STRATEGIES[name],
    ]  # fmt: skip
    if (run / "checkpoints" / "last").exists():
        command[4:4] = ["--resume", str(run)]
    return command


def train_all(args: argparse.Namespace) -> None:
    """Runs the strategies' trainings, ``--parallel`` at a time."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    pending = list(args.strategies)
    running: dict[str, tuple[subprocess.Popen, float, object]] = {}
    failed = []
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            command = train_command(args, name)
            if command is None:
                print(f"{name}: already trained")
                continue
            (args.out / name).mkdir(parents=True, exist_ok=True)
            log = open(args.out / f"{name}.log", "a")  # noqa: SIM115 (closed when it ends)
            print(f"{name}: training ({' '.join(command[2:])})", flush=True)
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
            running[name] = (process, time.perf_counter(), log)
        time.sleep(2)
        for name, (process, started, log) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
            minutes = (time.perf_counter() - started) / 60
            status = "done" if process.returncode == 0 else f"FAILED ({process.returncode})"
            print(f"{name}: {status} in {minutes:.1f} min", flush=True)
            if process.returncode != 0:
                failed.append(name)
    if failed:
        raise SystemExit(f"training failed: {', '.join(failed)} (see {args.out}/NAME.log)")


def cached_json(out: Path, command: list[str]) -> dict:
    """The JSON file ``out``, written first by ``command`` unless an earlier call left it."""
    if not out.is_file():
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def evaluate(args: argparse.Namespace, name: str) -> tuple[dict, dict, dict]:
    """The eval JSON of the run's best and last checkpoints, and the negatives summary of its
    best one."""
    run = args.out / name
    best, last = run / "checkpoints" / "best", run / "checkpoints" / "last"
    scores = {}
    for checkpoint, out in ((best, run / "eval.json"), (last, run / "eval_last.json")):
        scores[checkpoint] = cached_json(
            out,
            cli("eval", str(checkpoint), str(args.test), "--device", "cpu", "--no-speed",
                "--json", str(out)),
        )  # fmt: skip
    negatives = cached_json(
        run / "negatives.json",
        cli("negatives", str(args.negatives), "--model", str(best), "--device", "cpu",
            "--backend", "python", "--json", str(run / "negatives.json")),
    )  # fmt: skip
    return scores[best], scores[last], negatives["summary"]


def markdown(rows: list[dict], checkpoint: str) -> str:
    """One table: the rows' figures of the ``checkpoint`` ("best" or "last") evaluation; the
    negatives columns for the best one."""
    columns = COLUMNS + (NEGATIVE_COLUMNS if checkpoint == "best" else [])
    headers = ["strategy", "step"] + [h for _, h in columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for row in rows:
        figures = row[checkpoint]
        step = row["best_step"] if checkpoint == "best" else row["steps"]
        cells = [row["strategy"], str(step)]
        cells += [
            f"{figures[key]:.3f}" if figures.get(key) is not None else "–" for key, _ in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_validation(args: argparse.Namespace, path: Path) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for name in args.strategies:
        with open(args.out / name / "val_log.csv") as handle:
            rows = [r for r in csv.DictReader(handle) if int(r["step"]) > 0]
        steps = [int(r["step"]) for r in rows]
        for axis, key in zip(axes, ("f1_2px", "mean_j"), strict=True):
            axis.plot(steps, [float(r[key]) for r in rows], marker="o", label=name)
    for axis, title in zip(axes, ("validation F1 at 2 px", "validation mean J"), strict=True):
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train_all(args)
    rows = []
    for name in args.strategies:
        print(f"{name}: evaluating", flush=True)
        best, last, negatives = evaluate(args, name)
        summary = json.loads((args.out / name / "summary.json").read_text())
        rows.append({
            "strategy": name,
            "best_step": summary.get("best_step"),
            "steps": summary.get("steps"),
            "train_minutes": round(summary["steps"] / summary["steps_per_second"] / 60, 1),
            "best": {key: best.get(key) for key, _ in COLUMNS}
            | {key: negatives[key] for key, _ in NEGATIVE_COLUMNS},
            "last": {key: last.get(key) for key, _ in COLUMNS},
        })  # fmt: skip
    table = (
        "Best checkpoint (selected on the validation seed by mean KPI):\n\n"
        + markdown(rows, "best")
        + "\nLast checkpoint (every run after the same number of steps):\n\n"
        + markdown(rows, "last")
    )
    (args.out / "table.md").write_text(table)
    document = {
        "config": shown(args.config),
        "steps": args.steps,
        "test": shown(args.test),
        "negatives": shown(args.negatives),
        "rows": rows,
    }
    for path in (args.out / "table.json", args.json):
        if path is not None:
            path.write_text(json.dumps(document, indent=2) + "\n")
    plot_validation(args, args.out / "validation.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
