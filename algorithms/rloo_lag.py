"""RLOO-Lagrangian: `rloo`'s leave-one-out advantages for the reward and for every cost, combined and constrained
as in `grpo_lag` (one multiplier per cost, `cmdp.lagrange.LagrangeOptions`); no value model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.grpo_lag import GRPOLag
from cmdp.algorithms.rloo import RLOOConfig
from cmdp.lagrange import LagrangeOptions
from cmdp.registry import register_algorithm


@dataclass
class RLOOLagConfig(LagrangeOptions, RLOOConfig):
    """The leave-one-out group keys and the multiplier's."""


@register_algorithm("rloo_lag")
class RLOOLag(GRPOLag):
    """Critic-free RLOO with one Lagrange multiplier per cost."""

    Config = RLOOLagConfig
