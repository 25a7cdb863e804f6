"""The cells of a suite: planning them, reading their folders' state and training one of them.

This module's one job is the cell: one (environment, algorithm, seed) of a suite with its resolved config
and its run folder. `plan_cells` resolves and validates every cell's config and decides from its folder
whether it is new, to resume or finished (it writes nothing); `train_cell` trains one cell in whatever
process or machine runs it and never raises for a failed cell.

Every cell is an ordinary run folder `DIR/<env>/<algo>/seed<seed>/`, exactly what `cmdp train` writes
(`cmdp eval`, `cmdp train --resume` and TensorBoard work on it). A rerun of the same suite skips
finished cells, resumes interrupted ones from their checkpoints and starts the rest. A cell that fails
leaves `error.txt` (its traceback) in its folder and returns its error to the driver, which records it
in `DIR/status.json` (`cmdp.benchmarks.board`).
"""
from __future__ import annotations

import json
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import yaml

from cmdp.benchmarks.suite import Suite
from cmdp.config import dump_yaml, load_yaml
from cmdp.spec import ConfigError

#: The copy of the suite the driver writes into DIR (train_cell checks that DIR is visible through it).
SUITE_COPY = "suite.yaml"
#: A failed cell's traceback, in its run folder.
ERROR_FILE = "error.txt"
#: the numbers of a finished cell, as its summary.json holds them, that its result and status.json carry
FINAL_KEYS = ("wall_seconds", "final_return", "final_costs", "cost_limits")


# --- planning the cells ---------------------------------------------------------------------------------
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


def cell_dir(out: str | Path, env: str, algo: str, seed: int) -> Path:
    """Where a cell's run folder lives."""
    return Path(out) / env / algo / f"seed{seed}"


def plan_cells(suite: Suite, out: str | Path, for_ray: bool = False) -> tuple[list[Cell], list[str]]:
    """Resolve and validate every cell's config and look at its folder; nothing is written.

    Returns the cells (grid order: environment, algorithm, seed) and notes for the user (e.g. a budget
    rounded to whole epochs). Raises ConfigError when a cell's config is invalid, or when its folder
    holds something other than a run of exactly this config.
    """
    from cmdp.registry import get_env
    from cmdp.resolve import resolve_config

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
                    cfg, cell_notes = resolve_config(values, preset=suite.preset)
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
                # the family knows how many processes a run keeps busy (control: one per copy when num_envs > 1)
                processes = get_env(env).family.cpus(cfg)
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
            cfg, run_dir = open_run(run_dir, need_checkpoint=False, trust_plugins=True)  # the suite named them
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
                **{key: summary[key] for key in FINAL_KEYS}, "seconds": round(time.time() - t0, 3)}
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
        return int(load_checkpoint(run_dir / CHECKPOINT, mmap=True)["env_steps"])  # mapped: not its replay buffer
    except Exception:
        return 0


__all__ = ["Cell", "cell_dir", "plan_cells", "train_cell", "Reporter", "SUITE_COPY", "ERROR_FILE"]
