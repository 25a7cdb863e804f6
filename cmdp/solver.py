"""The base every solver builds on, and the shared PPO-style update loop.

A solver differs from another in a few places only, and those are the methods to override:

- `update_multipliers(mean_episode_costs)`: move the multiplier(s) once per epoch (before the policy
  update, as OmniSafe does);
- `combine_advantages(adv)`: turn the (B, 1 + K) reward/cost advantages into the (B,) advantage the
  policy maximises (Lagrangian: (A_r - lambda A_c) / (1 + lambda));
- `actor_loss(batch_slice)` for solvers whose policy objective is not PPO's clipped surrogate;
- `update(batch)` for solvers with a different update altogether (e.g. trust-region steps).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cmdp.config import ConfigError, TrainConfig
from cmdp.losses import approx_kl, normalize_advantages, ppo_clip_loss
from cmdp.networks import ActorCritic
from cmdp.optim import TorchUpdater
from cmdp.rollout import RolloutBatch
from cmdp.spec import CMDPSpec


@dataclass
class PolicyGradientConfig(TrainConfig):
    """Hyperparameters of the PPO family. Defaults follow OmniSafe's on-policy Safety-Gymnasium settings
    (omnisafe/configs/on-policy/PPOLag.yaml) unless a comment says otherwise."""

    gamma: float = 0.99
    cost_gamma: float = 0.99
    lam: float = 0.95  # GAE lambda for the reward
    cost_lam: float = 0.95  # GAE lambda for the costs
    actor_hidden: list[int] = field(default_factory=lambda: [64, 64])
    critic_hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    init_log_std: float = -0.5
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    lr_decay: bool = True  # linear decay to 0 over the run
    update_iters: int = 40
    # OmniSafe uses 64. Measured on SafetyHopperVelocity-v1 (20k-step epochs): minibatches of 1000 reach
    # the same per-epoch KL (0.016 vs 0.020) and the same returns over the first epochs, while a pass
    # over the epoch costs 0.064 s instead of 0.51 s. Set batch_size=64 to replicate OmniSafe exactly.
    batch_size: int = 1000
    clip: float = 0.2
    target_kl: float = 0.02  # stop the epoch's updates once KL(old || new) exceeds it; <= 0 disables
    max_grad_norm: float = 40.0
    critic_l2: float = 0.001  # L2 penalty on critic weights (coefficient of sum w^2)
    entropy_coef: float = 0.0
    standardize_advantages: bool = True
    obs_normalize: bool = True
    reward_normalize: bool = False
    cost_normalize: bool = False

    def validate(self) -> None:
        super().validate()
        for name in ("update_iters", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gamma", "cost_gamma", "lam", "cost_lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("actor_lr", "critic_lr", "clip", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.activation not in ("tanh", "relu"):
            raise ConfigError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")


def check_finite(loss: torch.Tensor, part: str, batch: RolloutBatch, adv: torch.Tensor | None = None) -> None:
    """Stop with a message that says what went wrong, before a non-finite loss turns every weight into NaN."""
    if bool(torch.isfinite(loss)):
        return
    facts = [f"{part} loss is {loss.item()}", f"batch advantages finite: {bool(torch.isfinite(batch.advantages).all())}",
             f"returns finite: {bool(torch.isfinite(batch.returns).all())}"]
    if adv is not None:
        facts.append(f"minibatch policy advantage range [{adv.min().item():.3g}, {adv.max().item():.3g}]")
    raise FloatingPointError("training diverged: " + "; ".join(facts) + ". Lower the learning rates or "
                             "max_grad_norm, or check the environment's rewards and costs.")


class Solver:
    """Interface the trainer drives. `Config` is the solver's config dataclass."""

    name: str = "solver"
    Config: type = PolicyGradientConfig
    max_costs: int | None = None  # solvers that handle only one constraint set 1

    def __init__(self, cfg: Any, spec: CMDPSpec, agent: ActorCritic, num_epochs: int,
                 generator: torch.Generator) -> None:
        if self.max_costs is not None and spec.num_costs > self.max_costs:
            raise ConfigError(f"algorithm '{self.name}' supports at most {self.max_costs} cost(s); "
                              f"environment '{cfg.env}' has {spec.num_costs}: {spec.cost_names}")
        self.cfg, self.spec, self.agent = cfg, spec, agent
        self.num_epochs = num_epochs
        self.generator = generator

    def update(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def multipliers(self) -> dict[str, float]:
        """Current multiplier per cost name, for logging (empty for solvers without one)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class PolicyGradientSolver(Solver):
    """PPO-clip on a combined advantage, with reward and cost critics fitted on the same minibatches."""

    def __init__(self, cfg: PolicyGradientConfig, spec: CMDPSpec, agent: ActorCritic, num_epochs: int,
                 generator: torch.Generator) -> None:
        super().__init__(cfg, spec, agent, num_epochs, generator)
        # the agent may bring its own way of updating (text runs under DeepSpeed); else one torch Adam
        make_updater = getattr(agent, "make_updater", None)
        self.updater = make_updater(cfg, num_epochs) if make_updater else TorchUpdater(agent.actor, agent.critic,
                                                                                      cfg, num_epochs)

    # --- the parts solvers change -------------------------------------------------------------
    def update_multipliers(self, mean_episode_costs: np.ndarray) -> None:
        """Called once per epoch before the policy update. The base (unconstrained) has none."""

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        """(B, 1 + K) standardised advantages -> (B,) the actor maximises. Base: reward only."""
        return adv[:, 0]

    def actor_loss(self, obs: torch.Tensor, actions: torch.Tensor, logp_old: torch.Tensor,
                   adv: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss on one minibatch; PPO's clipped surrogate minus an optional entropy bonus."""
        logp = self.agent.actor.log_prob(obs, actions)
        loss, info = ppo_clip_loss(logp, logp_old, adv, self.cfg.clip)
        if self.cfg.entropy_coef:
            loss = loss - self.cfg.entropy_coef * self.agent.actor.entropy(obs).mean()
        return loss, info

    def policy_advantage(self, batch: RolloutBatch) -> torch.Tensor:
        """(B,) advantage for the actor: per-stream standardisation (if on), then `combine_advantages`."""
        adv = normalize_advantages(batch.advantages) if self.cfg.standardize_advantages else batch.advantages
        return self.combine_advantages(adv)

    # --- the shared loop ------------------------------------------------------------------------
    def update(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """One epoch's update: multipliers, then PPO on the combined advantage with the critics alongside."""
        self.update_multipliers(mean_episode_costs)
        metrics = self.optimize(batch, self.policy_advantage(batch))
        metrics["lr"] = self.updater.actor_lr
        self.updater.end_epoch()
        return metrics

    def optimize(self, batch: RolloutBatch, policy_adv: torch.Tensor | None,
                 update_iters: int | None = None) -> dict[str, float]:
        """Minibatch epochs over `batch`: the actor loss (skipped when `policy_adv` is None) plus the
        critics' squared error, one backward and one optimiser step per minibatch. With an actor
        loss, stops early once KL(old || new) on the whole batch exceeds `target_kl`."""
        cfg = self.cfg
        sums = {"loss_pi": 0.0, "loss_v": 0.0, "clip_frac": 0.0}
        count, iters_done, kl = 0, 0, 0.0
        for _ in range(update_iters or cfg.update_iters):
            for idx in batch.minibatches(cfg.batch_size, self.generator):
                obs = batch.obs[idx]
                loss_v = ((self.agent.critic(obs) - batch.returns[idx]) ** 2).mean(0).sum()
                loss_pi = None
                if policy_adv is not None:
                    loss_pi, info = self.actor_loss(obs, batch.actions[idx], batch.logp_old[idx], policy_adv[idx])
                    sums["loss_pi"] += loss_pi.item()
                    sums["clip_frac"] += info["clip_frac"].item()
                check_finite(loss_v, "critic", batch)
                if loss_pi is not None:
                    check_finite(loss_pi, "actor", batch, policy_adv[idx])
                self.updater.step(actor_loss=loss_pi, critic_loss=loss_v)
                sums["loss_v"] += loss_v.item()
                count += 1
            iters_done += 1
            if policy_adv is None:
                continue
            with torch.no_grad():
                kl = batch.global_mean(approx_kl(batch.logp_old, self.agent.actor.log_prob(batch.obs,
                                                                                            batch.actions)).item())
            if cfg.target_kl > 0 and kl > cfg.target_kl:
                break
        metrics = {k: v / max(count, 1) for k, v in sums.items()}
        metrics.update({"kl": kl, "update_iters": float(iters_done),
                        "entropy": float(self.agent.actor.entropy(batch.obs[:1]).mean().detach())})
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return self.updater.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updater.load_state_dict(state)
