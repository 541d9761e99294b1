"""PNG plots of a training run, drawn from its logs into ``RUN_DIR/plots/``.

- ``losses.png``: total loss, task losses L_t, their parts (focal, size, BCE, IoU) and the
  learning rate over steps.
- ``validation.png``: electrode AP, AP50, F1 at 2 px, mean J and the mean KPI = mean(AP, mean J)
  at each validation, the best one marked.
- ``task_weights.png``: task weights W_t and task KPIs kappa_bar_t (batch kappa_t faint).
- ``kept_fraction.png``: fraction of each task's labelled samples that entered its loss.
- ``difficulty.png``: the paper's Fig. 3: per task, the training samples split into thirds by
  their final difficulty D = 1 / kappa~ (easy, medium, hard); each third's mean D over training
  (band: its 25-75 % range) and the Top-K threshold (samples above it are trained on).

Curves are smoothed with a moving average (raw values faint); dashed vertical lines mark stage
boundaries. ``python -m cathtrack.train.plots RUN_DIR`` redraws them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from cathtrack.checkpoint import atomic_file
from cathtrack.train.kpi import KAPPA_MIN
from cathtrack.train.logs import TRAIN_LOG, VAL_LOG, read_csv_rows

TASK_COLORS = {"segmentation": "tab:orange", "detection": "tab:blue"}
GROUP_COLORS = {"easy": "tab:blue", "medium": "tab:orange", "hard": "tab:green"}


def read_log(path: Path) -> dict[str, np.ndarray]:
    """A CSV log as columns: numeric columns float arrays (NaN where empty), others strings."""
    rows = read_csv_rows(path) if path.is_file() else []
    columns: dict[str, np.ndarray] = {}
    for key in rows[0] if rows else []:
        values = [row[key] for row in rows]
        try:
            columns[key] = np.array([float(v) if v != "" else math.nan for v in values])
        except ValueError:
            columns[key] = np.array(values)
    return columns


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` points, ignoring NaN (same length as the input)."""
    if window <= 1 or len(values) == 0:
        return values
    valid = np.isfinite(values)
    kernel = np.ones(window)
    sums = np.convolve(np.where(valid, values, 0.0), kernel, mode="same")
    counts = np.convolve(valid.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, math.nan)


def _stage_boundaries(train: dict[str, np.ndarray]) -> list[tuple[float, str]]:
    if "stage" not in train or len(train["stage"]) == 0:
        return []
    stages, steps = train["stage"], train["step"]
    changes = [i for i in range(1, len(stages)) if stages[i] != stages[i - 1]]
    return [(steps[i] - 1, str(stages[i])) for i in changes]


def _mark_stages(axis, boundaries: list[tuple[float, str]]) -> None:
    for step, name in boundaries:
        axis.axvline(step, color="gray", linestyle="--", linewidth=0.8)
        axis.text(
            step,
            1.0,
            f" {name}",
            transform=axis.get_xaxis_transform(),
            fontsize=7,
            va="top",
            color="gray",
        )


def _curve(axis, steps: np.ndarray, values: np.ndarray, label: str, color=None, window: int = 1):
    if window > 1:
        axis.plot(steps, values, color=color, alpha=0.2, linewidth=0.6)
    axis.plot(steps, smooth(values, window), color=color, label=label, linewidth=1.4)


def _window(count: int) -> int:
    return max(1, count // 50)


def plot_losses(train: dict[str, np.ndarray], out: Path) -> None:
    steps, window = train["step"], _window(len(train["step"]))
    figure = Figure(figsize=(11, 7), layout="constrained")
    axes = figure.subplots(2, 2, sharex=True)
    _curve(axes[0, 0], steps, train["loss"], "total (weighted)", "black", window)
    axes[0, 0].set_title("total loss  sum_t W_t L_t")
    for task, color in TASK_COLORS.items():
        if f"loss/{task}" in train:
            _curve(axes[0, 1], steps, train[f"loss/{task}"], f"L {task}", color, window)
    axes[0, 1].set_title("task losses L_t (eq. 1, kept samples / batch size)")
    for name in ("focal", "size", "bce", "iou"):
        if name in train:
            _curve(axes[1, 0], steps, train[name], name, None, window)
    axes[1, 0].set_title("loss parts (batch mean over all samples)")
    axes[1, 1].plot(steps, train["lr"], color="tab:purple")
    axes[1, 1].set_title("learning rate")
    boundaries = _stage_boundaries(train)
    for axis in axes.flat:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        _mark_stages(axis, boundaries)
    for axis in (axes[0, 0], axes[0, 1], axes[1, 0]):
        # Log scale shows the slow late decrease; only possible while every loss is positive.
        values = np.concatenate([np.asarray(line.get_ydata(), float) for line in axis.lines])
        if values.size and np.nanmin(values) > 0:
            axis.set_yscale("log")
        axis.legend(fontsize=8)
    _save(figure, out / "losses.png")


def plot_validation(val: dict[str, np.ndarray], train: dict[str, np.ndarray], out: Path) -> None:
    figure = Figure(figsize=(8, 5), layout="constrained")
    axis = figure.subplots()
    steps = val["step"]
    for key, label in (
        ("ap", "AP@[.5:.95]"),
        ("ap50", "AP50"),
        ("f1_2px", "F1 @ 2 px"),
        ("mean_j", "mean J (IoU)"),
        ("mean_kpi", "mean KPI = mean(AP, J)"),
    ):
        if key in val:
            style = {"linewidth": 2.5, "color": "black"} if key == "mean_kpi" else {}
            axis.plot(steps, val[key], marker="o", markersize=3, label=label, **style)
    if "best" in val and np.any(val["best"] == 1):
        best = np.flatnonzero(val["best"] == 1)[-1]
        axis.scatter(
            steps[best],
            val["mean_kpi"][best],
            s=120,
            facecolors="none",
            edgecolors="red",
            zorder=5,
            label=f"best (step {int(steps[best])})",
        )
    axis.set_ylim(0, 1)
    axis.set_xlabel("step")
    axis.set_ylabel("fraction")
    axis.set_title("validation")
    axis.grid(alpha=0.3)
    _mark_stages(axis, _stage_boundaries(train))
    axis.legend(fontsize=8)
    _save(figure, out / "validation.png")


def plot_task_weights(train: dict[str, np.ndarray], out: Path) -> None:
    steps, window = train["step"], _window(len(train["step"]))
    figure = Figure(figsize=(11, 4), layout="constrained")
    weights, kappas = figure.subplots(1, 2, sharex=True)
    for task, color in TASK_COLORS.items():
        if f"weight/{task}" not in train:
            continue
        weights.plot(steps, train[f"weight/{task}"], color=color, label=f"W {task}")
        _curve(kappas, steps, train[f"kappa/{task}"], f"batch kappa {task}", color, window)
        kappas.plot(
            steps,
            train[f"kappa_bar/{task}"],
            color=color,
            linestyle="--",
            label=f"kappa_bar {task} (EMA)",
        )
    weights.set_title("task weights W_t")
    kappas.set_title("task KPIs (segmentation: IoU, detection: 1/(1+MAE/2px))")
    kappas.set_ylim(0, 1)
    boundaries = _stage_boundaries(train)
    for axis in (weights, kappas):
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        _mark_stages(axis, boundaries)
    _save(figure, out / "task_weights.png")


def plot_kept_fraction(train: dict[str, np.ndarray], out: Path) -> None:
    steps, window = train["step"], _window(len(train["step"]))
    figure = Figure(figsize=(8, 4), layout="constrained")
    axis = figure.subplots()
    for task, color in TASK_COLORS.items():
        if f"kept/{task}" in train:
            _curve(axis, steps, train[f"kept/{task}"], task, color, window)
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("step")
    axis.set_title("kept fraction: labelled samples with weight > 0 (Top-K keeps the hardest)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    _mark_stages(axis, _stage_boundaries(train))
    _save(figure, out / "kept_fraction.png")


def plot_difficulty(history: dict, out: Path) -> bool:
    """Fig. 3 from a :class:`~cathtrack.train.history.DifficultyHistory` state; False if empty."""
    if len(history.get("steps", [])) < 2:
        return False
    steps = history["steps"].numpy()
    difficulty = 1.0 / history["values"].clamp(min=KAPPA_MIN).numpy()  # (R, T, N)
    seen = history["seen"].numpy()
    thresholds = 1.0 / history["thresholds"].clamp(min=KAPPA_MIN).numpy()  # (R, T), NaN kept
    tasks = history["tasks"]
    figure = Figure(figsize=(6 * len(tasks), 4.5), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(tasks)))
    for row, (task, axis) in enumerate(zip(tasks, axes, strict=True)):
        final_seen = seen[-1, row]
        if final_seen.sum() < 3:
            axis.set_title(f"{task}: no per-sample difficulty (no labels)")
            continue
        samples = np.flatnonzero(final_seen)
        order = samples[np.argsort(difficulty[-1, row, samples], kind="stable")]
        for name, group in zip(GROUP_COLORS, np.array_split(order, 3), strict=True):
            values = np.where(seen[:, row, group], difficulty[:, row, group], math.nan)
            with np.errstate(all="ignore"):
                mean = np.nanmean(values, axis=1)
                low, high = np.nanpercentile(values, [25, 75], axis=1)
            axis.plot(steps, mean, color=GROUP_COLORS[name], label=f"{name} ({len(group)})")
            axis.fill_between(steps, low, high, color=GROUP_COLORS[name], alpha=0.15)
        if np.isfinite(thresholds[:, row]).any():
            axis.plot(
                steps,
                thresholds[:, row],
                color="red",
                linestyle="--",
                label="Top-K threshold (above: kept)",
            )
        axis.set_title(f"{task}: sample difficulty D = 1 / kappa~")
        axis.set_xlabel("step")
        axis.set_ylabel("difficulty")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    _save(figure, out / "difficulty.png")
    return True


def _save(figure: Figure, path: Path) -> None:
    """The figure as a PNG, replacing ``path`` atomically."""
    with atomic_file(path) as handle:
        figure.savefig(handle, format="png", dpi=110)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Draws every plot of a run directory into ``RUN_DIR/plots``; returns the files written."""
    run_dir = Path(run_dir)
    out = run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    train = read_log(run_dir / TRAIN_LOG)
    val = read_log(run_dir / VAL_LOG)
    if train:
        plot_losses(train, out)
        plot_task_weights(train, out)
        plot_kept_fraction(train, out)
    if val:
        plot_validation(val, train, out)
    history_file = run_dir / "checkpoints" / "last" / "difficulty.pt"
    if history_file.is_file():
        plot_difficulty(torch.load(history_file, map_location="cpu", weights_only=True), out)
    return sorted(out.glob("*.png"))


if __name__ == "__main__":
    for path in plot_run(sys.argv[1]):
        print(path)
