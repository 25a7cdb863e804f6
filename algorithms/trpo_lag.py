"""TRPO-Lagrangian (Ray, Achiam and Amodei 2019, "Benchmarking Safe Exploration in Deep RL").

PPO-Lagrangian's objective with TRPO's update (Schulman et al. 2015): each epoch the multipliers
move first (projected gradient ascent on J_c,k - d_k, as in `ppo_lag`), then the actor takes one
natural-gradient step on the surrogate E[rho A], A = (A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k),
scaled to the trust region x^T H x / 2 = target_kl, with a backtracking line search that accepts
the first fraction whose mean KL(old || new) <= target_kl and whose surrogate did not decrease (else
the old policy is kept); the critics are then fitted by the shared minibatch loop. Defaults:
OmniSafe's TRPOLag (the trust-region ones of `cmdp.trust_region.TrustRegionConfig`, the
multiplier's of `ppo_lag`: init 0.001, Adam, lr 0.035).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from algorithms.ppo_lag import PPOLag, PPOLagConfig
from cmdp.optim import trainable_parameters
from cmdp.registry import register_algorithm
from cmdp.rollout import RolloutBatch
from cmdp.trust_region import (TrustRegionConfig, backtracking_line_search, conjugate_gradient,
                               detached_distribution, fisher_vector_product, flat_grad, flat_params, mean_kl)


@dataclass
class TRPOLagConfig(TrustRegionConfig, PPOLagConfig):
    """The trust-region hyperparameters plus PPO-Lagrangian's multiplier ones."""


@register_algorithm("trpo_lag")
class TRPOLag(PPOLag):
    """TRPO on the Lagrangian advantage, one multiplier per cost moved by gradient ascent."""

    Config = TRPOLagConfig

    def update(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """Multipliers, then one natural-gradient step of the actor, then the critics' regression."""
        cfg = self.cfg
        actor = self.agent.actor
        self.update_multipliers(mean_episode_costs)
        adv = self.policy_advantage(batch)

        params = trainable_parameters(actor)
        theta_old = flat_params(actor)
        old_dist = detached_distribution(actor, batch.obs)
        surr = (torch.exp(actor.log_prob(batch.obs, batch.actions) - batch.logp_old) * adv).mean()
        g = flat_grad(surr, params)
        surr_old = surr.item()
        fvp = fisher_vector_product(actor, batch.obs[::cfg.fvp_sample_freq], cfg.cg_damping)
        hinv_g = conjugate_gradient(fvp, g, cfg.cg_iters)
        xhx = torch.dot(hinv_g, fvp(hinv_g)).item()
        direction = math.sqrt(2.0 * cfg.target_kl / (xhx + 1e-8)) * hinv_g
        if not torch.isfinite(direction).all():
            direction = torch.zeros_like(direction)

        seen = {"kl": 0.0, "d": 0.0}

        def accept() -> bool:
            with torch.no_grad():
                kl = mean_kl(old_dist, actor.distribution(batch.obs)).item()
                ratio = torch.exp(actor.log_prob(batch.obs, batch.actions) - batch.logp_old)
                d = (ratio * adv).mean().item() - surr_old
            seen.update(kl=kl, d=d)
            return math.isfinite(kl) and math.isfinite(d) and d >= 0 and kl <= cfg.target_kl

        frac, tries = backtracking_line_search(actor, theta_old, direction, accept, cfg.line_search_steps,
                                               cfg.line_search_decay)
        if tries == 0:
            seen.update(kl=0.0, d=0.0)

        metrics = self.optimize(batch, None)
        metrics.pop("clip_frac", None)
        metrics.update({
            "loss_pi": -(surr_old + seen["d"]),
            "kl": seen["kl"],
            "step_frac": frac,
            "line_search_tries": float(tries),
            "surr_change": seen["d"],
            "pred_surr_change": frac * torch.dot(g, direction).item(),
            "lr": self.updater.critic_lr,
        })
        self.updater.end_epoch()
        return metrics
