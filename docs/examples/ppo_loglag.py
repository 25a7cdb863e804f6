r"""PPO with a log-space Lagrange multiplier: an extra example next to docs/adding-an-algorithm.md's two.

Safe RLHF parameterises its multiplier as lambda = exp(log_lambda) and takes ascent steps on
log_lambda. The multiplier then stays positive without clipping and moves by a factor rather than an
amount, so one step size works whether the multiplier needs to be 0.01 or 10. Defaults are this file's
own choice (Safe RLHF's config is for language models, not control tasks).

On ExactChain-v0 its last iterate swings more than ppo_lag's: a multiplicative multiplier moves fastest exactly when
it is large. With the guide's section 11 settings (its Python block with `"algo": "ppo_loglag"`, `"lambda_lr": 2.0`
in place of `"lagrangian_lr"` and `"plugins": ["docs/examples/ppo_loglag.py"]`; 80 epochs, minibatches of 1024):
value 0.89 / 0.88 of the LP optimum and cost 1.20 / 1.25 (limit 1.5) for seeds 0 / 1. Over the tests' EXACT_BASE
instead (tests/exact_oracle.py: the orthogonal initialisation, cost advantages standardised, the critics' learning
rate decaying): 0.88 / 0.85, cost 1.24 / 1.09. The same run from the command line:

    cmdp train --plugin docs/examples/ppo_loglag.py --algo ppo_loglag --env ExactChain-v0 --num-envs 16 \
        --total-steps 163840 --set steps_per_epoch=2048 --set gamma=1.0 --set cost_gamma=1.0 \
        --set critic_lr=0.003 --set update_iters=10 --set batch_size=1024 --set lambda_lr=2

    cmdp train --plugin docs/examples/ppo_loglag.py --algo ppo_loglag --env ExactChain-v0
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmdp.losses import lagrangian_advantage
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@dataclass
class PPOLogLagConfig(PolicyGradientConfig):
    lambda_init: float = 1.0
    lambda_lr: float = 0.5  # step on log(lambda) per unit of (episode cost - limit)
    lambda_min: float = 1e-4
    lambda_max: float = 100.0


@register_algorithm("ppo_loglag")
class PPOLogLag(PolicyGradientSolver):
    """PPO-Lagrangian with the multiplier updated in log space (as in Safe RLHF)."""

    Config = PPOLogLagConfig

    def __init__(self, cfg: PPOLogLagConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.log_lambda = np.full(self.spec.num_costs, math.log(cfg.lambda_init))

    def update_multipliers(self, mean_episode_costs: np.ndarray) -> None:
        violation = np.nan_to_num(mean_episode_costs - self.spec.cost_limits)  # no episode: no step
        bounds = math.log(self.cfg.lambda_min), math.log(self.cfg.lambda_max)
        self.log_lambda = np.clip(self.log_lambda + self.cfg.lambda_lr * violation, *bounds)

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        return lagrangian_advantage(adv, np.exp(self.log_lambda))

    def multipliers(self) -> dict[str, float]:
        return dict(zip(self.spec.cost_names, np.exp(self.log_lambda).tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "log_lambda": self.log_lambda.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.log_lambda = np.array(state["log_lambda"])
