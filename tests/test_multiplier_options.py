"""Multiplier options shared by every Lagrangian solver: the cost the multiplier sees (`cost_window`), the
parameterisation (`lagrangian_parameterization`: lambda or safe-rlhf's log lambda), and the delay; checked by
hand, through the config's one-line errors, and across a resumed run."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cmdp.cli import main
from cmdp.lagrange import LagrangeMultiplier
from cmdp.logger import TIMING_COLUMNS, read_progress
from cmdp.schedules import CostWindow
from cmdp.trainer import Trainer, resolve_config
from cmdp.vec_env import EpisodeStats
from run_helpers import interrupted_run


def _episodes(*costs: float) -> EpisodeStats:
    n = len(costs)
    return EpisodeStats(np.zeros(n), np.array(costs, dtype=np.float64).reshape(n, 1), np.ones(n, dtype=np.int64))


def test_log_lambda_steps_in_log_space_and_caps_at_the_bound() -> None:
    m = LagrangeMultiplier(np.array([0.0]), init=1.0, lr=0.1, optimizer="sgd", upper_bound=5.0, log_space=True)
    # theta = log 1 = 0; theta <- theta + lr * lambda * (Jc - d) = 0 + 0.1 * 1 * 2
    assert m.update(np.array([2.0]))[0] == pytest.approx(math.exp(0.2))
    for _ in range(20):
        m.update(np.array([10.0]))
    assert m.value[0] == pytest.approx(5.0)  # theta capped at log 5
    for _ in range(200):
        m.update(np.array([-10.0]))
    assert 0.0 < m.value[0] < 0.01  # shrinks (ever more slowly: the step is proportional to lambda), never to 0
    plain = LagrangeMultiplier(np.array([0.0]), init=1.0, lr=0.1, optimizer="sgd")
    assert plain.update(np.array([2.0]))[0] == pytest.approx(1.2)  # lambda itself: 1 + 0.1 * 2
    copy = LagrangeMultiplier(np.array([0.0]), init=1.0, lr=0.1, optimizer="sgd", upper_bound=5.0, log_space=True)
    copy.load_state_dict(m.state_dict())
    assert copy.update(np.array([3.0])).tolist() == m.update(np.array([3.0])).tolist()


def test_cost_window_is_the_mean_of_the_last_n_episodes_across_epochs() -> None:
    window = CostWindow(3, 1)
    assert window.see(_episodes(1.0, 2.0)).tolist() == [1.5]
    assert window.see(_episodes(3.0, 4.0)).tolist() == [3.0]  # 2, 3, 4
    assert window.see(_episodes()).tolist() == [3.0]  # an epoch without episodes keeps the window
    copy = CostWindow(3, 1)
    copy.load_state_dict(window.state_dict())
    assert copy.see(_episodes(10.0)).tolist() == window.see(_episodes(10.0)).tolist() == [pytest.approx(17 / 3)]
    epoch = CostWindow(0, 1)
    assert epoch.see(_episodes(1.0, 2.0)).tolist() == [1.5]
    assert epoch.see(_episodes(5.0)).tolist() == [5.0]  # the epoch's own episodes only
    assert np.isnan(epoch.see(_episodes())).all()
    assert np.isnan(CostWindow(4, 1).see(_episodes())).all()


@pytest.mark.parametrize("setting,message", [
    ("cost_window=-1", "cost_window must be >= 0"),
    ("lagrangian_parameterization=log", "lagrangian_parameterization must be 'lambda' or 'log_lambda'"),
])
def test_bad_multiplier_options_are_one_line(setting: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--algo", "ppo_lag", "--env", "ExactChain-v0", "--set", setting, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_log_lambda_needs_a_positive_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--algo", "sac_lag", "--env", "ExactChain-v0", "--set", "lagrangian_parameterization=log_lambda",
                 "--set", "lagrangian_init=0", "--no-progress"]) == 2
    assert "lagrangian_init must be > 0 with log_lambda" in capsys.readouterr().err


def test_windowed_log_lambda_run_logs_what_the_multiplier_saw_and_resumes_exactly(tmp_path: Path) -> None:
    values = {"algo": "ppo_lag", "env": "ExactChain-v0", "total_steps": 2048, "steps_per_epoch": 512,
              "num_envs": 4, "update_iters": 2, "batch_size": 256, "cost_window": 50,
              "lagrangian_parameterization": "log_lambda", "lagrangian_init": 1.0, "lagrangian_optimizer": "sgd",
              "lagrangian_lr": 0.1}
    cfg, _ = resolve_config(values)
    rows: list[dict] = []
    Trainer(cfg).train(tmp_path / "full", progress=False, on_epoch=rows.append)
    # the multiplier saw the last 50 episodes (about 5 steps each: fewer than one epoch's ~100), so what it saw
    # differs from the epoch's mean cost that is logged as ep_cost
    assert all("cost_seen/cost" in row for row in rows)
    assert any(row["cost_seen/cost"] != row["ep_cost"] for row in rows)
    assert all(row["lambda/cost"] > 0 for row in rows)
    run_dir = interrupted_run(cfg, tmp_path / "cut", after_epoch=2)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    strip = lambda d: [[v for k, v in r.items() if k not in TIMING_COLUMNS] for r in read_progress(d / "progress.csv")]
    assert strip(tmp_path / "full") == strip(run_dir)
