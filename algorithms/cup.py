"""CUP (Yang, Ji, Dai, Zhang, Zhou, Li, Yang, Pan 2022, "Constrained Update Projection Approach to Safe
Policy Optimization").

Each epoch, after one ascent step per Lagrange multiplier (as PPO-Lag):

1. improvement: PPO on the reward advantage alone, critics fitted alongside (the shared loop);
2. projection: only the actor moves, minimising over minibatch passes

       coef * sum_k lambda_k E[rho A_c,k] + E[KL(pi || pi_improved)],  rho = pi(a|s) / pi_old(a|s),

   where pi_old is the behaviour policy that collected the batch (both the authors' code and
   OmniSafe take the ratio against it, not against the improved policy), pi_improved the policy
   after step 1 (frozen), and coef = (1 - gamma_c lam_c) / (1 - gamma_c) the GAE factor of the
   paper's cost bound. The passes stop once KL(pi_improved || pi) on the whole batch exceeds
   `target_kl` (OmniSafe; `projection_kl="old"` measures it from pi_old instead, as the authors' code).

So CUP is PPO-Lag with the cost moved out of the PPO advantage into a second, KL-anchored step.
Defaults follow OmniSafe's CUP (omnisafe/configs/on-policy/CUP.yaml): target KL 0.01 for both steps,
multiplier init 0.001, Adam lr 0.035, upper bound 2.0. Cost advantages are only centred, OmniSafe's
(`cost_advantage: center`, the default of every solver; cup's since 2026-12-04). The authors' code standardises
them like the reward's (`cost_advantage: standardize`): on SafetyHopperVelocity-v1 at 1e6 steps over seeds 0-2
that overshot the limit further and came back later than OmniSafe's CUP, and ended with less return where both
settings were within the limit (docs/omnisafe-differences.md, row 1).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np
import torch

from cmdp.algorithms.ppo_lag import PPOLag, PPOLagConfig
from cmdp.config import ConfigError
from cmdp.losses import approx_kl, distribution_kl
from cmdp.registry import register_algorithm
from cmdp.rollout import Minibatch, OldDistribution, RolloutBatch
from cmdp.solver import check_finite


@dataclass
class CUPConfig(PPOLagConfig):
    """PPO-Lag's keys with OmniSafe CUP's defaults, plus the projection step's two keys."""

    target_kl: float = 0.01  # both steps (OmniSafe CUP); PPO-Lag uses 0.02
    lagrangian_upper_bound: float | None = 2.0
    # Weight of the cost surrogate in the projection. None: the paper's (1 - cost_gamma * cost_lam) /
    # (1 - cost_gamma); undiscounted (cost_gamma = 1, e.g. text) that factor is undefined and 1 is used.
    projection_coef: float | None = None
    # What the projection's early stop compares with target_kl. "improved" (OmniSafe): the exact
    # KL(improved || current), the projection's own move. "old" (the authors' code): KL(behaviour ||
    # current), estimated like the improvement step's, so the whole epoch shares one trust region; as
    # the improvement step usually ends just past target_kl, the projection then gets a single pass.
    projection_kl: str = "improved"

    def validate(self) -> None:
        super().validate()
        if self.projection_kl not in ("old", "improved"):
            raise ConfigError(f"projection_kl must be 'old' or 'improved', got {self.projection_kl!r}")
        if self.projection_coef is not None and self.projection_coef < 0:
            raise ConfigError(f"projection_coef must be >= 0, got {self.projection_coef}")


@register_algorithm("cup")
class CUP(PPOLag):
    """PPO on the reward, then a projection of the actor that lowers the cost surrogate near the
    improved policy. Multipliers, their logging and their checkpoint state are PPO-Lag's."""

    Config = CUPConfig

    def __init__(self, cfg: CUPConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        # the projection's minibatch step, compiled as the improvement's is (`compile_update`); None: eager
        self.projection_step = self.updater.fused(self.projection_losses) if cfg.compile_update else None

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        """The improvement step sees the reward advantage only."""
        return adv[:, 0]

    def update(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """One epoch: multipliers, PPO on the reward (critics alongside), then the projection."""
        self.update_multipliers(mean_episode_costs)
        metrics = self.optimize(batch, self.policy_advantage(batch))
        metrics.update(self.project(batch))
        metrics["lr"] = self.updater.actor_lr
        metrics.update(self.updater.end_epoch())
        return metrics

    def projection_coef(self) -> float:
        """The weight of the cost surrogate: the config's, or the paper's GAE factor."""
        cfg = self.cfg
        if cfg.projection_coef is not None:
            return float(cfg.projection_coef)
        if cfg.cost_gamma >= 1.0:
            return 1.0  # undiscounted: the bound's factor is undefined (and is 1 for every gamma when cost_lam = 1)
        return (1.0 - cfg.cost_gamma * cfg.cost_lam) / (1.0 - cfg.cost_gamma)

    def cost_advantages(self, batch: RolloutBatch) -> torch.Tensor:
        """(B, K) cost advantages as the actor sees them (`stream_advantages`: standardised or centred)."""
        return self.stream_advantages(batch)[:, 1:]

    def project(self, batch: RolloutBatch) -> dict[str, float]:
        """The projection step: minibatch passes on the actor alone, starting from (and anchored to)
        the improved policy; stops once the batch KL chosen by `projection_kl` exceeds `target_kl`."""
        cfg, actor = self.cfg, self.agent.actor
        # the improved policy, kept as its distributions' parameters over the batch (no copy of the model)
        improved = OldDistribution(actor.distribution_params(batch.obs), actor.distribution_from_params)
        lam = torch.as_tensor(self.multiplier.value, dtype=batch.advantages.dtype, device=batch.advantages.device)
        costs = self.cost_advantages(batch)
        cost_adv = costs @ lam  # (B,) sum_k lambda_k A_c,k
        # the projection's minibatches carry sum_k lambda_k A_c,k as `adv` and the improved policy as `old_dist`
        # (`projection_losses`); `minibatch_pass` gathers each field once per pass and slices it
        anchored = replace(batch, old_dist=improved)
        loss_sum, count, iters_done = 0.0, 0, 0
        for _ in range(cfg.update_iters):
            for mb in anchored.minibatch_pass(cfg.batch_size, self.generator, cost_adv):
                if self.projection_step is not None:
                    loss = self.projection_step(mb)["loss_pi"]  # nothing moved if it is not finite
                    check_finite(loss, "projection", batch, mb.adv)
                else:
                    loss_pi = self.projection_losses(mb)[0]
                    loss = loss_pi.item()
                    check_finite(loss, "projection", batch, mb.adv)
                    self.updater.step(actor_loss=loss_pi)  # the critics get no gradient: they stay as they are
                loss_sum += loss
                count += 1
            iters_done += 1
            stop_kl = batch.global_mean(self._projection_kl(batch, improved))
            if cfg.target_kl > 0 and stop_kl > cfg.target_kl:
                break
        with torch.no_grad():
            logp, dist = actor.log_prob_and_distribution(batch.obs, batch.actions)
            kl_improved = distribution_kl(improved[:], dist).mean()
            surrogate = (torch.exp(logp - batch.logp_old)[:, None] * costs).mean(0).sum()
        return {"proj_loss": loss_sum / max(count, 1), "proj_iters": float(iters_done),
                "proj_kl_improved": kl_improved.item(), "proj_kl_old": approx_kl(batch.logp_old, logp).item(),
                "cost_surrogate": surrogate.item()}

    def projection_losses(self, mb: Minibatch) -> tuple[torch.Tensor, None, Mapping[str, Any]]:
        """The projection's loss on one minibatch, for the actor alone: coef * E[rho sum_k lambda_k A_c,k] +
        E[KL(pi || pi_improved)]. Here `mb.adv` holds sum_k lambda_k A_c,k and `mb.old_dist` the improved policy's
        distribution (not the behaviour policy's, which `mb.logp_old` still gives for rho)."""
        # one forward pass of the actor for both terms: it was two until 2026-12-04, and the actor's forward and
        # backward are most of a projection step (a language model's, on text)
        logp, dist = self.agent.actor.log_prob_and_distribution(mb.obs, mb.actions)
        ratio = torch.exp(logp - mb.logp_old)
        kl = distribution_kl(dist, mb.old_dist)
        return (self.projection_coef() * ratio * mb.adv + kl).mean(), None, {}

    @torch.no_grad()
    def _projection_kl(self, batch: RolloutBatch, improved: OldDistribution) -> float:
        actor = self.agent.actor
        if self.cfg.projection_kl == "improved":
            return distribution_kl(improved[:], actor.distribution(batch.obs)).mean().item()
        return approx_kl(batch.logp_old, actor.log_prob(batch.obs, batch.actions)).item()
