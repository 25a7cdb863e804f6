"""PPO-Early-Terminated (Sun, Xu, Fang, Peng, Guo, Dai and Zhou 2021, "Safe Exploration by Solving Early
Terminated MDP"; OmniSafe's PPOEarlyTerminated).

Unconstrained PPO on the early-terminated MDP (`cmdp.transforms.EarlyTerminatedVecCMDP`): an episode ends,
terminated (no bootstrap), at the first step after which some cost's episode total exceeds its limit d_k; that
step's reward is 0, so a policy that breaks a limit loses the rest of its episode's reward. Only the `transform`
default differs from `ppo`.

Defaults: PPO's; the limit is the run's cost limit (omnisafe/configs/on-policy/PPOEarlyTerminated.yaml:
cost_limit 25). Differences from OmniSafe (a running cost per copy that restarts with every episode, any number
of copies): cmdp/transforms.py's docstring. Training episodes (`ep_return`) are the cut ones, counted on the
original reward; `cmdp eval` measures the policy on the CMDP itself, uncut.

Tested (tests/test_transforms.py): the cut by hand (K = 2, several copies, an auto-reset on the same step), a CLI
run and its bit-exact resume; slow: the measured share of ExactChain-v0 episodes above the limit after
training, and the return against the LP optimum. The method has no guarantee of reaching the CMDP's optimum.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cmdp.algorithms.ppo import PPO
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig
from cmdp.transforms import check_kind


@dataclass
class PPOEarlyTerminatedConfig(PolicyGradientConfig):
    """PPO's keys; `transform` defaults to early termination."""

    transform: dict = field(default_factory=lambda: {"kind": "early_terminated"})  # the early-terminated MDP

    def validate(self) -> None:
        super().validate()
        check_kind(self.transform, "early_terminated", self.algo)


@register_algorithm("ppo_early_terminated")
class PPOEarlyTerminated(PPO):
    """PPO on the early-terminated MDP."""

    Config = PPOEarlyTerminatedConfig
