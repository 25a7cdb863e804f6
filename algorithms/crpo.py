"""CRPO (Xu, Liang and Lan 2021, "CRPO: A New Approach for Safe Reinforcement Learning with Convergence
Guarantee", ICML) on PPO's clipped surrogate.

Each epoch, if every cost's estimate is within its limit plus a tolerance eta, the actor improves the reward;
otherwise it lowers one violated cost (the paper allows any; this file takes the one furthest above its limit +
eta). No multiplier: the step's objective switches, so its surrogate's advantage is A_r or -A_c,k.

Defaults: `crpo_tolerance` 2.0 is OmniSafe's `distance` (omnisafe/configs/on-policy/OnCRPO.yaml), set there for
cost_limit 25; it is an absolute number, so scale it with your limits. Every other key is PolicyGradientConfig's
(OmniSafe's PPOLag.yaml). Differences from OmniSafe's OnCRPO (omnisafe/algorithms/on_policy/primal/crpo.py): it
takes TRPO steps (target KL 0.01, critic lr 1e-3, no lr decay) and handles one cost; here the step is PPO's, as
in the rest of the family, and any number of costs is handled.

Tests: tests/test_adding_an_algorithm.py checks that docs/adding-an-algorithm.md shows this file verbatim and
compares it with the LP optimum of ExactChain-v0 (seed 0) with the guide's settings; tests/test_first_order_zoo.py
trains it from the CLI, resumes it bit-exactly, refuses a negative tolerance, and (slow) checks it against the LP
optimum of ExactTwoCost-v0. The guide's section 11 gives the measured numbers.

    cmdp train --algo crpo --env ExactChain-v0 --set crpo_tolerance=0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmdp.config import ConfigError
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@dataclass
class CRPOConfig(PolicyGradientConfig):
    """PolicyGradientConfig plus CRPO's tolerance."""

    crpo_tolerance: float = 2.0  # eta: reward steps while every mean episode cost <= its limit + eta

    def validate(self) -> None:
        super().validate()
        if not self.crpo_tolerance >= 0:
            raise ConfigError(f"crpo_tolerance must be >= 0, got {self.crpo_tolerance}")


@register_algorithm("crpo")
class CRPO(PolicyGradientSolver):
    """CRPO: PPO on the reward while every cost is within limit + eta, else on the most violated cost."""

    Config = CRPOConfig

    def __init__(self, cfg: CRPOConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.stream = 0  # what this epoch's step improves: 0 the reward, 1 + k lowers cost k

    def update_multipliers(self, mean_episode_costs: np.ndarray) -> None:
        if np.isnan(mean_episode_costs).any():
            return  # no episode finished: no estimate, keep the last epoch's choice
        excess = mean_episode_costs - self.spec.cost_limits - self.cfg.crpo_tolerance
        self.stream = 0 if excess.max() <= 0 else 1 + int(excess.argmax())

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        return adv[:, 0] if self.stream == 0 else -adv[:, self.stream]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "stream": self.stream}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.stream = int(state["stream"])
