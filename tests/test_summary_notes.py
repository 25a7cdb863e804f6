"""`cmdp train`'s end-of-run note on a short run that ended above its limit, and the declaration it rests on: whether
a registered solver acts on the cost limits (`register_algorithm(name, constrained=...)`, `is_constrained`).

A short run (the default's 2 epochs) ends above the limit for every solver; the note says so for a constrained
one, so that "ABOVE limit" does not read as a solver that failed. It had been given only to solvers with Lagrange
multipliers: cpo, pcpo, crpo, ... ended above the limit without a word."""
import importlib
from pathlib import Path

from cmdp.cli import OMNISAFE_EPOCHS, format_summary
from cmdp.registry import algorithms, is_constrained

ALGORITHMS_DIR = Path(__file__).resolve().parents[1] / "algorithms"

#: Every shipped algorithm by family: whether it acts on the cost limits, why, and its names. A new solver fails
#: test_every_shipped_algorithm_declares_whether_it_acts_on_the_limits until it is listed here with its reason, so
#: its author chooses (`register_algorithm(name, constrained=False)` for one that ignores the limits).
FAMILIES: dict[str, tuple[bool, str, list[str]]] = {
    "reward only": (False, "the step optimises the reward alone; costs are measured and their critics fitted, no "
                           "limit is read", ["ppo", "pg", "npg", "trpo", "grpo", "rloo", "ddpg", "td3", "sac"]),
    "fixed penalty": (False, "r - beta c with a fixed beta: the limit plays no part in the update, so beta's size "
                             "alone keeps or breaks it", ["reward_shaping"]),
    "Lagrange multipliers": (True, "a multiplier per cost moves on J_c - d (gradient ascent or PID) and weighs the "
                                   "cost in the step",
                             ["ppo_lag", "pid_lag", "cup", "focops", "pdo", "rcpo", "trpo_lag", "trpo_pid",
                              "grpo_lag", "grpo_pid", "rloo_lag", "rloo_pid", "ddpg_lag", "ddpg_pid", "td3_lag",
                              "td3_pid", "sac_lag", "sac_pid"]),
    "barrier": (True, "the log barrier's weights come from each cost's slack to its limit", ["ipo"]),
    "projection or switching, no multiplier": (True, "the step itself enforces the linearised limit (cpo, pcpo) or "
                                                     "turns to lowering a cost above it (crpo)",
                                               ["cpo", "pcpo", "crpo"]),
    "exact penalty, no multiplier": (True, "a ReLU penalty on the linearised cost above its limit", ["p3o"]),
    "transformed CMDP, no multiplier": (True, "the limit is the budget of the state (Saute, Simmer) or ends the "
                                              "episode (early termination)",
                                        ["ppo_saute", "trpo_saute", "ppo_simmer_pid", "ppo_early_terminated"]),
}

SUMMARY = {"algo": "cpo", "env": "SafetyPointGoal1-v0", "seed": 0, "env_steps": 40000, "epochs": 2,
           "wall_seconds": 40.0, "steps_per_s": 1000.0, "final_return": 0.5, "final_epoch_with_episodes": 2,
           "final_costs": {"cost": 36.9}, "cost_limits": {"cost": 25.0}, "multipliers": {}}


def shipped_algorithms() -> dict[str, type]:
    """Every algorithm registered by a module of algorithms/ (imported here: other tests register plugins of their
    own, and an entry point of setup.cfg could miss a file)."""
    for file in sorted(ALGORITHMS_DIR.glob("*.py")):
        if file.stem != "__init__":
            importlib.import_module(f"cmdp.algorithms.{file.stem}")
    return {name: cls for name, cls in algorithms().items() if cls.__module__.startswith("cmdp.algorithms.")}


def notes(summary: dict) -> list[str]:
    return [line for line in format_summary(summary, Path("run")).splitlines() if line.startswith("note")]


def test_every_shipped_algorithm_declares_whether_it_acts_on_the_limits():
    listed = {name: constrained for constrained, _, names in FAMILIES.values() for name in names}
    assert sum(len(names) for _, _, names in FAMILIES.values()) == len(listed), "a name listed twice"
    shipped = shipped_algorithms()
    assert set(shipped) == set(listed), ("list each new solver in FAMILIES with its reason",
                                         sorted(set(shipped) ^ set(listed)))
    wrong = {name: is_constrained(name) for name in shipped if is_constrained(name) != listed[name]}
    assert not wrong, f"declared constrained= (register_algorithm) against FAMILIES: {wrong}"


def test_a_constrained_solver_without_multipliers_gets_the_short_run_note_and_ppo_none():
    # cpo above its limit after 2 epochs: the note, in words that claim no multiplier (its step corrects the cost
    # from the first epoch, but a trust-region step at a time)
    assert notes(SUMMARY) == [
        "note           above the limit after 2 epochs: cpo's update acts on the cost from the first epoch, but "
        "moves the policy a small step at a time, so bringing a cost down takes many epochs, and OmniSafe's "
        "benchmarks train 500 (1e7 steps on-policy, 1e6 off-policy: --total-steps)"]
    for constrained, _, names in FAMILIES.values():
        for name in names:
            got = notes({**SUMMARY, "algo": name})
            if not constrained:  # ppo and the other baselines: above the limit is what they do, no excuse given
                assert got == [], name
            elif "no multiplier" in _family(name):
                assert len(got) == 1 and f"{name}'s update acts on the cost" in got[0], (name, got)
                assert "multiplier" not in got[0], (name, got)
    # the run as long as OmniSafe's benchmarks, or within the limit: no note
    assert notes({**SUMMARY, "epochs": OMNISAFE_EPOCHS}) == []
    assert notes({**SUMMARY, "final_costs": {"cost": 25.0}}) == []


def test_fixed_penalties_are_no_multipliers_that_take_epochs():
    # reward_shaping shows its fixed betas where a Lagrangian solver shows its multipliers; they never move, so
    # neither the short-run note ("a multiplier takes many epochs") nor "the multipliers never move" applies
    shaped = {**SUMMARY, "algo": "reward_shaping", "multipliers": {"cost": 1.0}}
    text = format_summary(shaped, Path("run"), multiplier="beta")
    assert "(ABOVE limit), beta 1.0000" in text and "note" not in text
    unmeasured = notes({**shaped, "final_epoch_with_episodes": None, "final_costs": {"cost": float("nan")}})
    assert len(unmeasured) == 1 and "no episode finished" in unmeasured[0] and "multipliers" not in unmeasured[0]
    # a Lagrangian solver keeps its wording
    assert "a multiplier takes many epochs to bring a cost down" in notes({**shaped, "algo": "ppo_lag"})[0]


def _family(name: str) -> str:
    return next(family for family, (_, _, names) in FAMILIES.items() if name in names)
