"""TRPO-Saute (Sootla et al. 2022, "Saute RL: Almost Surely Safe Reinforcement Learning Using State
Augmentation"; OmniSafe's TRPOSaute).

Unconstrained TRPO (`cmdp.trust_region.TrustRegionSolver`: a natural-gradient step on the reward advantage within
KL <= target_kl, with a backtracking line search) on the Saute transformation of the CMDP
(`cmdp.transforms.SauteVecCMDP`, see `ppo_saute`). Only the `transform` default differs from TRPO.

Defaults: the trust region's (cmdp.trust_region.TrustRegionConfig, from OmniSafe's TRPO-family configs) and the
transformation's from omnisafe/configs/on-policy/TRPOSaute.yaml: saute_gamma 0.999, unsafe_reward -1.0, budget
= the cost limit (0.9999 and -0.2 for the Safety-Gymnasium Goal and Circle tasks there).

Tested (tests/test_transforms.py): a CLI run and its bit-exact resume; slow: the share of ExactChain-v0
episodes above the limit after training (the paper's almost-sure claim), with the return against the LP optimum.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cmdp.registry import register_algorithm
from cmdp.transforms import check_kind
from cmdp.trust_region import TrustRegionConfig, TrustRegionSolver


@dataclass
class TRPOSauteConfig(TrustRegionConfig):
    """TRPO's keys; `transform` defaults to Saute (its keys: cmdp.transforms.SauteKwargs)."""

    transform: dict = field(default_factory=lambda: {"kind": "saute"})  # the Saute transformation and its keys

    def validate(self) -> None:
        super().validate()
        check_kind(self.transform, "saute", self.algo)


@register_algorithm("trpo_saute")
class TRPOSaute(TrustRegionSolver):
    """TRPO on the Saute transformation of the CMDP."""

    Config = TRPOSauteConfig
