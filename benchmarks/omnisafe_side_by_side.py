"""OmniSafe 0.5.0 and cmdp-lab side by side: one algorithm, task, seed and budget, trained at once, one core each.

    python -m benchmarks.omnisafe_side_by_side --algo ppo_lag|cup|cpo|trpo_lag|pid_lag [--env SafetyHopperVelocity-v1]
        [--steps 1e6] [--seed 0] [--steps-per-epoch 20000] [--cost-limit 25]
        [--omnisafe-python .venv-omnisafe/bin/python | --omnisafe-run RUN] [--cmdp-run RUN] [--preset omnisafe]
        [--set KEY=VALUE ...] [--cores 0 1] [--out DIR]

Run it from the repository root with cmdp-lab's python. It installs nothing: OmniSafe runs from its own virtual
environment, which `benchmarks/omnisafe_venv.sh` creates. The two trainings start together, each process pinned
to its own core with one torch thread: cmdp-lab through `cmdp train`, OmniSafe through `benchmarks/omnisafe_runner.py`
(OmniSafe's Python API). Both keep their own defaults except what the comparison must share: total steps, steps
per epoch, one environment, seed, cost limit, CPU. `--preset omnisafe` trains our side with `cmdp train --preset
omnisafe` instead: our deliberate differences from OmniSafe set to its behaviour (docs/omnisafe-differences.md).
`--set KEY=VALUE` (repeatable) passes a key to our side only, as `cmdp train --set` does (e.g. compile_update=true:
the compiled minibatch step); a key both sides share is refused. A line reports each side's epoch as they go.

When both have finished, it writes into --out (default benchmarks/results/omnisafe-side-by-side/<algo>-<env>-s<seed>):
  curves.csv       one row per epoch and framework: framework, epoch, env_steps, ep_return, ep_cost, multiplier,
                   ep_len
  curves.png       return, cost and episode length against environment steps, both frameworks; dashed: the cost
                   limit
  throughput.json  each side's process wall time and steps/s, its training loop's own time, and the ratios
beside each side's own output: cmdp/ (our run folder), omnisafe/ (OmniSafe's log folder), cmdp.log, omnisafe.log.

The curves are what each framework logs: ours, the mean over the epoch's finished episodes; OmniSafe's
`Metrics/EpRet`, `Metrics/EpCost` and `Metrics/EpLen`, the mean over its last 50 finished episodes, whichever
epochs they ended in (the same window its multiplier reads). The episode length tells apart two policies of equal
cost on a velocity task: one that runs fast and falls within a few dozen steps, one that stays up for the whole
episode below the speed limit. Bad options, a missing OmniSafe python or a used --out: one line, exit
status 2, nothing started. A side that fails stops the other: one line naming it, exit status 2, no results written.

OmniSafe's side does not change when cmdp-lab's code does, and it is the slow one (PPOLag took 34 minutes at 1e6
steps on one core of a 2-core AMD EPYC, TRPOLag 11-13). `--omnisafe-run RUN` reuses a finished run of
`omnisafe_runner.py` instead of starting one: RUN is its log folder (the one holding progress.csv and runner.json).
Its settings must be this comparison's (refused in one line otherwise), only cmdp-lab's side runs, and
throughput.json names the reused run; the two sides then did not run at the same time, so their speeds compare only
when the machine was equally idle both times. `--cmdp-run RUN` does the same for our side: a finished `cmdp train`
run folder with this comparison's settings, every config key as the command `cmdp_command` builds would resolve it
today (the preset's keys included; a run made before a default changed is refused), whose wall time is its
training's (summary.json `wall_seconds`, start-up not included).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from cmdp.benchmarks.report import OMNISAFE_ALGOS
from cmdp.config import make_output_folder, parse_set, to_dict, yaml_error_line
from cmdp.presets import ALGORITHM_PRESETS, preset_values
from cmdp.resolve import resolve_config
from cmdp.spec import ConfigError

RUNNER = Path(__file__).resolve().with_name("omnisafe_runner.py")
VENV_COMMAND = "benchmarks/omnisafe_venv.sh"
CMDP, OMNISAFE = "cmdp-lab", "OmniSafe"


@dataclass(frozen=True)
class OmniSafeAlgo:
    """OmniSafe's counterpart of one of our solvers."""

    name: str  # OmniSafe's algorithm name
    cost_limit_section: str  # the config section that holds its cost_limit
    has_multiplier: bool  # both sides log a Lagrange multiplier


#: Our solver -> OmniSafe's (its name from the report's table). Another row is all a new algorithm needs.
ALGORITHMS: dict[str, OmniSafeAlgo] = {
    "ppo_lag": OmniSafeAlgo(OMNISAFE_ALGOS["ppo_lag"], "lagrange_cfgs", has_multiplier=True),
    "cup": OmniSafeAlgo(OMNISAFE_ALGOS["cup"], "lagrange_cfgs", has_multiplier=True),
    "cpo": OmniSafeAlgo(OMNISAFE_ALGOS["cpo"], "algo_cfgs", has_multiplier=False),
    "trpo_lag": OmniSafeAlgo(OMNISAFE_ALGOS["trpo_lag"], "lagrange_cfgs", has_multiplier=True),
    "pid_lag": OmniSafeAlgo(OMNISAFE_ALGOS["pid_lag"], "lagrange_cfgs", has_multiplier=True),  # CPPOPID
}


@dataclass(frozen=True)
class ProgressColumns:
    """Where one framework's progress.csv keeps what the comparison reads."""

    epoch: str
    first_epoch: int  # the number its first epoch has (OmniSafe counts from 0)
    env_steps: str
    ep_return: str
    ep_cost: str
    multiplier: str
    ep_len: str
    train_s: str  # seconds since its training loop started, at the end of the epoch
    curve: str  # what its return and cost are the mean of (the legend says it)


COLUMNS: dict[str, ProgressColumns] = {
    # `lambda/<cost name>`: Safety-Gymnasium's one cost is named `cost` (OmniSafe runs no other family)
    CMDP: ProgressColumns("epoch", 1, "env_steps", "ep_return", "ep_cost", "lambda/cost", "ep_len", "wall_s",
                          "mean of the epoch's episodes"),
    # omnisafe/common/logger.py: Logger.dump_tabular; the keys registered in PolicyGradient._init_log and the
    # algorithms' _init_log (the multiplier's, for PPOLag, also gets /Min /Max /Std columns).
    OMNISAFE: ProgressColumns("Train/Epoch", 0, "TotalEnvSteps", "Metrics/EpRet", "Metrics/EpCost",
                              "Metrics/LagrangeMultiplier", "Metrics/EpLen", "Time/Total",
                              "mean of its last 50 episodes"),
}


class RunFailed(RuntimeError):
    """One side of the comparison failed; the message is one line naming it."""


@dataclass(frozen=True)
class Comparison:
    """What both sides share."""

    algo: str
    env: str
    seed: int
    steps: int
    steps_per_epoch: int
    cost_limit: float
    preset: str | None = None  # our side's `cmdp train --preset` (None: our defaults)
    sets: tuple[str, ...] = ()  # our side's `cmdp train --set KEY=VALUE` items, after the shared keys (`--set`)

    @property
    def epochs(self) -> int:
        return self.steps // self.steps_per_epoch

    @property
    def omnisafe(self) -> OmniSafeAlgo:
        return ALGORITHMS[self.algo]


@dataclass(frozen=True)
class CurvePoint:
    """One epoch of one framework's learning curve."""

    framework: str
    epoch: int
    env_steps: int
    ep_return: float
    ep_cost: float
    multiplier: float | None  # None: the solver has none (cpo)
    ep_len: float


@dataclass(frozen=True)
class Curve:
    """One framework's learning curve, with the time its training loop took."""

    framework: str
    points: list[CurvePoint]
    train_s: float  # its training loop's own time, as it logs it


@dataclass(frozen=True)
class SideRun:
    """One framework's finished run: its progress.csv, its process's wall time and the core it ran on (None: a
    reused run that did not record it)."""

    framework: str
    progress: Path
    wall_s: float
    core: int | None


# --- reading and writing the results ----------------------------------------------------------------------------

def _number(row: dict[str, str], column: str, path: Path) -> float:
    text = row.get(column)
    if text is None:
        raise RunFailed(f"{path}: no column {column!r}")
    try:
        return float(text) if text.strip() else math.nan
    except ValueError:
        raise RunFailed(f"{path}: column {column!r} holds {text!r}, not a number") from None


def read_curve(framework: str, path: Path, comparison: Comparison) -> Curve:
    """One framework's learning curve from its progress.csv; RunFailed unless it has every epoch."""
    cols = COLUMNS[framework]
    if not path.is_file():
        raise RunFailed(f"{framework} ended without writing {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != comparison.epochs:
        raise RunFailed(f"{framework} logged {len(rows)} of {comparison.epochs} epochs ({path})")
    points = []
    for row in rows:
        multiplier = _number(row, cols.multiplier, path) if comparison.omnisafe.has_multiplier else None
        points.append(CurvePoint(framework, int(_number(row, cols.epoch, path)) - cols.first_epoch + 1,
                                 int(_number(row, cols.env_steps, path)), _number(row, cols.ep_return, path),
                                 _number(row, cols.ep_cost, path), multiplier, _number(row, cols.ep_len, path)))
    return Curve(framework, points, _number(rows[-1], cols.train_s, path))


def omnisafe_version(progress: Path) -> str:
    """The version `omnisafe_runner.py` recorded beside OmniSafe's progress.csv ('?' without its runner.json)."""
    record = progress.with_name("runner.json")
    return json.loads(record.read_text())["omnisafe"] if record.exists() else "?"


def curve_label(framework: str, comparison: Comparison, version: str) -> str:
    if framework == CMDP:
        name = (f"{CMDP} {comparison.algo}" + (f" --preset {comparison.preset}" if comparison.preset else "")
                + "".join(f" --set {item}" for item in comparison.sets))
    else:
        name = f"{OMNISAFE} {version} {comparison.omnisafe.name}"
    return f"{name} ({COLUMNS[framework].curve})"


def write_curves_csv(curves: list[Curve], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["framework", "epoch", "env_steps", "ep_return", "ep_cost", "multiplier", "ep_len"])
        for curve in curves:
            for p in curve.points:
                writer.writerow([p.framework, p.epoch, p.env_steps, repr(p.ep_return), repr(p.ep_cost),
                                 "" if p.multiplier is None else repr(p.multiplier), repr(p.ep_len)])


def plot_curves(curves: list[Curve], labels: dict[str, str], comparison: Comparison, path: Path) -> None:
    """Three panels, return, cost and episode length against environment steps; the limit dashed on the cost
    panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.8), layout="constrained")
    ax_return, ax_cost, ax_len = fig.subplots(1, 3)
    for i, curve in enumerate(curves):
        steps = [p.env_steps for p in curve.points]
        style = {"color": f"C{i}", "marker": "o", "ms": 3, "lw": 1.6, "label": labels[curve.framework]}
        ax_return.plot(steps, [p.ep_return for p in curve.points], **style)
        ax_cost.plot(steps, [p.ep_cost for p in curve.points], **style)
        ax_len.plot(steps, [p.ep_len for p in curve.points], **style)
    ax_cost.axhline(comparison.cost_limit, color="black", ls="--", lw=1.2,
                    label=f"cost limit {comparison.cost_limit:g}")
    for ax, what in ((ax_return, "episode return"), (ax_cost, "episode cost"), (ax_len, "episode length")):
        ax.set_xlabel("environment steps")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    fig.legend(*ax_cost.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)  # off the data
    fig.suptitle(f"{comparison.algo} (OmniSafe {comparison.omnisafe.name}) on {comparison.env}, seed "
                 f"{comparison.seed}, {comparison.steps:,} steps ({comparison.epochs} epochs of "
                 f"{comparison.steps_per_epoch:,})")
    fig.savefig(path, dpi=100)


def throughput(curves: dict[str, Curve], runs: dict[str, SideRun], comparison: Comparison,
               version: str) -> dict[str, Any]:
    """Each side's speed: over its process's wall time (start-up included) and over its training loop's own time."""
    sides = {}
    for framework, run in runs.items():
        train_s = curves[framework].train_s
        sides[framework] = {"core": run.core, "wall_s": run.wall_s, "steps_per_s": comparison.steps / run.wall_s,
                            "train_loop_s": train_s, "train_loop_steps_per_s": comparison.steps / train_s}
    return {"algo": comparison.algo, "omnisafe_algo": comparison.omnisafe.name, "omnisafe_version": version,
            "env": comparison.env, "seed": comparison.seed, "steps": comparison.steps,
            "steps_per_epoch": comparison.steps_per_epoch, "cost_limit": comparison.cost_limit,
            "cmdp_preset": comparison.preset, "cmdp_sets": list(comparison.sets), **sides,
            "ratio": sides[CMDP]["steps_per_s"] / sides[OMNISAFE]["steps_per_s"],
            "train_loop_ratio": sides[CMDP]["train_loop_steps_per_s"] / sides[OMNISAFE]["train_loop_steps_per_s"]}


def write_results(out: Path, comparison: Comparison, runs: list[SideRun],
                  reused_from: dict[str, Path] | None = None) -> dict[str, Any]:
    """Read both progress files, then write curves.csv, curves.png and throughput.json; return the throughput.
    `reused_from`: the finished runs reused instead of trained (`--cmdp-run`, `--omnisafe-run`) by framework,
    recorded in throughput.json as `reused_runs`.

    Both files are read and checked before anything is written, so a failed side leaves no result behind.
    """
    by_framework = {run.framework: run for run in runs}
    curves = {framework: read_curve(framework, run.progress, comparison) for framework, run in by_framework.items()}
    version = omnisafe_version(by_framework[OMNISAFE].progress)
    ordered = [curves[CMDP], curves[OMNISAFE]]
    labels = {framework: curve_label(framework, comparison, version) for framework in curves}
    write_curves_csv(ordered, out / "curves.csv")
    plot_curves(ordered, labels, comparison, out / "curves.png")
    result = throughput(curves, by_framework, comparison, version)
    result["reused_runs"] = {framework: str(path) for framework, path in (reused_from or {}).items()}
    (out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print_table(ordered, labels, result)
    return result


def print_table(curves: list[Curve], labels: dict[str, str], result: dict[str, Any]) -> None:
    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    width = max(len(label) for label in labels.values())
    print(f"{'':<{width}}  epochs  env steps  return    cost  ep len  multiplier   wall s  steps/s  loop steps/s")
    for curve in curves:
        last, side = curve.points[-1], result[curve.framework]
        print(f"{labels[curve.framework]:<{width}}  {len(curve.points):6d}  {last.env_steps:9,d}  "
              f"{last.ep_return:6.1f}  {last.ep_cost:6.1f}  {last.ep_len:6.0f}  {fmt(last.multiplier, '10.3f'):>10}  "
              f"{side['wall_s']:7.1f}  {side['steps_per_s']:7,.0f}  {side['train_loop_steps_per_s']:12,.0f}")
    print(f"{CMDP} / {OMNISAFE}: {result['ratio']:.2f}x the steps per second over each process's wall time, "
          f"{result['train_loop_ratio']:.2f}x over each training loop's own time")


# --- running both sides ------------------------------------------------------------------------------------------

def shared_overrides(comparison: Comparison) -> dict[str, Any]:
    """The config keys both sides share, as our side's `cmdp train` sets them and `resolve_config` takes them."""
    c = comparison
    return {"algo": c.algo, "env": c.env, "total_steps": c.steps, "seed": c.seed, "num_envs": 1,
            "steps_per_epoch": c.steps_per_epoch, "torch_threads": 1, "cost_limits": c.cost_limit}


def cmdp_overrides(comparison: Comparison) -> dict[str, Any]:
    """The config keys our side's `cmdp train` sets (`cmdp_command`): the shared ones, then `--set`'s."""
    return {**shared_overrides(comparison), **parse_set(list(comparison.sets))}


#: `cmdp train`'s flags for config keys; the other keys go through --set
CMDP_FLAGS = {"algo": "--algo", "env": "--env", "total_steps": "--total-steps", "seed": "--seed",
              "num_envs": "--num-envs"}


def cmdp_command(comparison: Comparison, run_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "cmdp", "train"]
    for key, value in shared_overrides(comparison).items():
        command += [CMDP_FLAGS[key], str(value)] if key in CMDP_FLAGS else ["--set", f"{key}={value}"]
    for item in comparison.sets:
        command += ["--set", item]
    return [*command, "--out", str(run_dir), "--no-progress",
            *(["--preset", comparison.preset] if comparison.preset else [])]


class _Absent:
    """A key a reused run's config.yaml lacks (it was made before the key existed)."""

    def __repr__(self) -> str:
        return "absent"


ABSENT = _Absent()

#: config keys that do not change what is learned: a reused `cmdp train` run is not compared on them
UNLEARNED_CMDP_KEYS = frozenset({"device", "checkpoint_every", "plugins"})


def omnisafe_command(comparison: Comparison, python: Path, log_dir: Path) -> list[str]:
    c = comparison
    # -I: the runner's own folder (benchmarks/, with modules named runner, report, ...) stays off sys.path
    return [str(python), "-I", str(RUNNER), "--algo", c.omnisafe.name, "--env", c.env, "--steps", str(c.steps),
            "--steps-per-epoch", str(c.steps_per_epoch), "--seed", str(c.seed), "--cost-limit", str(c.cost_limit),
            "--cost-limit-section", c.omnisafe.cost_limit_section, "--log-dir", str(log_dir)]


def check_same_settings(option: str, run: Path, ran: dict[str, Any], wanted: dict[str, Any]) -> None:
    """ConfigError (one line naming every setting that differs) unless the reused run `ran` with `wanted`."""
    differ = [f"{key} {ran[key]!r} (wanted {wanted[key]!r})" for key in wanted if ran[key] != wanted[key]]
    if differ:
        raise ConfigError(f"{option} {run} ran with other settings: {', '.join(differ)}")


def reused_omnisafe_run(run: Path, comparison: Comparison) -> tuple[Path, float, int | None]:
    """A finished `omnisafe_runner.py` run to reuse: its progress.csv, its wall seconds and the core it ran on (None
    if it did not record one); ConfigError (one line) unless it finished with exactly this comparison's settings."""
    record_path, progress = run / "runner.json", run / "progress.csv"
    if not (record_path.is_file() and progress.is_file()):
        raise ConfigError(f"--omnisafe-run {run}: no runner.json and progress.csv there (give the folder "
                          "omnisafe_runner.py wrote them to)")
    try:
        record = json.loads(record_path.read_text())
        cfgs = record["custom_cfgs"]
        ran = {"algorithm": record["algo"], "env": record["env"], "seed": cfgs["seed"],
               "steps": cfgs["train_cfgs"]["total_steps"], "steps per epoch": cfgs["algo_cfgs"]["steps_per_epoch"],
               "cost limit": cfgs[comparison.omnisafe.cost_limit_section]["cost_limit"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--omnisafe-run {run}: unreadable runner.json ({type(exc).__name__}: {exc})") from None
    c = comparison
    wanted = {"algorithm": c.omnisafe.name, "env": c.env, "seed": c.seed, "steps": c.steps,
              "steps per epoch": c.steps_per_epoch, "cost limit": c.cost_limit}
    check_same_settings("--omnisafe-run", run, ran, wanted)
    if not isinstance(record.get("wall_s"), (int, float)):
        raise ConfigError(f"--omnisafe-run {run}: the run has not finished (its runner.json has no wall_s)")
    cores = record.get("cores")
    return progress, float(record["wall_s"]), cores[0] if isinstance(cores, list) and len(cores) == 1 else None


def reused_cmdp_run(run: Path, comparison: Comparison) -> tuple[Path, float]:
    """A finished `cmdp train` run to reuse: its progress.csv and its training's wall seconds; ConfigError (one
    line) unless it finished with exactly this comparison's settings (one environment and one torch thread too)."""
    config_path, summary_path, progress = run / "config.yaml", run / "summary.json", run / "progress.csv"
    if not (config_path.is_file() and summary_path.is_file() and progress.is_file()):
        raise ConfigError(f"--cmdp-run {run}: no config.yaml, summary.json and progress.csv there (give a "
                          "`cmdp train` run folder)")
    try:
        config = yaml.safe_load(config_path.read_text())
        summary = json.loads(summary_path.read_text())
        ran = {"algorithm": config["algo"], "env": config["env"], "seed": config["seed"],
               "steps": config["total_steps"], "steps per epoch": config["steps_per_epoch"],
               "environments": config["num_envs"], "torch threads": config["torch_threads"],
               "cost limit": list(summary["cost_limits"].values())}
    except yaml.YAMLError as exc:
        raise ConfigError(f"--cmdp-run {run}: config.yaml is not valid YAML: {yaml_error_line(exc)}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"--cmdp-run {run}: unreadable config.yaml or summary.json "
                          f"({type(exc).__name__}: {exc})") from None
    c = comparison
    wanted = {"algorithm": c.algo, "env": c.env, "seed": c.seed, "steps": c.steps, "steps per epoch": c.steps_per_epoch,
              "environments": 1, "torch threads": 1, "cost limit": [c.cost_limit]}
    # every other key (those above are the command's own) as this comparison's `cmdp train` would resolve it today,
    # the preset's included, so that a run made before a default changed (the PPO family's minibatch, 2026-12-03)
    # is not compared as if it were ours
    trains_with = to_dict(resolve_config(cmdp_overrides(c), preset=c.preset)[0])
    for key in sorted(trains_with.keys() - shared_overrides(c).keys() - UNLEARNED_CMDP_KEYS):
        wanted[key], ran[key] = trains_with[key], config.get(key, ABSENT)
    check_same_settings("--cmdp-run", run, ran, wanted)
    if summary.get("finished") is not True or not isinstance(summary.get("wall_seconds"), (int, float)):
        raise ConfigError(f"--cmdp-run {run}: the run has not finished (summary.json says so)")
    return progress, float(summary["wall_seconds"])


def omnisafe_progress(log_dir: Path) -> Path | None:
    """OmniSafe's progress.csv: it writes DIR/<algo>-{<env>}/seed-<seed>-<time>/progress.csv."""
    found = sorted(log_dir.glob("*/*/progress.csv"))
    return found[0] if len(found) == 1 else None


def epochs_logged(progress: Path | None) -> int:
    if progress is None or not progress.exists():
        return 0
    with open(progress) as f:
        return max(0, sum(1 for _ in f) - 1)


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


@dataclass
class Side:
    """One framework's training process while it runs."""

    framework: str
    command: list[str]
    core: int
    log: Path
    find_progress: Callable[[], Path | None]  # its progress.csv, None while it has none
    process: subprocess.Popen | None = None
    started: float = 0.0
    wall_s: float | None = None  # set when it ends

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        core = self.core
        with open(self.log, "w") as log:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL,
                                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))

    def poll(self) -> int | None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None and self.wall_s is None:
            self.wall_s = time.perf_counter() - self.started
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_both(sides: list[Side], epochs: int, poll_s: float = 0.1, report_s: float = 2.0) -> dict[str, float]:
    """Start both sides, report their epochs as they go, wait for both and return each one's wall seconds.

    RunFailed, the other side stopped, as soon as one exits with an error.
    """
    for side in sides:
        side.start()
    start, last_report, shown = time.perf_counter(), 0.0, None
    try:
        while True:
            codes = {side.framework: side.poll() for side in sides}
            for side in sides:
                if codes[side.framework] not in (None, 0):
                    raise RunFailed(f"{side.framework} failed (exit status {codes[side.framework]}): "
                                    f"{last_line(side.log)} [log: {side.log}]")
            if all(code == 0 for code in codes.values()):
                return {side.framework: side.wall_s for side in sides if side.wall_s is not None}
            now = time.perf_counter()
            if now - last_report >= report_s:
                last_report = now
                counts = tuple(epochs_logged(side.find_progress()) for side in sides)
                if counts != shown:
                    shown = counts
                    parts = [f"{side.framework} epoch {n}/{epochs}" + (" (done)" if side.wall_s is not None else "")
                             for side, n in zip(sides, counts)]
                    print(f"[{now - start:7.0f} s] " + " | ".join(parts), flush=True)
            time.sleep(poll_s)
    finally:
        for side in sides:
            side.stop()


# --- the command ---------------------------------------------------------------------------------------------------

def parse_steps(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--steps must be a number of environment steps (e.g. 1e6), got {text!r}") from None
    if not (math.isfinite(value) and value.is_integer() and value >= 1):
        raise ConfigError(f"--steps must be a whole number >= 1, got {text!r}")
    return int(value)


def check_options(args: argparse.Namespace) -> tuple[Comparison, Path, list[int], dict[str, SideRun]]:
    """Everything that can be refused before anything starts; ConfigError (one line) otherwise. The last item
    holds the reused runs by framework (`--cmdp-run`, `--omnisafe-run`); a side not in it is to be run."""
    if args.algo not in ALGORITHMS:
        raise ConfigError(f"unknown --algo {args.algo!r}; the side-by-side knows {', '.join(ALGORITHMS)} "
                          f"(add a row to ALGORITHMS in {Path(__file__).name} for another)")
    steps = parse_steps(args.steps)
    if args.steps_per_epoch < 1:
        raise ConfigError(f"--steps-per-epoch must be >= 1, got {args.steps_per_epoch}")
    if steps % args.steps_per_epoch:
        raise ConfigError(f"--steps ({steps}) must be a whole number of epochs of --steps-per-epoch "
                          f"({args.steps_per_epoch}): OmniSafe trains whole epochs only")
    if not (math.isfinite(args.cost_limit) and args.cost_limit >= 0):
        raise ConfigError(f"--cost-limit must be a finite number >= 0, got {args.cost_limit}")
    if args.preset is not None:
        if args.preset not in ALGORITHM_PRESETS:  # safe-rlhf's names its own environment and algorithm
            raise ConfigError(f"--preset must be one with keys per solver: {', '.join(sorted(ALGORITHM_PRESETS))}")
        preset_values(args.preset, args.algo)  # refused in one line if the preset has no keys for the algorithm
    sets = tuple(args.set or ())
    comparison = Comparison(args.algo, args.env, args.seed, steps, args.steps_per_epoch, args.cost_limit, args.preset,
                            sets)
    shared = sorted(parse_set(list(sets)).keys() & shared_overrides(comparison).keys())
    if shared:
        raise ConfigError(f"--set {', '.join(shared)}: both sides share it; use the side-by-side's own option")
    resolve_config(cmdp_overrides(comparison), preset=comparison.preset)  # an unknown key or a bad value: one line
    reused: dict[str, SideRun] = {}
    if args.cmdp_run is not None:
        progress, wall_s = reused_cmdp_run(Path(args.cmdp_run), comparison)
        reused[CMDP] = SideRun(CMDP, progress, wall_s, None)
    if args.omnisafe_run is not None:
        progress, wall_s, core = reused_omnisafe_run(Path(args.omnisafe_run), comparison)
        reused[OMNISAFE] = SideRun(OMNISAFE, progress, wall_s, core)
    else:
        python = Path(args.omnisafe_python)
        if not (python.is_file() and os.access(python, os.X_OK)):
            raise ConfigError(f"OmniSafe's python {python} not found; create it with {VENV_COMMAND} "
                              "(or give --omnisafe-python)")
    out = Path(args.out) if args.out else (Path("benchmarks/results/omnisafe-side-by-side")
                                           / f"{args.algo}-{args.env}-s{args.seed}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output folder {out} exists and is not empty; choose another --out or remove it")
    usable = sorted(os.sched_getaffinity(0))
    cores = args.cores if args.cores is not None else (usable * 2)[:2]  # one usable core: [c, c], refused
    # a reused side needs no core of its own
    needed = [core for framework, core in zip((CMDP, OMNISAFE), cores) if framework not in reused]
    if len(cores) != 2 or len(set(needed)) != len(needed) or not set(needed) <= set(usable):
        raise ConfigError(f"the side-by-side needs two different cores this process may use "
                          f"({', '.join(map(str, usable))}), got {cores}")
    if importlib.util.find_spec("matplotlib") is None:  # checked now, not after hours of training
        raise ConfigError("the side-by-side plots with matplotlib: pip install 'cmdp-lab[report]'")
    return comparison, out, cores, reused


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.omnisafe_side_by_side",
                                description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="ppo_lag", help=f"one of {', '.join(ALGORITHMS)}")
    p.add_argument("--env", default="SafetyHopperVelocity-v1")
    p.add_argument("--steps", default="1e6", help="environment steps for each side (whole epochs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps-per-epoch", type=int, default=20_000, help="OmniSafe's default")
    p.add_argument("--cost-limit", type=float, default=25.0)
    p.add_argument("--omnisafe-python", default=".venv-omnisafe/bin/python",
                   help=f"the python of OmniSafe's virtual environment ({VENV_COMMAND} creates it)")
    p.add_argument("--omnisafe-run", metavar="RUN",
                   help="reuse this finished omnisafe_runner.py run (its log folder) instead of running OmniSafe")
    p.add_argument("--cmdp-run", metavar="RUN",
                   help="reuse this finished `cmdp train` run folder instead of training cmdp-lab's side")
    p.add_argument("--preset", help="train our side with `cmdp train --preset PRESET` (omnisafe: our deliberate "
                                    "differences from OmniSafe set to its behaviour); default: our defaults")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a config key for our side only, as `cmdp train --set` takes it (repeatable; e.g. "
                        "compile_update=true); the label, throughput.json and a reused run's check include it")
    p.add_argument("--cores", type=int, nargs=2, metavar=("CMDP_CORE", "OMNISAFE_CORE"),
                   help="the cores to pin the two sides to (default: the first two this process may use)")
    p.add_argument("--out", help="output folder, new or empty "
                                 "(default benchmarks/results/omnisafe-side-by-side/<algo>-<env>-s<seed>)")
    args = p.parse_args(argv)
    try:
        comparison, out, cores, reused = check_options(args)
        make_output_folder(out)
        cmdp_csv = out / "cmdp" / "progress.csv"
        sides = []
        if CMDP not in reused:
            sides.append(Side(CMDP, cmdp_command(comparison, out / "cmdp"), cores[0], out / "cmdp.log",
                              lambda: cmdp_csv))
        if OMNISAFE not in reused:
            sides.append(Side(OMNISAFE, omnisafe_command(comparison, Path(args.omnisafe_python), out / "omnisafe"),
                              cores[1], out / "omnisafe.log", lambda: omnisafe_progress(out / "omnisafe")))
        c = comparison
        runs_from = {CMDP: args.cmdp_run, OMNISAFE: args.omnisafe_run}
        where = {framework: (f"the finished run {runs_from[framework]}" if framework in reused else f"on core {core}")
                 for framework, core in zip((CMDP, OMNISAFE), cores)}
        print(f"{CMDP} {c.algo} {where[CMDP]} and {OMNISAFE} {c.omnisafe.name} {where[OMNISAFE]}: {c.env}, "
              f"seed {c.seed}, {c.steps:,} steps ({c.epochs} epochs of {c.steps_per_epoch:,}), cost limit "
              f"{c.cost_limit:g}" + "".join(f"; log {side.log}" for side in sides), flush=True)
        wall_s = run_both(sides, comparison.epochs) if sides else {}
        runs = dict(reused)
        if CMDP not in reused:
            runs[CMDP] = SideRun(CMDP, cmdp_csv, wall_s[CMDP], cores[0])
        if OMNISAFE not in reused:
            omnisafe_csv = omnisafe_progress(out / "omnisafe")
            if omnisafe_csv is None:
                raise RunFailed(f"{OMNISAFE} ended without one progress.csv under {out / 'omnisafe'}")
            runs[OMNISAFE] = SideRun(OMNISAFE, omnisafe_csv, wall_s[OMNISAFE], cores[1])
        write_results(out, comparison, [runs[CMDP], runs[OMNISAFE]],
                      reused_from={framework: Path(runs_from[framework]) for framework in reused})
        print(f"wrote {out}/curves.csv, curves.png, throughput.json")
        return 0
    except (ConfigError, RunFailed) as exc:
        print(f"omnisafe_side_by_side: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("omnisafe_side_by_side: interrupted; both sides stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
