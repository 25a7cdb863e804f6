"""Benchmark reports: tables and learning curves from a folder of run folders.

    cmdp report DIR [--out REPORT_DIR] [--partial] [--no-plots]

DIR is a benchmark's output (`cmdp benchmark`) or any folder holding run folders (`cmdp train`'s),
searched recursively. For each environment x algorithm, over seeds (finished runs; `--partial` adds
unfinished ones at their last logged epoch):

- final return and final cost per cost name: mean ± std over seeds (numpy's std, ddof 0), each
  seed's value being `summary.json`'s (the mean over the episodes of the last epoch that finished any); a seed
  that finished no episode has none, and report.md marks a mean over fewer seeds "(n of N seeds)" and shows a mean
  over one seed without a std (results.csv keeps its std, 0);
- within limit: of the last 10% of epochs (at least 1) of every seed, pooled, the share whose episode
  cost was within the limit for every cost (epochs that finished no episode are not counted);
- wall time (training seconds per seed) and steps per second, means over seeds;
- OmniSafe's published numbers for the same algorithm and task (every CSV in benchmarks/reference/: the
  on-policy table, 1e7 steps, and the off-policy table, 1e6 steps and 3e6 for Humanoid; cost limit 25), marked
  where our budget or cost limit differs from that row's own (`total_steps`, `cost_limit`).

Writes REPORT_DIR (default DIR/report): `report.md` (tables and figures together), `results.csv`, `results.md` and
one `curves_<env>.png` per environment (return and cost against environment steps, mean over seeds with the seeds'
min-max shaded, one black line "a = b" for algorithms whose curves coincide, the cost limit as a dashed line) and
one `tradeoff_<env>.png` (every seed's final return against its final cost, each algorithm's mean with its std over
more than one seed, the limit, and the frontier of algorithms that no other beats on both; on the text family,
helpfulness against harm). A run folder with a video (`cmdp eval RUN --video`) also gets a strip of six of its
frames, `frames_<env>_<algo>_seed<seed>.png`. The figures that an earlier report.md in REPORT_DIR showed and this
report does not draw (all of them with --no-plots) are removed; no other file there is touched.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cmdp.config import RESTORE_RUN_FILE, make_output_folder, read_text_file, yaml_error_line
from cmdp.spec import ConfigError
from cmdp.wording import count_text, mean_std_text

#: the folder of OmniSafe's published tables; `load_reference()` reads every CSV in it
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
#: OmniSafe's on-policy table (benchmarks/on-policy/README.md)
REFERENCE_CSV = REFERENCE_DIR / "omnisafe_on_policy.csv"
#: OmniSafe's off-policy table (benchmarks/off-policy/README.md, Table 2)
REFERENCE_OFF_POLICY_CSV = REFERENCE_DIR / "omnisafe_off_policy.csv"
#: how the report names the repository that a reference row's `source` ("OmniSafe <path>") points into
REFERENCE_REPOSITORY = "OmniSafe repository (PKU-Alignment/omnisafe)"
#: our algorithm name -> OmniSafe's (on-policy and off-policy names never clash); OmniSafe publishes no numbers
#: for PDO, OnCRPO and IPO, so pdo, crpo and ipo find no row
OMNISAFE_ALGOS = {"ppo": "PPO", "ppo_lag": "PPOLag", "cup": "CUP", "cpo": "CPO", "pid_lag": "CPPOPID",
                  "trpo_lag": "TRPOLag",
                  "pg": "PolicyGradient", "npg": "NaturalPG", "trpo": "TRPO", "pdo": "PDO", "rcpo": "RCPO",
                  "focops": "FOCOPS", "crpo": "OnCRPO", "ipo": "IPO", "p3o": "P3O", "pcpo": "PCPO",
                  "trpo_pid": "TRPOPID", "ppo_saute": "PPOSaute", "trpo_saute": "TRPOSaute",
                  "ppo_simmer_pid": "PPOSimmerPID", "ppo_early_terminated": "PPOEarlyTerminated",
                  "ddpg": "DDPG", "td3": "TD3", "sac": "SAC", "ddpg_lag": "DDPGLag", "td3_lag": "TD3Lag",
                  "sac_lag": "SACLag", "ddpg_pid": "DDPGPID", "td3_pid": "TD3PID", "sac_pid": "SACPID"}
#: our environment name -> the column name in OmniSafe's on-policy table
OMNISAFE_ENVS = {"SafetyPointGoal1-v0": "PointGoal1", "SafetyCarGoal1-v0": "CarGoal1",
                 "SafetyPointButton1-v0": "PointButton1", "SafetyHopperVelocity-v1": "HopperVel",
                 "SafetyAntVelocity-v1": "AntVel", "SafetyHalfCheetahVelocity-v1": "HalfCheetahVel"}
#: our environment name -> its name in OmniSafe's off-policy table (which names tasks by their full id)
OMNISAFE_OFF_POLICY_ENVS = {e: e for e in (
    "SafetyAntVelocity-v1", "SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyHumanoidVelocity-v1",
    "SafetySwimmerVelocity-v1", "SafetyWalker2dVelocity-v1")}
#: the share of the last epochs that `within_limit` looks at
LAST_EPOCHS_SHARE = 0.1
#: a figure the report draws, as report.md links it: curves_<env>.png, tradeoff_<env>.png or a frame strip
#: frames_<env>_<algo>_seed<seed>.png, a file of the report folder itself
FIGURE_LINK = re.compile(r"\]\(((?:curves|tradeoff|frames)_[^()/\\]+\.png)\)")


# --- reading run folders ------------------------------------------------------------------------------
@dataclass
class RunData:
    """What the report needs from one run folder."""

    path: Path
    algo: str
    env: str
    seed: int | None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    rows: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    damaged: list[str] = field(default_factory=list)  # one line per file of the run that could not be read

    @property
    def finished(self) -> bool:
        return bool(self.summary and self.summary.get("finished"))

    @property
    def cost_names(self) -> list[str]:
        if self.summary and self.summary.get("cost_limits"):
            return list(self.summary["cost_limits"])
        if self.rows:
            return [c.split("/", 1)[1] for c in self.rows[0] if c.startswith("ep_cost/")]
        return []

    @property
    def env_steps(self) -> int:
        if self.summary:
            return int(self.summary.get("env_steps") or 0)
        return int(float(self.rows[-1]["env_steps"])) if self.rows else 0

    def cost_limits(self) -> dict[str, float]:
        """Limits from summary.json (where one is null, unknown), else from a numeric config (unknown for the env's
        own defaults)."""
        if self.summary and self.summary.get("cost_limits"):
            return {k: as_float(v) for k, v in self.summary["cost_limits"].items() if v is not None}
        return _limits_from_config(self.config.get("cost_limits"), self.cost_names)

    def final(self) -> tuple[float, dict[str, float]]:
        """Final return and costs: summary.json's, else the last logged epoch that finished episodes."""
        if self.summary:
            return as_float(self.summary.get("final_return")), \
                {k: as_float(v) for k, v in (self.summary.get("final_costs") or {}).items()}
        for row in reversed(self.rows):
            if as_float(row.get("episodes")) > 0:
                return as_float(row.get("ep_return")), {n: as_float(row.get(f"ep_cost/{n}")) for n in self.cost_names}
        return math.nan, {n: math.nan for n in self.cost_names}

    def wall_seconds(self) -> float:
        if self.summary and self.summary.get("wall_seconds") is not None:
            return as_float(self.summary["wall_seconds"])
        return as_float(self.rows[-1].get("wall_s")) if self.rows else math.nan

    def steps_per_s(self) -> float:
        wall = self.wall_seconds()
        return self.env_steps / wall if wall and wall > 0 else math.nan

    def last_epochs_within(self, limits: dict[str, float]) -> tuple[int, int]:
        """(epochs within every limit, epochs measured) among the last 10% of epochs (at least 1)."""
        if not self.rows or not limits:
            return 0, 0
        n = max(1, math.ceil(LAST_EPOCHS_SHARE * len(self.rows)))
        within = measured = 0
        for row in self.rows[-n:]:
            costs = {name: as_float(row.get(f"ep_cost/{name}", row.get("ep_cost"))) for name in limits}
            if any(math.isnan(c) for c in costs.values()):
                continue
            measured += 1
            within += all(costs[name] <= limit for name, limit in limits.items())
        return within, measured


def as_float(value: Any) -> float:
    """A CSV or JSON cell as a float: NaN where it is empty, missing or not a number."""
    try:
        return float(value) if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


def _limits_from_config(value: Any, names: list[str]) -> dict[str, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {n: float(value) for n in names}
    if isinstance(value, list) and len(value) == len(names):
        return {n: float(v) for n, v in zip(names, value)}
    if isinstance(value, dict):
        return {n: float(value[n]) for n in names if n in value}
    return {}


def find_runs(root: str | Path, exclude: Path | None = None) -> list[RunData]:
    """Every run folder under `root` (a folder with config.yaml, or with only error.txt from a failed start)."""
    from cmdp.logger import read_progress

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"report: {root} is not a folder")
    folders = {p.parent for p in root.rglob("config.yaml")} | {p.parent for p in root.rglob("error.txt")}
    runs = []
    for folder in sorted(folders):
        if exclude is not None and (folder == exclude or exclude in folder.parents):
            continue
        config: dict[str, Any] = {}
        damaged: list[str] = []
        if (folder / "config.yaml").is_file():
            try:
                config = yaml.safe_load(read_text_file(folder / "config.yaml", "run config", RESTORE_RUN_FILE)) or {}
            except ConfigError as exc:  # unreadable, or not UTF-8 text
                damaged.append(str(exc))
            except yaml.YAMLError as exc:
                damaged.append(f"run config {folder / 'config.yaml'} is not valid YAML: {yaml_error_line(exc)}")
        run_files = any((folder / name).is_file() for name in ("summary.json", "progress.csv"))
        if not damaged and run_files and not (isinstance(config, dict) and "algo" in config):
            # emptied, or not a mapping, beside a run's own files: the run's config, damaged (was: not a run at all)
            damaged.append(f"run config {folder / 'config.yaml'} names no algorithm; {RESTORE_RUN_FILE}")
            config = {}
        # a run: its config names an algorithm, or it failed before writing one (error.txt alone), or its config is
        # damaged beside a run's own files; else some other YAML file called config.yaml
        is_run = isinstance(config, dict) and ("algo" in config or (folder / "error.txt").is_file() or bool(
            damaged and run_files))
        if not is_run:
            continue
        parts = folder.relative_to(root).parts if folder != root else ()
        guess_env, guess_algo = (parts[-3], parts[-2]) if len(parts) >= 3 else ("?", "?")
        seed_text = parts[-1][4:] if parts and parts[-1].startswith("seed") else ""
        run = RunData(path=folder, algo=str(config.get("algo", guess_algo)), env=str(config.get("env", guess_env)),
                      seed=config.get("seed", int(seed_text) if seed_text.isdigit() else None), config=config,
                      damaged=damaged)
        # a damaged file costs its run what it held (a summary: the run counts as unfinished; a progress log: its
        # curves and its within-limit share), is listed in the report, and does not stop the report of the rest
        summary_path = folder / "summary.json"
        if summary_path.is_file():
            try:
                summary = json.loads(read_text_file(summary_path, "run summary", RESTORE_RUN_FILE))
                if isinstance(summary, dict):
                    run.summary = summary
                else:  # valid JSON, but not the object a run writes
                    run.damaged.append(f"run summary {summary_path} holds a JSON {type(summary).__name__}, not an "
                                       f"object; {RESTORE_RUN_FILE}")
            except ConfigError as exc:
                run.damaged.append(str(exc))
            except ValueError as exc:
                run.damaged.append(f"run summary {summary_path} is not valid JSON ({exc})")
        log = folder / "progress.csv"
        if log.is_file():
            try:
                run.rows = read_progress(log)
                if not run.rows and log.stat().st_size == 0:  # a run writes its header with its first row
                    run.damaged.append(f"progress log {log} is empty; {RESTORE_RUN_FILE}")
            except ConfigError as exc:
                run.damaged.append(str(exc))
        if (folder / "error.txt").is_file():
            # our own traceback text; a damaged byte must not stop the report
            lines = [ln for ln in (folder / "error.txt").read_text(errors="replace").splitlines() if ln.strip()]
            run.error = lines[-1] if lines else "failed"
        runs.append(run)
    return runs


def load_reference(path: str | Path | Sequence[str | Path] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """OmniSafe's published tables: (OmniSafe algo, OmniSafe env) -> its row, numbers as floats (steps and seeds
    as ints), each row with its own `total_steps`, `cost_limit`, `seeds` and `source`.

    `path`: one CSV file, a folder (its `*.csv` files, by name) or a list of files; default: every CSV in
    benchmarks/reference/ (the on-policy and the off-policy table). A key listed twice is a ConfigError.
    """
    if path is None:
        path = REFERENCE_DIR
    if isinstance(path, (str, Path)):
        path = Path(path)
        files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    else:
        files = [Path(p) for p in path]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    where: dict[tuple[str, str], Path] = {}
    for file in files:
        with file.open(newline="") as f:
            for row in csv.DictReader(f):
                rec: dict[str, Any] = dict(row)
                for k in ("return_mean", "return_std", "cost_mean", "cost_std", "cost_limit"):
                    rec[k] = float(row[k])
                rec["total_steps"], rec["seeds"] = int(row["total_steps"]), int(row["seeds"])
                rec["source"] = row.get("source") or ""
                key = (row["algo"], row["env"])
                if key in out:
                    raise ConfigError(f"reference: {key[0]} on {key[1]} is listed twice ({where[key]} and {file})")
                out[key], where[key] = rec, file
    return out


def reference_row(reference: dict[tuple[str, str], dict[str, Any]], algo: str, env: str) -> dict[str, Any] | None:
    """The published row for our `algo` on our `env`: OmniSafe's algorithm name (OMNISAFE_ALGOS) with the
    environment's name in the on-policy table (OMNISAFE_ENVS), else in the off-policy table
    (OMNISAFE_OFF_POLICY_ENVS), else the environment id itself; None where OmniSafe has no such cell."""
    name = OMNISAFE_ALGOS.get(algo)
    if name is None:
        return None
    for env_name in (OMNISAFE_ENVS.get(env), OMNISAFE_OFF_POLICY_ENVS.get(env), env):
        if env_name is not None and (name, env_name) in reference:
            return reference[(name, env_name)]
    return None


# --- the numbers --------------------------------------------------------------------------------------
def summarize(runs: list[RunData], partial: bool = False,
              reference: dict[tuple[str, str], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per (environment, algorithm) over its seeds; see the module docstring for each number.

    `reference` (default: `load_reference()`, every table in benchmarks/reference/) supplies the `ref_*` columns;
    `ref_same_budget` and `ref_same_limit` compare the seeds' env steps and the cost limit with that reference
    row's own `total_steps` and `cost_limit`.
    """
    groups: dict[tuple[str, str], list[RunData]] = {}
    for run in runs:
        if run.finished or (partial and run.rows):
            groups.setdefault((run.env, run.algo), []).append(run)
    reference = load_reference() if reference is None else reference
    known_limits: dict[str, dict[str, float]] = {}
    for run in runs:  # an unfinished run borrows the limits of a finished run of the same environment
        if run.summary and run.summary.get("cost_limits") and not isinstance(run.config.get("cost_limits"), dict):
            known_limits.setdefault(run.env, run.cost_limits())
    table = []
    for (env, algo), group in sorted(groups.items()):
        group.sort(key=lambda r: (r.seed is None, r.seed))
        names = group[0].cost_names
        finals = [r.final() for r in group]
        returns = np.array([f[0] for f in finals], dtype=float)
        row: dict[str, Any] = {"env": env, "algo": algo, "seeds": len(group),
                               "seed_list": " ".join(str(r.seed) for r in group),
                               "finished": sum(r.finished for r in group)}
        steps = sorted({r.env_steps for r in group})
        row["env_steps"] = steps[0] if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
        row["return_mean"], row["return_std"] = _mean_std(returns)
        row["return_seeds"] = int(np.isfinite(returns).sum())  # the seeds the mean is over (NaN: none measured)
        limits = group[0].cost_limits() or known_limits.get(env, {})
        for name in names:
            costs = np.array([f[1].get(name, math.nan) for f in finals], dtype=float)
            row[f"cost_mean/{name}"], row[f"cost_std/{name}"] = _mean_std(costs)
            row[f"cost_seeds/{name}"] = int(np.isfinite(costs).sum())
            row[f"cost_limit/{name}"] = limits.get(name, math.nan)
        within = measured = 0
        for r in group:
            w, m = r.last_epochs_within(r.cost_limits() or limits)
            within, measured = within + w, measured + m
        row["within_limit"] = within / measured if measured else math.nan
        row["within_limit_epochs"] = within
        row["measured_epochs"] = measured
        row["wall_s_mean"] = _nanmean([r.wall_seconds() for r in group])
        row["steps_per_s_mean"] = _nanmean([r.steps_per_s() for r in group])
        ref = reference_row(reference, algo, env)
        if ref is not None and len(names) == 1:
            row.update({"ref_algo": ref["algo"], "ref_env": ref["env"], "ref_return_mean": ref["return_mean"],
                        "ref_return_std": ref["return_std"], "ref_cost_mean": ref["cost_mean"],
                        "ref_cost_std": ref["cost_std"], "ref_total_steps": ref["total_steps"],
                        "ref_cost_limit": ref["cost_limit"], "ref_seeds": ref["seeds"],
                        "ref_source": ref.get("source", ""),
                        "ref_same_budget": steps == [ref["total_steps"]],
                        "ref_same_limit": limits.get(names[0]) == ref["cost_limit"]})
        table.append(row)
    return table


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values))


def _nanmean(values: list[float]) -> float:
    arr = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    return float(arr.mean()) if len(arr) else math.nan


# --- writing ------------------------------------------------------------------------------------------
def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _limit_text(limit: float) -> str:
    """A cost limit as it was set, to 6 significant digits ("25", "2,500", "0.001"; to 2 decimals, 0.001 had read
    "0"); "n/a" where unknown."""
    return "n/a" if math.isnan(limit) else f"{limit:,.6g}"


def _cost_digits(limit: float) -> int:
    """Decimals for a cost shown beside `limit`: 2, or as many as show a limit under 0.1 to two significant digits
    (a cost of 0.0012 against a limit of 0.001 reads "0.0012", not "0.00")."""
    if not math.isfinite(limit) or limit <= 0:
        return 2
    return max(2, 1 - math.floor(math.log10(limit)))


def _over(row: dict[str, Any], key: str) -> str:
    """" (n of N seeds)" where only n of the row's N seeds have the number `key` counts (the others finished no
    episode), so a mean over fewer seeds does not read as one over all of them; "" otherwise."""
    n = row.get(key)
    return f" ({n} of {row['seeds']} seeds)" if isinstance(n, int) and 0 < n < row["seeds"] else ""


def _steps_text(steps: Any) -> str:
    """Env steps with thousands separators (a "lo-hi" range of mixed seeds as it is)."""
    return f"{steps:,}" if isinstance(steps, int) else str(steps)


def _values_text(values: Any) -> str:
    """Distinct numbers, sorted, joined with ' or ' (e.g. a cost limit or a seed count over reference rows)."""
    return " or ".join(f"{v:g}" for v in sorted(set(values)))


def reference_source_text(sources: Any) -> str:
    """How the report cites reference rows' `source` values ("OmniSafe benchmarks/on-policy/README.md" reads
    "OmniSafe repository (PKU-Alignment/omnisafe), benchmarks/on-policy/README.md"), distinct, in order."""
    distinct = list(dict.fromkeys(s for s in sources if s))
    if not distinct:
        return REFERENCE_REPOSITORY
    if all(s.startswith("OmniSafe ") for s in distinct):
        return f"{REFERENCE_REPOSITORY}, " + " and ".join(s[len("OmniSafe "):] for s in distinct)
    return " and ".join(distinct)


def cost_names_of(table: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in table:
        for key in row:
            if key.startswith("cost_mean/") and key[10:] not in names:
                names.append(key[10:])
    return names


def write_csv(table: list[dict[str, Any]], path: Path) -> None:
    """The summary table with full precision (empty cells for missing numbers)."""
    names = cost_names_of(table)
    columns = ["env", "algo", "seeds", "seed_list", "finished", "env_steps", "return_mean", "return_std"]
    for n in names:
        columns += [f"cost_mean/{n}", f"cost_std/{n}", f"cost_limit/{n}"]
    columns += ["within_limit", "within_limit_epochs", "measured_epochs", "wall_s_mean", "steps_per_s_mean",
                "ref_algo", "ref_env", "ref_return_mean", "ref_return_std", "ref_cost_mean", "ref_cost_std",
                "ref_total_steps", "ref_cost_limit", "ref_seeds", "ref_source"]

    def fmt(v: Any) -> Any:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v

    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in table:
            w.writerow([fmt(row.get(c)) for c in columns])


def markdown_table(table: list[dict[str, Any]]) -> str:
    """The summary table as markdown, OmniSafe's numbers beside ours: † where our env steps differ from that
    reference row's `total_steps`, ‡ where our cost limit differs from its `cost_limit`; a row's seeds say how many
    of them are unfinished runs (--partial)."""
    names = cost_names_of(table)
    one = len(names) == 1
    head = ["environment", "algorithm", "seeds", "env steps", "return"]
    head += ["cost", "limit"] if one else [f"cost `{n}` (limit)" for n in names]
    head += ["within limit, last 10% epochs", "wall time / seed", "steps/s", "OmniSafe return", "OmniSafe cost"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table:
        unfinished = row["seeds"] - row["finished"]  # --partial: at their last logged epoch
        cells = [row["env"], row["algo"], f"{row['seeds']}" + (f" ({unfinished} unfinished)" if unfinished else ""),
                 _steps_text(row["env_steps"]),
                 mean_std_text(row["return_mean"], row["return_std"], row["return_seeds"]) + _over(row, "return_seeds")]
        for n in names:
            limit = row.get(f"cost_limit/{n}", math.nan)
            cost = mean_std_text(row.get(f"cost_mean/{n}", math.nan), row.get(f"cost_std/{n}", math.nan),
                                 row.get(f"cost_seeds/{n}", 0), digits=_cost_digits(limit))
            if one:
                cells += [cost + _over(row, f"cost_seeds/{n}"), _limit_text(limit)]
            else:
                cells.append(f"{cost} ({_limit_text(limit)}){_over(row, f'cost_seeds/{n}')}"
                             if f"cost_mean/{n}" in row else "—")
        share = row["within_limit"]
        cells.append("n/a" if math.isnan(share) else
                     f"{100 * share:.0f}% ({row['within_limit_epochs']}/{row['measured_epochs']})")
        cells += [f"{_num(row['wall_s_mean'], 1)} s", _num(row["steps_per_s_mean"], 0)]
        if "ref_algo" in row:
            mark = ("" if row["ref_same_budget"] else "†") + ("" if row["ref_same_limit"] else "‡")
            cells += [mean_std_text(row["ref_return_mean"], row["ref_return_std"], row["ref_seeds"]) + mark,
                      mean_std_text(row["ref_cost_mean"], row["ref_cost_std"], row["ref_seeds"]) + mark]
        else:
            cells += ["—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _curve(run: RunData, column: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([as_float(r.get("env_steps")) for r in run.rows], dtype=float)
    y = np.array([as_float(r.get(column)) for r in run.rows], dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _band(runs: list[RunData], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) over seeds on the union of their logged steps; each seed only in its range."""
    curves = [_curve(r, column) for r in runs]
    curves = [(x, y) for x, y in curves if len(x)]
    if not curves:
        empty = np.array([])
        return empty, empty, empty, empty
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    stack = np.full((len(curves), len(grid)), np.nan)
    for i, (x, y) in enumerate(curves):
        inside = (grid >= x[0]) & (grid <= x[-1])
        stack[i, inside] = np.interp(grid[inside], x, y)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return grid, np.nanmean(stack, 0), np.nanmin(stack, 0), np.nanmax(stack, 0)


def _cost_names(by_algo: dict[str, list[RunData]]) -> list[str]:
    """Every cost name of the algorithms' runs, in first-seen order."""
    names: list[str] = []
    for runs in by_algo.values():
        for n in runs[0].cost_names:
            if n not in names:
                names.append(n)
    return names


def _finite_limits(by_algo: dict[str, list[RunData]]) -> dict[str, list[float]]:
    """Per cost name, the distinct finite limits of the runs, ascending (seeds may have different ones)."""
    limits: dict[str, set[float]] = {}
    for runs in by_algo.values():
        for r in runs:
            for n, v in r.cost_limits().items():
                if math.isfinite(v):
                    limits.setdefault(n, set()).add(v)
    return {n: sorted(v) for n, v in limits.items()}


def check_matplotlib(command: str = "cmdp report") -> None:
    """Raise ConfigError, naming `command` and saying how to install it, where matplotlib (the `report` extra) cannot
    be imported: the report (and `cmdp demo` and `cmdp text-demo`, before they train) checks it before it writes
    anything, so that a missing matplotlib leaves no half-written report."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ConfigError(f"{command} needs matplotlib for its figures: pip install 'cmdp-lab[report]' "
                          "(or use --no-plots)") from None


def plot_env(env: str, by_algo: dict[str, list[RunData]], path: Path) -> None:
    """One figure for one environment: return and each cost against env steps. See `curves_figure`."""
    check_matplotlib()
    curves_figure(env, by_algo).savefig(path, dpi=100)


#: the learning curves' dash patterns, line by line: solid, long dashes, dots, dash-dot (the cost limit's short
#: black dashes are apart by colour)
LINE_STYLES: tuple[Any, ...] = ("-", (0, (7, 3)), (0, (1, 2)), (0, (7, 2, 1, 2)))


def curves_figure(env: str, by_algo: dict[str, list[RunData]]) -> Any:
    """`plot_env`'s figure (a matplotlib Figure): return and each cost against env steps, one line per algorithm
    in its colour (the mean over its seeds, shaded between their min and max). Algorithms whose lines coincide in a
    panel (ppo and ppo_lag while the multiplier stays at 0) share one black line there, named "ppo = ppo_lag" in its
    legend, as the tradeoff figure names coinciding means: in their colours the second line would hide the first.
    Each line has its own dash pattern too (`LINE_STYLES`), so lines that nearly coincide stay visible."""
    from matplotlib.figure import Figure

    names = _cost_names(by_algo)
    fig = Figure(figsize=(5.5 * (1 + len(names)), 4.2), layout="constrained")
    axes = fig.subplots(1, 1 + len(names), squeeze=False)[0]
    columns = ["ep_return"] + [f"ep_cost/{n}" for n in names]
    for ax, column in zip(axes, columns):
        lines: list[tuple[tuple[np.ndarray, ...], str, list[tuple[str, int]]]] = []  # (band, colour, algorithms)
        for i, (algo, runs) in enumerate(sorted(by_algo.items())):
            band = _band(runs, column)
            if not len(band[0]):
                continue
            same = [line for line in lines if all(np.array_equal(a, b, equal_nan=True) for a, b in zip(line[0], band))]
            if same:
                same[0][2].append((algo, len(runs)))
            else:
                lines.append((band, f"C{i % 10}", [(algo, len(runs))]))
        for k, ((x, mean, lo, hi), color, algos) in enumerate(lines):
            color = color if len(algos) == 1 else "black"
            # a dash pattern per line as well as a colour: lines that nearly coincide (not exactly, or they would
            # share one) show both through each other's gaps; a shared black line is solid, apart from the limit's
            # black dashes
            style = LINE_STYLES[k % len(LINE_STYLES)] if len(algos) == 1 else "-"
            ax.plot(x, mean, color=color, label=_line_label(algos), lw=1.6, ls=style)
            ax.fill_between(x, lo, hi, color=color, alpha=0.2 if len(algos) == 1 else 0.1, lw=0)
    limits = _finite_limits(by_algo)
    axes[0].set_title(f"{env}: return")
    axes[0].set_ylabel("episode return")
    for ax, n in zip(axes[1:], names):
        for j, limit in enumerate(limits.get(n, [])):
            ax.axhline(limit, color="black", ls="--", lw=1.2, label="cost limit" if j == 0 else None)
        ax.set_title(f"{env}: cost" + (f" {n}" if len(names) > 1 else ""))
        ax.set_ylabel("episode cost")
    for ax in axes:
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="mean over seeds; shaded: min-max", title_fontsize=7)
    return fig


def _line_label(algos: list[tuple[str, int]]) -> str:
    """A learning curve's legend entry for the (algorithm, seeds) that share it: "ppo (2 seeds)", "ppo = ppo_lag
    (2 seeds each)", or each algorithm's seeds where they differ."""
    counts = {seeds for _, seeds in algos}
    if len(algos) > 1 and len(counts) == 1:
        return " = ".join(algo for algo, _ in algos) + f" ({count_text(counts.pop(), 'seeds')} each)"
    return " = ".join(f"{algo} ({count_text(seeds, 'seeds')})" for algo, seeds in algos)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, return) points that no other point beats, by cost ascending.

    A point is beaten when another has a cost at most its own and a return at least its own, one of them strictly.
    Points with a NaN coordinate are never on the front."""
    finite = [i for i, (c, r) in enumerate(points) if math.isfinite(c) and math.isfinite(r)]
    front = []
    for i in finite:
        ci, ri = points[i]
        beaten = any(points[j][0] <= ci and points[j][1] >= ri and (points[j][0] < ci or points[j][1] > ri)
                     for j in finite if j != i)
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def plot_tradeoff(env: str, by_algo: dict[str, list[RunData]], path: Path) -> bool:
    """One figure for one environment: each seed's final return against its final cost, per cost name; whether it
    was written (not for an environment without costs). See `tradeoff_figure`."""
    fig = tradeoff_figure(env, by_algo)
    if fig is None:
        return False
    fig.savefig(path, dpi=100)
    return True


def tradeoff_figure(env: str, by_algo: dict[str, list[RunData]]) -> Any:
    """`plot_tradeoff`'s figure (a matplotlib Figure; None for an environment without costs).

    Each algorithm's seeds are dots and their mean a marker with std error bars (none over one seed, whose std says
    nothing; the legend's title words what the markers are), named beside it on the side towards the middle of the
    axes (so that a name at the largest cost or return stays inside them), one name
    "a = b" in black for algorithms whose means coincide (the second marker hides the first); the dashed
    line is the limit, and the grey staircase joins the algorithms' means that no other algorithm's mean beats on
    both (lower cost and higher return). On the text family return is the reward model's score and cost the cost
    model's, so this is the helpful-versus-harmless frontier."""
    from matplotlib.figure import Figure

    names = _cost_names(by_algo)
    if not names:
        return None
    limits = _finite_limits(by_algo)
    fig = Figure(figsize=(5.5 * len(names), 4.6), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        means: list[tuple[float, float]] = []
        labels: list[tuple[str, float, float, str]] = []
        seeds: list[int] = []  # per algorithm drawn, the seeds its marker is over
        for i, (algo, runs) in enumerate(sorted(by_algo.items())):
            finals = [r.final() for r in runs]
            ret = np.array([f[0] for f in finals], dtype=float)
            cost = np.array([f[1].get(name, math.nan) for f in finals], dtype=float)
            keep = np.isfinite(ret) & np.isfinite(cost)
            if not keep.any():
                continue
            color = f"C{i % 10}"
            ax.scatter(cost[keep], ret[keep], color=color, s=14, alpha=0.45, lw=0)
            (c_mean, c_std), (r_mean, r_std) = _mean_std(cost[keep]), _mean_std(ret[keep])
            seeds.append(int(keep.sum()))
            spread = seeds[-1] > 1  # a std over one seed (0) says nothing: no error bars
            ax.errorbar(c_mean, r_mean, xerr=c_std if spread else None, yerr=r_std if spread else None, color=color,
                        marker="o", ms=7, capsize=3, label=f"{algo} ({count_text(seeds[-1], 'seeds')})")
            labels.append((algo, c_mean, r_mean, color))
            means.append((c_mean, r_mean))
        front = [means[i] for i in pareto_front(means)]
        if len(set(front)) > 1:  # means on one point (algorithms that trained alike) draw no line to show
            ax.step([c for c, _ in front], [r for _, r in front], where="post", color="0.4", lw=1, ls=":",
                    label="frontier of the means", zorder=0)
        for j, limit in enumerate(limits.get(name, [])):
            ax.axvline(limit, color="black", ls="--", lw=1.2, label="cost limit" if j == 0 else None)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()  # the limits every point and line above gives
        at: dict[tuple[float, float], list[tuple[str, str]]] = {}
        for algo, c_mean, r_mean, color in labels:  # algorithms whose means coincide: one name for them all
            at.setdefault((c_mean, r_mean), []).append((algo, color))
        for (c_mean, r_mean), named in at.items():
            text, color = (named[0] if len(named) == 1 else
                           (" = ".join(algo for algo, _ in named), "black"))
            right, top = c_mean > (x0 + x1) / 2, r_mean > (y0 + y1) / 2
            ax.annotate(text, (c_mean, r_mean), xytext=(-5 if right else 5, -5 if top else 5),
                        textcoords="offset points", ha="right" if right else "left", va="top" if top else "bottom",
                        fontsize=8, color=color)
        ax.set_title(f"{env}: final return against final cost" + (f" {name}" if len(names) > 1 else ""))
        ax.set_xlabel("final episode cost" + (f" {name}" if len(names) > 1 else "") + " (left: safer)")
        ax.set_ylabel("final episode return (up: better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title=_markers_text(seeds), title_fontsize=7)
    return fig


def _markers_text(seeds: list[int]) -> str:
    """The tradeoff legend's title: what its dots and markers show, for algorithms over `seeds` seeds each (a mean
    over one seed is that seed's value, with no std to show)."""
    if seeds and all(n == 1 for n in seeds):
        return "marker: final value (one seed each)"
    return "dots: seeds; marker: mean ± std" + (" (one seed: its value)" if 1 in seeds else "")


def write_report(root: str | Path, out: str | Path | None = None, partial: bool = False,
                 plots: bool = True) -> Path:
    """Write the report of the runs under `root` into `out` (default root/report); return report.md's path.

    The figures that an earlier report.md in `out` showed and this report does not draw (all of them with
    `plots=False`) are removed, so that the folder holds the figures its report.md shows; no other file is touched.
    """
    root = Path(root)
    out = Path(out) if out else root / "report"
    runs = find_runs(root)
    inside = next((r for r in runs if r.path.resolve().is_relative_to(out.resolve())), None)
    if inside is not None:  # the report's files would be written among the run's (a run there had been left out)
        where = "is a run folder" if inside.path.resolve() == out.resolve() else f"holds the run folder {inside.path}"
        raise ConfigError(f"report: the report folder {out} {where}; choose an --out outside the runs")
    if not runs:
        raise ConfigError(f"report: no run folders (config.yaml) under {root}")
    reference = load_reference()
    table = summarize(runs, partial=partial, reference=reference)
    if plots and table:
        check_matplotlib()
    make_output_folder(out)
    write_csv(table, out / "results.csv")
    md_table = markdown_table(table) if table else "_No finished runs yet (use --partial to include unfinished ones)._"
    (out / "results.md").write_text(md_table + "\n")

    figures = []
    if plots and table:
        by_env: dict[str, dict[str, list[RunData]]] = {}
        for run in runs:
            if run.rows and (run.finished or partial):
                by_env.setdefault(run.env, {}).setdefault(run.algo, []).append(run)
        for env, by_algo in sorted(by_env.items()):
            path = out / f"curves_{env}.png"
            plot_env(env, by_algo, path)
            tradeoff = out / f"tradeoff_{env}.png"
            figures.append((env, path.name, tradeoff.name if plot_tradeoff(env, by_algo, tradeoff) else None))

    strips = _frame_strips(runs, root, out) if plots else []
    drawn = {name for _, curves, tradeoff in figures for name in (curves, tradeoff) if name}
    for stale in sorted(_figures_shown(out / "report.md") - drawn - {image for _, image, _ in strips}):
        if (out / stale).is_file():
            (out / stale).unlink()

    suite = _read_suite(root)
    finished = [r for r in runs if r.finished]
    failed = [r for r in runs if r.error and not r.finished]
    unfinished = [r for r in runs if not r.finished and not r.error]
    damaged = [line for r in runs for line in r.damaged]
    title = suite.get("name") or root.name
    lines = [f"# Benchmark report: {title}", ""]
    if suite.get("description"):
        lines += [str(suite["description"]).strip(), ""]
    if suite.get("preset"):
        lines += [f"Every cell trained with the preset `{suite['preset']}` (`cmdp train --preset {suite['preset']}`) "
                  f"below the suite's own keys.", ""]
    unreadable = (f", {count_text(len(damaged), 'files')} that could not be read (listed below)"
                  if damaged else "")
    lines += [f"Runs under `{root}`: {count_text(len(runs), 'run folders')}, "
              f"{len(finished)} finished, {len(unfinished)} unfinished"
              f"{' (included at their last logged epoch)' if partial and unfinished else ''}, {len(failed)} failed"
              f"{unreadable}. "
              f"Generated {datetime.now().isoformat(timespec='seconds')}.", ""]
    with_ref = [r for r in table if "ref_algo" in r]
    lines += _budget_note([r for r in with_ref if not r["ref_same_budget"]])
    other_limit = [r for r in with_ref if not r["ref_same_limit"]]
    if other_limit:
        lines += [f"> ‡ our cost limit differs from OmniSafe's "
                  f"({_values_text(r['ref_cost_limit'] for r in other_limit)}): costs are not comparable.", ""]
    cited = with_ref or list(reference.values())
    seeds = _values_text(r.get("ref_seeds", r.get("seeds")) for r in cited) if cited else "OmniSafe's"
    source = reference_source_text(r.get("ref_source", r.get("source", "")) for r in cited)
    lines += ["## Results", "", md_table, ""]
    if table:  # the columns, and the CSV that has them; no table, nothing to define
        lines += ["- **return**, **cost**: each seed's final value (mean over the episodes of its last epoch that "
                  "finished any), then mean ± std over seeds (numpy's std, ddof 0), the mean alone where it is over "
                  "one seed; \"(n of N seeds)\" where only n seeds finished an episode, the mean being over those.",
                  f"- **within limit**: of the last {LAST_EPOCHS_SHARE:.0%} of epochs of every seed (at least one), "
                  "pooled, the share whose mean episode cost was at most the limit for every cost (epochs that "
                  "finished no episode are left out); in brackets: epochs within / epochs counted.",
                  "- **wall time / seed**: training seconds (collection and updates) per seed; **steps/s**: "
                  "environment steps per training second; both means over seeds.",
                  f"- **OmniSafe**: published final return and cost (mean ± std over {seeds} seeds, each after its "
                  f"own published budget: `ref_total_steps` in results.csv) from the {source}; "
                  "— where OmniSafe has no such cell.",
                  "", "The same numbers with full precision: [results.csv](results.csv).", ""]
    if figures:
        lines += ["## Learning curves", "",
                  "Episode return and cost against environment steps: mean over seeds, shaded between the seeds' "
                  "minimum and maximum; black dashes: the cost limit. Each algorithm's line has its own colour and "
                  "dash pattern; algorithms whose curves coincide share one solid black line, named \"a = b\" in the "
                  "legend.", ""]
        for env, name, _ in figures:
            lines += [f"### {env}", "", f"![{env}]({name})", ""]
    tradeoffs = [(env, name) for env, _, name in figures if name]
    if tradeoffs:
        lines += ["## Return against cost", "",
                  "Each seed's final return against its final cost (dots), each algorithm's mean (markers) with its "
                  "std where it has more than one seed, the cost limit (dashed) and the frontier of the algorithms' "
                  "means that no other beats on both lower cost and higher return (dotted). On the text family this "
                  "is helpfulness (the reward model's score) against harm (the cost model's).", ""]
        for env, name in tradeoffs:
            lines += [f"### {env}", "", f"![{env}: return against cost]({name})", ""]
    if strips:
        lines += ["## Videos", "", "Six frames spread over each run's latest `cmdp eval --video` recording, first to "
                  "last; each frame shows the episode's cost so far in its corner.", ""]
        for title, image, video in strips:
            lines += [f"### {title}", "", f"![{title}]({image})", "", f"[the video]({video})", ""]
    if damaged:
        lines += ["## Files that could not be read", "",
                  "Each run below is reported without what the file held (a run without its summary counts as "
                  "unfinished; one without its progress log has no curve and no within-limit share).", ""]
        lines += [f"- {line}" for line in damaged] + [""]
    if unfinished or failed:
        lines += ["## Not finished", ""]
        for r in unfinished:
            total = r.config.get("total_steps")
            lines.append(f"- unfinished: `{r.path.relative_to(root)}` at {r.env_steps:,}"
                         f"{f' of {total:,}' if isinstance(total, int) else ''} steps")
        for r in failed:
            lines.append(f"- failed: `{r.path.relative_to(root)}`: {r.error} (see its error.txt)")
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _figures_shown(report: Path) -> set[str]:
    """The figure files (FIGURE_LINK) that the report.md at `report` shows; none where there is no report.md."""
    if not report.is_file():
        return set()
    return set(FIGURE_LINK.findall(report.read_text(errors="replace")))


def _frame_strips(runs: list[RunData], root: Path, out: Path) -> list[tuple[str, str, str]]:
    """A frame strip (`cmdp.video.frame_strip`) for each run with a video: (title, strip file, video path), the
    paths relative to `out`."""
    from cmdp.video import frame_strip, latest_video

    strips = []
    for run in sorted(runs, key=lambda r: (r.env, r.algo, r.seed if r.seed is not None else -1, str(r.path))):
        video = latest_video(run.path)
        if video is None:
            continue
        name = f"frames_{run.env}_{run.algo}_seed{run.seed}.png"
        frame_strip(video, out / name)
        strips.append((f"{run.env} / {run.algo} / seed {run.seed} (`{run.path.relative_to(root)}`)", name,
                       os.path.relpath(video, out)))
    return strips


def _budget_note(marked: list[dict[str, Any]]) -> list[str]:
    """The report's note on the rows marked † (our env steps differ from their reference row's `total_steps`),
    each compared with its own reference budget."""
    if not marked:
        return []
    pairs: dict[tuple[str, int], list[str]] = {}
    for r in marked:
        pairs.setdefault((_steps_text(r["env_steps"]), r["ref_total_steps"]), []).append(f"{r['algo']} on {r['env']}")
    terms = (f"cost limit {_values_text(r['ref_cost_limit'] for r in marked)} over "
             f"{_values_text(r['ref_seeds'] for r in marked)} seeds")
    if len(pairs) == 1:
        ours, theirs = next(iter(pairs))
        return [f"> **Budget differs from OmniSafe's.** The rows marked † were trained for {ours} steps, but "
                f"OmniSafe's numbers for them (the last two columns) are after {theirs:,} environment steps with "
                f"{terms}, so they are not comparable with OmniSafe's.", ""]
    lines = [f"> **Budget differs from OmniSafe's.** The rows marked † were trained for another number of steps "
             f"than OmniSafe's numbers for them (the last two columns; {terms}), so they are not comparable with "
             f"OmniSafe's:", ">"]
    for (ours, theirs), rows in sorted(pairs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lines.append(f"> - trained for {ours} steps, OmniSafe's after {theirs:,}: {', '.join(rows)}")
    return lines + [""]


def _read_suite(root: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load((root / "suite.yaml").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, yaml.YAMLError):  # the copy only titles the report; ValueError: not UTF-8
        return {}


__all__ = ["write_report", "find_runs", "summarize", "load_reference", "reference_row", "reference_source_text",
           "markdown_table", "write_csv", "check_matplotlib", "plot_env", "curves_figure", "plot_tradeoff",
           "tradeoff_figure", "RunData", "OMNISAFE_ALGOS", "OMNISAFE_ENVS", "OMNISAFE_OFF_POLICY_ENVS", "REFERENCE_DIR",
           "REFERENCE_CSV", "REFERENCE_OFF_POLICY_CSV"]
