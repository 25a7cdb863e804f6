"""Decoupled preference pairs and RL prompts, read from JSONL, CSV or Parquet and validated row by row.

The preference layout is PKU-SafeRLHF's: one prompt, two responses, and two separate judgements,
helpfulness (`better_response_id`) and harmlessness (`safer_response_id`, plus an absolute safe/unsafe
flag per response). The reward model learns from the first, the cost model from the second.

Every problem is found before anything is returned and raised as `cmdp.spec.ConfigError` naming the
file, the 1-based data row (the header of a CSV file is not a data row; blank JSONL lines are skipped
and the file line is given as well) and the column. Extra columns are ignored.
Only the standard library is needed, plus pyarrow for Parquet.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from cmdp.spec import ConfigError

PREFERENCE_COLUMNS: tuple[str, ...] = ("prompt", "response_0", "response_1", "better_response_id",
                                       "safer_response_id", "is_response_0_safe", "is_response_1_safe")
PROMPT_COLUMNS: tuple[str, ...] = ("prompt",)
SFT_COLUMNS: tuple[str, ...] = ("prompt", "response")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".jsonl", ".csv", ".parquet")

_ID_COLUMNS = ("better_response_id", "safer_response_id")
_BOOL_COLUMNS = ("is_response_0_safe", "is_response_1_safe")
_CSV_BOOLS = {"true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class PreferencePair:
    """One prompt with two responses, judged separately for helpfulness and for harmlessness."""

    prompt: str
    response_0: str
    response_1: str
    better_response_id: int
    safer_response_id: int
    is_response_0_safe: bool
    is_response_1_safe: bool

    def response(self, index: int) -> str:
        """Response 0 or 1."""
        return self.response_1 if index else self.response_0

    def is_safe(self, index: int) -> bool:
        """The absolute safety flag of response 0 or 1."""
        return self.is_response_1_safe if index else self.is_response_0_safe

    @property
    def better_response(self) -> str:
        return self.response(self.better_response_id)

    @property
    def worse_response(self) -> str:
        return self.response(1 - self.better_response_id)

    @property
    def safer_response(self) -> str:
        return self.response(self.safer_response_id)

    @property
    def unsafer_response(self) -> str:
        return self.response(1 - self.safer_response_id)

    @property
    def safety_labels_agree(self) -> bool:
        """False when exactly one response is flagged safe but `safer_response_id` points at the other.

        Such rows are kept (annotated data has a few); this only lets a caller count or drop them.
        """
        if self.is_response_0_safe == self.is_response_1_safe:
            return True
        return self.is_safe(self.safer_response_id)

    def to_row(self) -> dict[str, Any]:
        """The pair as a row in the PKU-SafeRLHF column layout."""
        return asdict(self)


def load_preferences(path: str | Path) -> list[PreferencePair]:
    """Read and validate decoupled preference pairs (columns `PREFERENCE_COLUMNS`) from .jsonl, .csv or .parquet."""
    path = Path(path)
    pairs = []
    for row_number, line, row, is_csv in _rows(path, PREFERENCE_COLUMNS):
        where = _Where(path, row_number, line)
        values: dict[str, Any] = {}
        for column in ("prompt", "response_0", "response_1"):
            values[column] = _text(where, column, row[column], nonempty=column == "prompt")
        for column in _ID_COLUMNS:
            values[column] = _response_id(where, column, row[column], is_csv)
        for column in _BOOL_COLUMNS:
            values[column] = _flag(where, column, row[column], is_csv)
        pairs.append(PreferencePair(**values))
    return pairs


def load_prompts(path: str | Path) -> list[str]:
    """Read and validate RL prompts (a non-empty `prompt` column) from .jsonl, .csv or .parquet."""
    path = Path(path)
    return [_text(_Where(path, row_number, line), "prompt", row["prompt"], nonempty=True)
            for row_number, line, row, _ in _rows(path, PROMPT_COLUMNS)]


def load_sft(path: str | Path) -> list[tuple[str, str]]:
    """Read and validate (prompt, response) pairs for supervised fine-tuning (both columns non-empty text)."""
    path = Path(path)
    out = []
    for row_number, line, row, _ in _rows(path, SFT_COLUMNS):
        where = _Where(path, row_number, line)
        out.append((_text(where, "prompt", row["prompt"], nonempty=True),
                    _text(where, "response", row["response"], nonempty=True)))
    return out


def write_rows(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write rows of plain values (str, int, bool) to .jsonl, .csv or .parquet, chosen by the extension.

    Every row must have the same keys; CSV booleans are written as `true` / `false`.
    """
    path = Path(path)
    suffix = _suffix(path)
    columns = list(rows[0]) if rows else []
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(dict(row), ensure_ascii=False) + "\n")
    elif suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()})
    else:
        pa, pq = _pyarrow(path)
        pq.write_table(pa.Table.from_pylist([dict(r) for r in rows]), path)


@dataclass(frozen=True)
class _Where:
    path: Path
    row: int
    line: int | None

    def error(self, column: str, problem: str) -> ConfigError:
        line = f" (line {self.line})" if self.line is not None and self.line != self.row else ""
        return ConfigError(f"{self.path}: row {self.row}{line}, column '{column}': {problem}")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise ConfigError(f"{path}: unsupported file type '{path.suffix or '(none)'}'; "
                          f"use one of {', '.join(SUPPORTED_EXTENSIONS)}")
    return suffix


def _pyarrow(path: Path) -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError(f"{path}: reading or writing Parquet needs pyarrow (pip install pyarrow)") from exc
    return pa, pq


def _rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, int | None, Mapping[str, Any], bool]]:
    """Yield (data row number, file line or None, row, is_csv) with every required column present."""
    if path.is_dir():  # before the suffix: a folder is not "an unsupported file type"
        raise ConfigError(f"{path}: is a directory, not a data file")
    suffix = _suffix(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if suffix == ".jsonl":
        rows = _jsonl_rows(path)
    elif suffix == ".csv":
        rows = _csv_rows(path, columns)
    else:
        rows = _parquet_rows(path, columns)
    count = 0
    for row_number, line, row in rows:
        count += 1
        for column in columns:
            if column not in row:
                raise _Where(path, row_number, line).error(column, "missing column")
            if row[column] is None:
                raise _Where(path, row_number, line).error(column, "missing value")
        yield row_number, line, row, suffix == ".csv"
    if count == 0:
        raise ConfigError(f"{path}: no data rows")


def _read_error(path: Path, exc: Exception) -> ConfigError:
    """The one-line error for a data file that cannot be read as text (not UTF-8, not CSV, no permission, ...)."""
    if isinstance(exc, UnicodeDecodeError):
        return ConfigError(f"{path}: not UTF-8 text ({exc.reason}); save the file with UTF-8 encoding")
    if isinstance(exc, csv.Error):
        return ConfigError(f"{path}: not a valid CSV file: {exc}")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigError(f"{path}: cannot read the file: {reason}")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, int | None, Mapping[str, Any]]]:
    try:
        yield from _jsonl_rows_unchecked(path)
    except (UnicodeDecodeError, OSError) as exc:
        raise _read_error(path, exc) from None


def _jsonl_rows_unchecked(path: Path) -> Iterator[tuple[int, int | None, Mapping[str, Any]]]:
    row_number = 0
    with path.open(encoding="utf-8") as f:
        for line_number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            row_number += 1
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: row {row_number} (line {line_number}): not valid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}: row {row_number} (line {line_number}): expected a JSON object, "
                                  f"got {type(row).__name__}")
            yield row_number, line_number, row


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, int | None, Mapping[str, Any]]]:
    try:
        yield from _csv_rows_unchecked(path, columns)
    except (UnicodeDecodeError, OSError, csv.Error) as exc:
        raise _read_error(path, exc) from None


def _csv_rows_unchecked(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, int | None, Mapping[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        for column in columns:
            if column not in header:
                raise ConfigError(f"{path}: header, column '{column}': missing column (columns found: {header})")
        for row_number, row in enumerate(reader, start=1):
            if None in row:
                raise ConfigError(f"{path}: row {row_number} (line {reader.line_num}): "
                                  f"more fields than the header's {len(header)}")
            yield row_number, None, row


def _parquet_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, int | None, Mapping[str, Any]]]:
    _, pq = _pyarrow(path)
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ConfigError(f"{path}: not a readable Parquet file: {exc}") from None
    for column in columns:
        if column not in table.column_names:
            raise ConfigError(f"{path}: column '{column}': missing column (columns found: {table.column_names})")
    for row_number, row in enumerate(table.select(list(columns)).to_pylist(), start=1):
        yield row_number, None, row


def _text(where: _Where, column: str, value: Any, nonempty: bool) -> str:
    if not isinstance(value, str):
        raise where.error(column, f"expected text, got {type(value).__name__} {value!r}")
    if nonempty and not value.strip():
        raise where.error(column, "empty text")
    return value


def _response_id(where: _Where, column: str, value: Any, is_csv: bool) -> int:
    if is_csv:
        parsed = {"0": 0, "1": 1}.get(value.strip())
    elif isinstance(value, bool):
        parsed = None
    elif isinstance(value, int):
        parsed = value if value in (0, 1) else None
    elif isinstance(value, float) and math.isfinite(value) and value in (0.0, 1.0):
        parsed = int(value)
    else:
        parsed = None
    if parsed is None:
        raise where.error(column, f"expected 0 or 1, got {value!r}")
    return parsed


def _flag(where: _Where, column: str, value: Any, is_csv: bool) -> bool:
    if is_csv:
        parsed = _CSV_BOOLS.get(value.strip().lower())
    else:
        parsed = value if isinstance(value, bool) else None
    if parsed is None:
        allowed = "true/false (or 1/0)" if is_csv else "a boolean (true/false)"
        raise where.error(column, f"expected {allowed}, got {value!r}")
    return parsed
