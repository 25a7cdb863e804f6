"""Benchmark suites: grids of algorithms x environments x seeds, trained locally or on Ray.

    cmdp benchmark benchmarks/suites/smoke.yaml [--out DIR] [--workers N] [--ray [ADDRESS]] [--dry-run]

This module is the `cmdp benchmark` command's orchestration: `run_suite` loads and checks the suite file
(`cmdp.benchmarks.suite`), plans and validates every cell before anything is written
(`cmdp.benchmarks.cells`), then hands the cells that are not finished to an executor
(`cmdp.benchmarks.executors`: in-process, N local worker processes, or Ray) while the status board
(`cmdp.benchmarks.board`) shows progress and keeps `DIR/status.json`.

A bad suite or cell config stops the command with one message (exit status 2) and no folder is written.
A rerun of the same suite skips finished cells, resumes interrupted ones from their checkpoints and starts
the rest, also after a driver that was killed outright. A cell that fails leaves `error.txt` in its folder
and its error in `DIR/status.json`; the other cells go on, and the exit status is 1 if any cell failed
(130 when interrupted).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

import yaml

from cmdp.benchmarks.board import STATUS_FILE, Board, format_outcome, read_status
from cmdp.benchmarks.cells import SUITE_COPY, Cell, cell_dir, plan_cells, train_cell
from cmdp.benchmarks.executors import check_ray_address, run_inline, run_local, run_ray, start_ray
from cmdp.benchmarks.suite import SUITE_KEYS, Suite, load_suite
from cmdp.config import check_output_folder, make_output_folder
from cmdp.spec import ConfigError
from cmdp.wording import count_text

#: What a suite run keeps at these paths of its benchmark folder (written over at each run), for
#: cmdp.loading.check_run_paths
SUITE_PATH_KINDS: dict[str, str] = {SUITE_COPY: "file", STATUS_FILE: "file"}


def default_workers(cells: list[Cell]) -> int:
    """Local workers when not given: the CPUs this process may use over the CPUs one cell needs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    per_cell = max([c.num_cpus for c in cells] or [1])
    return max(1, cpus // per_cell)


def run_suite(suite_path: str | Path | Suite, out: str | Path | None = None, workers: int | None = None,
              use_ray: bool = False, ray_address: str | None = None, dry_run: bool = False,
              stream: TextIO | None = None, rerun: str | None = None) -> int:
    """Validate a suite, then train its cells that are not finished; the `cmdp benchmark` command.

    `suite_path` is a suite file, or a `Suite` already loaded (`cmdp demo` changes the seeds or budget of its own);
    `rerun` is the command that resumes an interrupted run or retries its failed cells (default: `cmdp benchmark
    SUITE --out OUT`, with the same `--ray` or `--workers`).
    Returns the exit status: 0 when every cell finished, 1 when any failed, 130 when interrupted.
    Raises ConfigError (before anything is written) when the suite or any cell's config is invalid.
    """
    stream = stream or sys.stderr
    suite = suite_path if isinstance(suite_path, Suite) else load_suite(suite_path)
    out = Path(out) if out else Path("runs") / f"benchmark-{suite.name}"
    # the command that goes on, run where this one ran: on the same Ray cluster, or with as many local workers
    where = (f" --ray {ray_address}" if ray_address else " --ray") if use_ray else \
        (f" --workers {workers}" if workers is not None else "")
    rerun = rerun or f"cmdp benchmark {suite.path} --out {out}{where}"
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {workers}")
    if use_ray and workers is not None:
        raise ConfigError("--workers is for local runs; with --ray, Ray schedules cells by their declared CPUs")
    check_output_folder(out)
    from cmdp.loading import check_run_paths

    # written over at each run: a folder there ended in a traceback
    check_run_paths(out, list(SUITE_PATH_KINDS), SUITE_PATH_KINDS, "a suite run", "remove it or choose another --out")
    check_suite_folder(out, suite)
    cells, notes = plan_cells(suite, out, for_ray=use_ray)
    todo = [c for c in cells if c.start != "skip"]
    if use_ray and todo and not dry_run:  # a misspelt or silent address: its error line alone, before the plan
        check_ray_address(ray_address)  # once, here: `start_ray` below relies on it
    for note in notes:
        print(f"note: {note}", file=stream)
    n_workers = default_workers(todo) if workers is None else workers
    mode = "ray" + (f" {ray_address}" if ray_address else "") if use_ray else \
        ("in-process" if n_workers == 0 else count_text(n_workers, "local workers"))
    counts = {s: sum(c.start == s for c in cells) for s in ("new", "resume", "skip")}
    print(f"suite {suite.name}: {count_text(len(suite.environments), 'environments')} x "
          f"{count_text(len(suite.algorithms), 'algorithms')} x {count_text(len(suite.seeds), 'seeds')} = "
          f"{count_text(len(cells), 'cells')} -> {out} ({counts['new']} to start, "
          f"{counts['resume']} to resume, {counts['skip']} finished before); {mode}", file=stream)
    previous = _previous_run_note(out)
    if previous:
        print(previous, file=stream)
    if dry_run:  # the plan is this command's output: stdout
        for c in cells:
            gpu = ", 1 gpu" if c.num_gpus else ""
            print(f"{c.start:<6} {c.key}  ({c.total_steps:,} steps, {count_text(c.num_cpus, 'cpus')}{gpu})")
        return 0
    own_ray = False
    if use_ray and todo:  # before anything is written: an address that does not answer leaves no folder behind
        if ray_address:
            print(f"joining the Ray cluster at {ray_address}", file=stream)
        own_ray = start_ray(ray_address)
    make_output_folder(out)  # should the OS refuse now, a Ray started here stops at exit (Ray's own atexit hook)
    (out / SUITE_COPY).write_text(yaml.safe_dump(suite.to_dict(), sort_keys=False))
    board = Board(suite, out, cells, mode, stream)
    try:
        if not todo:
            pass
        elif use_ray:
            run_ray(todo, out, board, own_ray)
        elif n_workers == 0:
            run_inline(todo, out, board)
        else:
            run_local(todo, out, board, n_workers)
    except KeyboardInterrupt:
        board.close("interrupted")
        print(f"\ninterrupted; rerun to resume: {rerun}", file=stream)
        return 130
    failed = [k for k, c in board.cells.items() if c["status"] == "failed"]
    board.close("failed" if failed else "complete")
    print(format_outcome(board, counts["skip"], rerun))
    return 1 if failed else 0


def check_suite_folder(out: Path, suite: Suite) -> None:
    """ConfigError in one line when `out` cannot take `suite`'s cells: it is a run folder (`cmdp train`'s), or it
    holds the runs of another suite (its suite.yaml names another one). The cells would land among those runs,
    and `cmdp report` of the folder would show both under one title."""
    if (out / "config.yaml").is_file():
        raise ConfigError(f"{out} is a run folder (it holds config.yaml); choose another --out for the suite")
    copy = out / SUITE_COPY
    if not copy.is_file():
        return
    try:
        previous = yaml.safe_load(copy.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        previous = None
    name = previous.get("name") if isinstance(previous, dict) else None
    if name != suite.name:
        held = f"the runs of suite {name!r}" if isinstance(name, str) else "a suite.yaml that names no suite"
        raise ConfigError(f"{out} holds {held} ({copy}); running suite {suite.name!r} there would mix both in one "
                          f"report: choose another --out")


def _previous_run_note(out: Path) -> str | None:
    """A line about the last run in `out` when it did not end cleanly (from its status.json), else None."""
    previous = read_status(out)
    if not previous:
        return None
    if previous.get("state") == "interrupted":
        why = f": {previous['interrupted_because']}" if previous.get("interrupted_because") else ""
        return f"note: the previous run in {out} was interrupted{why}; its unfinished cells resume"
    driver = previous.get("driver")
    if previous.get("state") == "running" and isinstance(driver, dict) and driver.get("pid") != os.getpid():
        return (f"warning: {out / STATUS_FILE} says a driver is running this suite (pid {driver.get('pid')} on "
                f"{driver.get('host')}, last heartbeat {driver.get('heartbeat')}); two drivers on one folder "
                f"train the same cells twice")
    return None


# run_suite, default_workers and check_suite_folder are this module's own; the rest is re-exported from where it
# now lives, for code that imported it from here.
__all__ = ["run_suite", "default_workers", "check_suite_folder", "Suite", "Cell", "load_suite", "plan_cells",
           "train_cell", "cell_dir", "SUITE_KEYS", "STATUS_FILE", "read_status"]
