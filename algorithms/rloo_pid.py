"""RLOO-PID: `rloo_lag` with PID-controlled multipliers (`cmdp.lagrange.PIDOptions`, as `grpo_pid`): leave-one-out
advantages for the reward and every cost, no value model.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.grpo_pid import GRPOPID
from cmdp.algorithms.rloo import RLOOConfig
from cmdp.lagrange import PIDOptions
from cmdp.registry import register_algorithm


@dataclass
class RLOOPIDConfig(PIDOptions, RLOOConfig):
    """The leave-one-out group keys and the PID controller's."""


@register_algorithm("rloo_pid")
class RLOOPID(GRPOPID):
    """Critic-free RLOO with one PID-controlled multiplier per cost."""

    Config = RLOOPIDConfig
