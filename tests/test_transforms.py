"""CMDP transformations (cmdp/transforms.py): Saute, Simmer and early termination, and the solvers built on them.

Hand-computed: the Saute state and reward and the early cut on a scripted VecCMDP (two copies, K = 2, an
auto-reset mid-run), the Saute budget scale, Simmer's PID budget controller, `VecCMDP.end_episodes` for every
kind of VecCMDP. From the CLI: each of ppo_saute, trpo_saute, ppo_simmer_pid and ppo_early_terminated trains and
resumes bit for bit; ppo_lag trains on `transform={kind: saute}`; `cmdp eval` of a Saute run; the refusals.
Slow (run them with -m slow): what the papers claim, measured on ExactChain-v0 (see the tests' docstrings).
"""
from __future__ import annotations

import csv
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from cmdp.cli import main
from cmdp.config import ConfigError
from cmdp.spec import CMDPSpec, CostSpec
from cmdp.transforms import (EarlyTerminatedKwargs, EarlyTerminatedVecCMDP, SauteKwargs, SauteVecCMDP, SimmerKwargs,
                             SimmerPID, SimmerVecCMDP, budget_scale, resolve_transform, saute_step)
from cmdp.vec_env import EpisodeStats, StepResult, SubprocVecCMDP, SyncVecCMDP, VecCMDP

# ----------------------------------------------------------------------------------------------
# A scripted VecCMDP: 2 copies, K = 2 (limits a 2, b 1); copy 0 is truncated after 3 steps, copy 1
# terminates after 2; rewards 1 (copy 0) and 2 (copy 1) every step; obs = [10 i + steps into the episode].
# ----------------------------------------------------------------------------------------------
COSTS = np.array([[[1.0, 0.0], [0.0, 0.5]],  # t0: copy 0, copy 1
                  [[0.5, 1.5], [0.0, 0.5]],  # t1
                  [[0.5, 0.0], [1.0, 0.0]],  # t2
                  [[0.0, 0.0], [0.0, 1.5]]])  # t3


class Scripted(VecCMDP):
    def __init__(self) -> None:
        spec = CMDPSpec(gymnasium.spaces.Box(-np.inf, np.inf, (1,)), gymnasium.spaces.Discrete(2),
                        (CostSpec("a", 2.0), CostSpec("b", 1.0)), max_episode_steps=3)
        super().__init__(spec, 2)
        self.t, self.count = 0, np.zeros(2, dtype=np.int64)

    def _obs(self) -> np.ndarray:
        return (np.arange(2) * 10 + self.count).astype(np.float64)[:, None]

    def _reset(self, seed):
        self.t, self.count[:] = 0, 0
        return self._obs()

    def _reset_copies(self, idx):
        self.count[idx] = 0
        return self._obs()[idx]

    def _step(self, actions):
        costs = COSTS[self.t]
        self.t += 1
        self.count += 1
        done = self.count >= np.array([3, 2])
        final = self._obs()
        self.count[done] = 0
        return StepResult(self._obs(), np.array([1.0, 2.0]), costs.copy(), done & np.array([False, True]),
                          done & np.array([True, False]), final)


def run_script(env: VecCMDP) -> list[StepResult]:
    env.reset(seed=0)
    return [env.step(np.zeros(2, dtype=np.int64)) for _ in range(4)]


def episodes(result: StepResult) -> list[tuple[float, list[float], int]]:
    e = result.episodes
    return [(float(r), c.tolist(), int(n)) for r, c, n in zip(e.returns, e.costs, e.lengths)]


def test_saute_state_and_reward_by_hand():
    inner = Scripted()
    env = SauteVecCMDP(inner, inner.spec, SauteKwargs(saute_gamma=1.0))  # budgets = limits (2, 1)
    assert env.spec.observation_space.shape == (3,) and env.spec.cost_limits.tolist() == [2.0, 1.0]
    first = env.reset(seed=0)
    np.testing.assert_array_equal(first, [[0, 1, 1], [10, 1, 1]])
    r = run_script(env)
    # z <- z - c / budget; the reward becomes -1 once some z <= 0 (z_a = 0 counts as spent)
    np.testing.assert_array_equal(r[0].obs, [[1, 0.5, 1], [11, 1, 0.5]])
    np.testing.assert_array_equal(r[1].obs, [[2, 0.25, -0.5], [10, 1, 1]])  # copy 1 restarted: z = 1 again
    np.testing.assert_array_equal(r[1].final_obs[1], [12, 1, 0])  # its last z goes with its final observation
    np.testing.assert_array_equal(r[2].obs, [[0, 1, 1], [11, 0.5, 1]])
    np.testing.assert_array_equal(r[2].final_obs[0], [3, 0, -0.5])
    np.testing.assert_array_equal(r[3].obs, [[1, 1, 1], [10, 1, 1]])
    np.testing.assert_array_equal(r[3].final_obs[1], [12, 0.5, -0.5])
    np.testing.assert_array_equal([x.reward for x in r], [[1, 2], [-1, -1], [-1, 2], [1, -1]])
    np.testing.assert_array_equal(r[1].terminated, [False, True])  # ends are the inner ones, unchanged
    np.testing.assert_array_equal(r[2].truncated, [True, False])
    np.testing.assert_array_equal(r[2].costs, COSTS[2])  # costs are never changed
    # episodes are counted on the ORIGINAL reward
    assert episodes(r[1]) == [(4.0, [0.0, 1.0], 2)]
    assert episodes(r[2]) == [(3.0, [2.0, 1.5], 3)]
    assert episodes(r[3]) == [(4.0, [1.0, 1.5], 2)]
    assert episodes(r[0]) == []


def test_saute_discounted_budget_by_hand():
    # (1 - g^T) / ((1 - g) T) with g = 0.5, T = 3: 0.875 / 1.5
    assert budget_scale(0.5, 3) == pytest.approx(0.875 / 1.5)
    assert budget_scale(1.0, 3) == budget_scale(0.5, None) == 1.0
    z, reward = saute_step(np.array([[1.0, 0.5]]), np.array([[0.35, 0.0]]), np.array([3.0]), np.array([0.7, 1.0]),
                           0.5, -0.2)
    np.testing.assert_allclose(z, [[(1 - 0.5) / 0.5, 1.0]])  # (1 - 0.35 / 0.7) / 0.5 = 1; 0.5 / 0.5 = 1
    assert reward.tolist() == [3.0]
    z, reward = saute_step(z, np.array([[0.7, 0.0]]), np.array([3.0]), np.array([0.7, 1.0]), 0.5, -0.2)
    np.testing.assert_allclose(z, [[0.0, 2.0]])
    assert reward.tolist() == [-0.2]
    inner = Scripted()
    env = SauteVecCMDP(inner, inner.spec, SauteKwargs(saute_gamma=0.5, safety_budget=4.0))
    np.testing.assert_allclose(env.z_budget(), [4 * 0.875 / 1.5] * 2)


def test_early_termination_by_hand():
    inner = Scripted()
    env = EarlyTerminatedVecCMDP(inner, inner.spec, EarlyTerminatedKwargs())
    assert env.spec == inner.spec
    r = run_script(env)
    # copy 0: b reaches 1.5 > 1 at t1 (mid-episode): cut, reward 0, restarted now; copy 1: b = 1.0 is not above
    # the limit, and it terminates by itself at t1; at t3 its b reaches 1.5 on the step it terminates anyway
    np.testing.assert_array_equal([x.reward for x in r], [[1, 2], [0, 2], [1, 2], [1, 0]])
    np.testing.assert_array_equal([x.terminated for x in r], [[0, 0], [1, 1], [0, 0], [0, 1]])
    assert not any(x.truncated.any() for x in r)  # copy 0's restart at t1 moved its time limit past t3
    np.testing.assert_array_equal(r[1].obs[:, 0], [0, 10])
    np.testing.assert_array_equal(r[1].final_obs[:, 0], [2, 12])
    np.testing.assert_array_equal([x.obs[0, 0] for x in r[2:]], [1, 2])
    assert episodes(r[1]) == [(2.0, [1.5, 1.5], 2), (4.0, [0.0, 1.0], 2)]  # original reward
    assert episodes(r[3]) == [(4.0, [1.0, 1.5], 2)]
    assert episodes(r[0]) == episodes(r[2]) == []
    # the inner CMDP dropped copy 0's cut episode: it reports only copy 1's natural ends
    assert env.inner._tracker.ret.tolist() == [2.0, 0.0]


class Counter:
    """One copy: obs = steps into the episode; episodes of `length` steps (truncated); reward 1, cost 1."""

    def __init__(self, length: int = 3) -> None:
        self.length, self.t = length, 0
        self.spec = CMDPSpec(gymnasium.spaces.Box(-10, 10, (1,)), gymnasium.spaces.Discrete(2),
                             (CostSpec("c", 1.0),), length)

    def reset(self, seed=None):
        self.t = 0
        return np.array([0.0])

    def step(self, action):
        self.t += 1
        return np.array([float(self.t)]), 1.0, np.array([1.0]), False, self.t >= self.length

    def close(self):
        pass


def make_tabular():
    from cmdp.envs.exact import make_exact
    return make_exact("ExactChain-v0", num_envs=3, seed=0)


def make_bandit():
    from cmdp.envs.quadratic_bandit import make_quadratic_bandit
    return make_quadratic_bandit(num_envs=3, horizon=3, seed=0)


@pytest.mark.parametrize("kind", ["sync", "subproc", "tabular", "bandit"])
def test_end_episodes_restarts_the_masked_copies_and_drops_their_totals(kind):
    env = {"sync": lambda: SyncVecCMDP([Counter] * 3), "subproc": lambda: SubprocVecCMDP([Counter] * 3),
           "tabular": make_tabular, "bandit": make_bandit}[kind]()
    try:
        env.reset(seed=0)
        act = np.zeros((3, 1)) if kind == "bandit" else np.zeros(3, dtype=np.int64)
        env.step(act)
        obs = env.end_episodes(np.array([True, False, True]))
        assert len(obs) == 2
        if kind in ("sync", "subproc"):
            np.testing.assert_array_equal(obs, [[0.0], [0.0]])
        elif kind == "tabular":
            np.testing.assert_array_equal(obs, [0, 0])  # ExactChain starts in state 0
        lengths = []
        for _ in range(6):
            res = env.step(act)
            lengths += [(int(i), int(n)) for i, n in zip(np.flatnonzero(res.terminated | res.truncated),
                                                            res.episodes.lengths)]
        if kind != "tabular":  # 3-step episodes: copy 1 ends after 2 more steps, the restarted ones after 3
            assert lengths[:3] == [(1, 3), (0, 3), (2, 3)]
        assert all(n >= 1 for _, n in lengths)
    finally:
        env.close()


def test_simmer_pid_controller_by_hand():
    pid = SimmerPID(np.array([10.0]), kp=0.5, ki=0.1, kd=0.2, polyak=0.5)
    # e1 = 0.5 * 0 + 0.5 * (4 - 2) = 1; raw = 0.5 + 0.1 * 1 + 0.2 * (0 - 0) = 0.6; b = 4.6
    assert pid.step(np.array([4.0]), np.array([2.0])).tolist() == pytest.approx([4.6])
    # e2 = 0.5 * 1 + 0.5 * (4.6 - 8.6) = -1.5; raw = -0.75 + 0.1 * (1 - 1.5) + 0.2 * (0.6 - 0.6) = -0.8; b = 3.8
    assert pid.step(np.array([4.6]), np.array([8.6])).tolist() == pytest.approx([3.8])
    # e3 = 0.5 * -1.5 + 0.5 * (3.8 - 33.8) = -15.75; raw = -7.875 - 1.625 + 0.2 * (-0.8 + 0.8) = -9.5 -> move -1
    assert pid.step(np.array([3.8]), np.array([33.8])).tolist() == pytest.approx([2.8])
    assert pid.prev_raw.tolist() == pytest.approx([-9.5]) and pid.prev_action.tolist() == pytest.approx([-1.0])
    # the move actually made feeds the derivative term: kd (-1 - -9.5) = 1.7
    # e4 = 0.5 * -15.75 + 0.5 * (2.8 - 2.8) = -7.875; raw = -3.9375 + 0.1 * -24.125 + 1.7 = -4.65 -> -1
    assert pid.step(np.array([2.8]), np.array([2.8])).tolist() == pytest.approx([1.8])
    # bounds: never above the upper budget, never below 1e-6; the integral keeps the last 10 errors
    pid = SimmerPID(np.array([5.0, 5.0]), kp=1.0, ki=0.0, kd=0.0, polyak=0.0)
    assert pid.step(np.array([4.9, 0.5]), np.array([0.0, 9.0])).tolist() == pytest.approx([5.0, 1e-6])
    pid = SimmerPID(np.array([100.0]), kp=0.0, ki=0.01, kd=0.0, polyak=0.0)
    budget = np.array([50.0])
    for _ in range(12):
        budget = pid.step(budget, budget - 1.0)  # error 1 each time
    assert len(pid.errors) == 10 and budget.tolist() == pytest.approx([50.0 + sum(min(i, 10) * 0.01
                                                                                 for i in range(1, 13))])


def test_simmer_budget_moves_between_epochs_only():
    inner = Scripted()
    kwargs = SimmerKwargs(saute_gamma=1.0, safety_budget=1.0, upper_budget=2.0, kp=0.5, ki=0.0, polyak=0.0)
    env = SimmerVecCMDP(inner, inner.spec, kwargs)
    np.testing.assert_array_equal(env.reset(seed=0)[:, 1:], [[0.5, 0.5], [0.5, 0.5]])  # z starts at b / U
    r = run_script(env)
    # z falls by c / U: copy 1 after t0: (0.5, 0.5 - 0.25); z_b hits 0 at t1 (its b total 1 = the budget)
    np.testing.assert_array_equal(r[0].obs[1, 1:], [0.5, 0.25])
    assert r[1].reward.tolist() == [-1.0, -1.0]
    np.testing.assert_array_equal(r[1].obs[1, 1:], [0.5, 0.5])  # restarted at b / U
    env.observe(EpisodeStats.concatenate([x.episodes for x in r], 2))
    assert env.budget.tolist() == [1.0, 1.0]  # nothing moves before the next epoch starts
    env.start_epoch()
    # mean episode costs (2 + 0 + 1) / 3 = 1, (1.5 + 1 + 1.5) / 3 = 4/3: b += 0.5 (b - cost), then clipped
    assert env.budget.tolist() == pytest.approx([1.0, 1.0 - 0.5 / 3])
    state = env.state_dict()
    env.start_epoch()  # no episodes observed since: the budget holds
    assert env.budget.tolist() == state["budget"]
    fresh = SimmerVecCMDP(Scripted(), inner.spec, kwargs)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == state


def test_resolve_transform_fills_every_key_and_refuses_bad_ones():
    kinds = frozenset({"saute", "simmer", "early_terminated"})
    assert resolve_transform({}, "E", kinds) == {}
    assert resolve_transform({"kind": "saute"}, "E", kinds) == {"kind": "saute", "saute_gamma": 0.999,
                                                                 "unsafe_reward": -1.0, "safety_budget": None}
    assert resolve_transform({"unsafe_reward": -0.2}, "E", kinds, default_kind="saute")["unsafe_reward"] == -0.2
    assert resolve_transform({"kind": "early_terminated"}, "E", kinds) == {"kind": "early_terminated"}
    for bad, match in (({"unsafe_reward": 1}, "transform.kind is missing"),
                       ({"kind": "sauter"}, "unknown kind 'sauter'"),
                       ({"kind": "saute", "budget": 1}, "unknown key 'budget'"),
                       ({"kind": "saute", "saute_gamma": 0}, "transform.saute_gamma"),
                       ({"kind": "saute", "unsafe_reward": "low"}, "transform.unsafe_reward"),
                       ({"kind": "simmer", "polyak": 1.0}, "transform.polyak"),
                       ({"kind": "simmer", "kp": -1}, "transform.kp")):
        with pytest.raises(ConfigError, match=match):
            resolve_transform(bad, "E", kinds)
    with pytest.raises(ConfigError, match="does not support the 'saute'"):
        resolve_transform({"kind": "saute"}, "Text-v0", frozenset())


# ----------------------------------------------------------------------------------------------
# From the command line
# ----------------------------------------------------------------------------------------------
TINY = ["--env", "ExactTwoCost-v0", "--total-steps", "768", "--set", "steps_per_epoch=256", "--set", "num_envs=2",
        "--set", "update_iters=2", "--no-progress"]


def progress_rows(run_dir: Path) -> list[dict]:
    from cmdp.logger import TIMING_COLUMNS

    with (run_dir / "progress.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


@pytest.mark.parametrize("algo", ["ppo_saute", "trpo_saute", "ppo_simmer_pid", "ppo_early_terminated"])
def test_solver_trains_from_the_cli_and_resumes_bit_exactly(algo, tmp_path):
    from cmdp.trainer import resolve_config
    from run_helpers import interrupted_run

    extra = ["--set", "transform={kp: 0.05}"] if algo == "ppo_simmer_pid" else []  # a budget that visibly moves
    assert main(["train", "--algo", algo, *TINY, *extra, "--out", str(tmp_path / "full")]) == 0
    overrides = {"algo": algo, "env": "ExactTwoCost-v0", "total_steps": 768, "steps_per_epoch": 256, "num_envs": 2,
                 "update_iters": 2}
    if extra:
        overrides["transform"] = {"kp": 0.05}
    cfg, _ = resolve_config(overrides)
    assert cfg.transform["kind"] == {"ppo_saute": "saute", "trpo_saute": "saute", "ppo_simmer_pid": "simmer",
                                     "ppo_early_terminated": "early_terminated"}[algo]
    run_dir = interrupted_run(cfg, tmp_path / "cut", after_epoch=1)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    rows = progress_rows(run_dir)
    assert len(rows) == 3 and rows == progress_rows(tmp_path / "full")
    if algo == "ppo_simmer_pid":
        from cmdp.checkpoint import load_checkpoint
        budget = load_checkpoint(run_dir / "checkpoints/last.pt")["family"]["transform"]["budget"]
        assert budget != [1.5, 1.0]  # the controller moved it from the limits (and the resume restored it)
        # each epoch logs the budget its episodes ran with: the limits first, then the controller's moves
        logged = [[float(r[f"budget/{name}"]) for name in ("cost_a", "cost_b")] for r in rows]
        assert logged[0] == [1.5, 1.0] and logged[1] != logged[0]


def test_any_solver_runs_on_a_transformation_and_eval_reads_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "ppo_lag", *TINY, "--set", "transform={kind: saute, unsafe_reward: -0.5}",
                 "--out", str(out)]) == 0
    config = (out / "config.yaml").read_text()
    assert "kind: saute" in config and "saute_gamma: 0.999" in config and "unsafe_reward: -0.5" in config
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "5"]) == 0
    printed = capsys.readouterr().out
    assert "[cost_a]" in printed and "[cost_b]" in printed


@pytest.mark.parametrize("setting, message", [
    ("transform={kind: shield}", "transform.kind: unknown kind 'shield'"),
    ("transform={kind: saute, budget: 3}", "unknown key 'budget'"),
    ("transform={kind: simmer, polyak: 2}", "transform.polyak"),
    ("transform={unsafe_reward: -1}", "transform.kind is missing"),
])
def test_bad_transforms_are_refused_in_one_line(setting, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "ppo_lag", *TINY, "--set", setting, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_solver_refuses_another_kind(tmp_path, capsys):
    assert main(["train", "--algo", "ppo_saute", *TINY, "--set", "transform={kind: early_terminated}",
                 "--out", str(tmp_path / "run")]) == 2
    assert "'ppo_saute' trains on the 'saute' transformation" in capsys.readouterr().err


def test_the_text_family_refuses_a_transformation(capsys):
    from cmdp.registry import envs

    text_envs = [name for name, entry in envs().items() if not entry.family.transforms]
    assert text_envs, "expected a family without transformations (text)"
    with pytest.raises(ConfigError, match="does not support the 'saute' transformation"):
        from cmdp.resolve import resolve_config
        resolve_config({"algo": "ppo", "env": text_envs[0], "transform": {"kind": "saute"}})


def test_the_guide_example_runs(tmp_path):
    """docs/cmdp-transforms.md's command, made tiny."""
    import shlex

    text = (Path(__file__).parent.parent / "docs" / "cmdp-transforms.md").read_text()
    line = next(l for l in text.splitlines() if l.startswith("cmdp train") and "ppo_saute" in l)
    args = shlex.split(line)[1:]
    assert main([*args, "--total-steps", "512", "--set", "steps_per_epoch=256", "--set", "update_iters=1",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0


# ----------------------------------------------------------------------------------------------
# What the papers claim, on ExactChain-v0 (slow)
# ----------------------------------------------------------------------------------------------
# ExactChain-v0's LP optimum (5.6875 at cost 1.5) meets the limit only on average: it sprints at position 4 and,
# with probability 4/9, at position 3, so 4 episodes in 9 cost 2 > 1.5. Every sprint costs 1, so an episode
# meets the limit 1.5 almost surely iff it sprints at most once; the best such policy walks at positions 0-3
# (0.5 per step, 1.25 steps per position: 0.625 each) and sprints at 4 (2.4): 4 x 0.625 + 2.4 = 4.9 (ratio 0.862
# of the LP optimum). This is the optimum of the Saute-augmented MDP (a second sprint earns unsafe_reward instead
# of 2.2 or 2.4) and of the early-terminated MDP (a second sprint ends the episode with reward 0).
ALMOST_SURELY_SAFE_OPTIMUM = 4.9
SAUTE_EXACT = dict(transform={"kind": "saute", "saute_gamma": 1.0})  # undiscounted z, as the exact CMDP


def train_and_sample(tmp_path: Path, seed: int, episodes: int = 4000, **config):
    """Train on ExactChain-v0 with the exact tests' settings (tests/exact_oracle.py: 160 epochs of 2048 steps,
    gamma 1), then sample `episodes` episodes of the final stochastic policy (a Saute policy needs z, so this is
    Monte Carlo, not exact). Returns the mean return, the mean costs, the share of episodes above the limit and
    the LP optimum."""
    from cmdp.envs.exact import solve_lp
    from cmdp.evaluation import evaluate
    from cmdp.trainer import Trainer, resolve_config
    from exact_oracle import EXACT_BASE

    cfg, _ = resolve_config({**EXACT_BASE, "env": "ExactChain-v0", "seed": seed, **config})
    trainer = Trainer(cfg)
    lp = solve_lp(trainer.run.env.cmdp, cost_limits=trainer.spec.cost_limits)
    trainer.train(tmp_path, progress=False)
    run = trainer.run
    env = run.env if run.transform is None or run.transform.evaluate_on_inner else run.transform
    result = evaluate(env, run.agent, run.obs_normalizer, episodes, seed=12345, deterministic=False)
    share = float((result.costs > trainer.spec.cost_limits).any(axis=1).mean())
    return float(result.returns.mean()), result.costs.mean(axis=0), share, lp


@pytest.mark.slow  # about 7 min on the shared 2-core machine
@pytest.mark.parametrize("algo", ["ppo_saute", "trpo_saute"])
def test_saute_keeps_every_episode_within_the_limit(algo, tmp_path):
    """The Saute paper's claim: the limit holds almost surely, per episode, not only on average. Not checked:
    convergence to the CMDP's LP optimum (Saute has no such guarantee; its optimum here is the almost-surely-safe
    4.9). Measured (seed 0, 4000 sampled episodes; command:
    .venv/bin/python -m pytest -n 0 -m slow tests/test_transforms.py -k saute_keeps):
        ppo_saute  return 4.907 (0.863 of the LP optimum 5.6875, 1.001 of 4.9), cost 1.000, share above 0.0000
        trpo_saute return 4.907 (0.863 of the LP optimum, 1.001 of 4.9),       cost 1.000, share above 0.0000
    (both end at the deterministic policy: walk at 0-3, sprint at 4). Seeds 1 and 2 were not run."""
    ret, costs, share, lp = train_and_sample(tmp_path, seed=0, algo=algo, **SAUTE_EXACT)
    assert share <= 0.02
    assert ret == pytest.approx(ALMOST_SURELY_SAFE_OPTIMUM, rel=0.05)
    assert ret < lp.value  # below the average-cost optimum: the price of the almost-sure guarantee


@pytest.mark.slow  # about 8 min on the shared 2-core machine
def test_ppo_lag_meets_the_limit_only_on_average(tmp_path):
    """The contrast for the Saute test: PPO-Lagrangian (tests/test_exact_learning.py's settings) reaches the LP
    optimum, whose cost meets the limit on average while about half of its episodes break it. Measured (seed 0,
    4000 sampled episodes): return 5.737 (ratio 1.009), mean cost 1.530, share of episodes above the limit 0.521."""
    ret, costs, share, lp = train_and_sample(tmp_path, seed=0, algo="ppo_lag", lagrangian_optimizer="sgd",
                                             lagrangian_lr=10.0, lagrangian_init=0.0)
    assert ret == pytest.approx(lp.value, rel=0.05) and costs[0] <= 1.5 * 1.05
    assert share >= 0.3


@pytest.mark.slow  # about 7 min on the shared 2-core machine
def test_ppo_early_terminated_share_of_violating_episodes(tmp_path):
    """Sun et al.'s claim, measured: trained on the early-terminated MDP, the policy breaks the limit in few
    episodes of the ORIGINAL, uncut CMDP (evaluated there). No convergence guarantee is checked. Measured (seed 0,
    4000 sampled episodes, default `transform={kind: early_terminated}`): return 4.907 (0.863 of the LP optimum,
    1.001 of the almost-surely-safe 4.9), cost 1.000, share above the limit 0.0000. Seeds 1 and 2 were not run."""
    ret, costs, share, lp = train_and_sample(tmp_path, seed=0, algo="ppo_early_terminated")
    assert share <= 0.02
    assert ret == pytest.approx(ALMOST_SURELY_SAFE_OPTIMUM, rel=0.05)


@pytest.mark.slow  # about 2 min on 2 idle cores
def test_simmer_with_omnisafe_gains_keeps_every_episode_within_its_budget(tmp_path):
    """Simmer at OmniSafe's defaults (budget = upper budget = the limit, kp 0.0005, ki 1e-5, polyak 0.995) on
    ExactChain-v0: the budget barely moves at this cost scale, so Simmer keeps Saute's claim, every episode within
    the limit. Measured (seed 0, 4000 sampled episodes; command: .venv/bin/python -m pytest -n 0 -m slow
    tests/test_transforms.py -k simmer): return 4.907, cost 1.000, share above the limit 0.0000, budget 1.5 at every
    epoch. Not checked: the Simmer paper's safer-exploration claim. With OmniSafe's controller it did not show here:
    with kp 0.2 (ki 0, polyak 0) the random initial policy's costs (2.85 > 1.5) drove the budget to its floor 1e-6
    within 10 epochs, where it stayed (the error budget - cost stays negative while the policy spends 1.0 per
    episode), and training had 7 of 160 epochs with a mean episode cost above the limit, against Saute's 5;
    starting from budget 0.5 gave the same collapse and a policy that never sprints (return 3.12)."""
    ret, costs, share, lp = train_and_sample(tmp_path, seed=0, algo="ppo_simmer_pid",
                                             transform={"kind": "simmer", "saute_gamma": 1.0})
    assert share <= 0.02
    assert ret == pytest.approx(ALMOST_SURELY_SAFE_OPTIMUM, rel=0.05)
    with open(tmp_path / "progress.csv") as f:
        budgets = [float(row["budget/cost"]) for row in csv.DictReader(f)]
    assert len(budgets) == 160 and budgets[0] == 1.5 and min(budgets) > 1.4  # logged every epoch, near the limit


def test_a_kind_given_as_the_transform_says_how_to_write_it(tmp_path, capsys):
    # "transform must be a mapping, got 'saute'" had left the form to guess
    assert main(["train", "--algo", "ppo_lag", *TINY, "--set", "transform=saute", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "cmdp: error: transform must be a mapping, got 'saute'; for that kind, write transform={kind: saute} (in a "
        "YAML file: `transform: {kind: saute}`)"]
    assert not (tmp_path / "r").exists()
