"""Group baselines of critic-free solvers (GRPO, RLOO and their constrained versions): several episodes (text:
responses) share a start (a prompt), and each episode's advantage is its return against its group's.

`GroupConfig` holds what every group solver has, `GroupBaseline` is what a family needs to compute the
advantages, and `group_advantages` is the shared math. A solver declares `schedule = Schedule.GROUP` and
`critics = Critics.NONE`; the family then collects `group_size` episodes per start, contiguously, and puts
`group_advantages` of the per-episode stream totals into the batch (every token of a response carries its
response's advantage). Two baselines:

- `mean` (GRPO, Shao et al. 2024): R_i - mean_j R_j, divided by the group's standard deviation when
  `group_scale` (GRPO's standardisation; off, it is Dr. GRPO's unscaled form);
- `leave_one_out` (RLOO, Ahmadian et al. 2024): R_i - mean_{j != i} R_j = G / (G - 1) (R_i - mean_j R_j), an
  unbiased baseline because it does not contain the episode itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from cmdp.config import ConfigError, check_choice
from cmdp.losses import sampled_kl
from cmdp.rollout import Minibatch
from cmdp.solver import PolicyGradientConfig


GROUP_BASELINES = ("mean", "leave_one_out")


@dataclass
class GroupConfig(PolicyGradientConfig):
    group_size: int = 4  # episodes (responses) per start (prompt)
    # divide by the group's standard deviation (GRPO, Shao et al. 2024) or only subtract its mean (Dr. GRPO)
    group_scale: bool = True
    group_baseline: str = "mean"  # or "leave_one_out" (RLOO)
    # the group advantages are already on a common scale per prompt; a batch-wide standardisation on top would
    # undo GRPO's per-group one
    standardize_advantages: bool = False
    # beta of GRPO's KL term in the loss, beta * KL(pi || pi_ref) per token (`cmdp.losses.sampled_kl`; DeepSeekMath:
    # 0.04). 0: no such term; the text family's KL penalty in the reward (`env_kwargs.kl_coeff`) is separate, so
    # to move the KL from the reward into the loss set this and `env_kwargs.kl_coeff: 0`
    kl_loss_coeff: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_choice("group_baseline", self.group_baseline, GROUP_BASELINES)
        if self.group_size < 2:
            raise ConfigError(f"group_size must be >= 2 (a baseline needs another episode), got {self.group_size}")
        if self.kl_loss_coeff < 0:
            raise ConfigError(f"kl_loss_coeff must be >= 0, got {self.kl_loss_coeff}")
        if self.steps_per_epoch % self.group_size:
            raise ConfigError(f"steps_per_epoch ({self.steps_per_epoch}) must be a multiple of group_size "
                              f"({self.group_size}): every start gets a whole group")


def group_advantages(returns: torch.Tensor, group_size: int, scale: bool = True, leave_one_out: bool = False,
                     eps: float = 1e-6) -> torch.Tensor:
    """(S, E) per-episode stream totals, groups of `group_size` contiguous rows -> (S, E) advantages: each row
    minus its group's mean, or minus the mean of the group's other rows (`leave_one_out`), and divided by the
    group's standard deviation when `scale`."""
    s, e = returns.shape
    if s % group_size:
        raise ValueError(f"{s} episodes do not split into groups of {group_size}")
    grouped = returns.reshape(s // group_size, group_size, e)
    centred = grouped - grouped.mean(1, keepdim=True)
    if leave_one_out:
        centred = centred * (group_size / (group_size - 1))
    if scale:
        centred = centred / (grouped.std(1, keepdim=True) + eps)
    return centred.reshape(s, e)


@dataclass(frozen=True)
class GroupBaseline:
    """What a family needs from a group solver's config to compute the advantages."""

    size: int
    scale: bool
    leave_one_out: bool

    @classmethod
    def of(cls, cfg: GroupConfig) -> "GroupBaseline":
        return cls(cfg.group_size, cfg.group_scale, cfg.group_baseline == "leave_one_out")

    def advantages(self, returns: torch.Tensor) -> torch.Tensor:
        """(S, E) per-episode stream totals -> (S, E) advantages (`group_advantages`)."""
        return group_advantages(returns, self.size, self.scale, self.leave_one_out)


class ReferenceKLInLoss:
    """Mixin of the group solvers: GRPO's KL term, `kl_loss_coeff * mean sampled_kl(logp, ref_logp)`, added to
    PPO's clipped surrogate at the same log-probabilities (one forward pass). List it before the solver base:
    `class GRPO(ReferenceKLInLoss, PolicyGradientSolver)`. The batch carries the reference's log-probabilities
    (`Minibatch.ref_logp`: the text family, the only one with group schedules, always fills it)."""

    cfg: GroupConfig

    def clipped_surrogate(self, mb: Minibatch, logp: torch.Tensor) -> tuple[torch.Tensor, Mapping[str, Any]]:
        loss, info = super().clipped_surrogate(mb, logp)  # type: ignore[misc]  # the solver base after this mixin
        if not self.cfg.kl_loss_coeff:
            return loss, info
        if mb.ref_logp is None:
            raise RuntimeError("kl_loss_coeff needs the reference policy's log-probabilities in the batch, and this "
                               "environment family does not provide them")
        kl = sampled_kl(logp, mb.ref_logp).mean()
        return loss + self.cfg.kl_loss_coeff * kl, {**info, "kl_ref_loss": kl}
