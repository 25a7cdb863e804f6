"""The group schedule: a critic-free solver declares `Schedule.GROUP` and `Critics.NONE`; the text family then
answers each prompt `group_size` times, loads no critic, and gives every token its response's group advantage.

The solver here is test-local and minimal (PPO-clip on the group advantage); the critic-free constrained solvers
themselves are the constrained-RLHF issue's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from cmdp.cli import main
from cmdp.family import Critics, Schedule
from cmdp.group import GroupConfig, group_advantages
from cmdp.registry import register_algorithm
from cmdp.solver import PolicyGradientSolver
from cmdp.trainer import new_run, resolve_config
from test_text_rl import text_config


@register_algorithm("test_group_ppo")
class GroupPPO(PolicyGradientSolver):
    """PPO-clip on the reward stream's group advantage, with no critic."""

    Config = GroupConfig
    schedule = Schedule.GROUP
    critics = Critics.NONE

    def policy_advantage(self, batch):  # already normalised within each group
        return batch.advantages[:, 0]


def test_group_advantages_are_centred_and_scaled_within_each_group() -> None:
    returns = torch.tensor([[1.0, 0.0], [3.0, 2.0], [10.0, 5.0], [10.0, 7.0]])
    adv = group_advantages(returns, 2)
    assert torch.allclose(adv.reshape(2, 2, 2).sum(1), torch.zeros(2, 2), atol=1e-6)
    assert adv[0, 0] < 0 < adv[1, 0] and adv[2, 0] == adv[3, 0] == 0.0  # a group without spread gives 0
    assert torch.allclose(group_advantages(returns, 2, scale=False)[:, 0], torch.tensor([-1.0, 1.0, 0.0, 0.0]))
    with pytest.raises(ValueError):
        group_advantages(returns, 3)


def test_a_group_solver_trains_the_language_model_without_critics(quick_text_default: Path, tmp_path: Path) -> None:
    cfg, _ = resolve_config(text_config(quick_text_default, algo="test_group_ppo", total_steps=8, group_size=4))
    trainer, run_dir = new_run(cfg, str(tmp_path / "run"))
    assert trainer.agent.critic is None  # no critic loaded at all
    run = trainer.run
    batch = run.collect(cfg, np.random.default_rng(0), reset_seed=5, progress=None)
    texts = run.models.tokenizer.batch_decode(batch.obs.input_ids)
    seq = batch.groups.numpy()
    responses = int(seq.max()) + 1
    assert responses == 8
    adv = batch.advantages[:, 0].numpy()
    per_response = np.array([adv[seq == i][0] for i in range(responses)])
    for i in range(responses):
        assert np.all(adv[seq == i] == per_response[i])  # every token carries its response's advantage
    assert np.allclose(per_response.reshape(2, 4).sum(1), 0.0, atol=1e-5)  # centred within each prompt's group
    prompts = [t.split("Assistant:")[0] for t in texts]
    assert prompts[0] == prompts[3] and prompts[4] == prompts[7]  # 2 prompts, 4 answers each, contiguous
    before = [p.detach().clone() for p in trainer.agent.actor.parameters()]
    summary = trainer.train(run_dir, progress=False)
    assert summary["finished"]
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.agent.actor.parameters()))


def test_families_refuse_schedules_they_cannot_collect(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--algo", "test_group_ppo", "--env", "ExactChain-v0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "group" in err and "ExactChain-v0" in err and err.count("\n") == 1
