"""Tests of the exact tabular CMDPs (envs/exact.py): LP solver, exact evaluation, vec env, instances."""
from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from cmdp.registry import get_env
from cmdp.spec import ConfigError
from cmdp.envs.exact import (EXACT_CMDPS, LPInfeasibleError, TabularCMDP, TabularVecCMDP, evaluate_policy,
                        make_exact, solve_lp, state_action_visits)

NAMES = sorted(EXACT_CMDPS)


def one_step_cmdp(limit: float = 0.5) -> TabularCMDP:
    """State 0 acts once then the episode ends in terminal state 1.

    Action 0: reward 1, cost 1; action 1: reward 0, cost 0.
    """
    P = np.zeros((2, 2, 2))
    P[:, :, 1] = 1.0
    R = np.array([[1.0, 0.0], [0.0, 0.0]])
    C = np.array([[[1.0], [0.0]], [[0.0], [0.0]]])
    return TabularCMDP("one-step", P, R, C, np.array([1.0, 0.0]), np.array([False, True]), ("cost",), [limit])


def geometric_cmdp() -> TabularCMDP:
    """One live state with one action: reward 1, cost 2 per step, ends with probability 1/4 each step."""
    P = np.array([[[0.75, 0.25]], [[0.0, 1.0]]])
    R = np.array([[1.0], [0.0]])
    C = np.array([[[2.0]], [[0.0]]])
    return TabularCMDP("geometric", P, R, C, np.array([1.0, 0.0]), np.array([False, True]), ("cost",), [1.0])


def sample_actions(policy: np.ndarray, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per copy from the rows policy[states], vectorised."""
    cum = np.cumsum(policy[states], axis=1)
    cum[:, -1] = 1.0
    return (cum <= rng.random(len(states))[:, None]).sum(axis=1)


# ---------------------------------------------------------------------------------------------- LP


def test_lp_hand_solvable_one_step():
    m = one_step_cmdp(0.5)
    sol = solve_lp(m)
    assert sol.value == pytest.approx(0.5, abs=1e-8)
    assert sol.costs == pytest.approx([0.5], abs=1e-8)
    assert sol.policy[0] == pytest.approx([0.5, 0.5], abs=1e-8)
    assert sol.duals == pytest.approx([1.0], abs=1e-8)  # one unit of limit buys one unit of reward
    assert sol.expected_length == pytest.approx(1.0)
    free = solve_lp(m, constrained=False)
    assert free.value == pytest.approx(1.0) and free.policy[0] == pytest.approx([1.0, 0.0])
    assert free.costs == pytest.approx([1.0]) and free.duals == pytest.approx([0.0])
    loose = solve_lp(m, cost_limits=2.0)  # limit does not bind
    assert loose.value == pytest.approx(1.0) and loose.duals == pytest.approx([0.0], abs=1e-9)
    assert solve_lp(m, cost_limits=0.0).value == pytest.approx(0.0, abs=1e-9)


def test_lp_infeasible_raises():
    m = one_step_cmdp(0.5)
    C = np.array(m.C)
    C[0, 1, 0] = 0.8  # now every action costs at least 0.8 > 0.5
    bad = TabularCMDP("costly", m.P, m.R, C, m.mu0, m.terminal, ("cost",), [0.5])
    with pytest.raises(LPInfeasibleError, match="no policy meets"):
        solve_lp(bad)
    assert solve_lp(bad, constrained=False).value == pytest.approx(1.0)


def test_evaluate_policy_hand_solvable():
    m = geometric_cmdp()  # expected length 1 / 0.25 = 4
    ret, costs = evaluate_policy(m, np.ones((2, 1)))
    assert ret == pytest.approx(4.0) and costs == pytest.approx([8.0])
    ret, costs = evaluate_policy(one_step_cmdp(), np.array([[0.3, 0.7], [0.5, 0.5]]))
    assert ret == pytest.approx(0.3) and costs == pytest.approx([0.3])


@pytest.mark.parametrize("name", NAMES)
def test_lp_policy_reproduces_lp_value(name):
    m = EXACT_CMDPS[name]()
    for sol in (solve_lp(m), solve_lp(m, constrained=False)):
        ret, costs = evaluate_policy(m, sol.policy)
        assert ret == pytest.approx(sol.value, rel=1e-6, abs=1e-8)
        assert costs == pytest.approx(sol.costs, rel=1e-6, abs=1e-8)
        assert np.allclose(state_action_visits(m, sol.policy), sol.visits, atol=1e-7)
        assert np.allclose(sol.policy.sum(axis=1), 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_policy_matches_monte_carlo(name):
    """First episode of each of many copies: an unbiased sample of episode totals to compare with."""
    m = EXACT_CMDPS[name]()
    uniform = np.full((m.num_states, m.num_actions), 1.0 / m.num_actions)
    policy = 0.5 * solve_lp(m).policy + 0.5 * uniform
    exact_ret, exact_costs = evaluate_policy(m, policy)
    exact_len = state_action_visits(m, policy).sum()
    n = 20_000
    env = TabularVecCMDP(m, n)
    rng = np.random.default_rng(1)
    obs = env.reset(seed=0)
    ret, costs, length = np.zeros(n), np.zeros((n, m.num_costs)), np.zeros(n)
    running = np.ones(n, dtype=bool)
    for _ in range(2_000):
        res = env.step(sample_actions(policy, obs, rng))
        ret += np.where(running, res.reward, 0.0)
        costs += np.where(running[:, None], res.costs, 0.0)
        length += running
        running &= ~res.terminated
        obs = res.obs
        if not running.any():
            break
    assert not running.any()
    se = lambda x: x.std() / np.sqrt(n) + 1e-12  # noqa: E731
    assert abs(ret.mean() - exact_ret) < 4 * se(ret)
    for k in range(m.num_costs):
        assert abs(costs[:, k].mean() - exact_costs[k]) < 4 * se(costs[:, k])
    assert abs(length.mean() - exact_len) < 4 * se(length)


# ------------------------------------------------------------------------------------- instances


@pytest.mark.parametrize("name", NAMES)
def test_instance_limits_bind_and_problem_is_not_trivial(name):
    m = EXACT_CMDPS[name]()
    limits = m.cost_limits
    con, free = solve_lp(m), solve_lp(m, constrained=False)
    # the unconstrained optimum clearly violates every limit
    assert np.all(free.costs > 1.3 * limits), (free.costs, limits)
    # the constraint costs clearly: > 10% of the unconstrained return
    assert con.value < 0.9 * free.value, (con.value, free.value)
    # every limit binds: the optimum spends the whole budget, and more budget buys more return
    assert con.costs == pytest.approx(limits, rel=1e-6)
    assert np.all(con.duals > 0.05), con.duals
    for k in range(m.num_costs):
        relaxed = limits.copy()
        relaxed[k] *= 1.1
        assert solve_lp(m, cost_limits=relaxed).value > con.value + 0.01 * abs(con.value), (k, relaxed)
    # the problem is not trivial: the best (nearly) zero-cost policy is clearly worse
    safe = solve_lp(m, cost_limits=0.05 * limits)
    assert con.value > safe.value + 0.1 * abs(con.value), (con.value, safe.value)
    # values of order 1-10 so 5% relative tolerances are meaningful, and short episodes
    assert 1.0 <= con.value <= 20.0 and 1.0 <= free.value <= 20.0
    uniform = np.full((m.num_states, m.num_actions), 1.0 / m.num_actions)
    for policy in (con.policy, free.policy, safe.policy, uniform):
        assert state_action_visits(m, policy).sum() < 30.0


def test_two_cost_both_constraints_bind():
    m = EXACT_CMDPS["ExactTwoCost-v0"]()
    assert m.cost_names == ("cost_a", "cost_b")
    con = solve_lp(m)
    assert con.costs == pytest.approx(m.cost_limits, rel=1e-6)
    assert np.all(con.duals > 0.5)
    # dropping either constraint (limit -> effectively infinite) changes the optimum
    for k in range(2):
        only_other = m.cost_limits.copy()
        only_other[k] = 1e6
        assert solve_lp(m, cost_limits=only_other).value > con.value + 0.2


def test_registered_and_factory():
    for name in NAMES:
        entry = get_env(name)
        assert entry.group == "exact"
        env = entry.family.factory(num_envs=3)
        assert isinstance(env, TabularVecCMDP) and env.num_envs == 3
        m = env.cmdp
        assert isinstance(env.spec.observation_space, gymnasium.spaces.Discrete)
        assert env.spec.observation_space.n == m.num_states and env.spec.action_space.n == m.num_actions
        assert env.spec.cost_names == list(m.cost_names)
        assert np.array_equal(env.spec.cost_limits, m.cost_limits)
        assert env.spec.max_episode_steps is None
        obs = env.reset(seed=0)
        assert obs.dtype == np.int64 and obs.shape == (3,)
        assert all(env.spec.observation_space.contains(int(o)) for o in obs)
    env = get_env("ExactGrid-v0").family.factory(num_envs=2, max_episode_steps=7, seed=3)
    assert env.spec.max_episode_steps == 7
    with pytest.raises(ConfigError, match="unknown key"):
        get_env("ExactChain-v0").family.factory(num_envs=1, slipperiness=0.3)
    with pytest.raises(ConfigError, match="max_episode_steps"):
        make_exact("ExactChain-v0", max_episode_steps=0)


# ------------------------------------------------------------------------------------------ env


def rollout(env: TabularVecCMDP, seed: int | None, steps: int, action_seed: int = 0):
    rng = np.random.default_rng(action_seed)
    obs = [env.reset(seed=seed)]
    rewards, dones = [], []
    for _ in range(steps):
        res = env.step(rng.integers(0, env.cmdp.num_actions, env.num_envs))
        obs.append(res.obs)
        rewards.append(res.reward)
        dones.append(res.terminated | res.truncated)
    return np.array(obs), np.array(rewards), np.array(dones)


def test_seeding_determinism():
    a = rollout(make_exact("ExactGrid-v0", 8), 123, 60)
    b = rollout(make_exact("ExactGrid-v0", 8), 123, 60)
    c = rollout(make_exact("ExactGrid-v0", 8), 124, 60)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    # re-seeding the same instance reproduces it; reset(None) continues the generator instead
    env = make_exact("ExactGrid-v0", 8)
    first = rollout(env, 123, 60)
    assert np.array_equal(rollout(env, 123, 60)[0], first[0])
    cont = rollout(env, None, 60)
    other = make_exact("ExactGrid-v0", 8)
    rollout(other, 123, 60)
    assert np.array_equal(rollout(other, None, 60)[0], cont[0])
    assert not np.array_equal(cont[0], first[0])


def test_auto_reset_and_episode_stats():
    m = EXACT_CMDPS["ExactGrid-v0"]()
    n = 64
    env = TabularVecCMDP(m, n)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    starts = np.flatnonzero(m.mu0 > 0)
    ret, cost, length = np.zeros(n), np.zeros((n, 1)), np.zeros(n, dtype=np.int64)
    finished = 0
    for _ in range(300):
        actions = rng.integers(0, 4, n).astype(np.float64)  # float actions are accepted
        res = env.step(actions)
        assert not m.terminal[res.obs].any()
        ret += res.reward
        cost += res.costs
        length += 1
        assert not res.truncated.any()
        done = res.terminated
        assert np.array_equal(m.terminal[res.final_obs], done)
        assert np.array_equal(res.final_obs[~done], res.obs[~done])
        assert np.isin(res.obs[done], starts).all()
        idx = np.flatnonzero(done)
        assert np.allclose(res.episodes.returns, ret[idx])
        assert np.allclose(res.episodes.costs, cost[idx])
        assert np.array_equal(res.episodes.lengths, length[idx])
        ret[idx], cost[idx], length[idx] = 0.0, 0.0, 0
        finished += len(idx)
    assert finished > 100


def test_deterministic_episode_and_truncation():
    m = EXACT_CMDPS["ExactChain-v0"]()
    env = TabularVecCMDP(m, 4)
    assert np.array_equal(env.reset(seed=0), np.zeros(4))
    sprint = np.ones(4, dtype=np.int64)
    for t in range(5):
        res = env.step(sprint)
        assert res.terminated.all() == (t == 4)
    assert np.array_equal(res.final_obs, np.full(4, 5)) and np.array_equal(res.obs, np.zeros(4))
    assert res.episodes.returns == pytest.approx(np.full(4, 10.0))
    assert res.episodes.costs == pytest.approx(np.full((4, 1), 5.0))
    assert np.array_equal(res.episodes.lengths, np.full(4, 5))
    # a time limit of 3 steps truncates every sprinting episode at position 3
    env = TabularVecCMDP(m, 4, max_episode_steps=3)
    assert env.spec.max_episode_steps == 3
    env.reset(seed=0)
    for t in range(3):
        res = env.step(sprint)
    assert res.truncated.all() and not res.terminated.any()
    assert np.array_equal(res.final_obs, np.full(4, 3)) and np.array_equal(res.obs, np.zeros(4))
    assert np.array_equal(res.episodes.lengths, np.full(4, 3))


def test_bad_actions_raise():
    env = make_exact("ExactChain-v0", 2)
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.array([0, 2]))
    with pytest.raises(ValueError):
        env.step(np.array([0, 1, 1]))


# --------------------------------------------------------------------------------------- validation


def test_bad_tables_raise():
    m = one_step_cmdp()
    P = np.array(m.P)
    P[0, 0] = [0.5, 0.4]
    with pytest.raises(ValueError, match="sum to 1"):
        TabularCMDP("bad", P, m.R, m.C, m.mu0, m.terminal, ("cost",), [0.5])
    with pytest.raises(ValueError, match="shape"):
        TabularCMDP("bad", m.P, m.R[:, :1], m.C, m.mu0, m.terminal, ("cost",), [0.5])
    with pytest.raises(ValueError, match="one cost name"):
        TabularCMDP("bad", m.P, m.R, m.C, m.mu0, m.terminal, ("a", "b"), [0.5, 0.5])
    with pytest.raises(ValueError, match="terminal"):
        TabularCMDP("bad", m.P, m.R, m.C, np.array([0.5, 0.5]), m.terminal, ("cost",), [0.5])
    loop = np.array(m.P)
    loop[0, 1] = [1.0, 0.0]  # action 1 stays in state 0 forever: undiscounted totals unbounded
    with pytest.raises(ValueError, match="never terminates"):
        TabularCMDP("bad", loop, m.R, m.C, m.mu0, m.terminal, ("cost",), [0.5])
    with pytest.raises(ValueError, match="shape"):
        evaluate_policy(m, np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="sum to 1"):
        evaluate_policy(m, np.array([[0.5, 0.2], [0.5, 0.5]]))


def test_tables_are_read_only():
    m = EXACT_CMDPS["ExactChain-v0"]()
    with pytest.raises(ValueError):
        m.P[0, 0, 0] = 0.0
