"""`--preset safe-rlhf`: the resolved config matches docs/safe-rlhf-preset.md's table row by row (the preset's
column, and ours without the preset), the preset yields to --set, and a wrong name is one line."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cmdp.cli import main
from cmdp.trainer import resolve_config

pytest.importorskip("transformers")

from cmdp.envs.text.env import text_env_config  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "safe-rlhf-preset.md"


def _table() -> list[tuple[list[str], list[Any], str]]:
    """(keys, preset values, ours column) of every row of the doc's table."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[1].startswith("`"):
            continue
        keys = re.findall(r"`([^`]+)`", cells[1])
        values = [yaml.safe_load(v) for v in re.findall(r"`([^`]+)`", cells[2])]
        assert len(keys) == len(values), line
        rows.append((keys, values, cells[3]))
    return rows


def _get(cfg: Any, key: str) -> Any:
    if key.startswith("env_kwargs."):
        return getattr(text_env_config(cfg.env_kwargs), key.split(".", 1)[1])
    return getattr(cfg, key)


def _paths(default: Path) -> dict[str, Any]:
    return {"env_kwargs": {"policy": str(default / "sft"), "reward_model": str(default / "reward"),
                           "cost_models": str(default / "cost"), "prompts": str(default / "data" / "prompts.jsonl")}}


def test_the_preset_resolves_to_the_documented_table(quick_text_default: Path) -> None:
    preset, _ = resolve_config(_paths(quick_text_default), preset="safe-rlhf")
    plain, _ = resolve_config({"env": "text", **_paths(quick_text_default)})
    rows = _table()
    assert len(rows) >= 14
    checked = 0
    for keys, values, ours in rows:
        for key, value in zip(keys, values):
            got = _get(preset, key)
            assert (got == value) if not isinstance(value, float) else got == pytest.approx(value), (key, got, value)
            checked += 1
        theirs = re.findall(r"`([^`]+)`", ours)
        expected = values if ours.startswith("the same") else [yaml.safe_load(v) for v in theirs[:len(keys)]]
        for key, value in zip(keys, expected):
            assert _get(plain, key) == value, (key, _get(plain, key), value)
    assert checked >= 18
    assert preset.multiplier(np.array([0.0])).log_space  # the multiplier the keys build steps in log space


def test_the_preset_yields_to_set_and_refuses_unknown_names(quick_text_default: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = resolve_config({**_paths(quick_text_default), "cost_window": 64, "value_clip": None}, preset="safe-rlhf")
    assert (cfg.cost_window, cfg.value_clip, cfg.lagrangian_parameterization) == (64, None, "log_lambda")
    assert main(["train", "--preset", "safe-rlhfx", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown preset 'safe-rlhfx'; presets: omnisafe, safe-rlhf" in err and len(err.splitlines()) == 1


def test_a_preset_run_trains_with_value_clipping_and_log_lambda(quick_text_default: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", "--preset", "safe-rlhf", "--set",
                 f"env_kwargs={{policy: {quick_text_default / 'sft'}, reward_model: {quick_text_default / 'reward'}, "
                 f"cost_models: {quick_text_default / 'cost'}, prompts: {quick_text_default / 'data' / 'prompts.jsonl'}, "
                 "max_new_tokens: 8}", "--set", "total_steps=16", "--set", "steps_per_epoch=8", "--set", "num_envs=4",
                 "--set", "batch_size=4", "--set", "device=cpu", "--out", str(out), "--no-progress"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["value_clip"] == 5.0 and saved["cost_window"] == 128
    assert saved["lagrangian_parameterization"] == "log_lambda"
