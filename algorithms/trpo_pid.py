"""TRPO-PID: TRPO on the Lagrangian advantage with PID-controlled multipliers (Stooke, Achiam and Abbeel
2020, "Responsive Safety in Reinforcement Learning by PID Lagrangian Methods"; OmniSafe's TRPOPID).

The policy step is `trpo_lag`'s: the natural gradient of E[rho A], A = (A_r - sum_k lambda_k A_c,k) /
(1 + sum_k lambda_k) (advantages standardised per stream), scaled to x^T H x / 2 = target_kl, with a
backtracking line search (mean KL(old || new) <= target_kl, surrogate not lower, else the old policy is
kept); then the critics. The multipliers are `pid_lag`'s: each lambda_k is the output of a PID controller
on J_c,k - d_k (`cmdp.lagrange.PIDMultiplier`), updated once per epoch before the policy step.

Defaults: omnisafe/configs/on-policy/TRPOPID.yaml: target_kl 0.01, cg_iters 15, cg_damping 0.1, critic
lr 1e-3, update_iters 10 (`TrustRegionConfig`'s); kp 0.1, ki 0.01, kd 0.01, d_delay 10, both EMA alphas
0.95, initial multiplier 0.001 (`PIDOptions`'). OmniSafe's sum_norm=True there divides the advantage by
1 + lambda and leaves the penalty uncapped (its penalty_max applies only without sum_norm and diff_norm),
so `lagrangian_upper_bound` defaults to none. The critics' minibatches are OmniSafe's 128, as for `trpo`.

Composition, as `trpo_lag` (whose docstring explains the method resolution): TrustRegionSolver's update
and step, PIDLag's multiplier (PPOLag's plumbing with the PID controller the config describes):

    MRO: TRPOPID -> TrustRegionSolver -> PIDLag -> PPOLag -> PolicyGradientSolver -> Solver

Tests (tests/test_trust_region_zoo.py): a CLI run with a bit-exact resume (the controller's whole state
goes through the checkpoint) and every step's KL within target_kl; against the LP optimum on
ExactChain-v0 and ExactTwoCost-v0 (slow; the measured numbers are in those tests' docstrings).
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.pid_lag import PIDLag
from cmdp.lagrange import PIDOptions
from cmdp.registry import register_algorithm
from cmdp.trust_region import TrustRegionConfig, TrustRegionSolver


@dataclass
class TRPOPIDConfig(PIDOptions, TrustRegionConfig):
    """The trust-region keys and the PID controller's (`cmdp.lagrange.PIDOptions`)."""


@register_algorithm("trpo_pid")
class TRPOPID(TrustRegionSolver, PIDLag):
    """TRPO on the Lagrangian advantage, one PID-controlled multiplier per cost."""

    Config = TRPOPIDConfig
