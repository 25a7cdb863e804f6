"""SAC-Lagrangian for discrete actions (Haarnoja et al. 2018, soft actor-critic; Christodoulou 2019, its
discrete-action form; the Lagrangian as in OmniSafe's SACLag).

Off-policy, from a replay buffer (`cmdp.off_policy`). The critics are Q(s, .) for every action at once: two
reward heads (clipped double Q) and one head per cost, with Polyak-averaged targets. With pi(.|s) a softmax,
expectations over the next action are exact sums:

    y_r = r + gamma (1 - done) sum_a' pi(a'|s') [min(Q1', Q2')(s', a') - alpha log pi(a'|s')]
    y_c = c + gamma_c (1 - done) sum_a' pi(a'|s') Qc'(s', a')

The actor minimises sum_a pi(a|s) [alpha log pi(a|s) - Q_r(s, a) + sum_k lambda_k Q_c,k(s, a)] / (1 + sum_k
lambda_k), the entropy temperature alpha is learnt towards `target_entropy` (a share of log |A|), and each
lambda_k moves once per epoch by projected gradient ascent on the epoch's mean episode cost minus its limit
(the multiplier classes of cmdp.lagrange, as for ppo_lag). Discrete action spaces only so far; continuous SAC,
TD3 and DDPG are the off-policy issue's.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import nn

from cmdp.config import ConfigError
from cmdp.lagrange import LagrangeMultiplier
from cmdp.networks import CategoricalActor, EnsembleCritic, flat_obs_dim
from cmdp.off_policy import OffPolicyConfig, OffPolicySolver, polyak_update
from cmdp.registry import register_algorithm
from cmdp.replay import ReplaySample
from cmdp.spec import CMDPSpec


@dataclass
class SACLagConfig(OffPolicyConfig):
    alpha: float = 0.2  # initial entropy temperature
    auto_alpha: bool = True  # learn alpha towards target_entropy
    alpha_lr: float = 3e-4
    # target mean entropy of pi(.|s), as a share of the uniform policy's log |A|. Christodoulou (2019) uses 0.98,
    # which keeps the policy near uniform; a constrained optimum is nearly deterministic in most states.
    target_entropy_ratio: float = 0.1
    lagrangian_init: float = 0.001
    lagrangian_lr: float = 0.035
    lagrangian_optimizer: str = "adam"
    lagrangian_upper_bound: float | None = None

    def validate(self) -> None:
        super().validate()
        if not self.alpha > 0 or not self.alpha_lr > 0:
            raise ConfigError(f"alpha and alpha_lr must be > 0, got {self.alpha} and {self.alpha_lr}")
        if not 0.0 <= self.target_entropy_ratio <= 1.0:
            raise ConfigError(f"target_entropy_ratio must be in [0, 1], got {self.target_entropy_ratio}")
        if self.lagrangian_init < 0 or not self.lagrangian_lr > 0:
            raise ConfigError(f"lagrangian_init must be >= 0 and lagrangian_lr > 0, got {self.lagrangian_init} "
                              f"and {self.lagrangian_lr}")
        if self.lagrangian_optimizer not in ("adam", "sgd"):
            raise ConfigError(f"lagrangian_optimizer must be 'adam' or 'sgd', got {self.lagrangian_optimizer!r}")
        if self.lagrangian_upper_bound is not None and self.lagrangian_upper_bound < 0:
            raise ConfigError(f"lagrangian_upper_bound must be >= 0, got {self.lagrangian_upper_bound}")


class DiscreteSACAgent(nn.Module):
    """A softmax actor, Q(s, .) heads [reward 1, reward 2, cost 1..K] and their Polyak-averaged targets."""

    def __init__(self, obs_dim: int, num_actions: int, num_costs: int, actor_hidden: list[int],
                 critic_hidden: list[int], activation: str) -> None:
        super().__init__()
        self.actor = CategoricalActor(obs_dim, num_actions, actor_hidden, activation)
        self.critic = EnsembleCritic(obs_dim, critic_hidden, 2 + num_costs, activation, out_dim=num_actions)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)


@register_algorithm("sac_lag")
class SACLag(OffPolicySolver):
    """Soft actor-critic (discrete actions) with one Lagrange multiplier per cost."""

    Config = SACLagConfig

    @classmethod
    def make_agent(cls, spec: CMDPSpec, cfg: SACLagConfig) -> DiscreteSACAgent:
        if not isinstance(spec.action_space, gymnasium.spaces.Discrete):
            raise ConfigError(f"sac_lag handles Discrete action spaces so far; environment '{cfg.env}' has "
                              f"{spec.action_space}")
        return DiscreteSACAgent(flat_obs_dim(spec.observation_space), int(spec.action_space.n), spec.num_costs,
                                cfg.actor_hidden, cfg.critic_hidden, cfg.activation)

    def __init__(self, cfg: SACLagConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.multiplier = LagrangeMultiplier(self.spec.cost_limits, cfg.lagrangian_init, cfg.lagrangian_lr,
                                             cfg.lagrangian_optimizer, cfg.lagrangian_upper_bound)
        self.log_alpha = torch.tensor(math.log(cfg.alpha), requires_grad=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.target_entropy = cfg.target_entropy_ratio * math.log(int(self.spec.action_space.n))

    def update_step(self, sample: ReplaySample) -> dict[str, float]:
        cfg, agent = self.cfg, self.agent
        alpha = float(self.log_alpha.detach().exp())
        k = self.spec.num_costs
        with torch.no_grad():
            logits_next = agent.actor.logits(sample.next_obs)
            p_next, logp_next = torch.softmax(logits_next, -1), torch.log_softmax(logits_next, -1)
            q_next = agent.target_critic(sample.next_obs)  # (B, 2 + K, A)
            v_r = (p_next * (torch.minimum(q_next[:, 0], q_next[:, 1]) - alpha * logp_next)).sum(-1)
            v_c = (p_next[:, None, :] * q_next[:, 2:]).sum(-1)  # (B, K)
            live = 1.0 - sample.terminated
            y_r = sample.rewards + cfg.gamma * live * v_r
            y_c = sample.costs + cfg.cost_gamma * live[:, None] * v_c
            targets = torch.cat([y_r[:, None], y_r[:, None], y_c], dim=1)  # (B, 2 + K)
        q = agent.critic(sample.obs)
        q_taken = q.gather(-1, sample.actions.long().view(-1, 1, 1).expand(-1, 2 + k, 1)).squeeze(-1)
        loss_q = ((q_taken - targets) ** 2).mean(0).sum()
        self.updater.step(critic_loss=loss_q)

        lam = torch.as_tensor(self.multiplier.value, dtype=torch.float32)
        with torch.no_grad():
            q = agent.critic(sample.obs)
            q_lagrangian = torch.minimum(q[:, 0], q[:, 1]) - (lam[None, :, None] * q[:, 2:]).sum(1)
        logits = agent.actor.logits(sample.obs)
        p, logp = torch.softmax(logits, -1), torch.log_softmax(logits, -1)
        loss_pi = (p * (alpha * logp - q_lagrangian)).sum(-1).mean() / (1.0 + float(lam.sum()))
        self.updater.step(actor_loss=loss_pi)

        entropy = float(-(p * logp).sum(-1).mean().detach())
        if cfg.auto_alpha:
            self.alpha_optimizer.zero_grad()
            (self.log_alpha * (entropy - self.target_entropy)).backward()
            self.alpha_optimizer.step()
        polyak_update(agent.target_critic, agent.critic, cfg.polyak)
        return {"loss_q": loss_q.item(), "loss_pi": loss_pi.item(), "entropy": entropy, "alpha": alpha}

    def end_epoch(self, mean_episode_costs: np.ndarray) -> dict[str, float]:
        self.multiplier.update(mean_episode_costs)
        self.updater.end_epoch()
        return {"lr": self.updater.actor_lr}

    def multipliers(self) -> dict[str, float]:
        return dict(zip(self.spec.cost_names, self.multiplier.value.tolist()))

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "multiplier": self.multiplier.state_dict(),
                "log_alpha": self.log_alpha.detach().clone(), "alpha_optimizer": self.alpha_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.multiplier.load_state_dict(state["multiplier"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
