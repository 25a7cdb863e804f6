"""FOCOPS: an example of docs/adding-an-algorithm.md.

Zhang, Vuong and Ross 2020, "First Order Constrained Optimization in Policy Space" (NeurIPS). The actor
minimises, per sample, [KL(pi || pi_old)(s) - (1 / lam) rho (A_r - nu A_c)] * 1{KL(pi || pi_old)(s) <= eta},
rho = pi(a|s) / pi_old(a|s): the projection of the optimal non-parametric update back onto the policy class.
The KL is the new policy's from the old, as in the paper and in both reference codes. nu moves once per epoch,
nu <- clip(nu + nu_lr (J_c - b), 0, nu_max): projected gradient ascent on J_c - b, which is
`cmdp.lagrange.LagrangeMultiplier` with SGD. pi_old is `mb.old_dist` (`needs_old_distribution`).

Defaults: the authors' code (github.com/ymzhang01/focops, focops_main.py): lam 1.5 (--lam), eta 0.02 (--eta),
nu 0 (--nu), nu_lr 0.01 (--nu_lr), nu_max 2.0 (--nu_max), and the epoch's passes stop once KL exceeds 0.02
(--delta: `target_kl`, PolicyGradientConfig's default). OmniSafe's FOCOPS.yaml has the same lam, eta, bound and
target_kl, but moves nu with Adam (lr 0.035, init 0.001) and divides A_r - nu A_c by 1 + nu. Every other key is
PolicyGradientConfig's (OmniSafe's on-policy settings).

    cmdp train --plugin docs/examples/focops.py --algo focops --env ExactChain-v0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from cmdp.lagrange import LagrangeMultiplier
from cmdp.losses import distribution_kl
from cmdp.registry import register_algorithm
from cmdp.rollout import Minibatch
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@dataclass
class FOCOPSConfig(PolicyGradientConfig):
    focops_lam: float = 1.5  # temperature lambda of the non-parametric update
    focops_eta: float = 0.02  # per-state KL bound of the indicator
    nu_init: float = 0.0
    nu_lr: float = 0.01
    nu_max: float = 2.0


@register_algorithm("focops")
class FOCOPS(PolicyGradientSolver):
    """FOCOPS: a KL-anchored first-order projection of the optimal update, one multiplier nu per cost."""

    Config = FOCOPSConfig
    needs_old_distribution = True  # the batch carries pi_old's distribution: mb.old_dist

    def __init__(self, cfg: FOCOPSConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.nu = LagrangeMultiplier(self.spec.cost_limits, cfg.nu_init, cfg.nu_lr, "sgd", cfg.nu_max)

    def update_multipliers(self, mean_episode_costs: np.ndarray) -> None:
        self.nu.update(mean_episode_costs)

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        return adv[:, 0] - adv[:, 1:] @ torch.as_tensor(self.nu.value, dtype=adv.dtype, device=adv.device)

    def actor_loss(self, mb: Minibatch) -> tuple[torch.Tensor, Mapping[str, Any]]:
        actor, cfg = self.agent.actor, self.cfg
        kl = distribution_kl(actor.distribution(mb.obs), mb.old_dist)  # (b,) KL(pi || pi_old) at each state
        ratio = torch.exp(actor.log_prob(mb.obs, mb.actions) - mb.logp_old)
        inside = (kl.detach() <= cfg.focops_eta).float()
        loss = ((kl - ratio * mb.adv / cfg.focops_lam) * inside).mean()
        if cfg.entropy_coef:  # as OmniSafe's FOCOPS (0 by default, like the authors')
            loss = loss - cfg.entropy_coef * actor.entropy(mb.obs).mean()
        return loss, {"focops_inside": inside.mean()}

    def multipliers(self) -> dict[str, float]:
        return dict(zip(self.spec.cost_names, self.nu.value.tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "nu": self.nu.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.nu.load_state_dict(state["nu"])
