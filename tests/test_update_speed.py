"""`python -m cmdp.benchmarks.update_speed`: its table and JSON, the comparison with another revision's updater,
and its refusals (one line, exit status 2). Timings are printed, never checked."""
import json
from pathlib import Path

import pytest
import torch

from cmdp.benchmarks.update_speed import _OperatorCount, main

ROOT = Path(__file__).resolve().parents[1]


def test_passes_at_each_size_against_another_revision(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # --against reads the revision with git, from the repository
    out = tmp_path / "speed.json"
    assert main(["--steps", "300", "--batch-sizes", "50", "150", "--repeats", "2", "--against", "HEAD",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "minibatch    50" in lines[0] and "a pass at 150" in lines[0]
    assert all("HEAD / this tree:" in line for line in lines)
    result = json.loads(out.read_text())
    assert result["samples"] == 300 and result["repeats"] == 2
    passes = result["seconds_per_pass"]
    assert sorted(passes) == ["HEAD", "this tree"]
    assert all(sorted(by_size) == ["150", "50"] and min(by_size.values()) > 0 for by_size in passes.values())


def test_the_compiled_step_is_timed_beside_the_eager_one(tmp_path: Path, capsys):
    out = tmp_path / "speed.json"
    assert main(["--steps", "256", "--batch-sizes", "64", "--repeats", "2", "--compile", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "this tree, compiled" in lines[0] and "eager / compiled:" in lines[0], lines
    result = json.loads(out.read_text())
    assert sorted(result["seconds_per_pass"]) == ["this tree", "this tree, compiled"]
    assert min(result["seconds_per_pass"]["this tree, compiled"].values()) > 0
    assert result["compile_seconds"]["64"] > 0


@pytest.mark.parametrize("argv, expect", [
    (["--algo", "sac"], "algorithm 'sac' has no on-policy minibatch update to time"),
    (["--against", "no-such-revision"], "--against no-such-revision: git cannot show its cmdp/optim.py"),
    (["--batch-sizes", "0"], "--batch-sizes must be positive"),
    (["--repeats", "0"], "--repeats must be at least 1"),
])
def test_refusals_are_one_line(argv, expect, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "speed.json"
    assert main(["--steps", "100", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("update_speed: error: ") and expect in err and err.count("\n") == 1, err
    assert not out.exists()


def test_the_breakdown_splits_an_eager_step_and_counts_its_operators(tmp_path: Path, capsys):
    out = tmp_path / "speed.json"
    assert main(["--steps", "256", "--batch-sizes", "64", "128", "--repeats", "2", "--breakdown",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[2].startswith("an eager step at 64: "), lines
    parts = json.loads(out.read_text())["breakdown"]
    assert parts["minibatch"] == 64  # the smallest size
    assert parts["step_us"] == pytest.approx(parts["forward_us"] + parts["backward_us"] + parts["optimiser_us"])
    assert parts["forward_us"] > 0 and parts["step_us"] > parts["forward_us"]
    # ppo_lag's step: the actor's and both critics' forward and backward passes, then clipping and Adam
    assert 100 < parts["operators_per_step"] < 400


def test_the_operator_count_sees_each_aten_operator_once():
    x = torch.ones(3)
    with _OperatorCount() as count:
        x.add_(1.0)
        (x * 2).sum()
    assert count.operators == 3
