"""DDPG (Lillicrap et al. 2015, "Continuous control with deep reinforcement learning"): the unconstrained
off-policy base for Box actions, and the baseline that ignores the costs.

A deterministic tanh-squashed actor explores with Gaussian noise (`exploration_noise` x the half-range of
the actions); one reward Q-head and one cost Q-head per cost (the costs are learnt and logged, never
optimised) regress on targets from the target actor and target critics (`cmdp.off_policy`). Defaults are
OmniSafe's DDPG.yaml: actor and critic lr 3e-4, exploration noise 0.1, updates and random actions until
step 25,000, policy delay 1. One deliberate difference: the targets bootstrap from the *target* actor's
action, as in the paper; OmniSafe's DDPG uses the online actor there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cmdp.config import ConfigError
from cmdp.networks import DeterministicActor
from cmdp.off_policy import ActorQAgent, OffPolicyConfig, OffPolicySolver, box_dims
from cmdp.registry import register_algorithm
from cmdp.spec import CMDPSpec


@dataclass
class DDPGConfig(OffPolicyConfig):
    update_after: int = 25_000  # OmniSafe's start_learning_steps for DDPG and TD3
    random_steps: int = 25_000
    exploration_noise: float = 0.1  # acting noise std, as a share of the actions' half-range

    def validate(self) -> None:
        super().validate()
        if self.exploration_noise < 0:
            raise ConfigError(f"exploration_noise must be >= 0, got {self.exploration_noise}")


@register_algorithm("ddpg", constrained=False)
class DDPG(OffPolicySolver):
    """Deep deterministic policy gradient; costs are learnt but not constrained."""

    Config = DDPGConfig
    reward_heads = 1

    @classmethod
    def make_agent(cls, spec: CMDPSpec, cfg: DDPGConfig) -> ActorQAgent:
        obs_dim, act_dim = box_dims(spec, cls.name, cfg.env)
        actor = DeterministicActor(obs_dim, spec.action_space, cfg.actor_hidden, cfg.activation,
                                   cfg.exploration_noise, init=cfg.network_init)
        return ActorQAgent(actor, obs_dim, act_dim, cls.reward_heads, spec.num_costs, cfg.critic_hidden,
                           cfg.activation, target_actor=True, init=cfg.network_init)

    def next_action(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, float]:
        return self.agent.target_actor(next_obs), 0.0

    def policy_action(self, obs: torch.Tensor) -> tuple[torch.Tensor, float]:
        return self.agent.actor(obs), 0.0
