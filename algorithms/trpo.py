"""TRPO (Schulman, Levine, Moritz, Jordan and Abbeel 2015, "Trust Region Policy Optimization").

Unconstrained: the costs are collected and their critics fitted (so runs log and compare column for
column with the constrained solvers), but the actor ignores them. Each epoch the actor takes one step

    x = sqrt(2 delta / (g^T H^-1 g)) H^-1 g,   g = grad E[rho A_r],  H = the Fisher matrix (Hessian of the mean KL),

H^-1 g by `cg_iters` conjugate-gradient iterations with damping `cg_damping`, so that x^T H x / 2 = delta
(`target_kl`). A backtracking line search (`line_search_steps` tries, shrinking by `line_search_decay`)
accepts the first fraction whose mean KL(old || new) <= delta and whose surrogate did not decrease, else
the old policy is kept; then the critics are fitted by the shared minibatch loop.

This is `cmdp.trust_region.TrustRegionSolver` unchanged, registered under a name; its docstring has the
details. Defaults: omnisafe/configs/on-policy/TRPO.yaml (target_kl 0.01, cg_iters 15, cg_damping 0.1,
fvp_sample_freq 1, critic lr 1e-3, update_iters 10) and the line search of
omnisafe/algorithms/on_policy/base/trpo.py (15 tries, decay 0.8), all already `TrustRegionConfig`'s, as is the critics' minibatch of 128 (1000 until 2026-12-03, see
`TrustRegionConfig`).
`lr_decay` is on as for every solver of the family, but it decays only the actor's rate, which TRPO does not use;
the critics keep theirs constant (`critic_lr_decay` off), as OmniSafe's.

Tests (tests/test_trust_region_zoo.py): a CLI run with a bit-exact resume and every step's KL within
target_kl; on ExactChain-v0 (slow) it ignores the cost limit and reaches the unconstrained LP optimum.
"""
from __future__ import annotations

from cmdp.registry import register_algorithm
from cmdp.trust_region import TrustRegionSolver


@register_algorithm("trpo", constrained=False)
class TRPO(TrustRegionSolver):
    """Unconstrained TRPO on the reward advantage (`TrustRegionSolver` as it is)."""
