"""PID Lagrangian PPO (Stooke, Achiam and Abbeel 2020, "Responsive Safety in Reinforcement Learning
by PID Lagrangian Methods"; OmniSafe's CPPOPID).

The policy side is PPO-Lagrangian's: the actor maximises the clipped surrogate of
(A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k). Only the multiplier differs: instead of
gradient ascent (an integral controller, which overshoots and makes the cost oscillate) each
lambda_k is the output of a PID controller on J_c,k - d_k (`cmdp.lagrange.PIDMultiplier`), updated
once per epoch before the policy update. Defaults follow OmniSafe's CPPOPID.yaml: kp 0.1, ki 0.01,
kd 0.01, derivative delay 10 epochs, EMA alphas 0.95, initial multiplier 0.001, no upper bound.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.ppo_lag import PPOLag
from cmdp.lagrange import PIDOptions
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig


@dataclass
class PIDLagConfig(PIDOptions, PolicyGradientConfig):
    """PPO's keys and the PID controller's (`cmdp.lagrange.PIDOptions`)."""


@register_algorithm("pid_lag")
class PIDLag(PPOLag):
    """PPO-Lagrangian with one PID-controlled multiplier per cost (PID Lagrangian, CPPOPID).

    Everything but the multiplier (advantage combination, logging, checkpoint state) is PPOLag's,
    which only needs `self.multiplier` to have `value`, `update`, `state_dict`, `load_state_dict`.
    """

    Config = PIDLagConfig
