"""TRPO-Lagrangian (Ray, Achiam and Amodei 2019, "Benchmarking Safe Exploration in Deep RL").

PPO-Lagrangian's objective with TRPO's update (Schulman et al. 2015): each epoch the multipliers
move first (projected gradient ascent on J_c,k - d_k, as in `ppo_lag`), then the actor takes one
natural-gradient step on the surrogate E[rho A], A = (A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k),
scaled to the trust region x^T H x / 2 = target_kl, with a backtracking line search that accepts
the first fraction whose mean KL(old || new) <= target_kl and whose surrogate did not decrease (else
the old policy is kept); the critics are then fitted by the shared minibatch loop. Defaults:
OmniSafe's TRPOLag (the trust-region ones of `cmdp.trust_region.TrustRegionConfig`, the
multiplier's of `ppo_lag`: init 0.001, Adam, lr 0.035).

Composition. `TrustRegionSolver` is TRPO with PolicyGradientSolver's hooks, and `PPOLag` is
PolicyGradientSolver plus a multiplier (`__init__`, `update_multipliers`, `combine_advantages`,
`multipliers`, `state_dict`), so TRPO-Lagrangian is the two put together and nothing else:

    MRO: TRPOLag -> TrustRegionSolver -> PPOLag -> PolicyGradientSolver -> Solver

`update` and `policy_step` (the step and its accept rule: KL within target_kl, surrogate of the
Lagrangian advantage not lower) come from TrustRegionSolver; the multiplier's methods come from PPOLag,
because TrustRegionSolver does not define them (only PolicyGradientSolver, later in the MRO, does).
The multiplier is reused rather than split into a mixin so that ppo_lag, pid_lag and cup, which
subclass PPOLag, stay as they are; tests/test_cpo.py checks this method resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.ppo_lag import PPOLag, PPOLagConfig
from cmdp.registry import register_algorithm
from cmdp.trust_region import TrustRegionConfig, TrustRegionSolver


@dataclass
class TRPOLagConfig(TrustRegionConfig, PPOLagConfig):
    """The trust-region hyperparameters plus PPO-Lagrangian's multiplier ones."""


@register_algorithm("trpo_lag")
class TRPOLag(TrustRegionSolver, PPOLag):
    """TRPO on the Lagrangian advantage, one multiplier per cost moved by gradient ascent."""

    Config = TRPOLagConfig
