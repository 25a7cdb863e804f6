"""`python -m benchmarks.omnisafe_side_by_side`: reading both frameworks' progress files, the merged curves and
throughput, the refusals, and a failing side stopping the other. The OmniSafe virtual environment is needed only by
the slow test at the end."""
from __future__ import annotations

import ast
import csv
import json
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import yaml

from cmdp.benchmarks import omnisafe_runner
from cmdp.config import to_dict
from cmdp.resolve import resolve_config
from cmdp.benchmarks.omnisafe_side_by_side import (CMDP, OMNISAFE, Comparison, RunFailed, SideRun, cmdp_command,
                                                   curve_label, main, write_results)

ROOT = Path(__file__).resolve().parents[1]
OMNISAFE_PYTHON = ROOT / ".venv-omnisafe" / "bin" / "python"

# The header of a real `cmdp train --algo ppo_lag` progress.csv, and of a real OmniSafe 0.5.0 PPOLag one.
CMDP_HEADER = ("epoch,env_steps,ep_return,ep_cost,ep_len,episodes,ep_cost/cost,lambda/cost,loss_v,loss_pi,clip_frac,"
               "kl,update_iters,entropy,lr,wall_s,steps_per_s,time_collect_s,time_update_s").split(",")
OMNISAFE_HEADER = [
    "Metrics/EpRet", "Metrics/EpCost", "Metrics/EpLen", "Train/Epoch", "Train/Entropy", "Train/KL", "Train/StopIter",
    "Train/PolicyRatio", "Train/PolicyRatio/Min", "Train/PolicyRatio/Max", "Train/PolicyRatio/Std", "Train/LR",
    "Train/PolicyStd", "TotalEnvSteps", "Loss/Loss_pi", "Loss/Loss_pi/Delta", "Value/Adv", "Loss/Loss_reward_critic",
    "Loss/Loss_reward_critic/Delta", "Value/reward", "Loss/Loss_cost_critic", "Loss/Loss_cost_critic/Delta",
    "Value/cost", "Time/Total", "Time/Rollout", "Time/Update", "Time/Epoch", "Time/FPS",
    "Metrics/LagrangeMultiplier", "Metrics/LagrangeMultiplier/Min", "Metrics/LagrangeMultiplier/Max",
    "Metrics/LagrangeMultiplier/Std"]


def write_csv(path: Path, header: list[str], rows: list[dict[str, float]]) -> Path:
    """A progress file with every column of `header`; the columns a row does not give hold a filler 7.0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(name, 7.0) for name in header])
    return path


def cmdp_progress(path: Path, header: list[str] = CMDP_HEADER) -> Path:
    rows = [{"epoch": 1, "env_steps": 1000, "ep_return": 10.5, "ep_cost": 30.0, "lambda/cost": 0.1, "ep_len": 50.0,
             "wall_s": 2.0},
            {"epoch": 2, "env_steps": 2000, "ep_return": 20.25, "ep_cost": 12.0, "lambda/cost": 0.3, "ep_len": 1000.0,
             "wall_s": 4.0}]
    return write_csv(path, header, rows)


def omnisafe_progress(path: Path, header: list[str] = OMNISAFE_HEADER, epochs: int = 2) -> Path:
    rows = [{"Train/Epoch": 0.0, "TotalEnvSteps": 1000.0, "Metrics/EpRet": 8.0, "Metrics/EpCost": 40.0,
             "Metrics/LagrangeMultiplier": 0.2, "Metrics/EpLen": 30.0, "Time/Total": 9.0},
            {"Train/Epoch": 1.0, "TotalEnvSteps": 2000.0, "Metrics/EpRet": 16.0, "Metrics/EpCost": 5.5,
             "Metrics/LagrangeMultiplier": 0.6, "Metrics/EpLen": 64.5, "Time/Total": 20.0}][:epochs]
    write_csv(path, header, rows)
    path.with_name("runner.json").write_text(json.dumps({"omnisafe": "0.5.0"}))
    return path


def comparison(algo: str = "ppo_lag") -> Comparison:
    return Comparison(algo, "SafetyHopperVelocity-v1", seed=0, steps=2000, steps_per_epoch=1000, cost_limit=25.0)


def test_results_merge_both_formats(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    runs = [SideRun(CMDP, cmdp_progress(tmp_path / "cmdp" / "progress.csv"), wall_s=5.0, core=0),
            SideRun(OMNISAFE, omnisafe_progress(tmp_path / "omnisafe" / "a" / "b" / "progress.csv"), wall_s=40.0,
                    core=1)]
    result = write_results(out, comparison(), runs)

    with open(out / "curves.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["framework", "epoch", "env_steps", "ep_return", "ep_cost", "multiplier", "ep_len"],
                    ["cmdp-lab", "1", "1000", "10.5", "30.0", "0.1", "50.0"],
                    ["cmdp-lab", "2", "2000", "20.25", "12.0", "0.3", "1000.0"],
                    ["OmniSafe", "1", "1000", "8.0", "40.0", "0.2", "30.0"],  # OmniSafe counts epochs from 0
                    ["OmniSafe", "2", "2000", "16.0", "5.5", "0.6", "64.5"]]
    png = (out / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    saved = json.loads((out / "throughput.json").read_text())
    assert saved == result
    assert saved["cmdp-lab"] == {"core": 0, "wall_s": 5.0, "steps_per_s": 400.0, "train_loop_s": 4.0,
                                 "train_loop_steps_per_s": 500.0}
    assert saved["OmniSafe"] == {"core": 1, "wall_s": 40.0, "steps_per_s": 50.0, "train_loop_s": 20.0,
                                 "train_loop_steps_per_s": 100.0}
    assert saved["ratio"] == pytest.approx(8.0) and saved["train_loop_ratio"] == pytest.approx(5.0)
    assert (saved["omnisafe_algo"], saved["omnisafe_version"], saved["steps"]) == ("PPOLag", "0.5.0", 2000)
    table = capsys.readouterr().out
    assert "OmniSafe 0.5.0 PPOLag" in table and "cmdp-lab ppo_lag" in table and "8.00x" in table
    assert "ep len" in table and " 1000 " in table and "   64 " in table  # the last epoch's episode lengths


def test_cpo_has_no_multiplier_column(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    cmdp_header = [c for c in CMDP_HEADER if c != "lambda/cost"]
    omnisafe_header = [c for c in OMNISAFE_HEADER if not c.startswith("Metrics/LagrangeMultiplier")]
    runs = [SideRun(CMDP, cmdp_progress(tmp_path / "c.csv", cmdp_header), 5.0, 0),
            SideRun(OMNISAFE, omnisafe_progress(tmp_path / "o" / "progress.csv", omnisafe_header), 40.0, 1)]
    write_results(out, comparison("cpo"), runs)
    with open(out / "curves.csv", newline="") as f:
        assert [row["multiplier"] for row in csv.DictReader(f)] == ["", "", "", ""]


@pytest.mark.parametrize("problem", ["missing multiplier", "missing steps", "missing length", "short", "not a number",
                                     "no file"])
def test_unreadable_side_fails_before_anything_is_written(tmp_path, problem):
    out = tmp_path / "out"
    out.mkdir()
    header = {"missing multiplier": [c for c in OMNISAFE_HEADER if c != "Metrics/LagrangeMultiplier"],
              "missing steps": [c for c in OMNISAFE_HEADER if c != "TotalEnvSteps"],
              "missing length": [c for c in OMNISAFE_HEADER if c != "Metrics/EpLen"]}.get(problem, OMNISAFE_HEADER)
    omnisafe_csv = omnisafe_progress(tmp_path / "o" / "progress.csv", header, epochs=1 if problem == "short" else 2)
    cmdp_csv = cmdp_progress(tmp_path / "c.csv")
    if problem == "not a number":
        cmdp_csv.write_text(cmdp_csv.read_text().replace("20.25", "inf?"))
    if problem == "no file":
        cmdp_csv.unlink()
    runs = [SideRun(CMDP, cmdp_csv, 5.0, 0), SideRun(OMNISAFE, omnisafe_csv, 40.0, 1)]
    expected = {"missing multiplier": "no column 'Metrics/LagrangeMultiplier'",
                "missing steps": "no column 'TotalEnvSteps'", "missing length": "no column 'Metrics/EpLen'",
                "short": "OmniSafe logged 1 of 2 epochs",
                "not a number": "column 'ep_return' holds 'inf\\?', not a number",
                "no file": "cmdp-lab ended without writing"}[problem]
    with pytest.raises(RunFailed, match=expected):
        write_results(out, comparison(), runs)
    assert list(out.iterdir()) == []


def test_runner_shares_only_the_common_settings():
    """The runner never imports cmdp (it runs under OmniSafe's python), and CPO's limit joins its algo_cfgs."""
    tree = ast.parse((ROOT / "benchmarks" / "omnisafe_runner.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.module}
    assert "cmdp" not in imported and omnisafe_runner.COMPAT_PATH == ROOT / "envs" / "safety_gym_compat.py"
    args = Namespace(seed=3, steps=40_000, steps_per_epoch=20_000, cost_limit=25.0, cost_limit_section="algo_cfgs",
                     log_dir="logs")
    cfgs = omnisafe_runner.custom_cfgs(args)
    assert cfgs["algo_cfgs"] == {"steps_per_epoch": 20_000, "cost_limit": 25.0}
    assert cfgs["train_cfgs"] == {"total_steps": 40_000, "vector_env_nums": 1, "parallel": 1, "device": "cpu",
                                  "torch_threads": 1}
    assert cfgs["seed"] == 3 and "lagrange_cfgs" not in cfgs


@pytest.mark.parametrize("argv, message", [
    (["--algo", "sac_lag"], "unknown --algo 'sac_lag'"),
    (["--steps", "lots"], "--steps must be a number"),
    (["--steps", "0"], "--steps must be a whole number >= 1"),
    (["--steps", "30000"], "--steps (30000) must be a whole number of epochs of --steps-per-epoch (20000)"),
    (["--steps-per-epoch", "0"], "--steps-per-epoch must be >= 1"),
    (["--omnisafe-python", "no/such/python"], "create it with benchmarks/omnisafe_venv.sh"),
    (["--preset", "safe-rlhf"], "--preset must be one with keys per solver: omnisafe"),
    (["--algo", "cup", "--preset", "omnisafex"], "--preset must be one with keys per solver: omnisafe"),
    (["--set", "compile_updat=true"], "unknown key 'compile_updat'"),
    (["--set", "batch_size=0"], "batch_size must be >= 1"),
    (["--set", "seed=1", "--set", "torch_threads=2"], "--set seed, torch_threads: both sides share it"),
])
def test_refusals_are_one_line_and_start_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("omnisafe_side_by_side: error: ") and message in err
    assert not out.exists()


def test_used_output_folder_is_refused(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("an earlier result")
    assert main(["--omnisafe-python", sys.executable, "--out", str(tmp_path)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_missing_omnisafe_python_from_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.omnisafe_side_by_side", "--omnisafe-python",
                           str(tmp_path / "python"), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"omnisafe_side_by_side: error: OmniSafe's python {tmp_path / 'python'} not "
                                        "found; create it with benchmarks/omnisafe_venv.sh (or give --omnisafe-python)"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the side-by-side pins its two sides to two cores")
def test_failing_side_stops_the_other_and_writes_no_result(tmp_path, capsys):
    """An 'OmniSafe python' that exits with status 3 at once: cmdp-lab's side (a real `cmdp train` of 1e6 steps) is
    stopped, the error names OmniSafe with its last output line, and no curves or throughput are written."""
    failing = tmp_path / "failing-python"
    failing.write_text("#!/bin/sh\necho 'no module named omnisafe'\nexit 3\n")
    failing.chmod(0o755)
    out = tmp_path / "out"
    assert main(["--omnisafe-python", str(failing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == ("omnisafe_side_by_side: error: OmniSafe failed (exit status 3): no module named omnisafe "
                   f"[log: {out / 'omnisafe.log'}]\n")
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["cmdp.log", "omnisafe.log"]
    summary = out / "cmdp" / "summary.json"
    assert not summary.exists() or not json.loads(summary.read_text())["finished"]


@pytest.mark.slow
@pytest.mark.skipif(not OMNISAFE_PYTHON.exists(), reason="needs benchmarks/omnisafe_venv.sh's .venv-omnisafe")
def test_real_two_epoch_side_by_side(tmp_path):
    """Both frameworks for real: ppo_lag and OmniSafe's PPOLag, 2 epochs of 2,000 steps on SafetyHopperVelocity-v1.
    Measured 2026-12-02 on the 2-core machine shared with other jobs (load average 4-5): 72 s."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.omnisafe_side_by_side", "--algo", "ppo_lag",
                           "--steps", "4000", "--steps-per-epoch", "2000", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr
    with open(out / "curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["framework"], r["epoch"], r["env_steps"]) for r in rows] == [
        ("cmdp-lab", "1", "2000"), ("cmdp-lab", "2", "4000"), ("OmniSafe", "1", "2000"), ("OmniSafe", "2", "4000")]
    assert all(float(r["ep_return"]) == float(r["ep_return"]) for r in rows)  # not NaN: episodes ended
    result = json.loads((out / "throughput.json").read_text())
    assert result["omnisafe_version"] == "0.5.0" and result["ratio"] > 0


def finished_omnisafe_run(folder: Path, **changes: object) -> Path:
    """A folder as `omnisafe_runner.py` leaves it after PPOLag on SafetyHopperVelocity-v1, seed 0, 2 epochs of
    1,000 steps, limit 25 (`changes` edits runner.json: a key set to None is removed)."""
    omnisafe_progress(folder / "progress.csv")
    record = {"omnisafe": "0.5.0", "algo": "PPOLag", "env": "SafetyHopperVelocity-v1", "cores": [1], "wall_s": 40.0,
              "custom_cfgs": {"seed": 0, "train_cfgs": {"total_steps": 2000}, "algo_cfgs": {"steps_per_epoch": 1000},
                              "lagrange_cfgs": {"cost_limit": 25.0}}}
    for key, value in changes.items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    (folder / "runner.json").write_text(json.dumps(record))
    return folder


REUSE_ARGS = ["--steps", "2000", "--steps-per-epoch", "1000"]


@pytest.mark.parametrize("changes, message", [
    ({"env": "SafetyAntVelocity-v1"}, "ran with other settings: env 'SafetyAntVelocity-v1' (wanted "
                                      "'SafetyHopperVelocity-v1')"),
    ({"algo": "CUP"}, "ran with other settings: algorithm 'CUP' (wanted 'PPOLag')"),
    ({"wall_s": None}, "the run has not finished (its runner.json has no wall_s)"),
    ({"custom_cfgs": None}, "unreadable runner.json (KeyError"),
])
def test_a_reused_omnisafe_run_must_be_this_comparison_and_finished(tmp_path, capsys, changes, message):
    run = finished_omnisafe_run(tmp_path / "run", **changes)
    out = tmp_path / "out"
    assert main([*REUSE_ARGS, "--omnisafe-run", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--omnisafe-run {run}" in err and message in err
    assert not out.exists()


def test_a_folder_without_the_runner_files_is_refused(tmp_path, capsys):
    assert main([*REUSE_ARGS, "--omnisafe-run", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no runner.json and progress.csv there" in capsys.readouterr().err
    assert main([*REUSE_ARGS, "--cmdp-run", str(tmp_path), "--omnisafe-run", str(tmp_path), "--out",
                 str(tmp_path / "out")]) == 2
    assert "no config.yaml, summary.json and progress.csv there" in capsys.readouterr().err


def finished_cmdp_run(folder: Path, preset: str | None = None, algo: str = "ppo_lag", **changes: object) -> Path:
    """A folder as `cmdp train` (with `preset`) leaves the side-by-side's `algo` run of 2 epochs of 1,000 steps:
    config.yaml holds every key, as resolved today, and `changes` edit it (None: the key is dropped)."""
    cmdp_progress(folder / "progress.csv")
    cfg, _ = resolve_config({"algo": algo, "env": "SafetyHopperVelocity-v1", "seed": 0, "total_steps": 2000,
                             "steps_per_epoch": 1000, "num_envs": 1, "torch_threads": 1, "cost_limits": 25.0},
                            preset=preset)
    config = {**to_dict(cfg), **changes}
    config = {key: value for key, value in config.items() if not (key in changes and value is None)}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "summary.json").write_text(json.dumps({"finished": True, "wall_seconds": 5.0,
                                                     "cost_limits": {"cost": 25.0}}))
    return folder


def test_a_reused_cmdp_run_with_a_damaged_config_is_one_line(tmp_path, capsys):
    run = finished_cmdp_run(tmp_path / "c")
    (run / "config.yaml").write_text("algo: ppo_lag\nenv: [Safety\n")
    out = tmp_path / "out"
    assert main([*REUSE_ARGS, "--cmdp-run", str(run), "--omnisafe-run", str(finished_omnisafe_run(tmp_path / "o")),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    assert err.rstrip().endswith(f"--cmdp-run {run}: config.yaml is not valid YAML: line 3, column 1: expected ',' "
                                 "or ']', but got '<stream end>' (while parsing a flow sequence that began at line 2, "
                                 "column 6)"), err


@pytest.mark.parametrize("changes, message", [
    ({"num_envs": 4}, "ran with other settings: environments 4 (wanted 1)"),
    ({"seed": 2, "torch_threads": 2}, "seed 2 (wanted 0), torch threads 2 (wanted 1)"),
    # a run from before the PPO family's minibatch default changed, and one from before a key existed
    ({"batch_size": 1000, "cost_advantage": None}, "batch_size 1000 (wanted 64), cost_advantage absent (wanted "
                                                   "'center')"),
])
def test_a_reused_cmdp_run_must_be_this_comparison(tmp_path, capsys, changes, message):
    out = tmp_path / "out"
    assert main([*REUSE_ARGS, "--cmdp-run", str(finished_cmdp_run(tmp_path / "c", **changes)), "--omnisafe-run",
                 str(finished_omnisafe_run(tmp_path / "o")), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not out.exists()


def test_two_reused_runs_are_joined_without_training(tmp_path, capsys):
    cmdp_run, omnisafe_run = finished_cmdp_run(tmp_path / "c"), finished_omnisafe_run(tmp_path / "o")
    out = tmp_path / "out"
    assert main([*REUSE_ARGS, "--cmdp-run", str(cmdp_run), "--omnisafe-run", str(omnisafe_run), "--out",
                 str(out)]) == 0
    saved = json.loads((out / "throughput.json").read_text())
    assert saved["reused_runs"] == {"cmdp-lab": str(cmdp_run), "OmniSafe": str(omnisafe_run)}
    assert saved["cmdp-lab"]["wall_s"] == 5.0 and saved["cmdp-lab"]["core"] is None and saved["ratio"] == 8.0
    assert sorted(path.name for path in out.iterdir()) == ["curves.csv", "curves.png", "throughput.json"]


def test_a_reused_omnisafe_run_trains_only_our_side(tmp_path, capsys):
    """A real 2-epoch `cmdp train` beside a finished OmniSafe run: the curves join, OmniSafe's wall time and core
    come from its runner.json, and throughput.json names the run that was reused."""
    run = finished_omnisafe_run(tmp_path / "run")
    out = tmp_path / "out"
    assert main([*REUSE_ARGS, "--omnisafe-run", str(run), "--out", str(out)]) == 0
    assert "the finished run" in capsys.readouterr().out
    with open(out / "curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["framework"], r["epoch"], r["ep_return"]) for r in rows][2:] == [("OmniSafe", "1", "8.0"),
                                                                                ("OmniSafe", "2", "16.0")]
    assert [r["env_steps"] for r in rows[:2]] == ["1000", "2000"]
    saved = json.loads((out / "throughput.json").read_text())
    assert saved["OmniSafe"]["wall_s"] == 40.0 and saved["OmniSafe"]["core"] == 1
    assert saved["reused_runs"] == {"OmniSafe": str(run)}
    assert not (out / "omnisafe.log").exists() and (out / "cmdp.log").exists()
    # the run our side's command made passes the check of every key that a reused run gets
    assert main([*REUSE_ARGS, "--cmdp-run", str(out / "cmdp"), "--omnisafe-run", str(run), "--out",
                 str(tmp_path / "again")]) == 0


# OmniSafe's CPO reads its limit from algo_cfgs (PPOLag from lagrange_cfgs)
CPO_CFGS = {"seed": 0, "train_cfgs": {"total_steps": 2000}, "algo_cfgs": {"steps_per_epoch": 1000, "cost_limit": 25.0}}


def test_the_omnisafe_preset_reaches_our_command_the_label_and_the_reuse_check(tmp_path, capsys):
    """With --preset, our side trains with `cmdp train --preset`; a reused run must have the preset's keys (refused
    in one line naming them otherwise), and throughput.json and the curve label say which preset ran."""
    c = Comparison("cpo", "SafetyHopperVelocity-v1", seed=0, steps=2000, steps_per_epoch=1000, cost_limit=25.0,
                   preset="omnisafe")
    command = cmdp_command(c, tmp_path / "run")
    assert command[-2:] == ["--preset", "omnisafe"] and "--preset" not in cmdp_command(comparison(), tmp_path)
    assert curve_label("cmdp-lab", c, "0.5.0").startswith("cmdp-lab cpo --preset omnisafe (")
    out, args = tmp_path / "out", [*REUSE_ARGS, "--algo", "cpo", "--preset", "omnisafe"]
    plain = finished_cmdp_run(tmp_path / "plain", algo="cpo")
    assert main([*args, "--cmdp-run", str(plain), "--omnisafe-run",
                 str(finished_omnisafe_run(tmp_path / "o", algo="CPO", custom_cfgs=CPO_CFGS)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("ran with other settings: cpo_constraint_units 'per_step' (wanted "
                                                  "'episode'), kl_reduction 'sum' (wanted 'mean')\n")
    preset_run = finished_cmdp_run(tmp_path / "preset", preset="omnisafe", algo="cpo")
    assert main([*args, "--cmdp-run", str(preset_run), "--omnisafe-run", str(tmp_path / "o"), "--out", str(out)]) == 0
    assert json.loads((out / "throughput.json").read_text())["cmdp_preset"] == "omnisafe"


def test_our_own_keys_reach_our_command_the_label_and_the_reuse_check(tmp_path, capsys):
    """--set passes a key to our side only: our command ends with it, the label and throughput.json name it, and a
    reused run must have it (refused in one line naming it otherwise)."""
    c = Comparison("ppo_lag", "SafetyHopperVelocity-v1", seed=0, steps=2000, steps_per_epoch=1000, cost_limit=25.0,
                   sets=("compile_update=true",))
    command = cmdp_command(c, tmp_path / "run")
    assert command[command.index("--out") - 2:command.index("--out")] == ["--set", "compile_update=true"]
    assert curve_label("cmdp-lab", c, "0.5.0").startswith("cmdp-lab ppo_lag --set compile_update=true (")
    out, args = tmp_path / "out", [*REUSE_ARGS, "--set", "compile_update=true"]
    omnisafe = str(finished_omnisafe_run(tmp_path / "o"))
    plain = finished_cmdp_run(tmp_path / "plain")
    assert main([*args, "--cmdp-run", str(plain), "--omnisafe-run", omnisafe, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("ran with other settings: compile_update False (wanted True)\n")
    compiled = finished_cmdp_run(tmp_path / "compiled", compile_update=True)
    assert main([*args, "--cmdp-run", str(compiled), "--omnisafe-run", omnisafe, "--out", str(out)]) == 0
    assert json.loads((out / "throughput.json").read_text())["cmdp_sets"] == ["compile_update=true"]
