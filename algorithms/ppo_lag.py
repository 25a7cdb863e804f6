"""PPO-Lagrangian (Ray, Achiam and Amodei 2019, "Benchmarking Safe Exploration in Deep RL").

PPO on the Lagrangian L(pi, lambda) = J_r(pi) - sum_k lambda_k (J_c,k(pi) - d_k): the actor maximises
the clipped surrogate of (A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k), and each lambda_k moves
once per epoch by projected gradient ascent on the epoch's mean episode cost minus its limit.
Defaults follow OmniSafe's PPOLag for Safety-Gymnasium (omnisafe/configs/on-policy/PPOLag.yaml):
cost limit 25, multiplier init 0.001, multiplier lr 0.035 with Adam, target KL 0.02.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmdp.lagrange import LagrangeOptions, Multiplier
from cmdp.losses import lagrangian_advantage
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@dataclass
class PPOLagConfig(LagrangeOptions, PolicyGradientConfig):
    """PPO's keys and the multiplier's (`cmdp.lagrange.LagrangeOptions`: init, lr, optimizer, bound, delay)."""


@register_algorithm("ppo_lag")
class PPOLag(PolicyGradientSolver):
    """PPO with one Lagrange multiplier per cost."""

    Config = PPOLagConfig

    def __init__(self, cfg: PPOLagConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.multiplier = self.make_multiplier(cfg)

    def make_multiplier(self, cfg: Any) -> Multiplier:
        """The multipliers the config's keys describe (gradient ascent; PID for pid_lag)."""
        return cfg.multiplier(self.spec.cost_limits)

    def update_multipliers(self, mean_episode_costs: np.ndarray) -> None:
        self.multiplier.update(mean_episode_costs)

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        return lagrangian_advantage(adv, self.multiplier.value)

    def multipliers(self) -> dict[str, float]:
        return dict(zip(self.spec.cost_names, self.multiplier.value.tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "multiplier": self.multiplier.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.multiplier.load_state_dict(state["multiplier"])
