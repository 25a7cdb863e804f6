"""Primal-dual optimisation (Chow, Ghavamzadeh, Janson and Pavone 2017, "Risk-Constrained Reinforcement Learning
with Percentile Risk Criteria"), as OmniSafe's PDO: pg's loss on the Lagrangian advantage.

Each epoch, first each multiplier moves by projected gradient ascent on the epoch's mean episode cost minus its
limit (lambda_k <- max(0, lambda_k + step(J_c,k - d_k)), `cmdp.lagrange.LagrangeOptions`), then the actor
minimises the unclipped surrogate -E[rho A], A = (A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k), with KL early
stopping (pg's loss). So pdo is ppo_lag without the clip, or pg with a multiplier, and is written as exactly that:

    MRO: PDO -> PG -> PPOLag -> PolicyGradientSolver -> Solver

`actor_loss` comes from PG; the multiplier (`__init__`, `update_multipliers`, `combine_advantages`, `multipliers`,
`state_dict`) from PPOLag, so --resume restores the multiplier and its Adam moments exactly.

Defaults: OmniSafe's omnisafe/configs/on-policy/PDO.yaml (omnisafe/algorithms/on_policy/naive_lagrange/pdo.py):
40 passes per epoch, target KL 0.02, reward and cost normalisation on (scaling by the running std of the
discounted return; the multiplier still sees the raw episode costs), multiplier init 0.001, Adam with lr 0.035,
no upper bound; everything else PolicyGradientConfig's (OmniSafe's on-policy settings, its minibatches of 64
included, see there).

Tests (tests/test_first_order_zoo.py): CLI training and a bit-exact resume; against the LP optimum of
ExactChain-v0 (one cost) and ExactTwoCost-v0 (two costs), slow, with the fast multiplier every Lagrangian
learning test uses (SGD, lr 10, from 0; tests/test_exact_learning.py says why). Not checked: OmniSafe's
multiplier settings, whose last iterate lands at a random phase of the Lagrangian oscillation on those CMDPs.
"""
from __future__ import annotations

from dataclasses import dataclass

from cmdp.algorithms.pg import PG, PGConfig
from cmdp.algorithms.ppo_lag import PPOLag
from cmdp.lagrange import LagrangeOptions
from cmdp.registry import register_algorithm


@dataclass
class PDOConfig(LagrangeOptions, PGConfig):
    """pg's keys with OmniSafe PDO.yaml's defaults, plus the multiplier's (`cmdp.lagrange.LagrangeOptions`)."""

    update_iters: int = 40  # OmniSafe PDO.yaml (pg: 10)
    reward_normalize: bool = True  # OmniSafe PDO.yaml
    cost_normalize: bool = True  # OmniSafe PDO.yaml


@register_algorithm("pdo")
class PDO(PG, PPOLag):
    """Policy gradient on the Lagrangian advantage, one multiplier per cost moved by gradient ascent."""

    Config = PDOConfig
