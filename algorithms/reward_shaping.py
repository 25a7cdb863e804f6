"""Reward shaping: PPO on the fixed trade-off r - sum_k beta_k c_k.

The baseline a constrained solver must beat (Safe RLHF, Dai et al. 2024, compares its Lagrangian
method against exactly this): one fixed penalty per cost instead of a learnt multiplier. A beta
that is too small breaks the limit, one that is too large gives up reward for nothing, and the
right beta depends on the task and the limit (the limit itself plays no part in the update).

Implementation: GAE is linear in the rewards and the value estimates, so the advantage of the
shaped reward r - beta . c with the shaped value V_r - beta . V_c is exactly A_r - beta . A_c.
The solver therefore keeps the separate reward and cost critics, combines the RAW advantages,
and only then standardises the combined advantage (if `standardize_advantages`). Standardising
each stream first, as the Lagrangian solvers do, would rescale A_r and A_c by different factors
and so change the effective beta by the ratio of their standard deviations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmdp.config import ConfigError
from cmdp.losses import normalize_advantages, penalised_advantage
from cmdp.registry import register_algorithm
from cmdp.rollout import RolloutBatch
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver


@dataclass
class RewardShapingConfig(PolicyGradientConfig):
    # One number applies to every cost; a list gives one penalty per cost, in cost order.
    beta: float | list[float] = 1.0

    def validate(self) -> None:
        super().validate()
        betas = self.beta if isinstance(self.beta, list) else [self.beta]
        if not betas or any(b < 0 for b in betas):
            raise ConfigError(f"beta must be >= 0 (a number or a non-empty list), got {self.beta}")


# unconstrained: the limits play no part in the update (a fixed beta keeps or breaks them by its size alone), so
# no short run excuses a cost above them (`cmdp train`'s end-of-run note, cmdp.cli.format_summary)
@register_algorithm("reward_shaping", constrained=False)
class RewardShaping(PolicyGradientSolver):
    """PPO on the shaped reward r - sum_k beta_k c_k with a fixed penalty beta_k per cost (config key `beta`)."""

    Config = RewardShapingConfig
    multiplier_name = "beta"  # the fixed penalties, shown as such; logged as lambda/<cost>

    def __init__(self, cfg: RewardShapingConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        k = self.spec.num_costs
        if isinstance(cfg.beta, list) and len(cfg.beta) != k:
            raise ConfigError(f"beta has {len(cfg.beta)} entries but environment '{cfg.env}' has {k} cost(s): "
                              f"{self.spec.cost_names}")
        self.beta = np.broadcast_to(np.asarray(cfg.beta, dtype=np.float64), (k,)).copy()

    def policy_advantage(self, batch: RolloutBatch) -> torch.Tensor:
        """A_r - beta . A_c from the raw streams, standardised afterwards (see the module docstring)."""
        combined = penalised_advantage(batch.advantages, self.beta)
        return normalize_advantages(combined) if self.cfg.standardize_advantages else combined

    def multipliers(self) -> dict[str, float]:
        # the fixed penalties, logged as lambda/<cost> so runs compare column for column with ppo_lag
        return dict(zip(self.spec.cost_names, self.beta.tolist()))
