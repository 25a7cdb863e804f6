"""Shared helper of the learning tests: train a solver on an exact CMDP, evaluate its final policy exactly.

Not a test module (pytest collects only test_*.py); the learning tests import it by module name,
which works because pytest puts the tests/ folder on sys.path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cmdp.trainer import Trainer, resolve_config
from cmdp.envs.exact import LPSolution, evaluate_policy, solve_lp

# Settings every exact learning test shares: small fast epochs, undiscounted objective.
EXACT_BASE: dict[str, Any] = dict(
    num_envs=16, steps_per_epoch=2048, total_steps=2048 * 160,
    gamma=1.0, cost_gamma=1.0,  # the oracle's objective is the undiscounted episode total
    actor_lr=3e-4, critic_lr=3e-3, update_iters=10, batch_size=512,
    # The settings every test's multiplier step sizes were tuned and measured with, before the defaults became
    # OmniSafe's (2026-12-02): cost advantages standardised like the reward's (the multipliers' learning rates are
    # in those units) and the critics' learning rate decaying with the actor's.
    cost_advantage="standardize", critic_lr_decay=True,
    # ...and the orthogonal initialisation, the default until 2026-12-04. Under torch.nn.Linear's (the default
    # since) the default run's exact tests and 19 of the 21 slow on-policy ones pass unchanged; crpo on
    # ExactTwoCost-v0 (0.949 of the optimum) and trpo_pid on it (0.946) end just outside the 5% band, both within
    # their limits. test_exact_learning runs ppo_lag at the default.
    network_init="orthogonal",
)


def train_and_evaluate(tmp_path: Path, env: str, seed: int, **config: Any
                       ) -> tuple[float, np.ndarray, LPSolution, np.ndarray]:
    """Train with EXACT_BASE < `config` on `env`, then return the exact (return, costs (K,)) of the
    final policy, the constrained LP optimum for the run's limits, and those limits (K,).

    The final policy's action probabilities are read off the actor for every state, so the
    evaluation is a linear solve, free of Monte Carlo noise.
    """
    cfg, _ = resolve_config({**EXACT_BASE, "env": env, "seed": seed, **config})
    trainer = Trainer(cfg)
    tabular = trainer.run.env.cmdp
    lp = solve_lp(tabular, cost_limits=trainer.spec.cost_limits)
    trainer.train(tmp_path, progress=False)
    with torch.no_grad():
        states = torch.eye(trainer.spec.observation_space.n)
        policy = trainer.agent.actor.probs(states).double().numpy()
    value, costs = evaluate_policy(tabular, policy)
    return value, costs, lp, trainer.spec.cost_limits


def assert_near_lp_optimum(value: float, costs: np.ndarray, lp: LPSolution, limits: np.ndarray,
                           rel: float = 0.05) -> None:
    """The learning tests' criterion: return within `rel` of the LP optimum, every cost at most `rel` above its limit."""
    assert value == pytest.approx(lp.value, rel=rel)
    assert np.all(costs <= limits * (1 + rel)), (costs, limits)
