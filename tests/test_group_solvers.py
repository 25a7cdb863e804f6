"""The critic-free group solvers for the text family: grpo, rloo and their Lagrangian versions. Their baselines
are checked by hand, and each one trains the tiny language model through the CLI's trainer with no value model
loaded; the Lagrangian versions move their multiplier on the mean response cost."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cmdp.group import GroupBaseline, group_advantages
from cmdp.trainer import new_run, resolve_config

transformers = pytest.importorskip("transformers")

from test_text_rl import progress_rows, text_config  # noqa: E402


def test_leave_one_out_baseline_by_hand() -> None:
    returns = torch.tensor([[1.0], [3.0], [8.0], [2.0], [4.0], [6.0]])
    # groups of 3: R_i - mean of the other two
    expected = torch.tensor([[1 - 5.5], [3 - 4.5], [8 - 2.0], [2 - 5.0], [4 - 4.0], [6 - 3.0]])
    assert torch.allclose(group_advantages(returns, 3, scale=False, leave_one_out=True), expected)
    assert torch.allclose(group_advantages(returns, 3, scale=False)[:3, 0], torch.tensor([-3.0, -1.0, 4.0]))


@pytest.mark.parametrize("algo,baseline", [("grpo", GroupBaseline(4, True, False)),
                                           ("grpo_lag", GroupBaseline(4, True, False)),
                                           ("rloo", GroupBaseline(4, False, True)),
                                           ("rloo_lag", GroupBaseline(4, False, True)),
                                           ("grpo_pid", GroupBaseline(4, True, False)),
                                           ("rloo_pid", GroupBaseline(4, False, True))])
def test_group_solver_trains_the_language_model_without_value_models(quick_text_default: Path, tmp_path: Path,
                                                                     algo: str, baseline: GroupBaseline) -> None:
    extra = {"lagrangian_lr": 1.0} if algo.endswith("_lag") else {"pid_kp": 10.0} if algo.endswith("_pid") else {}
    cfg, _ = resolve_config(text_config(quick_text_default, algo=algo, total_steps=16, group_size=4, **extra))
    assert GroupBaseline.of(cfg) == baseline
    assert cfg.standardize_advantages is False  # the group's own normalisation is the advantage
    trainer, run_dir = new_run(cfg, str(tmp_path / "run"))
    assert trainer.agent.critic is None  # no value model loaded
    before = [p.detach().clone() for p in trainer.agent.actor.parameters() if p.requires_grad]
    summary = trainer.train(run_dir, progress=False)
    assert summary["finished"]
    after = [p for p in trainer.agent.actor.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    rows = progress_rows(run_dir)
    lambdas = [k for k in rows[0] if k.startswith("lambda/")]
    if algo.endswith(("_lag", "_pid")):
        assert lambdas
        first = float(rows[0][lambdas[0]])
        cost = float(rows[0]["ep_cost"])
        limit = float(trainer.spec.cost_limits[0])
        if algo.endswith("_lag"):  # SGD on (mean response cost - limit) from the text family's initial 1.0
            assert first == pytest.approx(float(np.clip(1.0 + 1.0 * (cost - limit), 0, 5.0)), abs=1e-3)
        else:  # the PID controller its keys describe, on the same error (kp raised so the P term shows)
            from cmdp.lagrange import PIDMultiplier

            pid = PIDMultiplier(np.array([limit]), kp=10.0, ki=cfg.pid_ki, kd=cfg.pid_kd, d_delay=cfg.pid_d_delay,
                                p_ema_alpha=cfg.pid_delta_p_ema_alpha,
                                d_ema_alpha=cfg.pid_delta_d_ema_alpha, init=1.0, upper_bound=5.0)
            assert first == pytest.approx(float(pid.update(np.array([cost]))[0]), abs=1e-3)
            sgd = float(np.clip(1.0 + 0.1 * (cost - limit), 0, 5.0))  # what grpo_lag's default step would give
            assert abs(first - sgd) > 1e-3
    else:
        assert not lambdas


def test_sampled_kl_by_hand_and_its_mean_under_the_policy_is_the_kl() -> None:
    from cmdp.losses import sampled_kl

    # one sample: pi(a) = 0.5, pi_ref(a) = 0.25 -> 0.5 - log 0.5 - 1
    one = sampled_kl(torch.tensor([np.log(0.5)]), torch.tensor([np.log(0.25)]))
    assert one.item() == pytest.approx(0.5 - np.log(0.5) - 1.0)
    assert sampled_kl(torch.tensor([-1.3]), torch.tensor([-1.3])).item() == 0.0  # equal policies: 0
    # averaged over actions drawn from pi it is KL(pi || pi_ref): the estimate is unbiased
    pi, ref = torch.tensor([0.5, 0.25, 0.25]), torch.tensor([0.25, 0.5, 0.25])
    expected = float((pi * (pi / ref).log()).sum())  # 0.25 log 2
    assert float((pi * sampled_kl(pi.log(), ref.log())).sum()) == pytest.approx(expected)


def test_grpo_puts_the_reference_kl_in_its_loss(quick_text_default: Path, tmp_path: Path) -> None:
    from cmdp.losses import sampled_kl
    from cmdp.solver import PolicyGradientSolver

    config = text_config(quick_text_default, algo="grpo_lag", total_steps=16, group_size=4, kl_loss_coeff=0.5)
    config["env_kwargs"]["kl_coeff"] = 0.0  # the KL moves from the reward into the loss
    cfg, _ = resolve_config(config)
    trainer, run_dir = new_run(cfg, str(tmp_path / "run"))
    batch = trainer.run.collect(cfg, np.random.default_rng(0), 0, None)
    assert batch.ref_logp is not None and batch.ref_logp.shape == batch.logp_old.shape
    mb = batch.minibatch(torch.arange(batch.size), torch.ones(batch.size))
    trainer.agent.eval()  # no dropout: the same log-probabilities in both calls
    with torch.no_grad():
        loss, info = trainer.solver.actor_loss(mb)
        logp = trainer.agent.actor.log_prob(mb.obs, mb.actions)
        base, _ = PolicyGradientSolver.clipped_surrogate(trainer.solver, mb, logp)
        kl = sampled_kl(logp, mb.ref_logp).mean()
    assert float(info["kl_ref_loss"]) == pytest.approx(float(kl))
    assert float(loss) == pytest.approx(float(base) + 0.5 * float(kl), abs=1e-6)
    trainer.agent.train()
    trainer.train(run_dir, progress=False)
    rows = progress_rows(run_dir)
    assert all(float(r["kl_ref_loss"]) >= 0.0 for r in rows)
