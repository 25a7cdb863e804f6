"""`cmdp demo`: the README's first command. The pipeline in seconds (`--quick`), the checks on hand cases, bad input
in one line, and (slow) the full demo showing what it exists to show."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cmdp.benchmarks.demo import DEMO_SUITE, demo_checks, demo_suite, run_demo
from cmdp.cli import _parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_demo_suite_is_the_shipped_file_and_quick_only_shrinks_the_budget():
    full, quick = demo_suite(), demo_suite(quick=True)
    assert full.path == DEMO_SUITE and full.algorithms == ("ppo", "pid_lag")
    assert full.environments == ("SafetyPointCircle1-v0",) and full.seeds == (0,)
    assert (quick.algorithms, quick.environments, quick.seeds) == (full.algorithms, full.environments, full.seeds)
    assert quick.total_steps == 2000 and quick.config["steps_per_epoch"] == 1000
    assert full.total_steps >= 100 * quick.total_steps
    assert demo_suite(seeds=3, total_steps=40000).seeds == (0, 1, 2)


def test_the_readme_and_the_help_state_the_suites_budget_and_task():
    suite = demo_suite()
    steps = f"{suite.total_steps:,}"
    demo_help = _parser()._subparsers._group_actions[0].choices["demo"].format_help()
    assert f"(default {steps})" in " ".join(demo_help.split())
    readme = README.read_text()
    assert "./install.sh && .venv/bin/cmdp demo" in readme
    assert f"{suite.environments[0]} for {steps} steps each" in " ".join(readme.split())


def test_demo_quick_trains_both_and_writes_curves_results_and_checks(tmp_path: Path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--workers", "0"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["algo"], r["constrained"]) for r in results["runs"]] == [("ppo", False), ("pid_lag", True)]
    for r in results["runs"]:
        assert r["env_steps"] == 2000 and r["limits"] == {"cost": 25.0}
        assert r["within_limit"] == (r["costs"]["cost"] <= 25.0)
        assert (Path(r["run_dir"]) / "summary.json").is_file()
    assert results["checks"] == demo_checks(results["runs"])
    assert (out / "report" / "curves_SafetyPointCircle1-v0.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "check: every constrained run ends within its limit:" in printed
    assert "check: every unconstrained run breaks it:" in printed
    assert QUICK_NOTE in printed.splitlines()
    assert f"curves: {out / 'report' / 'curves_SafetyPointCircle1-v0.png'}" in printed
    assert f"return against cost: {out / 'report' / 'tradeoff_SafetyPointCircle1-v0.png'}" in printed

    # a rerun reuses the finished runs; another budget in the same folder is refused in one line
    assert main(["demo", "--quick", "--out", str(out), "--workers", "0"]) == 0
    assert main(["demo", "--out", str(out), "--workers", "0"]) == 2
    assert "holds a run with a different config" in capsys.readouterr().err


QUICK_NOTE = ("note: --quick trains 2 epochs of 1,000 steps to check the pipeline; they learn nothing, so the checks "
              "above say nothing about the solvers (the demo without --quick does)")


def test_the_quick_demos_checks_are_marked_as_saying_nothing():
    # `cmdp demo --quick` (2 epochs, "learns nothing") printed "check: every constrained run ends within its limit:
    # yes" like the real demo: pid_lag's multiplier had not moved (its delay is 10 epochs), the "yes" was chance
    from cmdp.benchmarks.demo import format_results

    run = {"algo": "pid_lag", "constrained": True, "seed": 0, "env_steps": 2000, "return": -2.4,
           "costs": {"cost": 8.5}, "limits": {"cost": 25.0}, "within_limit": True}
    results = {"runs": [run], "checks": demo_checks([run])}
    quick = format_results(results, quick=True).splitlines()
    assert quick[-1] == QUICK_NOTE and "check: every constrained run ends within its limit: yes" in quick
    assert QUICK_NOTE not in format_results(results)


def _run(constrained: bool, within: bool) -> dict:
    return {"constrained": constrained, "within_limit": within}


def test_demo_checks_on_hand_cases():
    assert demo_checks([_run(True, True), _run(False, False)]) == \
        {"constrained_within_limit": True, "unconstrained_breaks_limit": True}
    # one constrained seed above its limit fails the first check; one baseline seed within it fails the second
    assert demo_checks([_run(True, True), _run(True, False), _run(False, False), _run(False, True)]) == \
        {"constrained_within_limit": False, "unconstrained_breaks_limit": False}
    assert demo_checks([_run(True, True)]) == {"constrained_within_limit": True, "unconstrained_breaks_limit": None}
    assert demo_checks([]) == {"constrained_within_limit": None, "unconstrained_breaks_limit": None}


@pytest.mark.parametrize("flags, message", [(["--seeds", "0"], "--seeds must be at least 1"),
                                            (["--total-steps", "-5"], "--total-steps must be at least 1"),
                                            # refused before range() is listed (a MemoryError, or the memory gone)
                                            (["--seeds", str(10**11)], "--seeds must be at most 4294967296")])
def test_demo_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys, flags, message):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_demo_without_matplotlib_is_refused_before_it_trains(tmp_path: Path, capsys, monkeypatch):
    # it had trained every run, then stopped at the report's first figure without printing its checks
    for module in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)  # `import matplotlib` raises ImportError
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == ("cmdp: error: cmdp demo needs matplotlib for its figures: "
                                               "pip install 'cmdp-lab[report]' (or use --no-plots)")
    assert not out.exists()


@pytest.mark.slow
def test_demo_shows_constrained_learning(tmp_path: Path):
    """The README's first command as it runs (about ten minutes on 2 cores): pid_lag ends within its limit, ppo
    above it."""
    status, results = run_demo(tmp_path / "demo")
    assert status == 0
    assert results["checks"] == {"constrained_within_limit": True, "unconstrained_breaks_limit": True}
