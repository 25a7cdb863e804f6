"""FOCOPS (Zhang, Vuong and Ross 2020, "First Order Constrained Optimization in Policy Space", NeurIPS).

The actor minimises, per sample, [KL(pi || pi_old)(s) - (1 / lam) rho (A_r - nu A_c)] * 1{KL(pi || pi_old)(s) <= eta},
rho = pi(a|s) / pi_old(a|s): the projection of the optimal non-parametric update back onto the policy class.
The KL is the new policy's from the old, as in the paper and in both reference codes. nu moves once per epoch,
nu <- clip(nu + nu_lr (J_c - b), 0, nu_max): projected gradient ascent on J_c - b, which is PPO-Lag's multiplier
with SGD, so FOCOPS subclasses PPOLag and redeclares the multiplier's defaults. pi_old is `mb.old_dist`
(`needs_old_distribution`).

Defaults: the authors' code (github.com/ymzhang01/focops, focops_main.py): lam 1.5 (--lam), eta 0.02 (--eta),
nu 0 (--nu: lagrangian_init), nu_lr 0.01 (--nu_lr: lagrangian_lr, SGD), nu_max 2.0 (--nu_max:
lagrangian_upper_bound), and the epoch's passes stop once KL exceeds 0.02 (--delta: `target_kl`). Every other key
is PolicyGradientConfig's (OmniSafe's on-policy settings). Differences from OmniSafe's FOCOPS
(omnisafe/algorithms/on_policy/first_order/focops.py, omnisafe/configs/on-policy/FOCOPS.yaml), which has the same
lam, eta, bound, target KL and 40 passes: it moves nu with Adam (lr 0.035, init 0.001) and divides A_r - nu A_c by
1 + nu; here the authors' SGD step and undivided advantage are kept (the paper's update).

Tests: tests/test_adding_an_algorithm.py checks that docs/adding-an-algorithm.md shows this file verbatim and
compares it with the LP optimum of ExactChain-v0 (seed 0) with the guide's settings; tests/test_first_order_zoo.py
trains it from the CLI, resumes it bit-exactly, refuses a bad eta, and (slow) checks it against the LP optimum of
ExactTwoCost-v0. The guide's section 11 gives the measured numbers.

    cmdp train --algo focops --env ExactChain-v0 --set lagrangian_lr=10
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from cmdp.algorithms.ppo_lag import PPOLag, PPOLagConfig
from cmdp.config import ConfigError
from cmdp.losses import distribution_kl, penalised_advantage
from cmdp.registry import register_algorithm
from cmdp.rollout import Minibatch


@dataclass
class FOCOPSConfig(PPOLagConfig):
    """PPO-Lag's keys with the authors' multiplier defaults, plus FOCOPS's temperature and per-state KL bound."""

    focops_lam: float = 1.5  # temperature lambda of the non-parametric update
    focops_eta: float = 0.02  # per-state KL bound of the indicator
    lagrangian_init: float = 0.0  # nu's start
    lagrangian_lr: float = 0.01  # nu's step per unit of (J_c - b)
    lagrangian_optimizer: str = "sgd"
    lagrangian_upper_bound: float | None = 2.0  # nu_max

    def validate(self) -> None:
        super().validate()
        for name in ("focops_lam", "focops_eta"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")


@register_algorithm("focops")
class FOCOPS(PPOLag):
    """FOCOPS: a KL-anchored first-order projection of the optimal update, one multiplier nu per cost."""

    Config = FOCOPSConfig
    needs_old_distribution = True  # the batch carries pi_old's distribution: mb.old_dist
    multiplier_name = "nu"  # in what cmdp train prints (lambda is focops_lam); progress.csv keeps lambda/<cost>

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        """A_r - sum_k nu_k A_c,k (the paper's, not divided by 1 + nu)."""
        return penalised_advantage(adv, self.multiplier.value)

    def actor_loss(self, mb: Minibatch) -> tuple[torch.Tensor, Mapping[str, Any]]:
        actor, cfg = self.agent.actor, self.cfg
        logp, dist = actor.log_prob_and_distribution(mb.obs, mb.actions)  # one forward pass for both terms
        kl = distribution_kl(dist, mb.old_dist)  # (b,) KL(pi || pi_old) at each state
        ratio = torch.exp(logp - mb.logp_old)
        inside = (kl.detach() <= cfg.focops_eta).float()
        loss = ((kl - ratio * mb.adv / cfg.focops_lam) * inside).mean()
        if cfg.entropy_coef:  # as OmniSafe's FOCOPS (0 by default, like the authors')
            loss = loss - cfg.entropy_coef * actor.entropy(mb.obs).mean()
        return loss, {"focops_inside": inside.mean()}
