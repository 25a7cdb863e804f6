"""What a run writes as it trains: per-epoch metrics to progress.csv (one row per epoch) and TensorBoard,
resumable; and strict JSON (`strict_json_text`) for its other files."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from cmdp.config import RESTORE_RUN_FILE, read_text_file
from cmdp.spec import ConfigError

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
        if resume_epoch is not None:
            rows = resumed_rows(self.csv_path, resume_epoch)  # a damaged log stops the resume before it is rewritten
            if rows:
                self.columns = rows[0]
                write_rows(self.csv_path, rows)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import, only when logging

            self.writer = SummaryWriter(str(run_dir / "tb"),
                                        purge_step=None if resume_step is None else resume_step + 1)

    def log(self, row: dict[str, Any]) -> None:
        """Write one epoch's metrics (the first row must start with 'epoch'). A key that no earlier row had (an
        off-policy run's losses, from its first epoch with an update on) becomes a column where the row puts it,
        and the rows before it get an empty cell there."""
        if self.columns is None:
            self.columns = list(row)
            with self.csv_path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        elif any(key not in self.columns for key in row):
            self._add_columns(list(row))
        with self.csv_path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, float("nan"))) for c in self.columns])
        if self.writer is not None:
            step = int(row["env_steps"])
            for key, value in row.items():
                if key not in ("epoch", "env_steps") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def _add_columns(self, keys: list[str]) -> None:
        """Rewrite progress.csv with each of `keys` not yet a column inserted after the key before it in `keys`."""
        columns = list(self.columns or [])
        for i, key in enumerate(keys):
            if key not in columns:
                columns.insert(columns.index(keys[i - 1]) + 1 if i else 0, key)
        rows = read_progress_rows(self.csv_path)[1:]
        index = {c: self.columns.index(c) for c in self.columns or []}
        write_rows(self.csv_path, [columns, *([row[index[c]] if c in index and index[c] < len(row) else ""
                                               for c in columns] for row in rows)])
        self.columns = columns

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_rows(path: Path, rows: list[list[str]]) -> None:
    """Replace the CSV file `path` with `rows` via a temporary file: an interruption while the log is rewritten (on
    resume, or when a column is added) leaves the old log, not a cut one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    os.replace(tmp, path)


def resumed_rows(path: Path, epoch: int) -> list[list[str]]:
    """What progress log `path` keeps when its run resumes from the checkpoint of epoch `epoch`: its header and the
    rows of epochs 1..`epoch` ([] without a log, as a run that never logged has). Reads only; ConfigError in one line
    when the log is damaged or lacks one of those epochs (`check_resumed_rows`)."""
    if epoch == 0 and not path.exists():
        return []
    rows = read_progress_rows(path) if path.exists() else []
    kept = [r for r in rows[1:] if int(r[0]) <= epoch]
    # csv.writer ends every row with a line end: a last line without one was cut while it was written
    cut = len(kept) == len(rows) - 1 > 0 and not path.read_bytes().endswith(b"\n")
    check_resumed_rows(path, rows[0] if rows else [], kept, epoch, cut)
    return [rows[0], *kept] if rows else []


def check_resumed_rows(path: Path, header: list[str], kept: list[list[str]], epoch: int, cut: bool = False) -> None:
    """ConfigError in one line unless `kept`, the rows of progress log `path` that a resume from the checkpoint of
    epoch `epoch` keeps, are one whole row for each of epochs 1..`epoch`, under a header starting with `epoch`
    (`cut`: the last of them is the file's last line and lacks its line end, so it may have lost characters). The
    log gets each epoch's row before the epoch's checkpoint is written, so a log that lacks one (emptied, cut,
    deleted, or a row cut short) lost it afterwards; continuing would leave the gap in the run's curves."""
    def damaged(problem: str) -> ConfigError:
        return ConfigError(f"progress log {path} {problem}, but the checkpoint is of epoch {epoch}; {RESTORE_RUN_FILE}")

    if epoch == 0:
        return
    if not path.exists():
        raise damaged("is missing")
    if not header:
        raise damaged("is empty")
    if header[0] != "epoch":
        raise damaged(f"does not start with its header (line 1 begins {header[0]!r})")
    for expected, row in enumerate(kept, start=1):
        if int(row[0]) != expected:
            raise damaged(f"holds epoch {row[0]} where epoch {expected}'s row belongs")
        if len(row) != len(header):
            raise damaged(f"cuts epoch {expected}'s row short ({len(row)} of its {len(header)} cells)")
    if len(kept) < epoch:
        raise damaged(f"ends after epoch {len(kept)}")
    if cut:
        raise damaged(f"ends in a cut line (epoch {epoch}'s row has no line end)")


def read_progress_rows(path: Path) -> list[list[str]]:
    """progress.csv's rows, the header first. ConfigError in one line naming the file when it cannot be read or is
    damaged: not UTF-8 text, or a row whose epoch is not a number (a file cut or overwritten by something else)."""
    text = read_text_file(path, "progress log", RESTORE_RUN_FILE)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str]] = []
    try:
        for row in reader:
            if rows and not (row and row[0].isdigit()):
                epoch = row[0] if row else ""
                raise ConfigError(f"progress log {path} is damaged at line {reader.line_num}: epoch {epoch!r} is not "
                                  f"a number; {RESTORE_RUN_FILE}")
            rows.append(row)
    except csv.Error as exc:
        raise ConfigError(f"progress log {path} is damaged at line {reader.line_num}: {exc}; {RESTORE_RUN_FILE}"
                          ) from None
    return rows


def read_progress(path: Path) -> list[dict[str, str]]:
    """progress.csv as one dict per epoch row (column -> text; None where a cut row ends early, as csv.DictReader
    gives); ConfigError as `read_progress_rows` says."""
    rows = read_progress_rows(path)
    return [{**dict.fromkeys(rows[0]), **dict(zip(rows[0], row))} for row in rows[1:]] if rows else []


def strict_json(value: Any) -> Any:
    """A copy of nested dicts, lists and tuples for strict JSON: NaN and the infinities become None (null), where
    Python's json would write the bare tokens NaN and Infinity that jq and JavaScript's JSON.parse refuse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def strict_json_text(value: Any) -> str:
    """`value` as the text of a strict JSON file (`strict_json`, indented, a final line end): summary.json, a suite's
    status.json and the text family's metrics and manifest are written so."""
    return json.dumps(strict_json(value), indent=2, allow_nan=False) + "\n"
