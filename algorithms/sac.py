"""Soft actor-critic (Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep Reinforcement
Learning with a Stochastic Actor"; the learnt temperature from Haarnoja et al. 2018b, "Soft Actor-Critic
Algorithms and Applications"; the discrete-action form from Christodoulou 2019): the unconstrained base, and
the baseline that ignores the costs.

Box actions: a tanh-squashed Gaussian policy (`SquashedGaussianActor`) and the shared update of
`cmdp.off_policy` with two reward Q-heads and the entropy bonus b = -alpha log pi(a|s) in both the target and
the actor's objective; no target actor (the next action is sampled from the current policy).

Discrete actions: the critics are Q(s, .) for every action at once, and expectations over actions are exact
sums under pi(.|s), so no action is sampled:

    y_r = r + gamma (1 - done) sum_a' pi(a'|s') [min(Q1', Q2')(s', a') - alpha log pi(a'|s')]
    y_c = c + gamma_c (1 - done) sum_a' pi(a'|s') Qc'(s', a')
    actor: sum_a pi(a|s) [alpha log pi(a|s) - min(Q1, Q2)(s, a) + sum_k lambda_k Qc,k(s, a)] / (1 + sum_k lambda_k)

`auto_alpha` learns alpha towards a target entropy after each actor step: -dim(A) for Box actions (Haarnoja
et al. 2018b), `target_entropy_ratio` x log |A| for Discrete ones (Christodoulou's 0.98 keeps a policy near
uniform; a constrained optimum is nearly deterministic in most states, hence 0.1). Defaults are OmniSafe's
SAC.yaml: alpha 0.2 fixed (auto_alpha false), policy delay 2, lr 3e-4, start at step 10,000.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import gymnasium
import torch
from torch import nn

from cmdp.config import ConfigError
from cmdp.networks import CategoricalActor, EnsembleCritic, SquashedGaussianActor, flat_obs_dim
from cmdp.off_policy import ActorQAgent, OffPolicyConfig, OffPolicySolver, box_dims, stream_critics
from cmdp.registry import register_algorithm
from cmdp.replay import ReplaySample
from cmdp.spec import CMDPSpec


@dataclass
class SACConfig(OffPolicyConfig):
    policy_delay: int = 2
    alpha: float = 0.2  # entropy temperature (the initial one with auto_alpha)
    auto_alpha: bool = False  # learn alpha towards the target entropy
    alpha_lr: float = 3e-4
    target_entropy_ratio: float = 0.1  # Discrete actions: the target entropy as a share of log |A|

    def validate(self) -> None:
        super().validate()
        if not self.alpha > 0 or not self.alpha_lr > 0:
            raise ConfigError(f"alpha and alpha_lr must be > 0, got {self.alpha} and {self.alpha_lr}")
        if not 0.0 <= self.target_entropy_ratio <= 1.0:
            raise ConfigError(f"target_entropy_ratio must be in [0, 1], got {self.target_entropy_ratio}")


class DiscreteSACAgent(nn.Module):
    """A softmax actor, Q(s, .) heads [reward 1, reward 2, cost 1..K] and their Polyak-averaged targets."""

    def __init__(self, obs_dim: int, num_actions: int, num_costs: int, actor_hidden: list[int],
                 critic_hidden: list[int], activation: str, init: str = "orthogonal") -> None:
        super().__init__()
        self.actor = CategoricalActor(obs_dim, num_actions, actor_hidden, activation, init=init)
        self.critic = EnsembleCritic(obs_dim, critic_hidden, 2 + num_costs, activation, out_dim=num_actions,
                                     init=init, critic_of_head=stream_critics(2, num_costs))
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_actor = None


@register_algorithm("sac", constrained=False)
class SAC(OffPolicySolver):
    """Soft actor-critic for Box or Discrete actions; costs are learnt but not constrained."""

    Config = SACConfig
    reward_heads = 2

    @classmethod
    def make_agent(cls, spec: CMDPSpec, cfg: SACConfig) -> nn.Module:
        if isinstance(spec.action_space, gymnasium.spaces.Discrete):
            return DiscreteSACAgent(flat_obs_dim(spec.observation_space), int(spec.action_space.n), spec.num_costs,
                                    cfg.actor_hidden, cfg.critic_hidden, cfg.activation, cfg.network_init)
        obs_dim, act_dim = box_dims(spec, cls.name, cfg.env)
        actor = SquashedGaussianActor(obs_dim, spec.action_space, cfg.actor_hidden, cfg.activation,
                                      init=cfg.network_init)
        return ActorQAgent(actor, obs_dim, act_dim, cls.reward_heads, spec.num_costs, cfg.critic_hidden,
                           cfg.activation, target_actor=False, init=cfg.network_init)

    def __init__(self, cfg: SACConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        space = self.spec.action_space
        self.discrete = isinstance(space, gymnasium.spaces.Discrete)
        self.log_alpha = torch.tensor(math.log(cfg.alpha), requires_grad=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)
        self.target_entropy = (cfg.target_entropy_ratio * math.log(int(space.n)) if self.discrete
                               else -float(math.prod(space.shape)))

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    # --- Box actions: the hooks of the shared update -------------------------------------------------------
    def next_action(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        action, logp = self.agent.actor.sample(next_obs, self.generator)
        return action, -self.alpha * logp

    def policy_action(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        action, logp = self.agent.actor.sample(obs, self.generator)
        return action, -self.alpha * logp

    def actor_reward_q(self, q: torch.Tensor) -> torch.Tensor:
        return torch.minimum(q[:, 0], q[:, 1])

    # --- Discrete actions: exact expectations ---------------------------------------------------------------
    def critic_targets(self, sample: ReplaySample) -> torch.Tensor:
        if not self.discrete:
            return super().critic_targets(sample)
        cfg, agent = self.cfg, self.agent
        with torch.no_grad():
            logits = agent.actor.logits(sample.next_obs)
            p, logp = torch.softmax(logits, -1), torch.log_softmax(logits, -1)
            q_next = agent.target_critic(sample.next_obs)  # (B, 2 + K, A)
            v_r = (p * (torch.minimum(q_next[:, 0], q_next[:, 1]) - self.alpha * logp)).sum(-1)
            v_c = (p[:, None, :] * q_next[:, 2:]).sum(-1)  # (B, K)
            live = 1.0 - sample.terminated
            y_r = sample.rewards + cfg.gamma * live * v_r
            y_c = sample.costs + cfg.cost_gamma * live[:, None] * v_c
            return torch.cat([y_r[:, None], y_r[:, None], y_c], dim=1)

    def q_taken(self, sample: ReplaySample) -> torch.Tensor:
        if not self.discrete:
            return super().q_taken(sample)
        q = self.agent.critic(sample.obs)  # (B, 2 + K, A)
        return q.gather(-1, sample.actions.long().view(-1, 1, 1).expand(-1, q.shape[1], 1)).squeeze(-1)

    def actor_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if not self.discrete:
            return super().actor_loss(obs)
        lam = self.lambdas()
        with torch.no_grad():
            q = self.agent.critic(obs)
            q_lagrangian = torch.minimum(q[:, 0], q[:, 1]) - (lam[None, :, None] * q[:, 2:]).sum(1)
        logits = self.agent.actor.logits(obs)
        p, logp = torch.softmax(logits, -1), torch.log_softmax(logits, -1)
        return (p * (self.alpha * logp - q_lagrangian)).sum(-1).mean() / (1.0 + float(lam.sum())), {}

    # --- the temperature -------------------------------------------------------------------------------------
    def policy_entropy(self, obs: torch.Tensor) -> float:
        """The current policy's mean entropy on `obs`: exact (Discrete) or a one-sample estimate (Box)."""
        with torch.no_grad():
            if self.discrete:
                logits = self.agent.actor.logits(obs)
                return float(-(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1).mean())
            return float(-self.agent.actor.sample(obs, self.generator)[1].mean())

    def update_actor(self, obs: torch.Tensor) -> dict[str, float]:
        info = super().update_actor(obs)
        entropy = self.policy_entropy(obs)
        if self.cfg.auto_alpha:
            self.alpha_optimizer.zero_grad()
            (self.log_alpha * (entropy - self.target_entropy)).backward()
            self.alpha_optimizer.step()
        return {**info, "entropy": entropy, "alpha": self.alpha}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "alpha_optimizer": self.alpha_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
