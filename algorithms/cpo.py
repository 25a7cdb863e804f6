"""CPO (Achiam, Held, Tamar and Abbeel 2017, "Constrained Policy Optimization").

Each epoch takes one trust-region step on the actor: with g and b the gradients of the reward and
cost surrogates E[rho A_r], E[rho A_c] at the old policy and H the Fisher matrix (the Hessian of
the mean KL), it solves

    max_x g^T x   subject to   c + b^T x <= 0   and   x^T H x / 2 <= target_kl,

c being the current constraint value J_c - d, analytically through its dual (`solve_cpo_subproblem`);
when no point of the trust region is predicted feasible it steps to decrease the cost only. A
backtracking line search then accepts the first step fraction whose new policy has mean
KL <= target_kl, does not lower the reward surrogate (not required when the current policy is
infeasible, cases 0 and 1), and raises the cost surrogate by at most max(-c, 0); if none passes the
old policy is kept. The critics are then fitted by the shared minibatch loop.

Units of c. J_c - d is an episode total; the surrogate is a per-sample mean. As in OpenAI's
safety-starter-agents and OmniSafe, c is divided by the mean episode length, so that c + b^T x
predicts (J_c(new) - d) / length. When advantages are standardised, the cost surrogate is in units
of the cost advantage's standard deviation, so c is divided by that too (this leaves the
subproblem's solution and the line search unchanged: b and c scale together). `cost_normalize`
would rescale the cost advantages by a running factor the solver does not see, so it is refused.

Defaults follow OmniSafe's CPO (omnisafe/configs/on-policy/CPO.yaml): target KL 0.01, conjugate
gradient 15 iterations with damping 0.1, critic lr 1e-3 with 10 passes per epoch, line search of 15
tries shrinking by 0.8 (`cmdp.trust_region.TrustRegionConfig`, which also explains the critics'
minibatch size). One cost only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmdp.config import ConfigError
from cmdp.losses import normalize_advantages
from cmdp.optim import trainable_parameters
from cmdp.registry import register_algorithm
from cmdp.rollout import RolloutBatch
from cmdp.solver import PolicyGradientSolver
from cmdp.trust_region import (CASE_FEASIBLE_INTERSECTS, TrustRegionConfig, backtracking_line_search,
                               conjugate_gradient, detached_distribution, fisher_vector_product, flat_grad,
                               flat_params, mean_kl, solve_cpo_subproblem)


@dataclass
class CPOConfig(TrustRegionConfig):
    """CPO's hyperparameters: the shared trust-region ones (OmniSafe's CPO defaults)."""

    def validate(self) -> None:
        super().validate()
        if self.cost_normalize:
            raise ConfigError("cpo compares the cost surrogate with the raw episode cost, so it cannot use "
                              "cost_normalize (the costs would be rescaled by a factor it does not see); "
                              "set cost_normalize=false")


@register_algorithm("cpo")
class CPO(PolicyGradientSolver):
    """Constrained Policy Optimization: trust-region steps that keep the linearised cost under its limit."""

    Config = CPOConfig
    max_costs = 1

    def __init__(self, cfg: CPOConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        # Last per-step constraint value (J_c - d) / episode length seen, for epochs without a
        # finished episode; None until the first one.
        self.last_c_per_step: float | None = None

    def constraint_value(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> tuple[float, float]:
        """(J_c - d) / mean episode length from this epoch's finished episodes, and J_c - d itself.

        Without a finished episode the last estimate is reused; before any, 0.0 (on the boundary:
        the step may then not raise the linearised cost).
        """
        cost = float(np.asarray(mean_episode_costs, dtype=np.float64).reshape(-1)[0])
        lengths = batch.episodes.lengths
        if len(lengths) and math.isfinite(cost):
            violation = cost - float(self.spec.cost_limits[0])
            self.last_c_per_step = violation / max(float(np.mean(lengths)), 1.0)
            return self.last_c_per_step, violation
        return (self.last_c_per_step if self.last_c_per_step is not None else 0.0), float("nan")

    def update(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """One trust-region step of the actor (CPO), then the critics' regression."""
        cfg = self.cfg
        actor = self.agent.actor
        c_per_step, violation = self.constraint_value(batch, mean_episode_costs)
        adv = batch.advantages[:, :2]
        c = c_per_step
        if cfg.standardize_advantages:
            c = c_per_step / (float(adv[:, 1].std()) + 1e-8)  # same scale as the standardised A_c
            adv = normalize_advantages(adv)
        adv_r, adv_c = adv[:, 0], adv[:, 1]

        params = trainable_parameters(actor)
        theta_old = flat_params(actor)
        old_dist = detached_distribution(actor, batch.obs)
        ratio = torch.exp(actor.log_prob(batch.obs, batch.actions) - batch.logp_old)
        surr_r, surr_c = (ratio * adv_r).mean(), (ratio * adv_c).mean()
        g = flat_grad(surr_r, params, retain_graph=True)
        b = flat_grad(surr_c, params)
        surr_r_old, surr_c_old = surr_r.item(), surr_c.item()

        fvp = fisher_vector_product(actor, batch.obs[::cfg.fvp_sample_freq], cfg.cg_damping)
        hinv_g = conjugate_gradient(fvp, g, cfg.cg_iters)
        hinv_b = conjugate_gradient(fvp, b, cfg.cg_iters)
        h_hinv_g, h_hinv_b = fvp(hinv_g), fvp(hinv_b)
        # quadratic forms of the vectors actually stepped along (exact CG: q = g^T H^-1 g, etc.)
        q = torch.dot(hinv_g, h_hinv_g).item()
        r = torch.dot(hinv_g, h_hinv_b).item()
        s = torch.dot(hinv_b, h_hinv_b).item()
        step = solve_cpo_subproblem(hinv_g, hinv_b, q, r, s, c, cfg.target_kl)
        direction = step.direction.detach()
        if not torch.isfinite(direction).all():
            direction = torch.zeros_like(direction)

        seen: dict[str, float] = {}

        def accept() -> bool:
            with torch.no_grad():
                kl = mean_kl(old_dist, actor.distribution(batch.obs)).item()
                new_ratio = torch.exp(actor.log_prob(batch.obs, batch.actions) - batch.logp_old)
                d_r = (new_ratio * adv_r).mean().item() - surr_r_old
                d_c = (new_ratio * adv_c).mean().item() - surr_c_old
            seen.update(kl=kl, d_r=d_r, d_c=d_c)
            if not (math.isfinite(kl) and math.isfinite(d_r) and math.isfinite(d_c)):
                return False
            if step.case >= CASE_FEASIBLE_INTERSECTS and d_r < 0:
                return False  # a feasible policy must not lose reward surrogate
            if d_c > max(-c, 0.0):
                return False  # the cost may use up the slack, or must not grow when infeasible
            return kl <= cfg.target_kl

        frac, tries = backtracking_line_search(actor, theta_old, direction, accept, cfg.line_search_steps,
                                               cfg.line_search_decay)
        if tries == 0:
            seen.update(kl=0.0, d_r=0.0, d_c=0.0)

        metrics = self.optimize(batch, None)
        metrics.pop("clip_frac", None)
        metrics.update({
            "loss_pi": -(surr_r_old + seen["d_r"]),
            "kl": seen["kl"],
            "cpo_case": float(step.case),
            "step_frac": frac,
            "line_search_tries": float(tries),
            "surr_r_change": seen["d_r"],
            "surr_c_change": seen["d_c"],
            "pred_r_change": frac * torch.dot(g, direction).item(),
            "pred_c_change": frac * torch.dot(b, direction).item(),
            "cpo_c": c,
            "cpo_ep_cost_minus_limit": violation,
            "cpo_lam": step.lam,
            "cpo_nu": step.nu,
            "cpo_q": q, "cpo_r": r, "cpo_s": s,
            "lr": self.updater.critic_lr,
        })
        self.updater.end_epoch()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_c_per_step": self.last_c_per_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last_c_per_step = state.get("last_c_per_step")
