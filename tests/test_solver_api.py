"""The solver API as documented: `actor_loss(mb)` may return any info keys (or none), and the batch carries the
behaviour policy's distribution to a solver that declares it needs it, without a copy of the model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cmdp.losses import distribution_kl, ppo_clip_loss
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver
from cmdp.trainer import Trainer, resolve_config

calls = {"n": 0}


@register_algorithm("test_sparse_info")
class SparseInfo(PolicyGradientSolver):
    """PPO whose actor_loss reports `odd` on every other minibatch and nothing otherwise."""

    Config = PolicyGradientConfig

    def actor_loss(self, mb):
        calls["n"] += 1
        loss, _ = ppo_clip_loss(self.agent.actor.log_prob(mb.obs, mb.actions), mb.logp_old, mb.adv, 0.2)
        return loss, ({"odd": 3.0} if calls["n"] % 2 else {})


@register_algorithm("test_old_dist")
class OldDist(PolicyGradientSolver):
    """Checks, on every minibatch, that `mb.old_dist` is the behaviour policy's distribution at those states."""

    Config = PolicyGradientConfig
    needs_old_distribution = True

    def actor_loss(self, mb):
        assert mb.old_dist is not None
        loss, _ = ppo_clip_loss(self.agent.actor.log_prob(mb.obs, mb.actions), mb.logp_old, mb.adv, 0.2)
        # the old distribution gives back the stored log-probabilities of the actions taken
        assert torch.allclose(mb.old_dist.log_prob(mb.actions), mb.logp_old, atol=1e-5)
        kl = distribution_kl(mb.old_dist, self.agent.actor.distribution(mb.obs)).mean()
        return loss, {"kl_exact": kl}


def _train(algo: str, tmp_path: Path) -> list[dict]:
    cfg, _ = resolve_config({"algo": algo, "env": "ExactChain-v0", "total_steps": 400, "steps_per_epoch": 200,
                             "batch_size": 50, "update_iters": 3, "target_kl": 0.0})
    rows: list[dict] = []
    Trainer(cfg).train(tmp_path, progress=False, on_epoch=rows.append)
    return rows


def test_info_keys_are_optional_and_averaged_over_the_minibatches_that_report_them(tmp_path: Path) -> None:
    rows = _train("test_sparse_info", tmp_path)
    assert [row["odd"] for row in rows] == [3.0, 3.0]  # not diluted by the minibatches that left it out
    assert all("clip_frac" not in row for row in rows)  # no key is required


def test_the_old_distribution_reaches_a_solver_that_declares_it(tmp_path: Path) -> None:
    rows = _train("test_old_dist", tmp_path)
    assert all(row["kl_exact"] >= 0.0 for row in rows) and rows[0]["kl_exact"] > 0.0
    assert _train_without_old_dist(tmp_path / "b") is None


def _train_without_old_dist(tmp_path: Path) -> None:
    cfg, _ = resolve_config({"algo": "ppo", "env": "ExactChain-v0", "total_steps": 200, "steps_per_epoch": 200})
    trainer = Trainer(cfg)
    batch = trainer.run.collect(cfg, trainer.rng, 0, None)
    trainer.close()
    return batch.old_dist  # ppo did not ask for it: nothing extra is computed or stored


@pytest.mark.parametrize("algo, early_stop_kl", [("ppo", "exact"), ("ppo", "sample"), ("trpo", "exact")])
def test_the_logged_entropy_is_the_policys_mean_over_the_batch(algo: str, early_stop_kl: str) -> None:
    """`entropy` is the mean over the epoch's states (its first 1,024; here all 200) of the updated policy's
    entropy. It was the entropy at the batch's first state, which for a softmax policy says little of the others."""
    extra = {"early_stop_kl": early_stop_kl} if algo == "ppo" else {}
    cfg, _ = resolve_config({"algo": algo, "env": "ExactChain-v0", "total_steps": 400, "steps_per_epoch": 200,
                             "seed": 3, **extra})
    trainer = Trainer(cfg)
    try:
        batch = trainer.run.collect(cfg, trainer.rng, 0, None)
        metrics = trainer.solver.update(batch, np.zeros(1))
        with torch.no_grad():
            per_state = trainer.agent.actor.entropy(batch.obs)
    finally:
        trainer.close()
    assert metrics["entropy"] == pytest.approx(per_state.mean().item(), rel=1e-6)
    assert per_state.max() - per_state.min() > 1e-3  # the states' entropies differ: the first one is not the mean
