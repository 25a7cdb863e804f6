"""Natural policy gradient (Kakade 2001, "A Natural Policy Gradient"), as OmniSafe's NaturalPG.

Unconstrained, like `trpo`. Each epoch the actor moves by the natural gradient scaled to the trust
region,

    theta <- theta + sqrt(2 delta / (g^T H^-1 g)) H^-1 g,   g = grad E[rho A_r],  delta = target_kl,

H the Fisher matrix (the Hessian of the mean KL, damped by `cg_damping`), H^-1 g by conjugate gradient;
then the critics are fitted by the shared minibatch loop. TRPO is this plus a backtracking line search
(omnisafe/algorithms/on_policy/base/trpo.py subclasses natural_pg.py to add it): NPG takes the step as it
is, so the true KL(old || new) may exceed target_kl where the quadratic model of the KL is poor, and the
surrogate may even decrease. Both are logged (`kl`, `surr_change`). A step that is not finite is not
taken (`step_frac` 0; OmniSafe stops with an assertion instead).

Defaults: omnisafe/configs/on-policy/NaturalPG.yaml (target_kl 0.01, cg_iters 15, cg_damping 0.1,
fvp_sample_freq 1, critic lr 1e-3, update_iters 10), which are `TrustRegionConfig`'s; the line search keys
are not used (the critics' minibatch of 128 included, as for `trpo`).

Tests (tests/test_trust_region_zoo.py): a CLI run with a bit-exact resume; on one batch the step is
exactly TRPO's first try (the same direction, taken without a line search, with x^T H x / 2 = target_kl);
on ExactChain-v0 (slow) it ignores the cost limit and reaches the unconstrained LP optimum.
"""
from __future__ import annotations

import numpy as np
import torch

from cmdp.registry import register_algorithm
from cmdp.rollout import RolloutBatch
from cmdp.trust_region import TrustRegionSolver, flat_params, mean_kl, set_flat_params


@register_algorithm("npg", constrained=False)
class NPG(TrustRegionSolver):
    """Natural policy gradient (unconstrained): TRPO's direction taken whole, without a line search.

    Overrides only `policy_step`."""

    def policy_step(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """theta <- theta + the natural-gradient step on `policy_advantage(batch)` scaled to the trust region."""
        actor = self.agent.actor
        adv = self.policy_advantage(batch)
        surr_old, g, direction = self.natural_step(batch, adv)
        taken = bool(torch.isfinite(direction).all())
        if taken:
            set_flat_params(actor, flat_params(actor) + direction)
        with torch.no_grad():
            kl = mean_kl(batch.old_dist[:], actor.distribution(batch.obs), self.cfg.kl_reduction).item()
            surr_new = self.surrogates(batch, adv)[0].item()
        return {"loss_pi": -surr_new, "kl": kl, "step_frac": float(taken), "surr_change": surr_new - surr_old,
                "pred_surr_change": torch.dot(g, direction).item() if taken else 0.0}
