"""The vectorised CMDP API (auto-reset, episode statistics), networks, and the Safety-Gymnasium adapter."""
import dataclasses

import gymnasium
import numpy as np
import pytest
import torch

from cmdp.networks import ActorCritic, encode_obs
from cmdp.spec import CMDPSpec, ConfigError, CostSpec
from cmdp.vec_env import SubprocVecCMDP, SyncVecCMDP


class CountdownEnv:
    """Episode of `length` steps; reward = step index, cost = 1 on even steps; obs = steps left."""

    def __init__(self, length: int = 3, terminate: bool = True) -> None:
        self.length, self.terminate = length, terminate
        self.spec = CMDPSpec(gymnasium.spaces.Box(-10, 10, (1,)), gymnasium.spaces.Discrete(2),
                             (CostSpec("even", 1.0),), length)
        self.t = 0

    def reset(self, seed=None):
        self.t = 0
        return np.array([float(self.length)])

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        return (np.array([float(self.length - self.t)]), float(self.t), np.array([float(self.t % 2 == 0)]),
                end and self.terminate, end and not self.terminate)

    def close(self):
        pass


def _run(vec, steps):
    vec.reset(seed=0)
    results = [vec.step(np.zeros(vec.num_envs, dtype=np.int64)) for _ in range(steps)]
    vec.close()
    return results


@pytest.mark.parametrize("terminate", [True, False])
def test_sync_vec_auto_reset_and_episode_stats(terminate):
    vec = SyncVecCMDP([lambda: CountdownEnv(3, terminate), lambda: CountdownEnv(3, terminate)])
    res = _run(vec, 4)
    last = res[2]
    flag = last.terminated if terminate else last.truncated
    assert flag.all()
    np.testing.assert_array_equal(last.final_obs[:, 0], [0.0, 0.0])  # last obs of the episode
    np.testing.assert_array_equal(last.obs[:, 0], [3.0, 3.0])  # first obs of the next one
    np.testing.assert_array_equal(last.episodes.returns, [6.0, 6.0])  # 1 + 2 + 3
    np.testing.assert_array_equal(last.episodes.costs[:, 0], [1.0, 1.0])  # step 2 only
    np.testing.assert_array_equal(last.episodes.lengths, [3, 3])
    assert len(res[0].episodes.returns) == 0 and len(res[3].episodes.returns) == 0


def test_subprocess_vec_matches_sync():
    fns = [CountdownEnv, CountdownEnv]
    sync = _run(SyncVecCMDP(fns), 5)
    sub = _run(SubprocVecCMDP(fns), 5)
    for a, b in zip(sync, sub):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.reward, b.reward)
        np.testing.assert_array_equal(a.episodes.returns, b.episodes.returns)


def _broken_env():
    raise RuntimeError("simulator failed to start")


def test_subprocess_failure_is_reported():
    with pytest.raises(RuntimeError, match="simulator failed to start"):
        SubprocVecCMDP([_broken_env])


def test_spec_limits_validation():
    spec = CountdownEnv().spec
    assert spec.with_limits(3).cost_limits.tolist() == [3.0]
    assert spec.with_limits({"even": 0}).cost_limits.tolist() == [0.0]
    for bad in (-1, "ten", float("nan"), True, [1, 2], {"odd": 1}):
        with pytest.raises(ConfigError, match="cost_limits"):
            spec.with_limits(bad)


def test_signed_costs_take_negative_limits_and_counts_do_not():
    """A cost that is a score (a cost model's, CostSpec.signed) may have a limit below 0, as safe-rlhf's threshold
    may; a cost that counts something may not, both on a spec and at config time (check_limits)."""
    from dataclasses import replace

    from cmdp.spec import CostSpec, check_limits

    counts = CountdownEnv().spec
    scores = replace(counts, costs=(CostSpec("even", 0.0, signed=True),))
    assert scores.with_limits(-2.5).cost_limits.tolist() == [-2.5]
    assert scores.with_limits(-2.5).costs[0].signed
    with pytest.raises(ConfigError, match="must be a non-negative number, got -2.5"):
        counts.with_limits(-2.5)
    for bad in (float("nan"), float("-inf"), "low", True):
        with pytest.raises(ConfigError, match="must be a finite number"):
            scores.with_limits(bad)
    check_limits(["cost"], -1.0, signed=True)
    check_limits(None, [-1.0], signed=True)
    with pytest.raises(ConfigError, match="non-negative"):
        check_limits(["cost"], -1.0)


def test_numpy_sampler_is_the_torch_policy():
    torch.manual_seed(0)
    box = ActorCritic(gymnasium.spaces.Box(-1, 1, (5,)), gymnasium.spaces.Box(-1, 1, (2,)), 1, [16, 16], [16])
    obs = np.random.default_rng(0).normal(size=(4, 5))
    mean_np = box.actor.numpy_sampler()(obs, np.random.default_rng(0), True)
    mean_torch = box.actor.mean(torch.as_tensor(obs, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(mean_np, mean_torch, rtol=1e-5, atol=1e-6)
    draws = box.actor.numpy_sampler()(np.repeat(obs[:1], 20000, 0), np.random.default_rng(1), False)
    np.testing.assert_allclose(draws.std(0), np.exp(box.actor.log_std.detach().numpy()), rtol=0.03)

    disc = ActorCritic(gymnasium.spaces.Discrete(3), gymnasium.spaces.Discrete(4), 1, [16], [16])
    with torch.no_grad():
        disc.actor.logits[-1].weight.normal_(0, 1.0)  # a non-uniform policy
    x = encode_obs(gymnasium.spaces.Discrete(3), np.array([1] * 40000))
    counts = np.bincount(disc.actor.numpy_sampler()(x, np.random.default_rng(2), False), minlength=4) / 40000
    probs = disc.actor.probs(torch.as_tensor(x[:1], dtype=torch.float32))[0].detach().numpy()
    np.testing.assert_allclose(counts, probs, atol=0.01)


def test_ensemble_critic_heads_are_independent_mlps():
    torch.manual_seed(0)
    ac = ActorCritic(gymnasium.spaces.Box(-1, 1, (3,)), gymnasium.spaces.Discrete(2), 2, [8], [8, 8])
    x = torch.randn(5, 3)
    out = ac.critic(x)
    assert out.shape == (5, 3)
    w, b = ac.critic.weights, ac.critic.biases
    for e in range(3):
        h = torch.tanh(x @ w[0][e] + b[0][e])
        h = torch.tanh(h @ w[1][e] + b[1][e])
        torch.testing.assert_close(out[:, e], (h @ w[2][e] + b[2][e])[:, 0])
    out[:, 1].sum().backward()  # head 1's loss must not move heads 0 and 2
    assert w[0].grad[0].abs().sum() == 0 and w[0].grad[2].abs().sum() == 0 and w[0].grad[1].abs().sum() > 0


# --- Safety-Gymnasium ---------------------------------------------------------------------------

def test_ndarray_dataclass_defaults_shim():
    from cmdp.envs.safety_gym_compat import ndarray_dataclass_defaults

    with pytest.raises(ValueError, match="mutable default"):  # what Python 3.11 does on its own
        @dataclasses.dataclass
        class Plain:
            color: np.ndarray = np.zeros(3)

    with ndarray_dataclass_defaults():
        @dataclasses.dataclass
        class Geom:
            color: np.ndarray = np.ones(3)
            size: float = 0.5

        @dataclasses.dataclass(eq=False)
        class Other:
            group: np.ndarray = np.zeros(2)

    a, b = Geom(), Geom()
    a.color[0] = 7.0
    assert b.color.tolist() == [1.0, 1.0, 1.0]  # each instance owns a copy
    assert Other().group.tolist() == [0.0, 0.0]
    assert dataclasses.dataclass.__module__ == "dataclasses"  # the patch is undone


def test_registered_safety_gym_tasks_exist_and_make():
    from cmdp.registry import envs
    from cmdp.envs.safety_gym import import_safety_gymnasium, task_names

    import_safety_gymnasium()
    names = set(task_names())
    assert {"SafetyPointGoal1-v0", "SafetyCarButton2-v0", "SafetyRacecarPush0-v0", "SafetyDoggoCircle1-v0",
            "SafetyHumanoidVelocity-v1", "SafetySwimmerVelocity-v1"} <= names
    assert len(names) == 5 * 4 * 3 + 6
    missing = sorted(n for n in names if n not in gymnasium.registry)
    assert not missing, missing
    assert names <= set(envs())


@pytest.mark.parametrize("name", ["SafetyPointGoal1-v0", "SafetyHopperVelocity-v1"])
def test_safety_gym_vec_env_seeded_and_costs(name):
    from cmdp.registry import get_env

    def trajectory(num_envs, seed):
        env = get_env(name).family.factory(num_envs=num_envs)
        obs = [env.reset(seed=seed)]
        rng = np.random.default_rng(0)
        costs = []
        for _ in range(30):
            act = rng.uniform(-1, 1, size=(2, *env.spec.action_space.shape))[:num_envs]
            res = env.step(act)
            obs.append(res.obs)
            costs.append(res.costs)
        env.close()
        return np.array(obs), np.array(costs)

    o1, c1 = trajectory(2, seed=3)
    o2, _ = trajectory(2, seed=3)
    o3, _ = trajectory(2, seed=4)
    np.testing.assert_array_equal(o1, o2)
    assert not np.array_equal(o1, o3)
    assert c1.shape == (30, 2, 1)
    single, _ = trajectory(1, seed=3)  # in-process copy 0 == subprocess copy 0
    np.testing.assert_array_equal(single[:, 0], o1[:, 0])
