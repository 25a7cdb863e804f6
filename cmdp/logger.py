"""Per-epoch metrics to progress.csv (one row per epoch) and TensorBoard, resumable."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

#: Columns that measure time; everything else in progress.csv is reproducible bit for bit.
TIMING_COLUMNS = ("wall_s", "steps_per_s", "time_collect_s", "time_update_s")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


class RunLogger:
    """Appends epoch rows to `progress.csv` and scalars to TensorBoard event files in the run folder.

    On resume from epoch E (at env step S), rows after E are dropped from the CSV and TensorBoard is told to
    purge the events logged after step S (scalars are logged at env steps, so the purge is in env steps too),
    so an interrupted-then-resumed run logs exactly what an uninterrupted one does: one point per epoch.
    """

    def __init__(self, run_dir: Path, resume_epoch: int | None = None, resume_step: int | None = None,
                 tensorboard: bool = True) -> None:
        self.csv_path = run_dir / "progress.csv"
        self.columns: list[str] | None = None
        if resume_epoch is not None and self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                rows = list(csv.reader(f))
            if rows:
                self.columns = rows[0]
                kept = [r for r in rows[1:] if int(r[0]) <= resume_epoch]
                with self.csv_path.open("w", newline="") as f:
                    csv.writer(f).writerows([self.columns, *kept])
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only when logging

            self.writer = SummaryWriter(str(run_dir / "tb"),
                                        purge_step=None if resume_step is None else resume_step + 1)

    def log(self, row: dict[str, Any]) -> None:
        """Write one epoch's metrics; the first row fixes the CSV columns (it must start with 'epoch')."""
        if self.columns is None:
            self.columns = list(row)
            with self.csv_path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        with self.csv_path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, float("nan"))) for c in self.columns])
        if self.writer is not None:
            step = int(row["env_steps"])
            for key, value in row.items():
                if key not in ("epoch", "env_steps") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_progress(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))
