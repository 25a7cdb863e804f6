"""TD3 (Fujimoto, van Hoof and Meger 2018, "Addressing Function Approximation Error in Actor-Critic
Methods"): DDPG with clipped double Q, target policy smoothing and a delayed actor.

It differs from `ddpg` by three things: two reward Q-heads whose minimum is the target's value, Gaussian noise
(std `policy_noise`, clipped at `policy_noise_clip`, both as shares of the actions' half-range) added to the
target action, and one actor step (and target update) per `policy_delay` critic steps. Defaults are OmniSafe's
TD3.yaml: policy noise 0.2, clip 0.5, delay 2, lr 3e-4, exploration noise 0.1, start at step 25,000.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cmdp.algorithms.ddpg import DDPG, DDPGConfig
from cmdp.config import ConfigError
from cmdp.registry import register_algorithm


@dataclass
class TD3Config(DDPGConfig):
    policy_delay: int = 2
    policy_noise: float = 0.2  # target smoothing noise std, as a share of the actions' half-range
    policy_noise_clip: float = 0.5

    def validate(self) -> None:
        super().validate()
        if self.policy_noise < 0 or self.policy_noise_clip < 0:
            raise ConfigError(f"policy_noise and policy_noise_clip must be >= 0, got {self.policy_noise} and "
                              f"{self.policy_noise_clip}")


@register_algorithm("td3", constrained=False)
class TD3(DDPG):
    """Twin delayed DDPG; costs are learnt but not constrained."""

    Config = TD3Config
    reward_heads = 2

    def next_action(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, float]:
        actor = self.agent.target_actor
        action = actor(next_obs)
        noise = torch.randn(action.shape, generator=self.generator, dtype=action.dtype) * self.cfg.policy_noise
        clip = self.cfg.policy_noise_clip
        scale = actor.scale
        action = action + noise.clamp(-clip, clip).to(action.device) * scale.half_range
        return action.clamp(scale.center - scale.half_range, scale.center + scale.half_range), 0.0
