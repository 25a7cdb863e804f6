"""Several seeds of the OmniSafe side by side in one figure: each configuration's learning curves as a band.

    python -m benchmarks.omnisafe_seeds DIR [DIR ...] [--last 10] [--per-seed] [--out DIR]

Each DIR is a finished output folder of `benchmarks.omnisafe_side_by_side` (its curves.csv and throughput.json):
one seed of one of our solvers and its OmniSafe counterpart. The folders must share the algorithm, task, budget,
epoch length and cost limit; they may differ in the seed and in our side's `--preset` and `--set` keys. Curves
are grouped by configuration (OmniSafe's run; ours at each preset and set of keys), so folders that reuse one
OmniSafe run with two of our configurations (`--omnisafe-run`) put three configurations in one figure. One seed
of a configuration may appear in several folders only as the same curve.

It writes into --out (default benchmarks/results/omnisafe-seeds/<algo>-<env>):
  seeds.csv    per configuration and epoch: the seeds, and the mean, lowest and highest return, cost and episode
               length over them
  seeds.png    return, cost and episode length against environment steps: per configuration the mean over seeds
               as a line, the range over seeds as a band; dashed: the cost limit
  seeds.json   per configuration and seed, over the last `--last` epochs: the mean return, cost and episode length
               and the epochs within the limit (of those with a cost); and the seed's first recovery (the first
               epoch within the limit after its first epoch above it) with the multiplier logged there; per
               configuration the mean and standard deviation over seeds
and prints that table (`--per-seed`: one row per seed too). Whether two configurations agree "within seed noise"
is then a reading of the bands and of the table, not a test this tool makes. The recovery says when, and at which
multiplier, a seed's cost first came down; the episode length, whether a policy of low cost falls early or stays
up. Each curve is what its framework logs (side_by_side's docstring): ours the mean of the epoch's episodes,
OmniSafe's the mean of its last 50 episodes, which is smoother.
Missing or unreadable files, or folders that do not compare the same thing: one line, exit status 2, nothing
written.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from cmdp.benchmarks.omnisafe_side_by_side import ALGORITHMS, CMDP, OMNISAFE, Comparison, curve_label
from cmdp.config import make_output_folder
from cmdp.spec import ConfigError

#: what every folder of one figure must share (throughput.json's keys)
SHARED = ("algo", "env", "steps", "steps_per_epoch", "cost_limit")


class SeedPoint(NamedTuple):
    """One epoch of one seed's curve, as curves.csv holds it."""

    env_steps: int
    ep_return: float
    ep_cost: float
    ep_len: float
    multiplier: float | None  # None: the solver has none (cpo)


@dataclass(frozen=True)
class SeedCurve:
    """One seed of one configuration: its points per epoch, and the folder it came from."""

    label: str
    seed: int
    points: tuple[SeedPoint, ...]
    folder: Path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a side-by-side throughput.json (a JSON object)")
    return data


def _unreadable(folder: Path, exc: Exception) -> ConfigError:
    return ConfigError(f"{folder}: unreadable throughput.json or curves.csv ({type(exc).__name__}: {exc})")


def read_folder(folder: Path) -> tuple[dict[str, Any], list[SeedCurve]]:
    """A side-by-side folder's settings (throughput.json) and its two curves (curves.csv); ConfigError, one line,
    for a missing or unreadable file."""
    record_path, curves_path = folder / "throughput.json", folder / "curves.csv"
    if not (record_path.is_file() and curves_path.is_file()):
        raise ConfigError(f"{folder}: no throughput.json and curves.csv there (give an output folder of "
                          "benchmarks.omnisafe_side_by_side)")
    record = _read_json(record_path)
    try:
        settings = {key: record[key] for key in (*SHARED, "seed", "cmdp_preset", "cmdp_sets", "omnisafe_version")}
        comparison = Comparison(settings["algo"], settings["env"], int(settings["seed"]), int(settings["steps"]),
                                int(settings["steps_per_epoch"]), float(settings["cost_limit"]),
                                settings["cmdp_preset"], tuple(settings["cmdp_sets"]))
        with open(curves_path, newline="") as f:
            reader = csv.DictReader(f)
            header, table = reader.fieldnames or [], list(reader)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _unreadable(folder, exc) from None
    # outside the try: ConfigError is a ValueError, and this one needs no wrapping
    if "ep_len" not in header:
        raise ConfigError(f"{curves_path}: no ep_len column (written before 2026-12-04; rewrite it with "
                          "benchmarks.omnisafe_side_by_side --cmdp-run RUN --omnisafe-run RUN)")
    rows: dict[str, list[SeedPoint]] = {CMDP: [], OMNISAFE: []}
    try:
        for row in table:
            rows[row["framework"]].append(SeedPoint(
                int(row["env_steps"]), float(row["ep_return"]), float(row["ep_cost"]), float(row["ep_len"]),
                float(row["multiplier"]) if row["multiplier"] else None))
    except (ValueError, KeyError, TypeError) as exc:
        raise _unreadable(folder, exc) from None
    if comparison.algo not in ALGORITHMS:
        raise ConfigError(f"{record_path}: algorithm {comparison.algo!r} is not one the side by side knows")
    labels = {framework: curve_label(framework, comparison, str(settings["omnisafe_version"]))
              for framework in (CMDP, OMNISAFE)}
    for framework, points in rows.items():
        if len(points) != comparison.epochs:
            raise ConfigError(f"{curves_path}: {len(points)} epochs of {framework}, not {comparison.epochs}")
    curves = [SeedCurve(labels[framework], comparison.seed, tuple(points), folder)
              for framework, points in rows.items()]
    return settings, curves


def group_curves(folders: list[Path]) -> tuple[dict[str, Any], dict[str, dict[int, SeedCurve]]]:
    """The settings all folders share and, per configuration label, its curve for each seed (OmniSafe's first)."""
    if not folders:
        raise ConfigError("give at least one side-by-side output folder")
    shared: dict[str, Any] | None = None
    groups: dict[str, dict[int, SeedCurve]] = {}
    first_folder = folders[0]
    for folder in folders:
        settings, curves = read_folder(folder)
        if shared is None:
            shared = {key: settings[key] for key in SHARED}
        differing = [key for key in SHARED if settings[key] != shared[key]]
        if differing:
            raise ConfigError(f"{folder} compares another run than {first_folder}: "
                              + ", ".join(f"{key} {settings[key]!r} against {shared[key]!r}" for key in differing))
        for curve in curves:
            seen = groups.setdefault(curve.label, {}).get(curve.seed)
            if seen is not None and seen.points != curve.points:
                raise ConfigError(f"{curve.label}, seed {curve.seed}: different curves in {seen.folder} and {folder}")
            groups[curve.label].setdefault(curve.seed, curve)
    assert shared is not None
    ordered = dict(sorted(groups.items(), key=lambda item: (not item[0].startswith(OMNISAFE), item[0])))
    return shared, {label: dict(sorted(seeds.items())) for label, seeds in ordered.items()}


def recovery(points: tuple[SeedPoint, ...], limit: float) -> tuple[int, SeedPoint] | None:
    """The first epoch (counted from 1) within the limit after the first epoch above it, and its point; None if
    the cost never exceeded the limit or never came back within it. An epoch without a cost (NaN: no episode
    finished in it) is neither."""
    above = False
    for epoch, point in enumerate(points, start=1):
        if math.isnan(point.ep_cost):
            continue
        if point.ep_cost > limit:
            above = True
        elif above:
            return epoch, point
    return None


def seed_summary(curve: SeedCurve, last: int, limit: float) -> dict[str, Any]:
    """Over the last `last` epochs of one seed: the mean return, cost and episode length, the epochs within the
    limit among those with a cost; and its first recovery (`recovery`) with the multiplier there (None where there
    is none). An epoch without a cost (NaN: no episode finished in it) is left out of the mean cost and of the
    count, as `benchmarks.report`'s `last_epochs_within` leaves it out."""
    tail = curve.points[-last:]
    measured = [p.ep_cost for p in tail if not math.isnan(p.ep_cost)]
    recovered = recovery(curve.points, limit)
    return {"return": statistics.fmean(p.ep_return for p in tail),
            "cost": statistics.fmean(measured) if measured else math.nan,
            "ep_len": statistics.fmean(p.ep_len for p in tail),
            "epochs_within_limit": sum(cost <= limit for cost in measured), "epochs_measured": len(measured),
            "recovered_epoch": None if recovered is None else recovered[0],
            "multiplier_at_recovery": None if recovered is None else recovered[1].multiplier}


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(groups: dict[str, dict[int, SeedCurve]], last: int, limit: float) -> dict[str, Any]:
    out = {}
    for label, seeds in groups.items():
        per_seed = {str(seed): seed_summary(curve, last, limit) for seed, curve in seeds.items()}
        out[label] = {"seeds": list(seeds), "per_seed": per_seed,
                      "return": _spread([s["return"] for s in per_seed.values()]),
                      "cost": _spread([s["cost"] for s in per_seed.values()]),
                      "ep_len": _spread([s["ep_len"] for s in per_seed.values()]),
                      "epochs_within_limit": sum(s["epochs_within_limit"] for s in per_seed.values()),
                      "epochs": sum(s["epochs_measured"] for s in per_seed.values())}
    return out


#: per epoch of one configuration, over its seeds (`bands`)
BAND_COLUMNS = ("env_steps", "return_mean", "return_min", "return_max", "cost_mean", "cost_min", "cost_max",
                "ep_len_mean", "ep_len_min", "ep_len_max")


def bands(seeds: dict[int, SeedCurve]) -> list[tuple[float, ...]]:
    """Per epoch (`BAND_COLUMNS`): its environment steps, and the mean, lowest and highest return, cost and
    episode length over the seeds."""
    rows = []
    for points in zip(*(curve.points for curve in seeds.values())):
        row: list[float] = [points[0].env_steps]
        for values in ([p.ep_return for p in points], [p.ep_cost for p in points], [p.ep_len for p in points]):
            row += [statistics.fmean(values), min(values), max(values)]
        rows.append(tuple(row))
    return rows


def write_csv(groups: dict[str, dict[int, SeedCurve]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["configuration", "epoch", "env_steps", "seeds", *BAND_COLUMNS[1:]])
        for label, seeds in groups.items():
            for epoch, (steps, *values) in enumerate(bands(seeds), start=1):
                writer.writerow([label, epoch, steps, " ".join(map(str, seeds)), *map(repr, values)])


def plot(groups: dict[str, dict[int, SeedCurve]], shared: dict[str, Any], path: Path) -> None:
    """Return, cost and episode-length panels: per configuration the mean over seeds and the band from lowest to
    highest."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 5.4), layout="constrained")
    ax_return, ax_cost, ax_len = fig.subplots(1, 3)
    for i, (label, seeds) in enumerate(groups.items()):
        steps, *columns = zip(*bands(seeds))
        for ax, (mean, lowest, highest) in ((ax_return, columns[:3]), (ax_cost, columns[3:6]), (ax_len, columns[6:])):
            ax.fill_between(steps, lowest, highest, color=f"C{i}", alpha=0.18, lw=0)
            ax.plot(steps, mean, color=f"C{i}", lw=1.6, label=f"{label}, seeds {', '.join(map(str, seeds))}")
    limit = shared["cost_limit"]
    ax_cost.axhline(limit, color="black", ls="--", lw=1.2, label=f"cost limit {limit:g}")
    for ax, what in ((ax_return, "episode return"), (ax_cost, "episode cost"), (ax_len, "episode length")):
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"{what}: mean over seeds, band lowest to highest")
        ax.grid(alpha=0.3)
    fig.legend(*ax_cost.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)  # off the data
    algo = shared["algo"]
    fig.suptitle(f"{algo} (OmniSafe {ALGORITHMS[algo].name}) on {shared['env']}, {shared['steps']:,} steps "
                 f"({shared['steps'] // shared['steps_per_epoch']} epochs of {shared['steps_per_epoch']:,})")
    fig.savefig(path, dpi=100)


def _recovered(s: dict[str, Any]) -> str:
    if s["recovered_epoch"] is None:
        return "-"
    multiplier = s["multiplier_at_recovery"]
    return f"{s['recovered_epoch']}" + ("" if multiplier is None else f" at {multiplier:.2f}")


def _column(stat: dict[str, float], one: bool, mean_width: int, std_width: int, digits: int) -> str:
    """A column of `print_table`: "mean ± std", or the mean alone (padded to the same width) over `one` seed."""
    mean = f"{stat['mean']:{mean_width}.{digits}f}"
    return mean + " " * (std_width + 3) if one else f"{mean} ± {stat['std']:{std_width}.{digits}f}"


def print_table(summary: dict[str, Any], last: int, per_seed: bool = False) -> None:
    """Per configuration the last epochs' means over seeds; with `per_seed`, each seed's row under it too."""
    width = max(len(label) for label in summary)
    print(f"{'':<{width}}  seeds    last {last} epochs: return       cost   episode length   epochs within the limit")
    for label, s in summary.items():
        seeds = ",".join(map(str, s["seeds"]))
        one = len(s["seeds"]) == 1  # a std over one seed says nothing: the mean alone
        print(f"{label:<{width}}  {seeds:<7}  {_column(s['return'], one, 9, 6, 1)}  "
              f"{_column(s['cost'], one, 6, 5, 1)}  {_column(s['ep_len'], one, 6, 4, 0)}   "
              f"{s['epochs_within_limit']} of {s['epochs']}")
        if per_seed:
            print("    seed   return    cost  episode length  within  first recovery: epoch at multiplier")
            for seed, row in s["per_seed"].items():
                print(f"    {seed:>4}  {row['return']:7.1f}  {row['cost']:6.1f}  {row['ep_len']:14.0f}  "
                      f"{row['epochs_within_limit']:6d}  {_recovered(row)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.omnisafe_seeds", description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="output folders of omnisafe_side_by_side")
    p.add_argument("--last", type=int, default=10, help="epochs at the end the table summarises (default 10)")
    p.add_argument("--per-seed", action="store_true", help="print each seed's row under its configuration's")
    p.add_argument("--out", type=Path, help="output folder (default benchmarks/results/omnisafe-seeds/<algo>-<env>)")
    args = p.parse_args(argv)
    try:
        if args.last < 1:
            raise ConfigError(f"--last must be at least 1, got {args.last}")
        shared, groups = group_curves(args.folders)
        epochs = shared["steps"] // shared["steps_per_epoch"]
        if args.last > epochs:
            raise ConfigError(f"--last {args.last} is more than the runs' {epochs} epochs")
        out = args.out or Path("benchmarks/results/omnisafe-seeds") / f"{shared['algo']}-{shared['env']}"
        summary = summarise(groups, args.last, float(shared["cost_limit"]))
        make_output_folder(out)
        write_csv(groups, out / "seeds.csv")
        plot(groups, shared, out / "seeds.png")
        (out / "seeds.json").write_text(json.dumps({**shared, "last_epochs": args.last, "configurations": summary},
                                                   indent=2) + "\n")
    except ConfigError as exc:
        print(f"omnisafe_seeds: error: {exc}", file=sys.stderr)
        return 2
    print_table(summary, args.last, args.per_seed)
    print(f"wrote {out}/seeds.csv, seeds.png, seeds.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
