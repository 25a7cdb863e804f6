"""Vanilla policy gradient (Williams 1992, "Simple Statistical Gradient-Following Algorithms for Connectionist
Reinforcement Learning"; Sutton, McAllester, Singh and Mansour 2000, "Policy Gradient Methods for Reinforcement
Learning with Function Approximation"), unconstrained, as OmniSafe's PolicyGradient.

The actor minimises -E[rho A_r], rho = pi(a|s) / pi_old(a|s): the importance-sampled surrogate whose gradient at
pi = pi_old is the policy gradient E[grad log pi(a|s) A_r]. No clipping: after the first minibatch the later ones
move the policy by the same surrogate, and only the KL early stop (target_kl, on the whole batch after each pass)
bounds the epoch's move. The costs are measured, logged and fitted by the cost critics, but ignored by the actor,
so on a CMDP whose limit binds pg breaks it (the reference point for pdo, its Lagrangian version).

Defaults: OmniSafe's omnisafe/configs/on-policy/PolicyGradient.yaml (omnisafe/algorithms/on_policy/base/
policy_gradient.py): 10 passes per epoch (`update_iters`), target KL 0.02, actor and critic lr 3e-4 decaying
linearly, gradient-norm clip 40, critic L2 0.001, gamma 0.99, GAE lambda 0.95, standardised advantages; every
one of them but update_iters is PolicyGradientConfig's already, as are its minibatches of 64. Deliberate
difference: the cost critics are fitted although pg does not use them (OmniSafe's use_cost: False skips them) so
that every solver logs the same columns. The KL early stop is the shared loop's,
on the exact KL of the distributions as OmniSafe's (`early_stop_kl`).

Tests (tests/test_first_order_zoo.py): the loss by hand (cmdp.losses.policy_gradient_loss); pg trains from the
CLI, resumes bit-exactly, and breaks ExactChain-v0's limit (exact cost of the final policy > 1.3 x 1.5).
Not checked: anything about its return beyond that.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from cmdp.losses import policy_gradient_loss
from cmdp.registry import register_algorithm
from cmdp.rollout import Minibatch
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@dataclass
class PGConfig(PolicyGradientConfig):
    """PolicyGradientConfig with OmniSafe PolicyGradient.yaml's pass count (`clip` is unused)."""

    update_iters: int = 10  # passes over the epoch's batch (OmniSafe PolicyGradient.yaml)


@register_algorithm("pg", constrained=False)
class PG(PolicyGradientSolver):
    """Policy gradient on the reward: the unclipped surrogate -E[rho A] with KL early stopping."""

    Config = PGConfig

    def actor_loss(self, mb: Minibatch) -> tuple[torch.Tensor, Mapping[str, Any]]:
        """-E[rho A] on `mb.adv`, minus the entropy bonus when `entropy_coef` is set."""
        actor = self.agent.actor
        loss, info = policy_gradient_loss(actor.log_prob(mb.obs, mb.actions), mb.logp_old, mb.adv)
        if self.cfg.entropy_coef:
            loss = loss - self.cfg.entropy_coef * actor.entropy(mb.obs).mean()
        return loss, info
