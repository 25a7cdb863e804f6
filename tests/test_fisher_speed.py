"""`python -m cmdp.benchmarks.fisher_speed`: its table and JSON, and its refusals (one line, exit status 2).
Timings are printed, never checked."""
import json
from pathlib import Path

import pytest

from cmdp.benchmarks.fisher_speed import main


def test_both_products_and_policy_steps_are_timed(tmp_path: Path, capsys):
    out = tmp_path / "fisher.json"
    assert main(["--env", "SafetyHopperVelocity-v1", "--steps", "300", "--repeats", "2", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and "300 samples" in lines[0], lines
    assert "jacobian:" in lines[1] and "double_backward:" in lines[2] and "per policy step" in lines[3]
    result = json.loads(out.read_text())
    assert result["samples"] == 300 and result["repeats"] == 2 and result["parameters"] > 0
    for method in ("jacobian", "double_backward"):
        assert min(result[method].values()) > 0


@pytest.mark.parametrize("argv, expect", [
    (["--algo", "ppo_lag"], "algorithm 'ppo_lag' takes no trust-region step"),
    (["--repeats", "0"], "--repeats must be at least 1"),
])
def test_refusals_are_one_line(argv, expect, tmp_path: Path, capsys):
    out = tmp_path / "fisher.json"
    assert main(["--env", "ExactChain-v0", "--steps", "100", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fisher_speed: error: ") and expect in err and err.count("\n") == 1, err
    assert not out.exists()
