"""Run logs: one CSV row per training step and per validation, mirrored to TensorBoard.

Files in the run directory::

    train_log.csv     step, epoch, stage, lr, loss, grad_norm, kappa_bar/<task>, weight/<task>,
                      kept/<task>, loss/<task>, kappa/<task>, focal, size, bce, iou, seconds
    val_log.csv       step, epoch, stage, ap, ap50, f1_2px, mean_j, dice, mean_kpi, ...
    tensorboard/      the same scalars (``tensorboard --logdir RUN_DIR``)

TensorBoard is optional: without the ``tensorboard`` package the logger warns once and writes the
CSV files only. On resume the CSV files are cut back to the checkpoint's step, so the logs of a
resumed run read like those of an uninterrupted one; a new run in a directory a killed run left
starts them empty. Rows are appended; a file that is rewritten (cut back, or a new column) is
replaced atomically (:func:`cathtrack.checkpoint.atomic_file`).
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

from cathtrack.checkpoint import atomic_file

TRAIN_LOG = "train_log.csv"
VAL_LOG = "val_log.csv"
TENSORBOARD_DIR = "tensorboard"


class CsvLog:
    """Append-only CSV of dict rows; the header grows (file rewritten) if a new key appears."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] = []
        if path.is_file():
            with path.open(newline="") as handle:
                self.fields = list(csv.DictReader(handle).fieldnames or [])

    def truncate_after(self, step: int) -> None:
        """Drops rows with ``step`` greater than the given one (a resumed run redoes them), and
        a last row that a killed process left incomplete."""
        if not self.path.is_file():
            return
        rows = [
            row
            for row in read_csv_rows(self.path)
            if None not in row.values() and int(float(row["step"])) <= step
        ]
        self._rewrite(rows)

    def write(self, row: dict[str, float | int | str]) -> None:
        new_fields = [key for key in row if key not in self.fields]
        if new_fields and self.fields:
            rows = read_csv_rows(self.path)
            self.fields += new_fields
            self._rewrite(rows)
        elif new_fields:
            self.fields = list(row)
            self._rewrite([])
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, self.fields, restval="").writerow(
                {key: _format(value) for key, value in row.items()}
            )

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        with atomic_file(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.fields, restval="")
            writer.writeheader()
            writer.writerows(rows)


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV log as dicts of strings."""
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _format(value: float | int | str) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


class RunLogger:
    """CSV + TensorBoard logging of one run; a no-op on DDP ranks other than 0.

    Args:
        run_dir: the run directory.
        enabled: False on non-zero ranks.
        resume_step: cut the existing logs back to this step (None: a new run, whose logs start
            empty).
    """

    def __init__(self, run_dir: Path, enabled: bool = True, resume_step: int | None = None) -> None:
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self.train = CsvLog(run_dir / TRAIN_LOG)
        self.val = CsvLog(run_dir / VAL_LOG)
        # A new run drops whatever a killed run left (steps >= 0 only; validation has step 0).
        kept_step = resume_step if resume_step is not None else -1
        self.train.truncate_after(kept_step)
        self.val.truncate_after(kept_step)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn(
                "tensorboard is not installed: logging to CSV only (pip install tensorboard)",
                stacklevel=2,
            )
        else:
            # purge_step drops events a crashed run wrote after the checkpoint we resume from.
            self.writer = SummaryWriter(
                str(run_dir / TENSORBOARD_DIR),
                purge_step=resume_step if resume_step is not None else 0,
            )

    def log_train(self, row: dict[str, float | int | str], to_tensorboard: bool) -> None:
        """One training step's row (``step`` is required); TensorBoard only when asked."""
        if not self.enabled:
            return
        self.train.write(row)
        if to_tensorboard:
            self._scalars("train", row)

    def log_val(self, row: dict[str, float | int | str]) -> None:
        """One validation's row (``step`` is required)."""
        if not self.enabled:
            return
        self.val.write(row)
        self._scalars("val", row)

    def _scalars(self, prefix: str, row: dict[str, float | int | str]) -> None:
        if self.writer is None:
            return
        step = int(row["step"])
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
