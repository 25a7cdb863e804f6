"""The smaller code snippets of docs/adding-an-algorithm.md run as written: the OnCRPO composition, the NaturalPG
`policy_step` and the LP check (its budget cut to two epochs). The whole solver files are tested, against the
guide's copies and the LP optimum, in tests/test_adding_an_algorithm.py."""
from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cmdp.algorithms.crpo import CRPO, CRPOConfig
from cmdp.registry import register_algorithm
from cmdp.trainer import Trainer, resolve_config
from cmdp.trust_region import TrustRegionConfig, TrustRegionSolver

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "adding-an-algorithm.md"


def snippet(starting: str) -> str:
    blocks = [b for b in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S) if starting in b]
    assert len(blocks) == 1, starting
    return blocks[0]


def two_epochs(algo: str, tmp_path: Path, **extra) -> list[dict]:
    cfg, _ = resolve_config({"algo": algo, "env": "ExactChain-v0", "total_steps": 400, "steps_per_epoch": 200,
                             **extra})
    rows: list[dict] = []
    Trainer(cfg).train(tmp_path, progress=False, on_epoch=rows.append)
    return rows


def test_the_on_crpo_composition_trains(tmp_path: Path) -> None:
    names = {"dataclass": dataclass, "register_algorithm": register_algorithm, "TrustRegionConfig": TrustRegionConfig,
             "TrustRegionSolver": TrustRegionSolver, "CRPO": CRPO, "CRPOConfig": CRPOConfig}
    exec(snippet("class OnCRPO("), names)
    rows = two_epochs("on_crpo", tmp_path)
    assert len(rows) == 2 and "step_frac" in rows[0]


def test_the_natural_pg_policy_step_trains(tmp_path: Path) -> None:
    names = {"TrustRegionSolver": TrustRegionSolver}
    exec(snippet("class NaturalPG("), names)
    register_algorithm("test_natural_pg")(names["NaturalPG"])
    rows = two_epochs("test_natural_pg", tmp_path)
    assert all(row["kl"] <= 0.01 + 1e-9 for row in rows)  # every accepted step stays in the trust region


def test_the_lp_check_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = snippet("evaluate_policy(tabular, policy)")
    assert "2048 * 80" in code
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code.replace("2048 * 80", "2048 * 2"), {})
    ratio = float(out.getvalue().split()[0])
    assert 0.0 < ratio < 2.0 and (tmp_path / "runs" / "focops-exact" / "progress.csv").is_file()


def test_the_off_policy_variant_trains(tmp_path: Path) -> None:
    namespace: dict = {}
    exec(snippet('register_algorithm("ddpg_lag_online_target")'), namespace)
    cls = namespace["OnlineTargetDDPGLag"]
    cfg, _ = resolve_config({"algo": "ddpg_lag_online_target", "env": "QuadraticBandit-v0", "total_steps": 800,
                             "steps_per_epoch": 400, "update_after": 200, "random_steps": 200, "batch_size": 32,
                             "actor_hidden": [16], "critic_hidden": [16], "multiplier_delay": 0})
    trainer = Trainer(cfg)
    assert isinstance(trainer.solver, cls) and trainer.solver.multiplier is not None
    rows: list[dict] = []
    trainer.train(tmp_path, progress=False, on_epoch=rows.append)
    assert rows[-1]["updates"] > 0 and "lambda/effort_0" in rows[-1]
