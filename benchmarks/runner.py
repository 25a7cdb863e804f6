"""Benchmark suites: grids of algorithms x environments x seeds, trained locally or on Ray.

    cmdp benchmark benchmarks/suites/smoke.yaml [--out DIR] [--workers N] [--ray [ADDRESS]] [--dry-run]

A suite file (YAML) names the grid, the step budget and config overrides::

    name: smoke                               # default output folder: runs/benchmark-<name>
    description: what the suite is for       # optional
    algorithms: [ppo, ppo_lag]
    environments: [ExactChain-v0, SafetyHopperVelocity-v1]
    seeds: [0, 1]                             # or a count: 3 means [0, 1, 2]
    total_steps: 4000
    config: {steps_per_epoch: 1000}           # every cell
    env_config: {ExactChain-v0: {...}}        # the cells of one environment
    algo_config: {ppo_lag: {...}}             # the cells of one algorithm

Each cell's config is, in increasing precedence: the algorithm's defaults, `torch_threads: 1` and the
suite's `total_steps`, `config`, `env_config[env]`, `algo_config[algo]`; `algo`, `env` and `seed` come
from the grid. Every cell's config is resolved with `cmdp.trainer.resolve_config` before anything runs,
so one bad key stops the suite with one message (exit status 2) and no folder is written.

Every cell is an ordinary run folder `DIR/<env>/<algo>/seed<seed>/`, exactly what `cmdp train` writes
(`cmdp eval`, `cmdp train --resume` and TensorBoard work on it). A rerun of the same suite skips
finished cells, resumes interrupted ones from their checkpoints and starts the rest. A cell that fails
leaves `error.txt` (its traceback) in its folder and its error in `DIR/status.json`; the other cells go
on, and the exit status is 1 if any cell failed.

Local runs use N worker processes (spawn), each training one cell at a time. With `--ray`, cells are Ray
tasks (`ray.init()` starts a local Ray; `--ray ADDRESS` joins a cluster), each declaring its CPUs
(max(torch_threads, num_envs)) and GPUs (1 when its device is cuda). On a multi-node cluster every node
needs cmdp-lab installed and DIR on storage that every node mounts.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from cmdp.config import dump_yaml, field_names, load_yaml
from cmdp.spec import ConfigError

#: Top-level keys of a suite file and what each means.
SUITE_KEYS: dict[str, str] = {
    "name": "suite name (letters, digits, '.', '_', '-'); default: the file name",
    "description": "free text",
    "algorithms": "list of algorithm names (`cmdp list`)",
    "environments": "list of environment names (`cmdp list`)",
    "seeds": "list of seeds, or a count N meaning 0..N-1",
    "total_steps": "environment steps per cell",
    "config": "config keys for every cell",
    "env_config": "mapping environment -> config keys for that environment's cells",
    "algo_config": "mapping algorithm -> config keys for that algorithm's cells",
}
REQUIRED_KEYS = ("algorithms", "environments", "seeds", "total_steps")
#: Keys set by the grid itself; overrides may not set them.
GRID_KEYS = ("algo", "env", "seed")
STATUS_FILE = "status.json"
SUITE_COPY = "suite.yaml"
ERROR_FILE = "error.txt"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


# --- the suite file ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suite:
    """A validated suite file: the grid and its overrides."""

    name: str
    path: Path
    algorithms: tuple[str, ...]
    environments: tuple[str, ...]
    seeds: tuple[int, ...]
    total_steps: int
    config: dict[str, Any] = field(default_factory=dict)
    env_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    algo_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The suite as a plain mapping (what `DIR/suite.yaml` holds)."""
        return {"name": self.name, "description": self.description, "source": str(self.path),
                "algorithms": list(self.algorithms), "environments": list(self.environments),
                "seeds": list(self.seeds), "total_steps": self.total_steps, "config": self.config,
                "env_config": self.env_config, "algo_config": self.algo_config}


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file; ConfigError naming the file and the field on any problem.

    Checks the keys, the names of algorithms and environments (after loading `config.plugins`), the
    seeds and the budget, and that every override key exists in the config of each algorithm it applies
    to. Value types and ranges are checked per cell by `plan_cells`.
    """
    from cmdp.registry import get_algorithm, get_env, load_plugins

    p = Path(path)
    where = f"suite {p}"
    if not p.is_file():
        raise ConfigError(f"suite file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"suite file {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"suite file {p} must hold a mapping of suite keys ({', '.join(SUITE_KEYS)}), "
                          f"got {type(data).__name__}")
    for key in data:
        if key not in SUITE_KEYS:
            close = difflib.get_close_matches(str(key), list(SUITE_KEYS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}; known keys: {', '.join(SUITE_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ConfigError(f"{where}: missing key '{key}' ({SUITE_KEYS[key]})")

    name = data.get("name", p.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{where}: name must be letters, digits, '.', '_' or '-' (it names a folder), got {name!r}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be text, got {description!r}")

    config = _mapping(data.get("config"), f"{where}: config")
    _no_grid_keys(config, f"{where}: config")
    if "total_steps" in config:
        raise ConfigError(f"{where}: config: set total_steps at the top level of the suite "
                          f"(or per environment/algorithm in env_config/algo_config)")
    plugins = config.get("plugins") or []
    if not isinstance(plugins, list):
        raise ConfigError(f"{where}: config: plugins must be a list of module names or .py files, got {plugins!r}")
    load_plugins([str(Path(x).resolve()) if isinstance(x, str) and x.endswith(".py") else x for x in plugins])

    algorithms = _names(data["algorithms"], f"{where}: algorithms")
    environments = _names(data["environments"], f"{where}: environments")
    for a in algorithms:
        try:
            get_algorithm(a)
        except ConfigError as exc:
            raise ConfigError(f"{where}: algorithms: {exc}") from None
    for e in environments:
        try:
            get_env(e)
        except ConfigError as exc:
            raise ConfigError(f"{where}: environments: {exc}") from None
    seeds = _seeds(data["seeds"], f"{where}: seeds")
    total_steps = _positive_int(data["total_steps"], f"{where}: total_steps")

    env_config = _per_name(data.get("env_config"), environments, "environment", f"{where}: env_config")
    algo_config = _per_name(data.get("algo_config"), algorithms, "algorithm", f"{where}: algo_config")

    # every override key must exist for every algorithm it reaches (the message says which section)
    known = {a: set(field_names(get_algorithm(a).Config)) for a in algorithms}
    sections: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [("config", config, algorithms)]
    sections += [(f"env_config: {e}", cfg, algorithms) for e, cfg in env_config.items()]
    sections += [(f"algo_config: {a}", cfg, (a,)) for a, cfg in algo_config.items()]
    for section, values, algos in sections:
        for key in values:
            for a in algos:
                if key not in known[a]:
                    close = difflib.get_close_matches(str(key), sorted(known[a]), n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    if section != f"algo_config: {a}" and any(key in known[b] for b in algorithms):
                        hint += f"; a key that only some algorithms have goes under algo_config: {{{_algos_with(key, known)}: ...}}"
                    raise ConfigError(f"{where}: {section}: unknown key '{key}'{hint} for algorithm '{a}'")
    return Suite(name=name, path=p, algorithms=algorithms, environments=environments, seeds=seeds,
                 total_steps=total_steps, config=config, env_config=env_config, algo_config=algo_config,
                 description=description)


def _algos_with(key: str, known: dict[str, set[str]]) -> str:
    """The algorithms whose config has `key` (for error hints)."""
    return ", ".join(a for a, keys in known.items() if key in keys)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of config keys to values, got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: keys must be config names, got {key!r}")
    return dict(value)


def _no_grid_keys(values: dict[str, Any], where: str) -> None:
    for key in GRID_KEYS:
        if key in values:
            grid = {"algo": "algorithms", "env": "environments", "seed": "seeds"}[key]
            raise ConfigError(f"{where}: '{key}' is set by the grid; list it under '{grid}' instead")


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a non-empty list of names, got {value!r}")
    dup = [v for i, v in enumerate(value) if v in value[:i]]
    if dup:
        raise ConfigError(f"{where}: '{dup[0]}' is listed twice")
    return tuple(value)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ConfigError(f"{where}: a count of seeds must be >= 1, got {value}")
        return tuple(range(value))
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of integers or a count, got {value!r}")
    for s in value:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ConfigError(f"{where}: seeds must be integers >= 0, got {s!r}")
    dup = [s for i, s in enumerate(value) if s in value[:i]]
    if dup:
        raise ConfigError(f"{where}: seed {dup[0]} is listed twice")
    return tuple(value)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, str):  # YAML 1.1 reads 1e7 as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where} must be an integer >= 1, got {value!r}")
    return value


def _per_name(value: Any, names: tuple[str, ...], kind: str, where: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, cfg in _mapping(value, where).items():
        if name not in names:
            close = difflib.get_close_matches(name, list(names), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: '{name}' is not one of the suite's {kind}s{hint}: {', '.join(names)}")
        out[name] = _mapping(cfg, f"{where}: {name}")
        _no_grid_keys(out[name], f"{where}: {name}")
    return out


# --- the cells ------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One (environment, algorithm, seed) of a suite with its resolved config and its run folder."""

    env: str
    algo: str
    seed: int
    config: dict[str, Any]
    run_dir: Path
    start: str  # "new", "resume" or "skip" (finished in an earlier run)
    total_steps: int
    steps_done: int = 0
    num_cpus: int = 1
    num_gpus: int = 0

    @property
    def key(self) -> str:
        return f"{self.env}/{self.algo}/seed{self.seed}"

    def payload(self, out: Path) -> dict[str, Any]:
        """What a worker needs to train the cell (plain data: it crosses process and machine boundaries)."""
        return {"key": self.key, "run_dir": str(self.run_dir.resolve()), "config": self.config,
                "out": str(out.resolve())}


def cell_dir(out: Path, env: str, algo: str, seed: int) -> Path:
    """Where a cell's run folder lives."""
    return Path(out) / env / algo / f"seed{seed}"


def plan_cells(suite: Suite, out: str | Path, for_ray: bool = False) -> tuple[list[Cell], list[str]]:
    """Resolve and validate every cell's config and look at its folder; nothing is written.

    Returns the cells (grid order: environment, algorithm, seed) and notes for the user (e.g. a budget
    rounded to whole epochs). Raises ConfigError when a cell's config is invalid, or when its folder
    holds something other than a run of exactly this config.
    """
    from cmdp.registry import get_env
    from cmdp.trainer import resolve_config

    out = Path(out)
    cells: list[Cell] = []
    notes: dict[str, list[str]] = {}
    for env in suite.environments:
        for algo in suite.algorithms:
            for seed in suite.seeds:
                key = f"{env}/{algo}/seed{seed}"
                values = {"torch_threads": 1, "total_steps": suite.total_steps, **suite.config,
                          **suite.env_config.get(env, {}), **suite.algo_config.get(algo, {}),
                          "algo": algo, "env": env, "seed": seed}
                try:
                    cfg, cell_notes = resolve_config(values)
                except ConfigError as exc:
                    raise ConfigError(f"suite {suite.path}: cell {key}: {exc}") from None
                if for_ray and cfg.device.startswith("cuda:"):
                    raise ConfigError(f"suite {suite.path}: cell {key}: device {cfg.device!r}: under --ray use "
                                      f"device: cuda (Ray assigns each cell its GPU)")
                for note in cell_notes:
                    notes.setdefault(note, []).append(key)
                config = yaml.safe_load(dump_yaml(cfg))
                run_dir = cell_dir(out, env, algo, seed)
                start, done = _folder_state(run_dir, config, key)
                # control copies are processes (num_envs > 1); a text run's num_envs is a generation batch
                processes = cfg.num_envs if get_env(env).builder is None and cfg.num_envs > 1 else 1
                cells.append(Cell(env, algo, seed, config, run_dir, start, cfg.total_steps, done,
                                  num_cpus=max(cfg.torch_threads, processes),
                                  num_gpus=1 if cfg.device.startswith("cuda") else 0))
    messages = [f"{note} ({len(keys)} cell{'s' if len(keys) > 1 else ''}, e.g. {keys[0]})"
                for note, keys in notes.items()]
    return cells, messages


def _folder_state(run_dir: Path, config: dict[str, Any], key: str) -> tuple[str, int]:
    """("new" | "resume" | "skip", env steps already done) for a cell's folder."""
    if not run_dir.exists():
        return "new", 0
    if not run_dir.is_dir():
        raise ConfigError(f"cell {key}: {run_dir} exists and is not a folder")
    entries = [p for p in run_dir.iterdir() if p.name != ERROR_FILE]
    if not entries:
        return "new", 0
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"cell {key}: {run_dir} exists and is not a run folder (no config.yaml); "
                          f"move it away or choose another --out")
    saved = load_yaml(run_dir / "config.yaml")
    if saved != config:
        diff = sorted(k for k in set(saved) | set(config) if saved.get(k, "<unset>") != config.get(k, "<unset>"))
        shown = "; ".join(f"{k}: {saved.get(k, '<unset>')!r} there, {config.get(k, '<unset>')!r} in the suite"
                          for k in diff[:3])
        raise ConfigError(f"cell {key}: {run_dir} holds a run with a different config ({shown}); "
                          f"choose another --out or remove that folder")
    summary = _read_json(run_dir / "summary.json")
    if summary and summary.get("finished"):
        return "skip", int(summary.get("env_steps") or config["total_steps"])
    return "resume", _last_env_steps(run_dir / "progress.csv")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_env_steps(path: Path) -> int:
    try:
        lines = path.read_text().splitlines()
        header = lines[0].split(",")
        return int(lines[-1].split(",")[header.index("env_steps")]) if len(lines) > 1 else 0
    except (OSError, ValueError, IndexError):
        return 0


# --- one cell, in whatever process or machine runs it --------------------------------------------------
Reporter = Callable[[str, int], None]


def train_cell(payload: dict[str, Any], report: Reporter | None = None) -> dict[str, Any]:
    """Train one cell into its run folder: start it, or resume it when its folder already holds a run.

    The worker entry point (local processes and Ray tasks alike). `report(kind, env_steps)` is called
    with ("start", steps) once training begins and ("epoch", steps) after each epoch. Never raises for a
    failed cell: returns {"status": "failed", "error": ..., "traceback": ...} and writes the traceback to
    `error.txt` in the cell folder; {"status": "finished", ...summary numbers} otherwise.
    """
    from cmdp.trainer import Trainer, new_run, open_run, resolve_config

    run_dir = Path(payload["run_dir"])
    host = socket.gethostname()
    t0 = time.time()
    try:
        if not (Path(payload["out"]) / SUITE_COPY).is_file():
            raise RuntimeError(f"the benchmark folder {payload['out']} is not visible on host {host}: on a "
                               f"multi-node Ray cluster put --out on storage that every node mounts")
        (run_dir / ERROR_FILE).unlink(missing_ok=True)
        if (run_dir / "config.yaml").is_file():
            cfg, run_dir = open_run(run_dir, need_checkpoint=False)
            trainer, resume = Trainer(cfg), True
        else:
            cfg, _ = resolve_config(dict(payload["config"]))
            trainer, run_dir = new_run(cfg, str(run_dir))
            resume = False
        on_epoch = None
        if report is not None:
            on_epoch = lambda row: report("epoch", int(row["env_steps"]))  # noqa: E731
            # the trainer loads the checkpoint inside train(); report where it will start from
            report("start", _checkpoint_steps(run_dir) if resume else 0)
        summary = trainer.train(run_dir, resume=resume, progress=False, on_epoch=on_epoch)
        return {"status": "finished", "host": host, "resumed": resume, "env_steps": summary["env_steps"],
                "wall_seconds": summary["wall_seconds"], "final_return": summary["final_return"],
                "final_costs": summary["final_costs"], "cost_limits": summary["cost_limits"],
                "seconds": round(time.time() - t0, 3)}
    except Exception as exc:
        tb = traceback.format_exc()
        error = f"{type(exc).__name__}: {exc}"
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / ERROR_FILE).write_text(f"cell {payload['key']} failed on host {host} at "
                                              f"{datetime.now().isoformat(timespec='seconds')}\n\n{tb}")
        except OSError:
            pass
        return {"status": "failed", "host": host, "error": error, "traceback": tb,
                "seconds": round(time.time() - t0, 3)}


def _checkpoint_steps(run_dir: Path) -> int:
    from cmdp.checkpoint import load_checkpoint
    from cmdp.trainer import CHECKPOINT

    try:
        return int(load_checkpoint(run_dir / CHECKPOINT)["env_steps"])
    except Exception:
        return 0


def _local_worker(conn: Any) -> None:
    """A local worker process: train the cells it is sent over `conn`, one at a time, until it gets None.

    Each worker talks to the driver over a pipe of its own. A shared multiprocessing.Queue is unsafe here:
    a worker that dies while its queue's feeder thread holds the queue's write lock (killed, out of memory,
    os._exit in user code) leaves that lock taken forever, and every other worker's events then block.
    """
    try:
        while True:
            payload = conn.recv()
            if payload is None:
                return
            key = payload["key"]
            result = train_cell(payload, lambda kind, steps: conn.send((kind, key, steps)))
            conn.send(("result", key, result))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):  # Ctrl-C reaches the whole group; the driver reports it
        return


def _ray_cell(payload: dict[str, Any], events: Any) -> dict[str, Any]:
    """A Ray task: train one cell, reporting progress to the driver's queue actor."""
    key = payload["key"]

    def report(kind: str, steps: int) -> None:
        try:
            events.put((kind, None, key, steps))
        except Exception:  # progress is best effort; the result is what counts
            pass

    return train_cell(payload, report)


# --- progress and status ------------------------------------------------------------------------------
def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Board:
    """Live state of a suite run: the display line, the per-cell events and `status.json`."""

    def __init__(self, suite: Suite, out: Path, cells: list[Cell], mode: str, stream: TextIO) -> None:
        self.suite, self.out, self.mode, self.stream = suite, out, mode, stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.t0 = time.time()
        self.started_at = datetime.now().isoformat(timespec="seconds")
        self.state = "running"
        self.cells: dict[str, dict[str, Any]] = {}
        self.session_start: dict[str, int] = {}  # env steps a cell had when this session started it
        for c in cells:
            self.cells[c.key] = {
                "env": c.env, "algo": c.algo, "seed": c.seed, "dir": str(c.run_dir.relative_to(out)),
                "start": c.start, "status": "finished" if c.start == "skip" else "pending",
                "env_steps": c.steps_done, "total_steps": c.total_steps, "error": None}
        self._last_line = ""
        self._last_draw = 0.0
        self._last_plain = time.time()
        self._last_write = 0.0
        self.write(force=True)

    # counts and estimate
    def count(self, status: str) -> int:
        return sum(1 for c in self.cells.values() if c["status"] == status)

    def eta(self) -> float:
        done_now = sum(c["env_steps"] - self.session_start[k] for k, c in self.cells.items()
                       if k in self.session_start)
        elapsed = time.time() - self.t0
        left = sum(c["total_steps"] - c["env_steps"] for c in self.cells.values()
                   if c["status"] in ("pending", "running"))
        if left <= 0:
            return 0.0
        return left / (done_now / elapsed) if done_now > 0 and elapsed > 0 else float("inf")

    def line(self) -> str:
        total = len(self.cells)
        steps = sum(c["env_steps"] for c in self.cells.values())
        budget = sum(c["total_steps"] for c in self.cells.values())
        return (f"[{self.suite.name}] {self.count('finished')}/{total} done, {self.count('running')} running, "
                f"{self.count('failed')} failed, {self.count('pending')} pending | steps {steps:,}/{budget:,} | "
                f"elapsed {_fmt_duration(time.time() - self.t0)} | left ~{_fmt_duration(self.eta())}")

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
        self.write()

    def result(self, key: str, result: dict[str, Any]) -> None:
        cell = self.cells[key]
        cell["host"] = result.get("host")
        if result["status"] == "finished":
            cell.update(status="finished", env_steps=result["env_steps"], wall_seconds=result["wall_seconds"],
                        final_return=result["final_return"], final_costs=result["final_costs"],
                        cost_limits=result["cost_limits"])
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
                self._last_plain = time.time()
        self.stream.flush()

    def tick(self) -> None:
        """Refresh the display (a TTY: the line in place; otherwise: a line every minute)."""
        if self.tty:
            self._draw()
        elif time.time() - self._last_plain >= 60:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last_plain = time.time()

    def _draw(self, force: bool = False) -> None:
        if not force and time.time() - self._last_draw < 0.5:
            return
        width = shutil.get_terminal_size().columns - 1  # a wrapped line could not be redrawn in place
        self.stream.write("\r\033[K" + self.line()[:max(width, 20)])
        self.stream.flush()
        self._last_draw = time.time()

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
        if not force and time.time() - self._last_write < 1.0:
            return
        counts = {s: self.count(s) for s in ("finished", "running", "failed", "pending")}
        doc = {"suite": self.suite.name, "suite_file": str(self.suite.path), "out": str(self.out),
               "mode": self.mode, "state": self.state, "started": self.started_at,
               "updated": datetime.now().isoformat(timespec="seconds"), "counts": counts, "cells": self.cells}
        tmp = self.out / (STATUS_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.out / STATUS_FILE)
        self._last_write = time.time()


# --- executors ----------------------------------------------------------------------------------------
def _run_inline(cells: list[Cell], out: Path, board: Board) -> None:
    """Train the cells one after another in this process (`--workers 0`: for debugging)."""
    for cell in cells:
        board.dispatched(cell.key)
        result = train_cell(cell.payload(out), lambda kind, steps, k=cell.key: _on_event(board, kind, k, steps))
        board.result(cell.key, result)


def _on_event(board: Board, kind: str, key: str, steps: int) -> None:
    if kind == "start":
        board.started(key, steps)
    elif kind == "epoch":
        board.epoch(key, steps)
        board.tick()


def _run_local(cells: list[Cell], out: Path, board: Board, workers: int) -> None:
    """Train the cells in `workers` spawned processes, each one cell at a time; a dead worker is replaced."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    pending = deque(cells)
    slots: list[dict[str, Any]] = []

    def spawn(i: int) -> dict[str, Any]:
        conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_local_worker, args=(child_conn,), name=f"cmdp-benchmark-{i}")
        proc.start()
        child_conn.close()  # the worker holds the only other end: its death reads as end-of-file here
        return {"proc": proc, "conn": conn, "key": None}

    def feed(slot: dict[str, Any]) -> None:
        if pending:
            cell = pending.popleft()
            slot["key"] = cell.key
            slot["conn"].send(cell.payload(out))
            board.dispatched(cell.key)

    def replace_dead(i: int) -> None:
        slot = slots[i]
        slot["proc"].join(timeout=10)
        board.failed(slot["key"], f"worker process died (exit code {slot['proc'].exitcode}; killed or out of "
                                  f"memory?); rerun the suite to resume it")
        slot["conn"].close()
        slots[i] = spawn(i)
        feed(slots[i])

    interrupted = False
    try:
        for i in range(min(workers, len(cells))):
            slots.append(spawn(i))
            feed(slots[-1])
        while any(s["key"] for s in slots):
            busy = {s["conn"]: i for i, s in enumerate(slots) if s["key"]}
            for conn in wait(list(busy), timeout=0.5):
                i = busy[conn]
                try:
                    kind, key, data = conn.recv()
                except (EOFError, OSError):  # the worker died mid-cell (killed, out of memory)
                    replace_dead(i)
                    continue
                if kind == "result":
                    slots[i]["key"] = None
                    feed(slots[i])  # the next cell first, so the status line counts it as running
                    board.result(key, data)
                else:
                    _on_event(board, kind, key, data)
            for i, slot in enumerate(slots):  # a worker that is gone although its pipe did not say so
                if slot["key"] and not slot["proc"].is_alive() and not slot["conn"].poll():
                    replace_dead(i)
            board.tick()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for slot in slots:
            if slot["proc"].is_alive() and not interrupted:
                try:
                    slot["conn"].send(None)
                except OSError:
                    pass
        deadline = time.time() + (5 if interrupted else 30)
        for slot in slots:
            slot["proc"].join(timeout=max(0.1, deadline - time.time()))
            if slot["proc"].is_alive():
                slot["proc"].terminate()
                slot["proc"].join()
            slot["conn"].close()


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'cmdp-lab[ray]' (or pip install ray)") from None
    return ray


def _run_ray(cells: list[Cell], out: Path, board: Board, address: str | None) -> None:
    """Train the cells as Ray tasks: a local Ray by default, or the cluster at `address`.

    A Ray session that is already initialised (e.g. by a script or a test) is used as it is and left
    running; one started here is shut down at the end.
    """
    ray = _import_ray()
    from ray.util.queue import Queue

    own = not ray.is_initialized()
    if own:
        ray.init(address=address or None, log_to_driver=True)
    refs: dict[Any, str] = {}
    try:
        events = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(_ray_cell)
        for cell in cells:
            ref = task.options(num_cpus=cell.num_cpus, num_gpus=cell.num_gpus, max_retries=0,
                               name=f"cmdp:{cell.key}").remote(cell.payload(out), events)
            refs[ref] = cell.key
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.5)
            for ref in ready:
                key = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task's worker died, or Ray itself failed
                    result = {"status": "failed", "error": f"Ray task failed: {type(exc).__name__}: {exc}"}
                board.result(key, result)
            n = events.qsize()
            for kind, _, key, steps in (events.get_nowait_batch(n) if n else []):
                if board.cells[key]["status"] in ("pending", "running"):  # not a late event of a finished cell
                    _on_event(board, kind, key, steps)
            board.tick()
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if own:
            ray.shutdown()


# --- the command --------------------------------------------------------------------------------------
def default_workers(cells: list[Cell]) -> int:
    """Local workers when not given: the CPUs this process may use over the CPUs one cell needs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    per_cell = max([c.num_cpus for c in cells] or [1])
    return max(1, cpus // per_cell)


def run_suite(suite_path: str | Path, out: str | Path | None = None, workers: int | None = None,
              use_ray: bool = False, ray_address: str | None = None, dry_run: bool = False,
              stream: TextIO | None = None) -> int:
    """Validate a suite, then train its cells that are not finished; the `cmdp benchmark` command.

    Returns the exit status: 0 when every cell finished, 1 when any failed, 130 when interrupted.
    Raises ConfigError (before anything is written) when the suite or any cell's config is invalid.
    """
    stream = stream or sys.stderr
    suite = load_suite(suite_path)
    out = Path(out) if out else Path("runs") / f"benchmark-{suite.name}"
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {workers}")
    if use_ray and workers is not None:
        raise ConfigError("--workers is for local runs; with --ray, Ray schedules cells by their declared CPUs")
    cells, notes = plan_cells(suite, out, for_ray=use_ray)
    for note in notes:
        print(f"note: {note}", file=stream)
    todo = [c for c in cells if c.start != "skip"]
    n_workers = default_workers(todo) if workers is None else workers
    mode = "ray" + (f" {ray_address}" if ray_address else "") if use_ray else \
        ("in-process" if n_workers == 0 else f"{n_workers} local worker{'s' if n_workers != 1 else ''}")
    counts = {s: sum(c.start == s for c in cells) for s in ("new", "resume", "skip")}
    print(f"suite {suite.name}: {len(suite.environments)} environments x {len(suite.algorithms)} algorithms x "
          f"{len(suite.seeds)} seeds = {len(cells)} cells -> {out} ({counts['new']} to start, "
          f"{counts['resume']} to resume, {counts['skip']} finished before); {mode}", file=stream)
    if dry_run:  # the plan is this command's output: stdout
        for c in cells:
            print(f"{c.start:<6} {c.key}  ({c.total_steps:,} steps, {c.num_cpus} cpu{', 1 gpu' if c.num_gpus else ''})")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    (out / SUITE_COPY).write_text(yaml.safe_dump(suite.to_dict(), sort_keys=False))
    board = Board(suite, out, cells, mode, stream)
    try:
        if not todo:
            pass
        elif use_ray:
            _run_ray(todo, out, board, ray_address)
        elif n_workers == 0:
            _run_inline(todo, out, board)
        else:
            _run_local(todo, out, board, n_workers)
    except KeyboardInterrupt:
        board.close("interrupted")
        print(f"\ninterrupted; rerun to resume: cmdp benchmark {suite.path} --out {out}", file=stream)
        return 130
    failed = [k for k, c in board.cells.items() if c["status"] == "failed"]
    board.close("failed" if failed else "complete")
    print(format_outcome(board, counts["skip"]))
    return 1 if failed else 0


def format_outcome(board: Board, skipped: int) -> str:
    """The end-of-suite lines: counts, failed cells, where the status and the report are."""
    cells = board.cells
    failed = {k: c for k, c in cells.items() if c["status"] == "failed"}
    lines = [f"suite {board.suite.name}: {len(cells)} cells, {board.count('finished')} finished"
             + (f" ({skipped} in an earlier run)" if skipped else "") + f", {len(failed)} failed, "
             f"{_fmt_duration(time.time() - board.t0)} -> {board.out}"]
    for key, c in failed.items():
        where = f"  [{board.out / c['error_file']}]" if c.get("error_file") else ""
        lines.append(f"  FAILED {key}: {c['error']}{where}")
    if failed:
        lines.append(f"rerun to retry the failed cells (finished ones are skipped): "
                     f"cmdp benchmark {board.suite.path} --out {board.out}")
    lines.append(f"status: {board.out / STATUS_FILE}   report: cmdp report {board.out}")
    return "\n".join(lines)


__all__ = ["Suite", "Cell", "load_suite", "plan_cells", "train_cell", "run_suite", "cell_dir", "SUITE_KEYS"]
