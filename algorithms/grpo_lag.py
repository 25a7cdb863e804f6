"""GRPO-Lagrangian: `grpo`'s group advantages for the reward and for every cost, combined as PPO-Lagrangian
does, (A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k), with one multiplier per cost moved once per epoch on
the epoch's mean response cost minus its limit (`cmdp.lagrange.LagrangeOptions`: the same keys and options as
`ppo_lag`, with the text family's defaults: init 1, SGD lr 0.1, bound 5, as safe-rlhf).

Everything but the schedule, the critics and GRPO's optional KL term in the loss (`kl_loss_coeff`, see `grpo`) is
`ppo_lag`'s; no value model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.ppo_lag import PPOLag
from cmdp.family import Critics, Schedule
from cmdp.group import GroupConfig, ReferenceKLInLoss
from cmdp.lagrange import LagrangeOptions
from cmdp.registry import register_algorithm


@dataclass
class GRPOLagConfig(LagrangeOptions, GroupConfig):
    """The group keys and the multiplier's."""


@register_algorithm("grpo_lag")
class GRPOLag(ReferenceKLInLoss, PPOLag):
    """Critic-free GRPO with one Lagrange multiplier per cost."""

    Config = GRPOLagConfig
    schedule = Schedule.GROUP
    critics = Critics.NONE
