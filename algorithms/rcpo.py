"""RCPO (Tessler, Mankowitz and Mannor 2019, "Reward Constrained Policy Optimization"), as OmniSafe's RCPO:
natural policy gradient on the penalised reward, one Lagrange multiplier per cost.

The constraint enters the reward: the actor maximises the return of r - sum_k lambda_k c_k, and each
lambda_k moves once per epoch, before the policy step, by projected gradient ascent on J_c,k - d_k (Adam,
as `ppo_lag`; `cmdp.lagrange.LagrangeOptions`). The policy step is `npg`'s: the natural gradient of
E[rho A] scaled to x^T H x / 2 = target_kl, taken without a line search.

The advantage. GAE is linear in the rewards and the value estimates, so the advantage of the penalised
reward (with the penalised value V_r - lambda . V_c) is exactly A = A_r - sum_k lambda_k A_c,k on the raw
streams; it is standardised afterwards when `standardize_advantages` is on (as `reward_shaping`, whose
docstring explains why standardising each stream first would change the trade-off). This is the paper's
objective. Deliberate difference from OmniSafe: its RCPO (omnisafe/algorithms/on_policy/naive_lagrange/
rcpo.py, `_compute_adv_surrogate`) uses (A_r' - lambda A_c') / (1 + lambda), where its buffer has
standardised A_r (A_r' = (A_r - mean) / std) but only centred A_c (A_c' = A_c - mean)
(omnisafe/common/buffer/onpolicy_buffer.py), so its lambda weighs the cost in units of the reward
advantage's standard deviation, a factor that changes as the policy learns. The 1 / (1 + lambda) there
changes nothing: the natural-gradient step is rescaled to the trust region whatever the advantage's scale.

Defaults: omnisafe/configs/on-policy/RCPO.yaml: target_kl 0.01, cg_iters 15, cg_damping 0.1, critic lr
1e-3, update_iters 10, critic minibatches of 128 (`TrustRegionConfig`'s), multiplier init 0.001, lr 0.035, Adam
(`LagrangeOptions`').

Composition: `NPG` (the step) with `PPOLag`'s multiplier (`__init__`, `update_multipliers`,
`multipliers`, `state_dict`, `load_state_dict`, so `--resume` restores the multiplier's Adam state);
only `policy_advantage` is RCPO's own:

    MRO: RCPO -> NPG -> TrustRegionSolver -> PPOLag -> PolicyGradientSolver -> Solver

Tests (tests/test_trust_region_zoo.py): the advantage by hand (raw streams, then standardised), a CLI run
with a bit-exact resume and the multiplier rising while the limit is broken; against the LP optimum on
ExactChain-v0 and ExactTwoCost-v0 (slow; numbers in those tests' docstrings) with a fast multiplier and
target_kl 0.003: with OmniSafe's 0.01 the last iterate swings outside the 5% band (every NPG step moves
the same KL distance, so the policy never settles at the saddle point). Not checked: the true KL of a step,
which no line search bounds (the CLI test only sees it below twice target_kl).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cmdp.algorithms.npg import NPG
from cmdp.algorithms.ppo_lag import PPOLag
from cmdp.lagrange import LagrangeOptions
from cmdp.losses import normalize_advantages, penalised_advantage
from cmdp.registry import register_algorithm
from cmdp.rollout import RolloutBatch
from cmdp.trust_region import TrustRegionConfig


@dataclass
class RCPOConfig(LagrangeOptions, TrustRegionConfig):
    """The trust-region keys (OmniSafe's RCPO.yaml) and the multiplier's (`LagrangeOptions`)."""


@register_algorithm("rcpo")
class RCPO(NPG, PPOLag):
    """NPG on the advantage of the penalised reward r - sum_k lambda_k c_k, lambda_k learnt per cost."""

    Config = RCPOConfig

    def policy_advantage(self, batch: RolloutBatch) -> torch.Tensor:
        """A_r - lambda . A_c from the raw streams, standardised afterwards (see the module docstring)."""
        penalised = penalised_advantage(batch.advantages, self.multiplier.value)
        return normalize_advantages(penalised) if self.cfg.standardize_advantages else penalised
