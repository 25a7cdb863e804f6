"""PPO-Simmer-PID (Sootla, Cowen-Rivers, Wang and Bou-Ammar 2022, "Effects of Safety State Augmentation on Safe
Exploration"; OmniSafe's PPOSimmerPID).

Unconstrained PPO on the Simmer transformation (`cmdp.transforms.SimmerVecCMDP`): Saute's state augmentation and
reward, with the episode budget b moved once per epoch by a PID controller on (b - mean episode cost of the last
epoch), within (0, upper_budget] (`cmdp.transforms.SimmerPID`, OmniSafe's SimmerPIDAgent). z starts at b / U and
falls by c / U, U the upper budget.

Defaults: PPO's, and the transformation's from omnisafe/configs/on-policy/PPOSimmerPID.yaml: saute_gamma 0.999,
unsafe_reward -1.0, safety_budget and upper_budget 25 there (here: the cost limit), kp 0.0005, ki 1e-5, kd 0,
polyak 0.995; the move bound 1, the integral window 10 and the lower bound 1e-6 are fixed in OmniSafe's
controller and here. Differences from OmniSafe (z normalised by the upper budget, z restarted at b / U after an
auto-reset): cmdp/transforms.py's docstring.

Tested (tests/test_transforms.py): the controller by hand (a sequence of updates, the clip, the bounds, the
window), that the budget moves between epochs and not during evaluation, a CLI run and its bit-exact resume; and
(slow) at these defaults on ExactChain-v0, every episode within the limit near the almost-surely-safe optimum
(`test_simmer_with_omnisafe_gains_keeps_every_episode_within_its_budget`). Not tested: the paper's claim of fewer
violations while learning (its docstring says what that run showed instead).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cmdp.algorithms.ppo import PPO
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig
from cmdp.transforms import check_kind


@dataclass
class PPOSimmerPIDConfig(PolicyGradientConfig):
    """PPO's keys; `transform` defaults to Simmer (its keys: cmdp.transforms.SimmerKwargs)."""

    transform: dict = field(default_factory=lambda: {"kind": "simmer"})  # the Simmer transformation and its keys

    def validate(self) -> None:
        super().validate()
        check_kind(self.transform, "simmer", self.algo)


@register_algorithm("ppo_simmer_pid")
class PPOSimmerPID(PPO):
    """PPO on the Simmer (PID-controlled Saute) transformation of the CMDP."""

    Config = PPOSimmerPIDConfig
