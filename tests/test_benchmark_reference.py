"""OmniSafe's published reference tables (benchmarks/reference/), the off-policy suite, and how `cmdp report` puts
each reference row beside our cells with that row's own budget (1e7 on-policy, 1e6 off-policy, 3e6 Humanoid)."""
import csv
from pathlib import Path

import pytest
import yaml

from cmdp.benchmarks.cells import plan_cells
from cmdp.benchmarks.report import (OMNISAFE_ALGOS, OMNISAFE_ENVS, OMNISAFE_OFF_POLICY_ENVS, REFERENCE_CSV,
                                    REFERENCE_DIR, REFERENCE_OFF_POLICY_CSV, load_reference, reference_row,
                                    write_report)
from cmdp.benchmarks.suite import load_suite
from cmdp.registry import algorithms
from cmdp.spec import ConfigError
from test_benchmarks import make_run

ROOT = Path(__file__).resolve().parents[1]
OFF_POLICY_SUITE = ROOT / "benchmarks" / "suites" / "safety-gym-off-policy.yaml"
HOPPER = "SafetyHopperVelocity-v1"
HUMANOID = "SafetyHumanoidVelocity-v1"
OFF_POLICY_ALGOS = ["ddpg", "td3", "sac", "ddpg_lag", "td3_lag", "sac_lag", "ddpg_pid", "td3_pid", "sac_pid"]
OFF_POLICY_SOURCE = "OmniSafe benchmarks/off-policy/README.md (Table 2)"
CORE_SUITE = ROOT / "benchmarks" / "suites" / "safety-gym-core.yaml"
ON_POLICY_SOURCE = "OmniSafe benchmarks/on-policy/README.md"
# our on-policy solvers with rows in OmniSafe's on-policy Table 2, and those OmniSafe publishes no numbers for
ON_POLICY_ALGOS = ["ppo", "ppo_lag", "cup", "cpo", "pid_lag", "trpo_lag", "pg", "npg", "trpo", "rcpo", "focops",
                   "p3o", "pcpo", "trpo_pid", "ppo_saute", "trpo_saute", "ppo_simmer_pid", "ppo_early_terminated"]
UNPUBLISHED_ALGOS = ["pdo", "crpo", "ipo"]


# --- the tables ---------------------------------------------------------------------------------------
def test_off_policy_table_loads_with_its_own_budgets():
    with REFERENCE_CSV.open(newline="") as f_on, REFERENCE_OFF_POLICY_CSV.open(newline="") as f_off:
        assert next(csv.reader(f_off)) == next(csv.reader(f_on))  # the same columns
    ref = load_reference(REFERENCE_OFF_POLICY_CSV)
    assert len(ref) == 9 * 6
    assert {a for a, _ in ref} == {OMNISAFE_ALGOS[a] for a in OFF_POLICY_ALGOS}
    assert {e for _, e in ref} == set(OMNISAFE_OFF_POLICY_ENVS.values())
    for (algo, env), row in ref.items():
        assert row["env_id"] == env
        assert row["total_steps"] == (3_000_000 if env == HUMANOID else 1_000_000), (algo, env)
        assert row["cost_limit"] == 25.0 and row["seeds"] == 5 and row["source"] == OFF_POLICY_SOURCE
    # cells as published in Table 2 of OmniSafe's benchmarks/off-policy/README.md
    sac_lag = ref[("SACLag", HOPPER)]
    assert [sac_lag[k] for k in ("return_mean", "return_std", "cost_mean", "cost_std")] == [963.49, 291.64, 20.23,
                                                                                           28.47]
    assert (ref[("TD3PID", HUMANOID)]["return_mean"], ref[("TD3PID", HUMANOID)]["cost_std"]) == (6179.38, 6.23)
    assert (ref[("SAC", HOPPER)]["return_mean"], ref[("SACLag", "SafetyHalfCheetahVelocity-v1")]["cost_mean"]) \
        == (3537.70, 0.0)


def test_default_reference_is_every_table_and_one_file_still_loads(tmp_path):
    on = load_reference(REFERENCE_CSV)  # one file, as before
    off = load_reference(REFERENCE_OFF_POLICY_CSV)
    assert len(on) == 18 * 6 and not set(on) & set(off)
    both = load_reference()
    assert both == {**on, **off} == load_reference(REFERENCE_DIR) == load_reference([REFERENCE_CSV,
                                                                                     REFERENCE_OFF_POLICY_CSV])
    assert both[("PPOLag", "HopperVel")]["total_steps"] == 10_000_000
    assert both[("PPOLag", "HopperVel")]["source"] == "OmniSafe benchmarks/on-policy/README.md"
    with pytest.raises(ConfigError, match="PPO on PointGoal1 is listed twice"):
        load_reference([REFERENCE_CSV, REFERENCE_CSV])


def test_every_mapped_name_finds_its_row():
    ref = load_reference()
    for algo in OFF_POLICY_ALGOS:
        for env in OMNISAFE_OFF_POLICY_ENVS:
            row = reference_row(ref, algo, env)
            assert row is not None and (row["algo"], row["env"]) == (OMNISAFE_ALGOS[algo], env)
    for algo in ON_POLICY_ALGOS:  # the on-policy map as before, and the solvers added since
        for env, name in OMNISAFE_ENVS.items():
            row = reference_row(ref, algo, env)
            assert (row["algo"], row["env"], row["total_steps"]) == (OMNISAFE_ALGOS[algo], name, 10_000_000)
    for algo in UNPUBLISHED_ALGOS:  # mapped, but OmniSafe publishes no numbers for PDO, OnCRPO or IPO
        assert algo in OMNISAFE_ALGOS and all(reference_row(ref, algo, env) is None for env in OMNISAFE_ENVS)
    assert reference_row(ref, "sac_lag", "SafetyPointGoal1-v0") is None  # no off-policy navigation rows
    assert reference_row(ref, "reward_shaping", HOPPER) is None
    assert reference_row(ref, "ppo_lag", "SafetySwimmerVelocity-v1") is None


def test_on_policy_table_has_every_environment_of_every_mapped_algorithm():
    on = load_reference(REFERENCE_CSV)
    with REFERENCE_CSV.open(newline="") as f:
        assert len(list(csv.DictReader(f))) == len(on) == 18 * 6  # no row twice
    names = {a for a, _ in on}
    assert names == {OMNISAFE_ALGOS[a] for a in ON_POLICY_ALGOS}  # every row is some solver's
    for algo, name in OMNISAFE_ALGOS.items():
        envs = {e for a, e in on if a == name}
        if envs:  # an algorithm with on-policy rows has all six tasks
            assert envs == set(OMNISAFE_ENVS.values()), algo
    for (algo, env), row in on.items():
        assert OMNISAFE_ENVS[row["env_id"]] == env, (algo, env)
        assert (row["total_steps"], row["cost_limit"], row["seeds"]) == (10_000_000, 25.0, 5), (algo, env)
        assert row["source"] == ON_POLICY_SOURCE, (algo, env)


# one cell per added algorithm, copied from Table 2 of OmniSafe's benchmarks/on-policy/README.md (the HTML table
# `performance_on_policy`): return mean, return std, cost mean, cost std
PUBLISHED = {
    ("PolicyGradient", "PointGoal1"): (26.19, 3.44, 201.22, 80.4),
    ("NaturalPG", "PointGoal1"): (26.92, 0.58, 57.92, 9.97),
    ("TRPO", "PointGoal1"): (27.20, 0.44, 45.88, 11.27),
    ("RCPO", "CarGoal1"): (18.71, 2.72, 23.10, 12.57),
    ("P3O", "CarGoal1"): (-1.10, 6.851, 50.58, 99.24),
    ("FOCOPS", "HalfCheetahVel"): (2965.2, 290.43, 2.37, 3.5),
    ("PCPO", "HalfCheetahVel"): (1677.93, 217.31, 19.06, 15.26),
    ("TRPOPID", "HopperVel"): (1178.59, 646.71, 18.76, 8.93),
    ("PPOEarlyTerminated", "HopperVel"): (1643.39, 2.58, 0.77, 0.26),
    ("PPOSaute", "AntVel"): (2978.74, 93.65, 16.77, 0.92),
    ("TRPOSaute", "AntVel"): (2507.65, 63.97, 8.036, 0.39),
    ("PPOSimmerPID", "AntVel"): (2944.84, 60.53, 16.20, 0.66),
}


def test_added_on_policy_rows_are_as_published():
    on = load_reference(REFERENCE_CSV)
    added = {OMNISAFE_ALGOS[a] for a in ON_POLICY_ALGOS[6:]}
    assert {a for a, _ in PUBLISHED} == added
    for key, values in PUBLISHED.items():
        assert tuple(on[key][k] for k in ("return_mean", "return_std", "cost_mean", "cost_std")) == values, key
    # the first 36 rows are unchanged
    assert tuple(on[("CUP", "HopperVel")][k] for k in ("return_mean", "cost_std")) == (1716.08, 5.535)
    assert tuple(on[("PPO", "HalfCheetahVel")][k] for k in ("return_mean", "cost_mean")) == (6921.83, 919.2)


def test_mapped_names_are_registered_solvers():
    missing = sorted(a for a in OMNISAFE_ALGOS if a not in algorithms())
    assert not missing, f"OMNISAFE_ALGOS maps solvers that are not registered: {missing}"


def test_core_suite_algorithms_have_a_mapping():
    raw = yaml.safe_load(CORE_SUITE.read_text())
    assert set(raw["environments"]) == set(OMNISAFE_ENVS)
    assert set(raw["algorithms"]) == set(ON_POLICY_ALGOS) | set(UNPUBLISHED_ALGOS) | {"reward_shaping"}
    assert len(raw["algorithms"]) == len(set(raw["algorithms"])) == 22
    ref = load_reference()
    for algo in raw["algorithms"]:  # published cells are at the suite's budget and cost limit
        for env in raw["environments"]:
            row = reference_row(ref, algo, env)
            if algo in ON_POLICY_ALGOS:
                assert (row["total_steps"], row["cost_limit"]) == (raw["total_steps"],
                                                                   raw["config"]["cost_limits"]), (algo, env)
            else:
                assert row is None, (algo, env)


# --- reports from hand-written run folders -------------------------------------------------------------
def fake_cell(root: Path, algo: str, env: str, steps: int, seeds=(0, 1), limit: float = 25.0) -> None:
    """Finished seeds of `steps` env steps each (10 epochs); final returns 10, 14 and costs 20, 30."""
    for seed in seeds:
        make_run(root / env / algo / f"seed{seed}", algo, env, seed, [20.0] * 10, {"cost": limit},
                 10.0 + 4 * seed, {"cost": 20.0 + 10 * seed}, wall=10.0, steps_per_epoch=steps // 10)


def report(root: Path, out: Path) -> tuple[dict, str]:
    write_report(root, out, plots=False)
    rows = {(r["env"], r["algo"]): r for r in csv.DictReader((out / "results.csv").open())}
    return rows, (out / "report.md").read_text()


def test_off_policy_cells_at_omnisafe_budget_are_not_marked(tmp_path):
    root = tmp_path / "runs"
    fake_cell(root, "sac_lag", HOPPER, 1_000_000)
    fake_cell(root, "td3_pid", HUMANOID, 3_000_000)
    fake_cell(root, "ppo_lag", HOPPER, 10_000_000)  # an on-policy cell beside them, at the on-policy budget
    fake_cell(root, "ppo_saute", HOPPER, 10_000_000)  # and one of the solvers added since
    rows, md = report(root, tmp_path / "rep")
    sac = rows[(HOPPER, "sac_lag")]
    assert (sac["ref_algo"], sac["ref_env"], sac["ref_total_steps"]) == ("SACLag", HOPPER, "1000000")
    assert float(sac["ref_return_mean"]) == 963.49 and float(sac["ref_cost_mean"]) == 20.23
    assert sac["ref_source"] == OFF_POLICY_SOURCE
    assert rows[(HUMANOID, "td3_pid")]["ref_total_steps"] == "3000000"
    assert rows[(HOPPER, "ppo_lag")]["ref_total_steps"] == "10000000"
    assert "| 963.49 ± 291.64 | 20.23 ± 28.47 |" in md and "| 6,179.38 ± 105.70 | 5.60 ± 6.23 |" in md
    assert "| 961.92 ± 752.87 | 13.96 ± 19.33 |" in md
    assert rows[(HOPPER, "ppo_saute")]["ref_algo"] == "PPOSaute" and "| 1,650.91 ± 152.65 | 17.87 ± 1.33 |" in md
    assert "†" not in md and "‡" not in md and "Budget differs" not in md
    assert ("from the OmniSafe repository (PKU-Alignment/omnisafe), benchmarks/on-policy/README.md and "
            "benchmarks/off-policy/README.md (Table 2);") in md


def test_off_policy_cells_at_another_budget_are_marked_against_their_own_row(tmp_path):
    root = tmp_path / "runs"
    fake_cell(root, "sac_lag", HOPPER, 100_000)
    fake_cell(root, "sac_lag", HUMANOID, 1_000_000)  # OmniSafe's Humanoid is after 3e6
    fake_cell(root, "ppo_lag", HOPPER, 1_000_000)  # 1e6 is OmniSafe's off-policy budget, not its on-policy one
    fake_cell(root, "td3_lag", "SafetyWalker2dVelocity-v1", 1_000_000, limit=10.0)
    rows, md = report(root, tmp_path / "rep")
    assert "| 963.49 ± 291.64† | 20.23 ± 28.47† |" in md
    assert "| 5,940.04 ± 121.93† | 17.59 ± 6.24† |" in md
    assert "| 961.92 ± 752.87† | 13.96 ± 19.33† |" in md
    assert "| 2,996.21 ± 74.40‡ | 22.50 ± 16.97‡ |" in md  # its budget is OmniSafe's; its cost limit is not
    assert "> **Budget differs from OmniSafe's.**" in md and "not comparable" in md
    assert "> - trained for 100,000 steps, OmniSafe's after 1,000,000: sac_lag on SafetyHopperVelocity-v1" in md
    assert "> - trained for 1,000,000 steps, OmniSafe's after 3,000,000: sac_lag on SafetyHumanoidVelocity-v1" in md
    assert "> - trained for 1,000,000 steps, OmniSafe's after 10,000,000: ppo_lag on SafetyHopperVelocity-v1" in md
    assert "td3_lag on" not in md
    assert "> ‡ our cost limit differs from OmniSafe's (25): costs are not comparable." in md


def test_one_budget_note_and_source_of_an_on_policy_report_read_as_before(tmp_path):
    root = tmp_path / "runs"
    fake_cell(root, "ppo_lag", HOPPER, 20_000)
    fake_cell(root, "cpo", "SafetyAntVelocity-v1", 20_000)
    rows, md = report(root, tmp_path / "rep")
    assert rows[(HOPPER, "ppo_lag")]["ref_total_steps"] == "10000000"
    assert "961.92 ± 752.87†" in md and "3,098.54 ± 78.90†" in md
    assert ("> **Budget differs from OmniSafe's.** The rows marked † were trained for 20,000 steps, but OmniSafe's "
            "numbers for them (the last two columns) are after 10,000,000 environment steps with cost limit 25 over "
            "5 seeds, so they are not comparable with OmniSafe's.") in md
    assert "(mean ± std over 5 seeds, each after its own published budget" in md
    assert "from the OmniSafe repository (PKU-Alignment/omnisafe), benchmarks/on-policy/README.md;" in md
    assert "off-policy" not in md


# --- the off-policy suite -----------------------------------------------------------------------------
def test_safety_gym_off_policy_suite_is_valid(tmp_path):
    raw = yaml.safe_load(OFF_POLICY_SUITE.read_text())
    assert raw["algorithms"] == OFF_POLICY_ALGOS
    assert set(raw["environments"]) == set(OMNISAFE_OFF_POLICY_ENVS)
    assert raw["seeds"] == [0, 1, 2] and raw["total_steps"] == 1_000_000
    assert raw["config"] == {"steps_per_epoch": 2000, "cost_limits": 25, "checkpoint_every": 50}
    ref = load_reference()
    budget = {env: raw.get("env_config", {}).get(env, {}).get("total_steps", raw["total_steps"])
              for env in raw["environments"]}
    for algo in raw["algorithms"]:  # every cell has OmniSafe's row, at OmniSafe's budget (so the report marks none)
        for env in raw["environments"]:
            assert reference_row(ref, algo, env)["total_steps"] == budget[env], (algo, env)

    missing = [a for a in raw["algorithms"] if a not in algorithms()]
    if missing:
        pytest.skip(f"algorithms of safety-gym-off-policy not registered yet: {missing}")
    suite = load_suite(OFF_POLICY_SUITE)
    cells, notes = plan_cells(suite, tmp_path / "off")
    assert notes == []  # 1e6 and 3e6 are whole numbers of 2,000-step epochs
    assert len(cells) == 6 * 9 * 3
    for cell in cells:
        assert cell.start == "new" and cell.config["total_steps"] == budget[cell.config["env"]]
        assert cell.config["steps_per_epoch"] == 2000 and cell.config["cost_limits"] == 25
        assert cell.config["checkpoint_every"] == 50
    assert not (tmp_path / "off").exists()
