"""PPO-Saute (Sootla, Cowen-Rivers, Jafferjee, Wang, Mguni, Wang and Bou-Ammar 2022, "Saute RL: Almost Surely
Safe Reinforcement Learning Using State Augmentation"; OmniSafe's PPOSaute).

Unconstrained PPO on the Saute transformation of the CMDP (`cmdp.transforms.SauteVecCMDP`): each cost's
remaining budget z_k (z_k = 1 at the start, z_k <- (z_k - c_k / B_k) / saute_gamma) is appended to the
observation, and the reward of every step after which some z_k <= 0 becomes `unsafe_reward`. The solver is plain
`ppo`; only the `transform` default differs, so `--algo ppo --set 'transform={kind: saute}'` is the same run.

Defaults: PPO's (omnisafe/configs/on-policy/PPOLag.yaml, as for `ppo`) and the transformation's from
omnisafe/configs/on-policy/PPOSaute.yaml: saute_gamma 0.999, unsafe_reward -1.0, budget = the cost limit
(OmniSafe sets saute_gamma 0.9999 and unsafe_reward -0.2 for the Safety-Gymnasium Goal and Circle tasks).
Differences from OmniSafe: those of the transformation (cmdp/transforms.py's docstring).

Tested (tests/test_transforms.py): the Saute state and reward by hand, a CLI run and its bit-exact resume; and,
slow, what the paper claims rather than convergence (Saute has no convergence guarantee for the CMDP's
average-cost optimum): on ExactChain-v0, whose LP optimum meets the limit only on average (4 episodes in 9 cost
2 > 1.5), the trained policy's share of episodes above the limit is near 0 while ppo_lag's is large, at a
return below the LP optimum but near the best almost-surely-safe return (4.9). Not tested: Safety-Gymnasium
returns against OmniSafe's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cmdp.algorithms.ppo import PPO
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig
from cmdp.transforms import check_kind


@dataclass
class PPOSauteConfig(PolicyGradientConfig):
    """PPO's keys; `transform` defaults to Saute (its keys: cmdp.transforms.SauteKwargs)."""

    transform: dict = field(default_factory=lambda: {"kind": "saute"})  # the Saute transformation and its keys

    def validate(self) -> None:
        super().validate()
        check_kind(self.transform, "saute", self.algo)


@register_algorithm("ppo_saute")
class PPOSaute(PPO):
    """PPO on the Saute transformation of the CMDP."""

    Config = PPOSauteConfig
