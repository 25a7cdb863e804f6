"""The base of off-policy solvers: their config, the replay schedule's hooks, and Polyak-averaged targets.

An off-policy solver declares `schedule = Schedule.OFF_POLICY` and `critics = Critics.ACTION_VALUE`, builds its
own agent (`make_agent(spec, cfg)`: actor, critics and target critics) and implements two methods the trainer's
replay loop calls:

- `update_step(sample)`: one gradient step from a `ReplaySample`; returns scalars to log (averaged per epoch);
- `end_epoch(mean_episode_costs)`: once per epoch (the multipliers move here); returns scalars to log.

The loop (`cmdp.schedules.OffPolicyLoop`): each epoch resets the environments, then repeatedly collects
`update_every` steps per copy into the replay buffer and, once `update_after` steps were collected, takes
`updates_per_step` gradient steps per collected step. Actions are uniformly random for the first
`random_steps` steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cmdp.config import ConfigError, TrainConfig
from cmdp.family import Critics, Schedule
from cmdp.replay import ReplaySample
from cmdp.solver import Solver
from cmdp.spec import CMDPSpec


@dataclass
class OffPolicyConfig(TrainConfig):
    """Hyperparameters every off-policy solver has. Defaults are the usual SAC ones (Haarnoja et al. 2018, as in
    Stable-Baselines3: Adam 3e-4, batch 256, Polyak 0.005, replay 1e6, [256, 256] ReLU, one update per step) with
    2,000-step epochs and 10,000 steps of random warm-up; matching OmniSafe's off-policy configs value for value
    is the off-policy issue's work."""

    steps_per_epoch: int = 2000
    gamma: float = 0.99
    cost_gamma: float = 0.99
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "relu"
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    lr_decay: bool = False
    critic_l2: float = 0.0
    max_grad_norm: float = 40.0
    batch_size: int = 256
    replay_size: int = 1_000_000
    update_after: int = 10_000  # env steps (all copies together) before the first update
    random_steps: int = 10_000  # env steps (all copies together) of uniformly random actions at the start
    update_every: int = 1  # env steps per copy between rounds of updates
    updates_per_step: float = 1.0  # gradient steps per collected env step (all copies together)
    polyak: float = 0.005  # target <- (1 - polyak) target + polyak online
    save_replay: bool = True  # checkpoint the replay buffer (exact resume); false: resume refills it
    obs_normalize: bool = False  # stored observations would go stale as running statistics move; refused

    def validate(self) -> None:
        super().validate()
        for name in ("batch_size", "replay_size", "update_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("update_after", "random_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("gamma", "cost_gamma", "polyak"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("actor_lr", "critic_lr", "max_grad_norm", "updates_per_step"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.critic_l2 < 0:
            raise ConfigError(f"critic_l2 must be >= 0, got {self.critic_l2}")
        if any(h < 1 for h in [*self.actor_hidden, *self.critic_hidden]):
            raise ConfigError(f"hidden layer sizes must be >= 1, got actor_hidden={self.actor_hidden}, "
                              f"critic_hidden={self.critic_hidden}")
        if self.activation not in ("tanh", "relu"):
            raise ConfigError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")
        if self.obs_normalize:
            raise ConfigError("obs_normalize is not available to off-policy solvers (stored observations would "
                              "be normalised with stale statistics); set obs_normalize=false")
        if self.steps_per_epoch % (self.num_envs * self.update_every):
            raise ConfigError(f"steps_per_epoch ({self.steps_per_epoch}) must be a multiple of num_envs x "
                              f"update_every ({self.num_envs} x {self.update_every})")


@torch.no_grad()
def polyak_update(target: torch.nn.Module, online: torch.nn.Module, polyak: float) -> None:
    """target <- (1 - polyak) * target + polyak * online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(1.0 - polyak).add_(o, alpha=polyak)


class OffPolicySolver(Solver):
    """Base of replay-based solvers (see the module docstring)."""

    Config = OffPolicyConfig
    schedule = Schedule.OFF_POLICY
    critics = Critics.ACTION_VALUE

    @classmethod
    def make_agent(cls, spec: CMDPSpec, cfg: Any) -> torch.nn.Module:
        """The solver's networks for `spec`: a module with `actor` (with `numpy_sampler()`) and `critic`."""
        raise NotImplementedError

    def update_step(self, sample: ReplaySample) -> dict[str, float]:
        raise NotImplementedError

    def end_epoch(self, mean_episode_costs: np.ndarray) -> dict[str, float]:
        return {}
