"""PCPO (Yang, Rosca, Narasimhan and Ramadge 2020, "Projection-Based Constrained Policy Optimization").

Each epoch the actor takes two steps, composed into one before it moves:

1. reward improvement, TRPO's step: x_r = sqrt(2 delta / (g^T H^-1 g)) H^-1 g, so x_r^T H x_r / 2 =
   delta (`target_kl`), g the gradient of the reward surrogate E[rho A_r], H the Fisher matrix;
2. projection onto the linearised constraint set {x : c + b^T x <= 0}, b the gradient of the cost
   surrogate E[rho A_c] and c the constraint value J_c - d, in the closest point of a chosen norm
   (`cmdp.trust_region.project_to_linear_constraint`, `pcpo_projection`):

       kl: x = x_r - max(0, (b^T x_r + c) / (b^T H^-1 b)) H^-1 b     (the paper's KL projection, L = H)
       l2: x = x_r - max(0, (b^T x_r + c) / (b^T b)) b               (its L2 projection, L = I)

   so x = x_r when the reward step keeps the linearised cost under its limit, and c + b^T x = 0 when not
   (which also pulls an infeasible policy back toward the constraint set).

A backtracking line search along x then accepts the first fraction whose mean KL(old || new) <=
target_kl and whose cost surrogate rises by at most max(-c, 0) (no reward test), else the old policy is
kept; then the critics are fitted by the shared minibatch loop. c is CPO's (`CPO.cost_streams`): (J_c - d)
divided by the mean episode length, and by the cost advantage's standard deviation when advantages are
standardised, so that c + b^T x predicts the constraint after the step; `cost_normalize` is refused
and one cost only, as for `cpo`, of which this is a subclass that replaces `policy_step`.

Defaults: omnisafe/configs/on-policy/PCPO.yaml (target_kl 0.01, cg_iters 15, cg_damping 0.1, critic lr
1e-3, update_iters 10: `TrustRegionConfig`'s) and omnisafe/algorithms/on_policy/second_order/pcpo.py:
the KL projection, and CPO's line search with 200 tries (decay 0.8) whose acceptance test is the one
above (OmniSafe calls it with optim_case 0, which skips the reward test). Deliberate differences from
OmniSafe, each to follow the paper: (a) OmniSafe's reward step is sqrt(2 delta / q) times H (H^-1 g),
i.e. along g itself rather than the natural gradient H^-1 g, while its projection uses r = g^T H^-1 b
as if the step were along H^-1 g; here the reward step is the natural gradient, as in the paper and
TRPO; (b) OmniSafe's c is the raw J_c - d (episode total, not per step nor in advantage units), which
makes the projection far too strong with long episodes (b^T x is a per-sample mean); here it is the
per-step value of this project's `cpo`; (c) the L2 projection is offered as well.

Tests (tests/test_trust_region_zoo.py): both projections by hand on a 2-D quadratic (equality when the
constraint was violated, unchanged when not, the closest point in the chosen norm), the config's refusals
(unknown projection, two costs), a CLI run with a bit-exact resume, every step's KL within target_kl and
the projected steps aimed at c + b^T x = 0; against the LP optimum on ExactChain-v0 with either projection
(slow; measured numbers in that test's docstring). Not checked: PCPO's performance bound itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmdp.algorithms.cpo import CPO, CPOConfig
from cmdp.config import ConfigError
from cmdp.registry import register_algorithm
from cmdp.rollout import RolloutBatch
from cmdp.trust_region import project_to_linear_constraint

PROJECTIONS = ("kl", "l2")


@dataclass
class PCPOConfig(CPOConfig):
    """CPO's keys (one cost, no cost_normalize) plus the projection's norm."""

    # the norm of the projection: "kl" (H, the Fisher matrix; OmniSafe's and the paper's main one) or "l2"
    pcpo_projection: str = "kl"
    line_search_steps: int = 200  # OmniSafe's pcpo.py searches 200 tries (0.8^200: in effect down to no step)

    def validate(self) -> None:
        super().validate()
        if self.pcpo_projection not in PROJECTIONS:
            raise ConfigError(f"pcpo_projection must be one of {PROJECTIONS}, got {self.pcpo_projection!r}")


@register_algorithm("pcpo")
class PCPO(CPO):
    """Projection-based CPO (one cost): TRPO's reward step, projected onto the linearised constraint set.

    Overrides only `policy_step`."""

    Config = PCPOConfig

    def policy_step(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """The reward step, its projection, then the line search."""
        adv_r, adv_c, c, violation = self.cost_streams(batch, mean_episode_costs)
        surr_r, surr_c = self.old_surrogates(batch, adv_r, adv_c)
        g, b = self.gradients(surr_r, surr_c)
        surr_r_old, surr_c_old = surr_r.item(), surr_c.item()
        fvp = self.fisher(batch)
        x_reward = self.scale_to_trust_region(fvp, self.natural_direction(fvp, g))
        metric_inv_b = self.natural_direction(fvp, b) if self.cfg.pcpo_projection == "kl" else b
        direction, nu = project_to_linear_constraint(x_reward, b, c, metric_inv_b)

        def accept() -> tuple[bool, dict[str, float]]:
            new_r, new_c = self.surrogates(batch, adv_r, adv_c)
            d_r, d_c = new_r.item() - surr_r_old, new_c.item() - surr_c_old
            return d_c <= max(-c, 0.0), {"surr_r_change": d_r, "surr_c_change": d_c}

        ls = self.line_search(batch, direction, accept)
        return {
            "loss_pi": -(surr_r_old + ls.measured["surr_r_change"]),
            **ls.metrics(),
            **ls.measured,
            "pred_r_change": ls.predicted_change(g),
            "pred_c_change": ls.predicted_change(b),
            "pcpo_c": c,
            "pcpo_ep_cost_minus_limit": violation,
            "pcpo_nu": nu,  # 0: the reward step kept the linearised cost under the limit
        }
