"""GRPO-PID: `grpo_lag` with PID-controlled multipliers (Stooke, Achiam and Abbeel 2020, "Responsive Safety in
Reinforcement Learning by PID Lagrangian Methods"), as `pid_lag` is `ppo_lag` with them.

The policy side is `grpo_lag`'s: group advantages for the reward and every cost, combined as
(A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k), GRPO's optional KL term in the loss, no value model. Each
lambda_k is the output of a PID controller on the epoch's mean response cost minus its limit
(`cmdp.lagrange.PIDOptions`, OmniSafe's CPPOPID defaults) instead of gradient ascent, whose integral-only response
overshoots where violations are large and the cost cannot fall far below the limit.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.grpo_lag import GRPOLag
from cmdp.group import GroupConfig
from cmdp.lagrange import PIDOptions
from cmdp.registry import register_algorithm


@dataclass
class GRPOPIDConfig(PIDOptions, GroupConfig):
    """The group keys and the PID controller's."""


@register_algorithm("grpo_pid")
class GRPOPID(GRPOLag):
    """Critic-free GRPO with one PID-controlled multiplier per cost."""

    Config = GRPOPIDConfig
