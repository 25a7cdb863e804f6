"""DDPG-Lagrangian (OmniSafe's DDPGLag): `ddpg` whose actor descends the Lagrangian of the critics,
[-Q_r(s, a) + sum_k lambda_k Q_c,k(s, a)] / (1 + sum_k lambda_k), with one multiplier per cost moved by projected
gradient ascent on the mean episode cost minus its limit (`cmdp.lagrange.LagrangeMultiplier`), a step per
gradient update as OmniSafe's.

The multiplier keys and their defaults, OmniSafe's, are `cmdp.off_policy.OffPolicyLagrangeOptions`; everything
else is `ddpg`'s.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.ddpg import DDPG, DDPGConfig
from cmdp.off_policy import OffPolicyLagrangeOptions
from cmdp.registry import register_algorithm


@dataclass
class DDPGLagConfig(OffPolicyLagrangeOptions, DDPGConfig):
    """DDPG's keys and the multiplier's."""


@register_algorithm("ddpg_lag")
class DDPGLag(DDPG):
    """DDPG with one Lagrange multiplier per cost."""

    Config = DDPGLagConfig
