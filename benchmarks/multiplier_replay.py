"""Multiplier replay: how a run's Lagrange multipliers would have moved under another update rule, fed the same costs.

    python -m cmdp.benchmarks.multiplier_replay RUN_DIR [--rule update:1e-5] [--rule epoch:0.02] [--out DIR]

(also `python -m benchmarks.multiplier_replay` from the repository root). RUN_DIR is one run folder of a solver
with gradient-ascent multipliers (`LagrangeOptions`: ppo_lag, sac_lag, ...). Its progress.csv gives, per epoch, the
cost each multiplier saw (`cost_seen/<cost>`, else the epoch's `ep_cost/<cost>`), the gradient updates the epoch
took (`updates`, off-policy runs) and the multipliers it logged (`lambda/<cost>`). Each `--rule STEPS:LR` is
replayed on those costs with the run's own optimiser, start, bound, parameterisation and delay, and learning rate
LR: `epoch`, one step per epoch; `update`, one per gradient update of the epoch (`lagrangian_steps`). Without
`--rule`, the run's own rule and the other one with the same full step (LR times the updates of the run's last
epoch, or divided by them) are replayed.

Open loop: the policy, and so the costs, stay the run's own, so a replay shows how a rule answers a given cost
history, not the run that rule would have made. The run's own rule must give back the logged multipliers (to the
precision progress.csv keeps): the largest difference is printed as a check.

Writes `replay.csv` (epoch, cost seen, logged and replayed multipliers) and `replay.png` (the multipliers against
the epoch, the cost seen and the limit below) to `--out` (default RUN_DIR/replay).
"""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import cmdp  # noqa: F401  (first: it imports gymnasium quietly)
import numpy as np
from cmdp.cli import OneLineParser
from cmdp.config import make_output_folder
from cmdp.errors import ConfigError
from cmdp.lagrange import LagrangeOptions
from cmdp.loading import open_run
from cmdp.logger import read_progress
from cmdp.off_policy import OffPolicyLagrangeOptions
from cmdp.registry import get_algorithm
from cmdp.benchmarks.report import as_float, find_runs

#: `--rule`'s step counts: one ascent step per epoch, or one per gradient update of the epoch
STEPS = ("epoch", "update")


@dataclasses.dataclass(frozen=True)
class Rule:
    """A multiplier update rule: `steps` ascent steps per epoch ("epoch": one; "update": one per gradient update),
    each of learning rate `lr`."""

    steps: str
    lr: float

    @property
    def name(self) -> str:
        return f"{self.steps}:{self.lr:g}"


def parse_rule(text: str) -> Rule:
    """`STEPS:LR` -> Rule; ConfigError in one line when it is not that."""
    steps, _, lr = text.partition(":")
    try:
        value = float(lr)
    except ValueError:
        value = math.nan
    if steps not in STEPS or not value > 0:
        raise ConfigError(f"--rule {text!r}: expected STEPS:LR with STEPS one of {', '.join(STEPS)} and LR > 0, "
                          f"e.g. update:1e-5")
    return Rule(steps, value)


def replay(run_dir: Path, rules: list[Rule] | None = None) -> dict[str, Any]:
    """The run's cost history replayed under `rules` (None: its own rule and the other one with the same full step):
    {"costs": names, "limits", "rows": one dict per epoch, "rules": names, "own": the run's rule's name,
    "max_diff": the largest |logged - replayed| multiplier under the run's own rule, None when `rules` leave it out,
    "multiplier": what the run's solver calls its multipliers (the solver's `multiplier_name`: focops's "nu")}."""
    cfg, _ = open_run(run_dir, need_checkpoint=False)
    if not isinstance(cfg, LagrangeOptions):
        raise ConfigError(f"{run_dir}: {cfg.algo} has no gradient-ascent multipliers to replay "
                          f"(its config is not LagrangeOptions)")
    rows = read_progress(Path(run_dir) / "progress.csv")
    if not rows:
        raise ConfigError(f"{run_dir}: progress.csv holds no epoch yet")
    names = [c.split("/", 1)[1] for c in rows[0] if c.startswith("lambda/")]
    found = [run for run in find_runs(run_dir) if run.path == Path(run_dir)]
    limits = found[0].cost_limits() if found else {}
    if sorted(limits) != sorted(names):
        raise ConfigError(f"{run_dir}: the cost limits are not known without the environment (the run has not "
                          f"finished and its config.yaml sets no numeric cost_limits)")
    has_updates = "updates" in rows[0]
    # the off-policy `*_lag` say how often theirs move (`lagrangian_steps`); every other solver's, once per epoch
    own = Rule(cfg.lagrangian_steps if isinstance(cfg, OffPolicyLagrangeOptions) else "epoch", cfg.lagrangian_lr)
    if rules is None:
        per_epoch = float(rows[-1]["updates"]) if has_updates else 0.0
        rules = [own]
        if per_epoch > 0:
            rules.append(Rule("epoch", own.lr * per_epoch) if own.steps == "update"
                         else Rule("update", own.lr / per_epoch))
    if any(rule.steps == "update" for rule in rules) and not has_updates:
        raise ConfigError(f"{run_dir}: progress.csv has no `updates` column (not an off-policy run), so a rule of "
                          f"one step per update cannot be replayed")
    seen_column = "cost_seen/{}" if f"cost_seen/{names[0]}" in rows[0] else "ep_cost/{}"
    limit_array = np.array([limits[n] for n in names])
    multipliers = {rule.name: dataclasses.replace(cfg, lagrangian_lr=rule.lr).multiplier(limit_array)
                   for rule in rules}
    out_rows, max_diff = [], (0.0 if own in rules else None)
    for row in rows:
        seen = np.array([as_float(row.get(seen_column.format(n))) for n in names])
        updates = int(float(row["updates"])) if has_updates else 1
        record: dict[str, Any] = {"epoch": int(row["epoch"])}
        record.update({f"cost_seen/{n}": c for n, c in zip(names, seen)})
        record.update({f"logged/{n}": as_float(row.get(f"lambda/{n}")) for n in names})
        for rule in rules:
            value = multipliers[rule.name].update(seen, updates if rule.steps == "update" else 1)
            record.update({f"{rule.name}/{n}": float(v) for n, v in zip(names, value)})
            if rule == own and max_diff is not None:
                max_diff = max(max_diff, max(abs(record[f"logged/{n}"] - float(v)) for n, v in zip(names, value)))
        out_rows.append(record)
    return {"costs": names, "limits": limits, "rows": out_rows, "rules": [r.name for r in rules], "own": own.name,
            "max_diff": max_diff, "multiplier": get_algorithm(cfg.algo).multiplier_name}


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """replay.csv and replay.png into `out`; returns their paths."""
    import csv

    make_output_folder(out)  # a file in the way, or a folder the OS refuses: one line naming it
    rows = result["rows"]
    with open(out / "replay.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    replay_figure(result).savefig(out / "replay.png", dpi=110)
    return [out / "replay.csv", out / "replay.png"]


def replay_figure(result: dict[str, Any]) -> Any:
    """replay.png's figure (a matplotlib Figure): per cost, the multipliers against the epoch above, the cost they saw
    and the limit below; the epoch axis has whole-number ticks only."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rows, names = result["rows"], result["costs"]
    fig = Figure(figsize=(7 * len(names), 6), layout="tight")
    axes = fig.subplots(2, len(names), sharex=True, squeeze=False)
    epochs = [r["epoch"] for r in rows]
    for i, name in enumerate(names):
        top, bottom = axes[0][i], axes[1][i]
        top.plot(epochs, [r[f"logged/{name}"] for r in rows], color="black", lw=3, alpha=0.3, label="logged")
        for rule in result["rules"]:
            label = f"{rule} (the run's own)" if rule == result["own"] else rule
            top.plot(epochs, [r[f"{rule}/{name}"] for r in rows], lw=1.2, label=label)
        top.set_ylabel(f"{result['multiplier']} ({name})")
        top.legend(fontsize=8)
        top.set_title(f"{name}: multipliers replayed on the run's costs (open loop)", fontsize=10)
        bottom.plot(epochs, [r[f"cost_seen/{name}"] for r in rows], color="tab:red", lw=1)
        bottom.axhline(result["limits"][name], color="black", ls="--", lw=1, label="limit")
        bottom.set_ylabel("cost the multiplier saw")
        bottom.set_xlabel("epoch")
        bottom.legend(fontsize=8)
        for ax in (top, bottom):  # epochs are whole numbers: no tick at 2.5
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m cmdp.benchmarks.multiplier_replay", description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="one run folder of a solver with gradient-ascent multipliers")
    p.add_argument("--rule", action="append", metavar="STEPS:LR",
                   help="a rule to replay, e.g. update:1e-5 or epoch:0.02 (repeatable; default: the run's own and "
                        "the other with the same full step)")
    p.add_argument("--out", help="output folder (default RUN_DIR/replay)")
    args = p.parse_args(argv)
    try:
        rules = [parse_rule(r) for r in args.rule] if args.rule else None
        result = replay(Path(args.run_dir), rules)
        paths = write(result, Path(args.out) if args.out else Path(args.run_dir) / "replay")
    except (ConfigError, OSError) as exc:
        print(f"multiplier_replay: error: {exc}", file=sys.stderr)
        return 2
    last = result["rows"][-1]
    for name in result["costs"]:
        shown = ", ".join(f"{rule} {last[f'{rule}/{name}']:.4f}" for rule in result["rules"])
        print(f"{name}: {result['multiplier']} after epoch {last['epoch']}: logged {last[f'logged/{name}']:.4f}; "
              f"replayed {shown}")
    if result["max_diff"] is not None:  # only a replay of the run's own rule can check itself
        print(f"check: the run's own rule ({result['own']}) gives back the logged multipliers to within "
              f"{result['max_diff']:.2g}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
