"""IPO (Liu, Ding and Liu 2020, "IPO: Interior-point Policy Optimization under Constraints", AAAI).

The paper maximises PPO's clipped surrogate plus a log barrier on each constraint's estimate,
L^CLIP(theta) + sum_k log(d_k - J_c,k(theta)) / t. The barrier's gradient in theta is
-(1/t) grad J_c,k / (d_k - J_c,k): a cost advantage weighted by w_k = kappa / (d_k - J_c,k), kappa = 1/t. As in
OmniSafe (omnisafe/algorithms/on_policy/penalty_function/ipo.py), the weights are computed once per epoch from the
epoch's mean episode costs (`cmdp.losses.ipo_barrier_weight`) and the actor takes PPO's clipped surrogate of
A = (A_r - sum_k w_k A_c,k) / (1 + sum_k w_k), the Lagrangian form with w in place of lambda. A weight above
`ipo_penalty_max` is cut to it, and so is the weight of a cost already on or above its limit, where the barrier is
undefined: there IPO is a fixed-penalty method (A_r - w A_c) / (1 + w), w = penalty_max, and returns to the
feasible set only if that penalty is strong enough.

Defaults: OmniSafe's omnisafe/configs/on-policy/IPO.yaml: kappa 0.01, penalty_max 1.0, 10 passes per epoch,
target KL 0.02, reward and cost normalisation on (the barrier sees the raw episode costs); everything else
PolicyGradientConfig's. Any number of costs (OmniSafe's: one); the epoch's weights are kept when no episode
finished, and saved for --resume.

What is and is not checked (tests/test_first_order_zoo.py). A barrier with finite t has no exact-optimum guarantee
(its optimum lies inside the feasible set, kappa / slack away from the boundary), so there is no LP-optimum test.
Checked instead: the weight by hand, growing without bound as the cost nears its limit; and (slow) on
ExactChain-v0 with its limit raised to 3.0, so that the uniform initial policy (exact cost 2.78) is feasible and
with `ipo_penalty_max` 1000 (with OmniSafe's cap of 1 the barrier is cut off at slack kappa = 0.01), the exact cost
after every epoch. The paper's claim that the iterates stay feasible did NOT hold there: the weights are set once
per epoch from the last epoch's cost and one PPO epoch moves the cost by more than the slack (3.115 after epoch 1,
worst 3.307); the final policy is feasible (2.982) at 0.997 of the LP optimum, and only that is asserted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmdp.config import ConfigError
from cmdp.losses import ipo_barrier_weight, lagrangian_advantage
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@dataclass
class IPOConfig(PolicyGradientConfig):
    """PolicyGradientConfig with OmniSafe IPO.yaml's defaults, plus the barrier's two keys."""

    ipo_kappa: float = 0.01  # kappa = 1/t: the barrier's scale (weight kappa / (limit - cost))
    ipo_penalty_max: float = 1.0  # cap on the weight, and the weight of a cost on or above its limit
    update_iters: int = 10  # OmniSafe IPO.yaml
    reward_normalize: bool = True  # OmniSafe IPO.yaml
    cost_normalize: bool = True  # OmniSafe IPO.yaml

    def validate(self) -> None:
        super().validate()
        for name in ("ipo_kappa", "ipo_penalty_max"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")


@register_algorithm("ipo")
class IPO(PolicyGradientSolver):
    """PPO on the reward plus IPO's log barrier, turned into one advantage weight per cost each epoch."""

    Config = IPOConfig
    multiplier_name = "weight"  # the barrier weights w_k, shown as such; logged as lambda/<cost>

    def __init__(self, cfg: IPOConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        # before any episode: no estimate, the cap (as a cost on its limit would get)
        self.weights = np.full(self.spec.num_costs, cfg.ipo_penalty_max)

    def update_multipliers(self, mean_episode_costs: np.ndarray) -> None:
        weights = ipo_barrier_weight(mean_episode_costs, self.spec.cost_limits, self.cfg.ipo_kappa,
                                     self.cfg.ipo_penalty_max)
        self.weights = np.where(np.isnan(weights), self.weights, weights)  # no episode: keep the last weight

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        return lagrangian_advantage(adv, self.weights)

    def multipliers(self) -> dict[str, float]:
        """The barrier weights, logged as lambda/<cost>."""
        return dict(zip(self.spec.cost_names, self.weights.tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "weights": self.weights.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.weights = np.array(state["weights"], dtype=np.float64)
