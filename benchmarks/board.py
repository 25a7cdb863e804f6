"""The status board of a suite run: the live display, the per-cell event lines and `DIR/status.json`.

This module's one job is to show and record where a suite run stands. The driver feeds the `Board` the
cells' events (dispatched, started, epoch, result, failed); the board redraws its status line (in place
on a TTY, a line after each finished cell and every minute otherwise) and writes `DIR/status.json`
atomically. `format_outcome` gives the end-of-suite lines, and `read_status` is how anything reads
`status.json` back.

`DIR/status.json` has each cell's state, steps, host and final numbers, the suite's state ("running",
"complete", "failed" or "interrupted") and who drives the run: the driver's pid, host name, start time and
a heartbeat time that the board refreshes as it redraws. A driver killed without a chance to say so
(SIGKILL, a lost machine) leaves "running" in the file; `read_status` reports such a suite as
"interrupted" when its driver's pid is no longer alive on this host (on another host, the heartbeat tells
how long ago the driver was last seen).
"""
from __future__ import annotations

import collections
import json
import math
import os
import shutil
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TextIO

from cmdp.benchmarks.cells import ERROR_FILE, FINAL_KEYS, Cell
from cmdp.benchmarks.suite import Suite
from cmdp.logger import strict_json_text
from cmdp.wording import count_text

STATUS_FILE = "status.json"
#: Seconds between refreshes of status.json's heartbeat while nothing else changes.
HEARTBEAT_SECONDS = 10.0


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Board:
    """Live state of a suite run: the display line, the per-cell events and `status.json`."""

    def __init__(self, suite: Suite, out: Path, cells: list[Cell], mode: str, stream: TextIO,
                 clock: Callable[[], float] = time.time) -> None:
        self.suite, self.out, self.mode, self.stream, self.clock = suite, out, mode, stream, clock
        self.tty = stream.isatty()
        self.t0 = clock()
        self.started_at = datetime.now().isoformat(timespec="seconds")
        self.state = "running"
        # who drives this run, so that a reader can tell a live run from one whose driver was killed
        self.driver: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started_at,
                                       "process_start": _process_start(os.getpid()), "heartbeat": self.started_at}
        self.cells: dict[str, dict[str, Any]] = {}
        self.session_start: dict[str, int] = {}  # env steps a cell had when this session started it
        # (time, env steps done this session) at each epoch, the oldest dropped once the estimate no longer needs it
        self.progress: collections.deque[tuple[float, int]] = collections.deque()
        for c in cells:
            self.cells[c.key] = {
                "env": c.env, "algo": c.algo, "seed": c.seed, "dir": str(c.run_dir.relative_to(out)),
                "start": c.start, "status": "finished" if c.start == "skip" else "pending",
                "env_steps": c.steps_done, "total_steps": c.total_steps, "error": None,
                **(_final_numbers(c.run_dir) if c.start == "skip" else {})}
        self._last_line = ""
        self._last_draw = 0.0
        self._last_plain = self.clock()
        self._last_write = 0.0
        self.write(force=True)

    # counts and estimate
    def count(self, status: str) -> int:
        return sum(1 for c in self.cells.values() if c["status"] == status)

    def eta(self) -> float:
        """Seconds left at the rate of the last half of this session: a rate from its start would count the first
        epochs (an off-policy run's random warm-up, ten times faster than its updates; a process starting) as
        if the rest ran as fast."""
        done_now = self._done_this_session()
        now = self.clock()
        left = sum(c["total_steps"] - c["env_steps"] for c in self.cells.values()
                   if c["status"] in ("pending", "running"))
        if left <= 0:
            return 0.0
        half = now - (now - self.t0) / 2
        while len(self.progress) > 1 and self.progress[1][0] <= half:
            self.progress.popleft()
        since, done_then = self.progress[0] if self.progress and self.progress[0][0] <= half else (self.t0, 0)
        rate = (done_now - done_then) / (now - since) if now > since else 0.0
        return left / rate if rate > 0 else float("inf")

    def _done_this_session(self) -> int:
        return sum(c["env_steps"] - self.session_start[k] for k, c in self.cells.items() if k in self.session_start)

    def line(self) -> str:
        total = len(self.cells)
        steps = sum(c["env_steps"] for c in self.cells.values())
        budget = sum(c["total_steps"] for c in self.cells.values())
        return (f"[{self.suite.name}] {self.count('finished')}/{total} done, {self.count('running')} running, "
                f"{self.count('failed')} failed, {self.count('pending')} pending | steps {steps:,}/{budget:,} | "
                f"elapsed {_fmt_duration(self.clock() - self.t0)} | left ~{_fmt_duration(self.eta())}")

    # events
    def dispatched(self, key: str) -> None:
        self.cells[key]["status"] = "running"
        self.cells[key]["error"] = None
        self.write(force=True)

    def started(self, key: str, steps: int) -> None:
        cell = self.cells[key]
        cell["status"] = "running"
        cell["env_steps"] = steps
        self.session_start[key] = steps
        verb = "resume" if cell["start"] == "resume" else "start "
        self.event(f"{verb}   {key}" + (f" at {steps:,} steps" if steps else ""))
        self.write(force=True)

    def epoch(self, key: str, steps: int) -> None:
        self.cells[key]["env_steps"] = steps
        self.session_start.setdefault(key, 0)
        self.progress.append((self.clock(), self._done_this_session()))
        self.write()

    def result(self, key: str, result: dict[str, Any]) -> None:
        cell = self.cells[key]
        cell["host"] = result.get("host")
        if result["status"] == "finished":
            cell.update(status="finished", env_steps=result["env_steps"], **{key: result[key] for key in FINAL_KEYS})
            costs = ", ".join(f"{n} {v:.2f}/{result['cost_limits'].get(n, float('nan')):g}"
                              for n, v in result["final_costs"].items())
            self.event(f"done     {key}: return {result['final_return']:.2f}, {costs} "
                       f"({result['env_steps']:,} steps, {result['wall_seconds']:.1f} s)")
        else:
            self.failed(key, result.get("error") or "unknown error", cell_error_file=True)
            return
        self.write(force=True)

    def failed(self, key: str, error: str, cell_error_file: bool = False) -> None:
        cell = self.cells[key]
        cell["status"] = "failed"
        cell["error"] = error
        if cell_error_file:
            cell["error_file"] = str(Path(cell["dir"]) / ERROR_FILE)
        where = f" (traceback: {self.out / cell['dir'] / ERROR_FILE})" if cell_error_file else ""
        self.event(f"FAILED   {key}: {error}{where}")
        self.write(force=True)

    # output
    def event(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + "\n")
            self._draw(force=True)
        else:
            self.stream.write(text + "\n")
            if text.startswith(("done", "FAILED")):
                self.stream.write(self.line() + "\n")
                self._last_plain = self.clock()
        self.stream.flush()

    def tick(self) -> None:
        """Refresh the display (a TTY: the line in place; otherwise: a line every minute) and the heartbeat."""
        if self.tty:
            self._draw()
        elif self.clock() - self._last_plain >= 60:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last_plain = self.clock()
        if self.clock() - self._last_write >= HEARTBEAT_SECONDS:
            self.write(force=True)

    def _draw(self, force: bool = False) -> None:
        if not force and self.clock() - self._last_draw < 0.5:
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line could not be redrawn in place
        self.stream.write("\r\033[K" + self.line()[:max(width, 20)])
        self.stream.flush()
        self._last_draw = self.clock()

    def close(self, state: str) -> None:
        self.state = state
        for cell in self.cells.values():
            if state == "interrupted" and cell["status"] == "running":
                cell["status"] = "pending"
        if self.tty:
            self.stream.write("\r\033[K" + self.line() + "\n")
            self.stream.flush()
        self.write(force=True)

    def write(self, force: bool = False) -> None:
        """Write status.json (atomically; at most once a second unless forced)."""
        if not force and self.clock() - self._last_write < 1.0:
            return
        counts = {s: self.count(s) for s in ("finished", "running", "failed", "pending")}
        now = datetime.now().isoformat(timespec="seconds")
        self.driver["heartbeat"] = now
        doc = {"suite": self.suite.name, "suite_file": str(self.suite.path), "out": str(self.out),
               "mode": self.mode, "state": self.state, "started": self.started_at, "updated": now,
               "driver": self.driver, "counts": counts, "cells": self.cells}
        tmp = self.out / (STATUS_FILE + ".tmp")
        tmp.write_text(strict_json_text(doc))  # a NaN return: null
        os.replace(tmp, self.out / STATUS_FILE)
        self._last_write = self.clock()


def _final_numbers(run_dir: Path) -> dict[str, Any]:
    """The final numbers status.json keeps for a finished cell (as `Board.result` does), read from the summary.json
    of a cell that finished in an earlier run; what the summary lacks (or an unreadable one) is left out."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(summary, dict):
        return {}
    return {key: summary[key] for key in FINAL_KEYS if key in summary}


def format_outcome(board: Board, skipped: int, rerun: str) -> str:
    """The end-of-suite lines: counts, failed cells with `rerun` (the command that retries them), where the status and
    the report are."""
    cells = board.cells
    failed = {k: c for k, c in cells.items() if c["status"] == "failed"}
    lines = [f"suite {board.suite.name}: {count_text(len(cells), 'cells')}, "
             f"{board.count('finished')} finished"
             + (f" ({skipped} in an earlier run)" if skipped else "") + f", {len(failed)} failed, "
             f"{_fmt_duration(board.clock() - board.t0)} -> {board.out}"]
    for key, c in failed.items():
        where = f"  [{board.out / c['error_file']}]" if c.get("error_file") else ""
        lines.append(f"  FAILED {key}: {c['error']}{where}")
    if failed:
        lines.append(f"rerun to retry the failed cells (finished ones are skipped): {rerun}")
    lines.append(f"status: {board.out / STATUS_FILE}   report: cmdp report {board.out}")
    return "\n".join(lines)


# --- reading status.json back ---------------------------------------------------------------------------
def read_status(out: str | Path) -> dict[str, Any] | None:
    """`DIR/status.json` as a mapping, or None when the folder has none (or an unreadable one).

    A suite whose file says "running" although its driver is gone (killed with SIGKILL, its machine lost:
    it had no chance to write "interrupted") reads as it would have closed: `state` "interrupted", its
    running cells "pending" (a rerun resumes them), the counts to match, and `interrupted_because` saying
    why. The driver counts as gone when it ran on this host and its pid is not alive here (or now belongs
    to another process). A driver on another host cannot be checked from here: its `driver.heartbeat`
    (refreshed every few seconds while it runs) tells when it was last seen.
    """
    try:
        doc = json.loads((Path(out) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    driver = doc.get("driver")
    if doc.get("state") == "running" and isinstance(driver, dict) and _driver_gone(driver):
        doc["state"] = "interrupted"
        doc["interrupted_because"] = (f"its driver (pid {driver.get('pid')} on {driver.get('host')}, started "
                                      f"{driver.get('started')}, last heartbeat {driver.get('heartbeat')}) "
                                      f"is no longer running")
        cells = doc.get("cells") if isinstance(doc.get("cells"), dict) else {}
        for cell in cells.values():
            if isinstance(cell, dict) and cell.get("status") == "running":
                cell["status"] = "pending"
        doc["counts"] = {s: sum(1 for c in cells.values() if isinstance(c, dict) and c.get("status") == s)
                         for s in ("finished", "running", "failed", "pending")}
    return doc


def _driver_gone(driver: dict[str, Any]) -> bool:
    """True when the driver recorded in status.json ran on this host and is no longer alive."""
    pid = driver.get("pid")
    if driver.get("host") != socket.gethostname() or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # another host's driver, or no pid to check: cannot tell
    return not _pid_alive(pid, driver.get("process_start"))


def _pid_alive(pid: int, process_start: int | None) -> bool:
    """Whether `pid` is a live process here and, when `process_start` is known, the same process."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) is not a probe elsewhere; assume alive rather than guess
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, start = stat
    if state in ("Z", "X"):  # dead, not yet reaped by its parent
        return False
    return process_start is None or start == process_start  # else: the pid was reused by another process


def _process_start(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (Linux); tells a reused pid from the process itself."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks after boot) of a process from /proc; None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()  # the command name (in parentheses) may hold spaces
        return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime) of proc(5)
    except (OSError, ValueError, IndexError):
        return None


__all__ = ["Board", "format_outcome", "read_status", "STATUS_FILE", "HEARTBEAT_SECONDS"]
