"""docs/adding-an-environment.md: its example file is the code the guide shows, registers through the public API,
checks its env_kwargs before anything runs, and a constrained solver reaches its closed-form optimum on it."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cmdp.cli import main
from cmdp.registry import get_env, load_plugins
from cmdp.trainer import new_run, resolve_config

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "adding-an-environment.md"
EXAMPLE = ROOT / "docs" / "examples" / "constrained_bandit.py"


def example_module():
    load_plugins([str(EXAMPLE)])
    return next(m for name, m in sys.modules.items() if name.startswith("cmdp_plugin_constrained_bandit_"))


def test_the_guide_shows_the_example_file_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert EXAMPLE.read_text() in blocks


def test_the_example_is_listed_and_checks_its_env_kwargs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["list", "--plugin", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "[examples] (1)" in out and "ConstrainedBandit-v0" in out
    args = ["train", "--plugin", str(EXAMPLE), "--env", "ConstrainedBandit-v0", "--no-progress"]
    assert main([*args, "--set", "env_kwargs={noise: -1}", "--out", str(tmp_path / "a")]) == 2
    assert "env_kwargs.noise must be >= 0" in capsys.readouterr().err
    assert main([*args, "--set", "env_kwargs={nosie: 0.1}", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "nosie" in err and "environment 'ConstrainedBandit-v0'; known keys: noise" in err
    assert main([*args, "--set", "cost_limits={money: 1}", "--out", str(tmp_path / "c")]) == 2
    assert "unknown cost name" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_ppo_lag_reaches_the_closed_form_optimum_of_the_example(tmp_path: Path) -> None:
    bandit = example_module()
    cfg, _ = resolve_config({"algo": "ppo_lag", "env": "ConstrainedBandit-v0", "plugins": [str(EXAMPLE)],
                             "total_steps": 40_000, "steps_per_epoch": 2000, "num_envs": 8,
                             # SGD at 5 (10 until the initialisation became torch.nn.Linear's on 2026-12-04,
                             # where seeds 0 and 3 ended 5-7% above the limit); seeds 0-3 measured at 5: value 0.955-1.0
                             # of the optimum, cost 1.36-1.52 against the limit 1.5
                             "lagrangian_optimizer": "sgd", "lagrangian_lr": 5.0, "lagrangian_init": 0.0,
                             "update_iters": 10, "batch_size": 500, "critic_lr": 3e-3})
    trainer, run_dir = new_run(cfg, str(tmp_path / "run"))
    trainer.train(run_dir, progress=False)
    with torch.no_grad():
        probs = trainer.agent.actor.probs(torch.zeros(1, 1)).double().numpy()[0]
    value, cost = float(probs @ bandit.REWARDS), float(probs @ bandit.COSTS)
    best_value, limit = bandit.optimum()
    assert value == pytest.approx(best_value, rel=0.05)
    assert cost <= limit * 1.05
    assert main(["eval", str(tmp_path / "run"), "--plugin", str(EXAMPLE), "--episodes", "400", "--num-envs", "8"]) == 0
    assert np.isclose(probs.sum(), 1.0)


def test_the_example_family_asks_one_cpu_whatever_its_copies() -> None:
    # it steps its copies in one process (SyncVecCMDP), but said nothing: a benchmark reserved one CPU per copy for
    # it, locally and on Ray
    example_module()
    cfg, _ = resolve_config({"algo": "ppo_lag", "env": "ConstrainedBandit-v0", "plugins": [str(EXAMPLE)],
                             "num_envs": 8})
    assert get_env("ConstrainedBandit-v0").family.cpus(cfg) == 1
