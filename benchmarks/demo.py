"""`cmdp demo`: what constrained RL is for, in about ten minutes on 2 cores, measured.

1. Train the demo suite (`benchmarks/suites/demo.yaml`: `ppo`, reward only, and `pid_lag`, PID Lagrangian, on
   SafetyPointCircle1-v0 with its cost limit of 25) through `cmdp benchmark`'s machinery: one cell per core, a
   status line while they train, every run an ordinary run folder under OUT/<env>/<algo>/seed<seed>/.
2. Write `cmdp report`'s report into OUT/report: results table and the learning-curve PNG (return and cost against
   environment steps, the cost limit dashed).
3. Print each run's final return and cost against the limit and the two checks the demo exists to show, computed
   from the runs (never asserted): every constrained run ends within its limit; every unconstrained run breaks it.

A rerun reuses finished runs and resumes interrupted ones, as `cmdp benchmark` does.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from cmdp.benchmarks.report import check_matplotlib, find_runs, write_report
from cmdp.benchmarks.runner import run_suite
from cmdp.benchmarks.suite import Suite, load_suite, seed_count
from cmdp.registry import is_constrained
from cmdp.spec import ConfigError

#: The suite the demo trains (shipped with the package).
DEMO_SUITE = Path(__file__).parent / "suites" / "demo.yaml"
#: `--quick`: the same grid for 2 epochs of 1,000 steps, a smoke run of the pipeline (nothing is learnt).
QUICK_STEPS, QUICK_EPOCH = 2000, 1000


def demo_suite(seeds: int | None = None, total_steps: int | None = None, quick: bool = False) -> Suite:
    """The demo suite, with `seeds` seeds (0..seeds-1) and `total_steps` per run when given."""
    suite = load_suite(DEMO_SUITE)
    changes: dict[str, Any] = {}
    if seeds is not None:
        changes["seeds"] = seed_count(seeds, "--seeds")
    if quick:
        changes["total_steps"] = QUICK_STEPS
        changes["config"] = {**suite.config, "steps_per_epoch": QUICK_EPOCH}
    if total_steps is not None:
        if total_steps < 1:
            raise ConfigError(f"--total-steps must be at least 1, got {total_steps}")
        changes["total_steps"] = total_steps
    return dataclasses.replace(suite, **changes)


def demo_results(out: str | Path) -> dict[str, Any]:
    """Each finished run of the demo folder `out` (final return, final costs, limits) and the demo's checks.

    `checks` maps `constrained_within_limit` and `unconstrained_breaks_limit` to True/False, or None when the folder
    holds no finished run of that kind. A run is within its limit when every final cost (mean episode cost of its
    last epoch that finished episodes, as in `cmdp report`) is at most that cost's limit.
    """
    runs = []
    for run in find_runs(out, exclude=(Path(out) / "report").resolve()):
        if not run.finished:
            continue
        final_return, final_costs = run.final()
        limits = run.cost_limits()
        within = all(final_costs[name] <= limit for name, limit in limits.items())
        runs.append({"algo": run.algo, "env": run.env, "seed": run.seed, "env_steps": run.env_steps,
                     "constrained": is_constrained(run.algo), "return": final_return, "costs": final_costs,
                     "limits": limits, "within_limit": within, "run_dir": str(run.path)})
    runs.sort(key=lambda r: (r["env"], r["constrained"], r["algo"], r["seed"]))
    return {"runs": runs, "checks": demo_checks(runs)}


def demo_checks(runs: list[dict[str, Any]]) -> dict[str, bool | None]:
    """The demo's two checks over runs with `constrained` and `within_limit`: every constrained run ends within its
    limit; every unconstrained run breaks it (None: no run of that kind)."""
    constrained = [r["within_limit"] for r in runs if r["constrained"]]
    unconstrained = [not r["within_limit"] for r in runs if not r["constrained"]]
    return {"constrained_within_limit": all(constrained) if constrained else None,
            "unconstrained_breaks_limit": all(unconstrained) if unconstrained else None}


def format_results(results: dict[str, Any], quick: bool = False) -> str:
    """The demo's closing summary: one line per run, then the checks; `quick` (`--quick`): a note below them that
    two epochs learn nothing, so a "yes" or "NO" there says nothing about the solvers."""
    lines = []
    for r in results["runs"]:
        costs = ", ".join(f"{r['costs'][n]:.1f} / limit {r['limits'][n]:g}" for n in r["limits"])
        verdict = "within the limit" if r["within_limit"] else "ABOVE the limit"
        kind = "(constrained)" if r["constrained"] else "(unconstrained)"
        lines.append(f"  {r['algo']:<8} {kind:<15} seed {r['seed']}  {r['env_steps']:,} steps  "
                     f"return {r['return']:7.2f}  cost {costs}  {verdict}")
    names = {"constrained_within_limit": "every constrained run ends within its limit",
             "unconstrained_breaks_limit": "every unconstrained run breaks it"}
    for key, text in names.items():
        value = results["checks"][key]
        lines.append(f"check: {text}: {'n/a' if value is None else ('yes' if value else 'NO')}")
    if quick:
        lines.append(f"note: --quick trains {QUICK_STEPS // QUICK_EPOCH} epochs of {QUICK_EPOCH:,} steps to check "
                     f"the pipeline; they learn nothing, so the checks above say nothing about the solvers (the "
                     f"demo without --quick does)")
    return "\n".join(lines)


def run_demo(out: str | Path = "runs/demo", seeds: int | None = None, total_steps: int | None = None,
             quick: bool = False, workers: int | None = None, plots: bool = True,
             stream: TextIO | None = None) -> tuple[int, dict[str, Any]]:
    """Train the demo suite into `out`, write its report and print the summary; (exit status, results).

    The exit status is `cmdp benchmark`'s: 0 when every run finished, 1 when one failed, 130 when interrupted. The
    checks do not change it: they are what the demo measured, printed and saved in OUT/results.json.
    """
    stream = stream or sys.stderr
    out = Path(out)
    if plots:  # before minutes of training, not at the report after them
        check_matplotlib("cmdp demo")
    flags = "".join(f" {flag} {value}" for flag, value in (("--seeds", seeds), ("--total-steps", total_steps))
                    if value is not None) + (" --quick" if quick else "")
    status = run_suite(demo_suite(seeds, total_steps, quick), out=out, workers=workers, stream=stream,
                       rerun=f"cmdp demo --out {out}{flags}")
    if status == 130:
        return status, {}
    report = write_report(out, plots=plots)
    results = demo_results(out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(format_results(results, quick=quick and total_steps is None))  # --total-steps sets the budget instead
    for figure in sorted(report.parent.glob("curves_*.png")):
        print(f"curves: {figure}")
    for figure in sorted(report.parent.glob("tradeoff_*.png")):
        print(f"return against cost: {figure}")
    print(f"report: {report}")
    return status, results


__all__ = ["run_demo", "demo_suite", "demo_results", "demo_checks", "format_results", "DEMO_SUITE"]
