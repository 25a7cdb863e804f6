"""SAC with PID Lagrangian multipliers (Stooke, Achiam and Abbeel 2020; OmniSafe's SACPID): `sac_lag`'s
actor loss, with each multiplier the output of a PID controller on the epoch's mean episode cost minus its
limit (`cmdp.lagrange.PIDMultiplier`).

The controller keys and their defaults, with how they map OmniSafe's per-update controller onto our per-epoch
one, are `cmdp.off_policy.OffPolicyPIDOptions`. OmniSafe's SACPID.yaml also lowers the actor's learning
rate to 1e-4.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.sac import SAC, SACConfig
from cmdp.off_policy import OffPolicyPIDOptions
from cmdp.registry import register_algorithm


@dataclass
class SACPIDConfig(OffPolicyPIDOptions, SACConfig):
    """SAC's keys and the PID controller's."""

    actor_lr: float = 1e-4


@register_algorithm("sac_pid")
class SACPID(SAC):
    """SAC with one PID-controlled multiplier per cost."""

    Config = SACPIDConfig
