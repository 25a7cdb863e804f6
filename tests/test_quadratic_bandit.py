"""QuadraticBandit-v0, the continuous-action oracle: the environment's semantics, its closed-form optimum against
brute force, the Monte Carlo policy evaluation, and a tiny end-to-end training run through the trainer API."""
from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from cmdp.cli import main
from cmdp.registry import get_env
from cmdp.spec import ConfigError
from cmdp.trainer import Trainer, resolve_config
from cmdp.envs.quadratic_bandit import (DEFAULT_BUDGET, MAX_NUM_COSTS, NAME, BanditOptimum, QuadraticBanditKwargs,
                                        QuadraticBanditVecCMDP, bandit_optimum, default_cost_limits,
                                        evaluate_bandit_policy, make_quadratic_bandit)

# per-step standard deviation of the reward and of each cost of a = s / 2 (K = 1): r = 1 - s^2 / 4, c = s^2 / 4,
# Var(s^2) = 1/5 - 1/9 = 4/45, so both have sd sqrt(4/45) / 4 = sqrt(1/180); for K > 1 the reward's is smaller
HALF_SD = math.sqrt(1 / 180)


def _second_moment_by_quadrature(n: int = 4001) -> float:
    """E[s^2] for s ~ U[-1, 1] by the midpoint rule, so the brute force does not reuse the closed form's 1/3."""
    s = -1 + (np.arange(n) + 0.5) * 2 / n
    return float(np.mean(s ** 2))


# ------------------------------------------------------------------------------------------ environment


@pytest.mark.parametrize("k", [1, 3])
def test_spaces_spec_and_default_limits(k: int) -> None:
    env = make_quadratic_bandit(num_envs=4, num_costs=k, horizon=7)
    spec = env.spec
    for space in (spec.observation_space, spec.action_space):
        assert isinstance(space, gymnasium.spaces.Box)
        assert space.shape == (k,) and space.dtype == np.float32
        assert np.all(space.low == -1) and np.all(space.high == 1)
    assert spec.cost_names == [f"effort_{i}" for i in range(k)]
    assert spec.cost_limits == pytest.approx(np.full(k, 7 / 12))
    assert default_cost_limits(7, k) == pytest.approx(spec.cost_limits)
    assert spec.max_episode_steps == 7
    obs = env.reset(seed=0)
    assert obs.shape == (4, k) and obs.dtype == np.float32
    assert all(spec.observation_space.contains(o) for o in obs)


def test_episodes_last_h_steps_and_end_by_truncation() -> None:
    h, n = 5, 6
    env = make_quadratic_bandit(num_envs=n, num_costs=2, horizon=h)
    obs = env.reset(seed=1)
    rng = np.random.default_rng(0)
    ret, cost = np.zeros(n), np.zeros((n, 2))
    for t in range(3 * h):
        res = env.step(rng.uniform(-1, 1, (n, 2)))
        ret += res.reward
        cost += res.costs
        assert not res.terminated.any()
        end = (t + 1) % h == 0
        assert np.array_equal(res.truncated, np.full(n, end))
        assert res.obs.shape == res.final_obs.shape == (n, 2) and res.final_obs.dtype == np.float32
        assert np.all(np.abs(res.final_obs) <= 1)
        if end:
            # final_obs is the state to bootstrap from, obs the first context of the next episode
            assert not np.array_equal(res.final_obs, res.obs)
            assert np.array_equal(res.episodes.lengths, np.full(n, h))
            assert res.episodes.returns == pytest.approx(ret)
            assert res.episodes.costs == pytest.approx(cost)
            ret[:], cost[:] = 0.0, 0.0
        else:
            assert np.array_equal(res.final_obs, res.obs) and len(res.episodes.returns) == 0
        obs = res.obs
    assert obs.shape == (n, 2)


def test_reward_and_costs_follow_the_formulas() -> None:
    n, k = 8, 3
    env = make_quadratic_bandit(num_envs=n, num_costs=k, horizon=4)
    obs = env.reset(seed=2).astype(np.float64)
    rng = np.random.default_rng(3)
    for _ in range(6):
        a = rng.uniform(-1, 1, (n, k))
        res = env.step(a)
        # the reward answers the observation BEFORE the step
        assert res.reward == pytest.approx(1 - np.mean((a - obs) ** 2, axis=1))
        assert res.costs == pytest.approx(a ** 2)
        assert res.reward.dtype == np.float64 and res.costs.shape == (n, k)
        obs = res.obs.astype(np.float64)
    # a = s: reward exactly 1, costs s^2; actions outside the box are clipped
    res = env.step(obs)
    assert res.reward == pytest.approx(np.ones(n)) and res.costs == pytest.approx(obs ** 2)
    obs = res.obs.astype(np.float64)
    res = env.step(np.full((n, k), 3.0))
    assert res.costs == pytest.approx(np.ones((n, k)))
    assert res.reward == pytest.approx(1 - np.mean((1 - obs) ** 2, axis=1))
    # K = 1 accepts (N,) actions as well as (N, 1)
    one = make_quadratic_bandit(num_envs=3)
    s = one.reset(seed=0)[:, 0].astype(np.float64)
    assert one.step(s / 2).reward == pytest.approx(1 - s ** 2 / 4)
    with pytest.raises(ValueError, match="actions"):
        one.step(np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        one.step(np.full(3, np.nan))


def _rollout(env: QuadraticBanditVecCMDP, seed: int | None, steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    obs, rewards = [env.reset(seed=seed)], []
    for _ in range(steps):
        res = env.step(rng.uniform(-1, 1, (env.num_envs, env.num_costs)))
        obs.append(res.obs)
        rewards.append(res.reward)
    return np.array(obs), np.array(rewards)


def test_determinism_under_a_seed_and_contexts_differ_across_steps_and_copies() -> None:
    a = _rollout(make_quadratic_bandit(num_envs=8, num_costs=2), 123, 25)
    b = _rollout(make_quadratic_bandit(num_envs=8, num_costs=2), 123, 25)
    c = _rollout(make_quadratic_bandit(num_envs=8, num_costs=2), 124, 25)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    # the seed may also come through env_kwargs (the first episode is then reproducible without reset(seed))
    first = make_quadratic_bandit(num_envs=2, seed=5)._obs.copy()
    assert np.array_equal(make_quadratic_bandit(num_envs=2, seed=5)._obs, first)
    # re-seeding reproduces; reset(None) continues the generator
    env = make_quadratic_bandit(num_envs=8, num_costs=2)
    once = _rollout(env, 123, 25)[0]
    assert np.array_equal(_rollout(env, 123, 25)[0], once)
    assert not np.array_equal(_rollout(env, None, 25)[0], once)
    # fresh i.i.d. contexts: no two observed values coincide across steps, copies or dimensions
    obs = a[0]
    assert len(np.unique(obs)) == obs.size
    assert obs.min() >= -1 and obs.max() <= 1
    assert abs(obs.mean()) < 0.1 and np.mean(obs.astype(np.float64) ** 2) == pytest.approx(1 / 3, abs=0.05)


def test_env_with_the_optimal_policy_reaches_the_closed_form() -> None:
    """Stepping the environment with a = s / 2 gives the optimum's return and costs (checks the alignment of
    actions with the contexts they answer, through the episode statistics)."""
    h, n = 10, 4000
    env = make_quadratic_bandit(num_envs=n, num_costs=1, horizon=h)
    obs = env.reset(seed=7)
    for _ in range(h):
        res = env.step(obs / 2)
        obs = res.obs
    opt = bandit_optimum(env.spec.cost_limits, h)
    se = math.sqrt(h) * HALF_SD / math.sqrt(n)
    assert len(res.episodes.returns) == n
    assert res.episodes.returns.mean() == pytest.approx(opt.value, abs=4 * se)
    assert res.episodes.costs.mean(axis=0) == pytest.approx(opt.costs, abs=4 * se)


# ------------------------------------------------------------------------------------------ closed form


def test_bandit_optimum_default_and_unconstrained_values() -> None:
    h = 10
    opt = bandit_optimum(default_cost_limits(h, 2), h)
    assert isinstance(opt, BanditOptimum)
    assert opt.scales == pytest.approx([0.5, 0.5])
    assert opt.value == pytest.approx(h * 11 / 12)
    assert opt.costs == pytest.approx([h * DEFAULT_BUDGET] * 2)
    assert opt.multipliers == pytest.approx([0.5, 0.5])  # (1 / scale - 1) / K
    free = bandit_optimum(math.inf, h, num_costs=2)
    assert free.value == pytest.approx(h) and free.costs == pytest.approx([h / 3] * 2)
    assert free.scales == pytest.approx([1, 1]) and free.multipliers == pytest.approx([0, 0])
    # a limit at or above H / 3 does not bind; a zero limit forces a = 0 with an infinite multiplier
    assert bandit_optimum(h / 3, h).value == pytest.approx(h)
    zero = bandit_optimum(0.0, h)
    assert zero.scales == pytest.approx([0]) and zero.value == pytest.approx(h * 2 / 3)
    assert zero.multipliers[0] == math.inf
    with pytest.raises(ValueError):
        bandit_optimum([-1.0], h)
    with pytest.raises(ValueError):
        bandit_optimum([1.0, 1.0, 1.0], h, num_costs=2)


def test_bandit_optimum_matches_brute_force_k1() -> None:
    m2 = _second_moment_by_quadrature()
    scales = np.linspace(0, 1, 20001)
    for h, limit in [(10, 10 / 12), (10, 0.2), (4, 1.0), (3, 5.0)]:
        value = h * (1 - (1 - scales) ** 2 * m2)
        cost = h * scales ** 2 * m2
        feasible = cost <= limit
        best = int(np.argmax(np.where(feasible, value, -np.inf)))
        opt = bandit_optimum(limit, h)
        assert opt.value == pytest.approx(value[best], abs=1e-3 * h)
        assert opt.scales[0] == pytest.approx(scales[best], abs=1e-3)
        assert opt.costs[0] == pytest.approx(min(limit, h / 3), rel=1e-6)


def test_bandit_optimum_matches_brute_force_k2_with_different_limits() -> None:
    m2 = _second_moment_by_quadrature()
    grid = np.linspace(0, 1, 1001)
    c1, c2 = np.meshgrid(grid, grid, indexing="ij")
    for h, limits in [(10, (0.3, 2.0)), (5, (0.4, 0.9)), (8, (5.0, 0.0))]:
        # the brute force does not assume the dimensions decouple: it searches the joint grid of scales
        value = h * (1 - ((1 - c1) ** 2 + (1 - c2) ** 2) / 2 * m2)
        feasible = (h * c1 ** 2 * m2 <= limits[0]) & (h * c2 ** 2 * m2 <= limits[1])
        flat = int(np.argmax(np.where(feasible, value, -np.inf)))
        opt = bandit_optimum(limits, h)
        assert opt.value == pytest.approx(value.flat[flat], abs=2e-3 * h)
        assert opt.scales == pytest.approx([c1.flat[flat], c2.flat[flat]], abs=2e-3)
        assert opt.costs == pytest.approx(np.minimum(limits, h / 3), rel=1e-6)


def test_multipliers_make_the_optimal_policy_the_pointwise_lagrangian_maximiser() -> None:
    h, limits = 10, (0.5, 1.5)
    opt = bandit_optimum(limits, h)
    lam = opt.multipliers
    assert lam[0] > 0 and lam[1] > 0  # both bind (d = 0.05 and 0.15 < 1/3)
    grid = np.linspace(-1, 1, 401)
    a1, a2 = np.meshgrid(grid, grid, indexing="ij")
    rng = np.random.default_rng(0)
    for s in rng.uniform(-1, 1, (6, 2)):
        # maximise r(s, a) - sum_k lambda_k c_k(a) over a grid of joint actions
        lagrangian = 1 - ((a1 - s[0]) ** 2 + (a2 - s[1]) ** 2) / 2 - lam[0] * a1 ** 2 - lam[1] * a2 ** 2
        i = int(np.argmax(lagrangian))
        assert [a1.flat[i], a2.flat[i]] == pytest.approx(opt.scales * s, abs=5e-3)
    # and lambda_k = d value / d limit_k (finite differences)
    eps = 1e-5
    for k in range(2):
        up, down = np.array(limits), np.array(limits)
        up[k] += eps
        down[k] -= eps
        slope = (bandit_optimum(up, h).value - bandit_optimum(down, h).value) / (2 * eps)
        assert slope == pytest.approx(lam[k], rel=1e-4)


# ------------------------------------------------------------------------------------------ Monte Carlo evaluation


@pytest.mark.parametrize("k", [1, 2])
def test_evaluate_bandit_policy_agrees_with_the_optimum_and_tells_policies_apart(k: int) -> None:
    h, samples = 10, 20000
    opt = bandit_optimum(default_cost_limits(h, k), h)
    se = h * HALF_SD / math.sqrt(samples)  # an upper bound for the reward when k > 1
    value, costs = evaluate_bandit_policy(lambda s: s / 2, k, h, samples=samples, seed=1)
    assert costs.shape == (k,)
    assert abs(value - opt.value) < 4 * se
    assert np.all(np.abs(costs - opt.costs) < 4 * se)
    # a = s is the unconstrained optimum: a far higher return and costs four times the limit
    value, costs = evaluate_bandit_policy(lambda s: s, k, h, samples=samples, seed=1)
    assert value == pytest.approx(h)
    assert abs(value - opt.value) > 50 * se
    assert np.all(costs > 3 * opt.costs) and costs == pytest.approx(np.full(k, h / 3), abs=4 * h / math.sqrt(samples))
    # stochastic policies work: Gaussian noise of sd 0.1 around s / 2 loses h * 0.01 of return and adds as much cost
    rng = np.random.default_rng(2)
    value, costs = evaluate_bandit_policy(lambda s: s / 2 + 0.1 * rng.standard_normal(s.shape), k, h,
                                          samples=samples, seed=1)
    assert abs(value - (opt.value - h * 0.01)) < 6 * se
    assert np.all(np.abs(costs - (opt.costs + h * 0.01)) < 6 * se)
    # the same seed gives the same estimate
    assert evaluate_bandit_policy(lambda s: s / 2, k, h, seed=3)[0] == evaluate_bandit_policy(
        lambda s: s / 2, k, h, seed=3)[0]


def test_evaluate_bandit_policy_checks_the_actions_shape() -> None:
    with pytest.raises(ValueError, match="actions"):
        evaluate_bandit_policy(lambda s: s[:, :1], 2, 10, samples=100)


# ------------------------------------------------------------------------------------------ registry and training


def test_registered_under_exact_and_listed() -> None:
    entry = get_env(NAME)
    assert entry.group == "exact" and entry.description
    assert entry.family.env_kwargs is QuadraticBanditKwargs
    env = entry.family.factory(num_envs=2, num_costs=2, horizon=3, seed=0)
    assert isinstance(env, QuadraticBanditVecCMDP) and env.spec.max_episode_steps == 3
    with pytest.raises(ConfigError, match="unknown key"):
        entry.family.factory(num_envs=1, slipperiness=0.3)
    with pytest.raises(ConfigError, match="horizon"):
        make_quadratic_bandit(horizon=0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list"]) == 0
    listing = out.getvalue()
    exact = listing[listing.index("[exact]"):]
    assert NAME in exact.split("[", 2)[1]  # under the [exact] heading


def test_config_checks_env_kwargs_and_cost_limits_before_building() -> None:
    base = {"algo": "ppo_lag", "env": NAME, "total_steps": 200, "steps_per_epoch": 200}
    with pytest.raises(ConfigError, match="env_kwargs.num_costs"):
        resolve_config({**base, "env_kwargs": {"num_costs": 0}})
    with pytest.raises(ConfigError, match="env_kwargs.horizon"):
        resolve_config({**base, "env_kwargs": {"horizon": "long"}})
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_config({**base, "env_kwargs": {"max_steps": 3}})
    # cost names follow num_costs: effort_1 exists only with two costs
    resolve_config({**base, "env_kwargs": {"num_costs": 2}, "cost_limits": {"effort_1": 0.5}})
    with pytest.raises(ConfigError, match="effort_1"):
        resolve_config({**base, "cost_limits": {"effort_1": 0.5}})


def test_a_num_costs_beyond_its_bound_is_one_line_before_anything_is_built(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # env_kwargs.num_costs 10**9 was taken: the run built a billion cost names and arrays of a billion columns, and
    # ran out of memory in a traceback (or the machine's memory)
    out = tmp_path / "run"
    argv = ["train", "--env", NAME, "--total-steps", "200", "--set", "steps_per_epoch=200", "--out", str(out),
            "--no-progress", "--set", f"env_kwargs={{num_costs: {10**9}}}"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (f"cmdp: error: env_kwargs.num_costs must be an integer in [1, {MAX_NUM_COSTS}] "
                                       f"(a run's memory grows as its square), got {10**9}\n")
    assert not out.exists()
    for make in (lambda k: make_quadratic_bandit(num_costs=k), lambda k: bandit_optimum(1.0, num_costs=k),
                 lambda k: evaluate_bandit_policy(lambda s: s, k, samples=10)):
        with pytest.raises(ConfigError, match=rf"num_costs must be an integer in \[1, {MAX_NUM_COSTS}\]"):
            make(MAX_NUM_COSTS + 1)
    base = {"algo": "ppo_lag", "env": NAME, "total_steps": 200, "steps_per_epoch": 200}
    resolve_config({**base, "env_kwargs": {"num_costs": MAX_NUM_COSTS}})  # the bound itself is taken
    assert make_quadratic_bandit(num_costs=MAX_NUM_COSTS).spec.num_costs == MAX_NUM_COSTS


def test_trains_end_to_end_with_ppo_lag(tmp_path: Path) -> None:
    h = 5
    cfg, _ = resolve_config({"algo": "ppo_lag", "env": NAME, "env_kwargs": {"num_costs": 2, "horizon": h},
                             "cost_limits": [0.3, 1.0], "num_envs": 2, "total_steps": 400, "steps_per_epoch": 200,
                             "batch_size": 100, "update_iters": 2, "seed": 0})
    trainer = Trainer(cfg)
    rows: list[dict] = []
    summary = trainer.train(tmp_path, progress=False, on_epoch=rows.append)
    assert len(rows) == 2
    for row in rows:
        assert row["ep_len"] == h
        assert {"ep_cost/effort_0", "ep_cost/effort_1", "lambda/effort_0", "lambda/effort_1"} <= set(row)
    assert summary["cost_limits"] == {"effort_0": 0.3, "effort_1": 1.0}
    # the learnt policy evaluated by the oracle (observations normalised as in training): no policy beats the
    # unconstrained optimum
    sample = trainer.agent.actor.numpy_sampler()
    norm = trainer.run.obs_normalizer

    def act(s: np.ndarray) -> np.ndarray:
        x = s.astype(np.float64)
        return sample(norm(x, update=False) if norm is not None else x, np.random.default_rng(0), True)

    value, costs = evaluate_bandit_policy(act, 2, h, samples=2000)
    assert np.isfinite(value) and value <= bandit_optimum(math.inf, h, 2).value + 1e-9
    assert costs.shape == (2,) and np.all(costs >= 0)
