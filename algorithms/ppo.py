"""PPO (Schulman et al. 2017, "Proximal Policy Optimization Algorithms") on the reward alone.

The unconstrained baseline: the costs are still measured, logged and fitted by the cost critics,
but the actor ignores them. On a CMDP whose limit binds it breaks the limit, which is what makes
it a useful reference point for the constrained solvers.
"""
from __future__ import annotations

from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@register_algorithm("ppo", constrained=False)
class PPO(PolicyGradientSolver):
    """Unconstrained PPO on the reward alone (costs logged, not optimised): the baseline that breaks binding limits."""

    Config = PolicyGradientConfig
