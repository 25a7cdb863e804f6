"""P3O (Zhang, Shen, Yang, Chen, Yuan, Wang and Tao 2022, "Penalized Proximal Policy Optimization for Safe
Reinforcement Learning", IJCAI).

The actor minimises PPO's clipped reward loss plus an exact (ReLU) penalty on each linearised constraint,

    -E[min(rho A_r, clip(rho) A_r)] + kappa * sum_k max(0, E[max(rho A_c,k, clip(rho) A_c,k)] + (J_c,k - d_k)),

(`cmdp.losses.p3o_penalty`), J_c,k the epoch's mean episode cost. While a constraint's linearisation holds with
room to spare, its penalty and its gradient are zero and the step is PPO's on the reward; once it binds, kappa
times the cost surrogate's gradient joins in. For kappa above the optimal multiplier the penalised problem has the
constrained optimum as its solution (the paper's Theorem: an exact penalty).

Units. The paper writes the constraint term as (1 - gamma)(J_C(pi_k) - d), the violation in the per-step units of
the surrogate E[rho A_c] (performance difference: J_C(pi) - J_C(pi_k) = E[rho A_c] / (1 - gamma)). OmniSafe
(omnisafe/algorithms/on_policy/penalty_function/p3o.py) adds the raw episode-total J_c - d instead, to a surrogate
of centred cost advantages. This file keeps OmniSafe's formula, so a violation of any size switches the penalty
fully on and a slack larger than the surrogate's typical size (about the clip range) switches it off; (1 - gamma)
would vanish on the undiscounted CMDPs the tests use.
The cost surrogate is clipped pessimistically (max), as the paper's L^CLIP_C; OmniSafe leaves the cost ratio
unclipped. The cost advantages are centred per cost (`cost_advantage: center`, the default), as in OmniSafe's
buffer; the exact-CMDP checks were measured with them standardised (`tests/exact_oracle.py`). `combine_advantages` therefore passes every stream on, so `mb.adv` is (b, 1 + K) here (column 0 the
reward), not the (b,) of the other solvers.

Defaults: OmniSafe's omnisafe/configs/on-policy/P3O.yaml: kappa 20, 10 passes per epoch, target KL 0.02, clip
0.2; everything else PolicyGradientConfig's (the same values as P3O.yaml's but for the minibatch size, see there).
Any number of costs (the paper's multi-constraint form, one kappa for all).

What is and is not checked (tests/test_first_order_zoo.py): the penalty by hand; CLI training and a bit-exact
resume; (slow) with a large enough kappa (the default 20) the final policy on ExactChain-v0 is within its limit
with a return close to the LP optimum (the measured gap is in the test's docstring). A finite penalty on a
sampled estimate is not the LP criterion's 5% band by construction, so that criterion is not claimed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from cmdp.config import ConfigError
from cmdp.losses import p3o_penalty, ppo_clip_loss
from cmdp.registry import register_algorithm
from cmdp.rollout import Minibatch
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@dataclass
class P3OConfig(PolicyGradientConfig):
    """PolicyGradientConfig with OmniSafe P3O.yaml's defaults, plus the penalty factor."""

    p3o_kappa: float = 20.0  # penalty factor; exact once above the optimal multiplier
    update_iters: int = 10  # OmniSafe P3O.yaml

    def validate(self) -> None:
        super().validate()
        if not self.p3o_kappa >= 0:
            raise ConfigError(f"p3o_kappa must be >= 0, got {self.p3o_kappa}")


@register_algorithm("p3o")
class P3O(PolicyGradientSolver):
    """PPO's clipped reward surrogate plus kappa times a ReLU of each clipped cost surrogate plus its violation."""

    Config = P3OConfig

    def __init__(self, cfg: P3OConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        # J_c,k - d_k of the last epoch with an estimate, as the float32 tensor the loss adds (a numpy array there
        # would not compile: compile_update)
        self.violation = torch.zeros(self.spec.num_costs)

    def update_multipliers(self, mean_episode_costs: np.ndarray) -> None:
        violation = np.asarray(mean_episode_costs, dtype=np.float64) - self.spec.cost_limits
        kept = np.where(np.isnan(violation), self.violation.numpy(), violation)  # no episode: keep the last
        self.violation = torch.as_tensor(kept, dtype=torch.float32)

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        """Every (standardised) stream: the loss needs the reward's and each cost's."""
        return adv

    def actor_loss(self, mb: Minibatch) -> tuple[torch.Tensor, Mapping[str, Any]]:
        cfg, actor = self.cfg, self.agent.actor
        logp = actor.log_prob(mb.obs, mb.actions)
        loss_r, info = ppo_clip_loss(logp, mb.logp_old, mb.adv[:, 0], cfg.clip)
        penalty = p3o_penalty(torch.exp(logp - mb.logp_old), mb.adv[:, 1:], self.violation, cfg.p3o_kappa, cfg.clip)
        loss = loss_r + penalty
        if cfg.entropy_coef:
            loss = loss - cfg.entropy_coef * actor.entropy(mb.obs).mean()
        return loss, {"clip_frac": info["clip_frac"], "loss_pi_cost": penalty.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "violation": self.violation.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.violation = torch.tensor(state["violation"], dtype=torch.float32)
