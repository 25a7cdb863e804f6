"""TD3-Lagrangian (OmniSafe's TD3Lag): `td3` whose actor descends the Lagrangian of the critics,
[-Q_r(s, a) + sum_k lambda_k Q_c,k(s, a)] / (1 + sum_k lambda_k), with one multiplier per cost moved by projected
gradient ascent on the mean episode cost minus its limit (`cmdp.lagrange.LagrangeMultiplier`), a step per
gradient update as OmniSafe's.

The multiplier keys and their defaults, OmniSafe's, are `cmdp.off_policy.OffPolicyLagrangeOptions`; everything
else is `td3`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.td3 import TD3, TD3Config
from cmdp.off_policy import OffPolicyLagrangeOptions
from cmdp.registry import register_algorithm


@dataclass
class TD3LagConfig(OffPolicyLagrangeOptions, TD3Config):
    """TD3's keys and the multiplier's."""


@register_algorithm("td3_lag")
class TD3Lag(TD3):
    """TD3 with one Lagrange multiplier per cost."""

    Config = TD3LagConfig
