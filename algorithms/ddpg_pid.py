"""DDPG with PID Lagrangian multipliers (Stooke, Achiam and Abbeel 2020; OmniSafe's DDPGPID): `ddpg_lag`'s
actor loss, with each multiplier the output of a PID controller on the epoch's mean episode cost minus its
limit (`cmdp.lagrange.PIDMultiplier`).

The controller keys and their defaults, with how they map OmniSafe's per-update controller onto our per-epoch
one, are `cmdp.off_policy.OffPolicyPIDOptions`. OmniSafe's DDPGPID.yaml also lowers the actor's learning
rate to 1e-4.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.ddpg import DDPG, DDPGConfig
from cmdp.off_policy import OffPolicyPIDOptions
from cmdp.registry import register_algorithm


@dataclass
class DDPGPIDConfig(OffPolicyPIDOptions, DDPGConfig):
    """DDPG's keys and the PID controller's."""

    actor_lr: float = 1e-4
    lagrangian_init: float = 0.0


@register_algorithm("ddpg_pid")
class DDPGPID(DDPG):
    """DDPG with one PID-controlled multiplier per cost."""

    Config = DDPGPIDConfig
