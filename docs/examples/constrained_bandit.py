"""A constrained multi-armed bandit: the example of docs/adding-an-environment.md.

Each episode is one pull. Arm i pays reward REWARDS[i] and cost COSTS[i], each with Gaussian noise; the
cost limit binds, so the constrained optimum mixes the best affordable arm with the next better one, and its
value has a closed form (`optimum`), which makes the environment a correctness check as well as an example.

    cmdp train --plugin docs/examples/constrained_bandit.py --env ConstrainedBandit-v0 --algo ppo_lag
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import gymnasium
import numpy as np

from cmdp.control import VectorFamily
from cmdp.registry import register_env
from cmdp.spec import CMDPSpec, ConfigError, CostSpec
from cmdp.vec_env import SyncVecCMDP, VecCMDP

REWARDS = np.array([1.0, 2.5, 4.0])
COSTS = np.array([0.0, 1.0, 3.0])
DEFAULT_LIMIT = 1.5


@dataclass
class BanditKwargs:
    """The `env_kwargs` the bandit accepts: checked (names, types, values) before anything is built."""

    noise: float = 0.1  # standard deviation of the reward and cost noise

    def validate(self) -> None:
        if self.noise < 0:
            raise ConfigError(f"env_kwargs.noise must be >= 0, got {self.noise}")


class ConstrainedBandit:
    """One copy, behind the `cmdp.vec_env.CMDPEnv` protocol: reset, step, close and a spec."""

    def __init__(self, noise: float = 0.1) -> None:
        self.noise = noise
        self.spec = CMDPSpec(gymnasium.spaces.Box(0.0, 1.0, (1,)), gymnasium.spaces.Discrete(len(REWARDS)),
                             (CostSpec("cost", DEFAULT_LIMIT),), max_episode_steps=1)
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return np.zeros(1)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool, bool]:
        arm = int(action)
        reward = REWARDS[arm] + self.noise * self.rng.standard_normal()
        cost = COSTS[arm] + self.noise * self.rng.standard_normal()
        return np.zeros(1), float(reward), np.array([cost]), True, False  # every pull ends its episode

    def close(self) -> None:
        pass


def make_bandit(num_envs: int = 1, noise: float = 0.1) -> VecCMDP:
    """N copies stepped in this process (a pull costs microseconds: subprocesses would only add overhead)."""
    return SyncVecCMDP([functools.partial(ConstrainedBandit, noise) for _ in range(num_envs)])


def optimum(limit: float = DEFAULT_LIMIT) -> tuple[float, float]:
    """The constrained optimum's expected (reward, cost): the best mixture of two arms whose cost meets `limit`
    (2.875 at cost 1.5 for the default limit: arm 1 three times in four, arm 2 once)."""
    best = (-np.inf, 0.0)
    for i in range(len(REWARDS)):
        for j in range(len(REWARDS)):
            if COSTS[i] <= limit <= COSTS[j] and COSTS[j] > COSTS[i]:
                p = (limit - COSTS[i]) / (COSTS[j] - COSTS[i])  # probability of the dearer arm
                best = max(best, ((1 - p) * REWARDS[i] + p * REWARDS[j], limit))
            elif COSTS[i] <= limit:
                best = max(best, (REWARDS[i], COSTS[i]))
    return best


register_env("ConstrainedBandit-v0",
             VectorFamily(make_bandit, BanditKwargs, cost_names=["cost"], copies_in_process=True),
             group="examples", description="3-armed bandit, one cost (constrained optimum 2.875 at cost 1.5)")
