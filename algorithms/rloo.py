"""RLOO (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human
Feedback"): `grpo` with the leave-one-out baseline, the baseline that ignores the costs.

Each response's advantage is its return minus the mean return of the *other* responses to its prompt, which
does not contain the response itself (an unbiased baseline), and is not rescaled. As in TRL's RLOO trainer the
actor takes PPO-clip steps on it; with `update_iters` 1 and one minibatch per epoch the clip never binds and it
is the paper's REINFORCE step.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.grpo import GRPO
from cmdp.group import GroupConfig
from cmdp.registry import register_algorithm


@dataclass
class RLOOConfig(GroupConfig):
    group_baseline: str = "leave_one_out"
    group_scale: bool = False


@register_algorithm("rloo", constrained=False)
class RLOO(GRPO):
    """Critic-free PPO on leave-one-out advantages (RLOO): costs measured, not optimised."""

    Config = RLOOConfig
