"""Group baselines of critic-free solvers (GRPO, RLOO and their constrained versions): several episodes (text:
responses) share a start (a prompt), and each episode's advantage is its return against its group's.

`GroupConfig` holds what every group solver has; `group_advantages` is the shared math. A solver declares
`schedule = Schedule.GROUP` and `critics = Critics.NONE`; the family then collects `group_size` episodes per
start, contiguously, and puts `group_advantages` of the per-episode stream totals into the batch (every token of a
response carries its response's advantage).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cmdp.config import ConfigError
from cmdp.solver import PolicyGradientConfig


@dataclass
class GroupConfig(PolicyGradientConfig):
    group_size: int = 4  # episodes (responses) per start (prompt)
    # divide by the group's standard deviation (GRPO, Shao et al. 2024) or only subtract its mean (Dr. GRPO)
    group_scale: bool = True

    def validate(self) -> None:
        super().validate()
        if self.group_size < 2:
            raise ConfigError(f"group_size must be >= 2 (a baseline needs another episode), got {self.group_size}")
        if self.steps_per_epoch % self.group_size:
            raise ConfigError(f"steps_per_epoch ({self.steps_per_epoch}) must be a multiple of group_size "
                              f"({self.group_size}): every start gets a whole group")


def group_advantages(returns: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """(S, E) per-episode stream totals, groups of `group_size` contiguous rows -> (S, E) advantages: each row
    minus its group's mean (and divided by the group's standard deviation when `scale`)."""
    s, e = returns.shape
    if s % group_size:
        raise ValueError(f"{s} episodes do not split into groups of {group_size}")
    grouped = returns.reshape(s // group_size, group_size, e)
    centred = grouped - grouped.mean(1, keepdim=True)
    if scale:
        centred = centred / (grouped.std(1, keepdim=True) + eps)
    return centred.reshape(s, e)
