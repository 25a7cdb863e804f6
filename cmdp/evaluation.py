"""Evaluate a saved policy: mean episode return and cost over fresh episodes; intervals of measured proportions."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from cmdp.networks import ActorCritic, Sampler, action_map, encode_obs
from cmdp.normalize import ObsNormalizer
from cmdp.spec import CMDPSpec
from cmdp.vec_env import EpisodeStats, VecCMDP


@dataclass
class EvalResult:
    """Per-episode numbers of an evaluation (costs: (episodes, K))."""

    returns: np.ndarray
    costs: np.ndarray
    lengths: np.ndarray
    cost_names: list[str]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"episodes": len(self.returns), "return_mean": float(self.returns.mean()),
                               "return_std": float(self.returns.std()), "len_mean": float(self.lengths.mean())}
        for i, name in enumerate(self.cost_names):
            out[f"cost_mean/{name}"] = float(self.costs[:, i].mean())
            out[f"cost_std/{name}"] = float(self.costs[:, i].std())
        return out


def policy_actions(spec: CMDPSpec, sample: Sampler, obs_normalizer: ObsNormalizer | None, obs: np.ndarray,
                   rng: np.random.Generator, deterministic: bool,
                   to_env: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """What a saved policy does in evaluation: raw observations (N, ...) encoded, normalised with frozen statistics,
    actions sampled (`sample` is the actor's `numpy_sampler()`) and made the environment's as in training (`to_env`:
    `cmdp.networks.action_map(spec.action_space, action_bounds)`, built once by the caller)."""
    x = encode_obs(spec.observation_space, obs)
    if obs_normalizer is not None:
        x = obs_normalizer(x, update=False)
    return to_env(sample(x, rng, deterministic))


@torch.no_grad()
def evaluate(env: VecCMDP, agent: ActorCritic, obs_normalizer: ObsNormalizer | None, episodes: int,
             seed: int, deterministic: bool = True, max_steps: int = 10_000_000,
             action_bounds: str = "scale") -> EvalResult:
    """Run `episodes` complete episodes (normaliser frozen) and return their statistics."""
    sample = agent.actor.numpy_sampler()
    to_env = action_map(env.spec.action_space, action_bounds)
    rng = np.random.default_rng(seed)
    obs = env.reset(seed=seed)
    done: list[EpisodeStats] = []
    finished, steps = 0, 0
    while finished < episodes and steps < max_steps:
        actions = policy_actions(env.spec, sample, obs_normalizer, obs, rng, deterministic, to_env)
        res = env.step(actions)
        obs = res.obs
        steps += 1
        if len(res.episodes.returns):
            done.append(res.episodes)
            finished += len(res.episodes.returns)
    stats = EpisodeStats.concatenate(done, env.spec.num_costs)
    return EvalResult(stats.returns[:episodes], stats.costs[:episodes], stats.lengths[:episodes],
                      env.spec.cost_names)


def wilson_interval(successes: float, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / trials` (Wilson 1927), within [0, 1].

    Unlike the normal approximation p +- z sqrt(p (1 - p) / n) it keeps a sensible width at p = 0 or 1 and for
    small n. `successes` may be fractional (a win rate that counts a tie as half a win). (nan, nan) for no trials.
    """
    from statistics import NormalDist

    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if trials == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, n, z2 = successes / trials, trials, z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)
