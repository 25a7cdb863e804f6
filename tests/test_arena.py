"""Tests of `cmdp arena` (envs/text/arena.py): the four-way counting and the Wilson interval against hand-computed
values; end to end on the quick default (tests/conftest.py), its SFT model folder against a 1-epoch ppo_lag run
folder trained here, and the SFT policy against itself; every bad input ending in one `cmdp: error:` line, exit
status 2 and nothing written.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import yaml

pytest.importorskip("transformers")

from cmdp.cli import main
from cmdp.evaluation import wilson_interval
from run_helpers import one_error_line
from test_text_rl import score_model_of_another_tokenizer

NUM_PROMPTS = 6
FAST = ["--num-prompts", str(NUM_PROMPTS), "--max-new-tokens", "8", "--device", "cpu"]


# ------------------------------------------------------------------------------------------- Wilson interval

@pytest.mark.parametrize("successes, trials, confidence, expected", [
    # by hand: z = 1.959964 (95%), z^2 = 3.841459; center = (p + z^2/2n) / (1 + z^2/n),
    # half = z / (1 + z^2/n) * sqrt(p (1 - p) / n + z^2 / 4n^2)
    (0, 10, 0.95, (0.0, 0.27754)),  # center 0.192073 / 1.384146 = 0.138767 = half
    (5, 10, 0.95, (0.23659, 0.76341)),  # center 0.5, half 1.416006 * 0.186021 = 0.263407
    (10, 10, 0.95, (0.72246, 1.0)),  # the mirror image of 0 of 10
    (81, 263, 0.95, (0.25529, 0.36621)),  # center 0.310749, half 1.931749 * 0.028710 = 0.055461
    (5, 10, 0.90, (0.26927, 0.73073)),  # z = 1.644854: half 1.294596 * 0.178224 = 0.230728
    (1.5, 3, 0.95, (0.12533, 0.87467)),  # a fractional count (ties as half wins): center 0.5, half 0.859450 * 0.435937
])
def test_wilson_interval_matches_hand_computed_values(successes, trials, confidence, expected):
    lo, hi = wilson_interval(successes, trials, confidence)
    assert lo == pytest.approx(expected[0], abs=2e-5) and hi == pytest.approx(expected[1], abs=2e-5)


def test_wilson_interval_edge_cases():
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    lo, hi = wilson_interval(3, 7)
    lo2, hi2 = wilson_interval(4, 7)
    assert lo == pytest.approx(1 - hi2) and hi == pytest.approx(1 - lo2)  # symmetric under success <-> failure
    for bad in [(-1, 5), (6, 5), (1, -1)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)
    with pytest.raises(ValueError):
        wilson_interval(1, 5, confidence=1.0)


# ------------------------------------------------------------------------------------------- four-way table

def test_four_way_counts_match_hand_counting():
    from cmdp.envs.text.arena import OUTCOMES, four_way

    reward_a = [1.0, 2.0, 0.5, 3.0, 1.0, -1.0]
    reward_b = [2.0, 1.0, 0.5, 4.0, 0.0, 0.0]  # B better on 0, 3, 5; a tie on 2 (counts as worse)
    safe_a = [True, True, False, False, True, False]
    safe_b = [True, False, True, False, False, True]
    t = four_way(reward_a, reward_b, safe_a, safe_b)
    assert t["prompts"] == 6 and t["ties"] == 1
    assert t["counts"] == {"better and safe": 2, "better but unsafe": 1, "worse but safe": 1, "worse and unsafe": 2}
    assert list(t["counts"]) == list(OUTCOMES) and sum(t["counts"].values()) == 6
    assert t["outcomes"] == ["better and safe", "worse and unsafe", "worse but safe", "better but unsafe",
                             "worse and unsafe", "better and safe"]
    assert t["shares"]["better and safe"] == pytest.approx(2 / 6)
    assert t["win_rate"] == pytest.approx(3.5 / 6)  # 3 wins and half of the tie
    assert t["safe_rate_a"] == pytest.approx(0.5) and t["safe_rate_b"] == pytest.approx(0.5)
    assert t["intervals"]["win_rate"] == pytest.approx(wilson_interval(3.5, 6))
    assert t["intervals"]["safe_rate_b"] == pytest.approx(wilson_interval(3, 6))
    assert t["intervals"]["worse and unsafe"] == pytest.approx(wilson_interval(2, 6))
    cells = {k: (v["prompts"], v["b_win_rate"]) for k, v in t["by_safety"].items()}
    assert cells["A safe, B safe"] == (1, 1.0)  # prompt 0
    assert cells["A safe, B unsafe"] == (2, 0.0)  # prompts 1 and 4
    assert cells["A unsafe, B safe"] == (2, 0.75)  # prompt 2 (tie, half) and 5 (win)
    assert cells["A unsafe, B unsafe"] == (1, 1.0)  # prompt 3


def test_four_way_of_identical_sides_and_bad_shapes():
    from cmdp.envs.text.arena import four_way

    rewards = [0.3, -1.0, 2.0, 0.3]
    t = four_way(rewards, rewards, [True, False, True, True], [True, False, True, True])
    assert t["win_rate"] == 0.5 and t["ties"] == 4 and t["safe_rate_a"] == t["safe_rate_b"] == 0.75
    assert t["counts"] == {"better and safe": 0, "better but unsafe": 0, "worse but safe": 3, "worse and unsafe": 1}
    assert math.isnan(t["by_safety"]["A safe, B unsafe"]["b_win_rate"])
    with pytest.raises(ValueError):
        four_way([], [], [], [])
    with pytest.raises(ValueError):
        four_way([1.0, 2.0], [1.0], [True, True], [True])


def test_is_safe_means_every_cost_at_most_zero():
    import numpy as np

    from cmdp.envs.text.evaluation import is_safe

    assert is_safe(np.array([[-1.0, 0.0], [-1.0, 0.1], [0.5, -2.0]])).tolist() == [True, False, False]
    assert is_safe(np.array([0.0, 1e-6, -3.0])).tolist() == [True, False, True]


def test_cost_model_names():
    from cmdp.envs.text.arena import parse_cost_models
    from cmdp.spec import ConfigError

    assert parse_cost_models(["m/cost"]) == {"cost": "m/cost"}
    assert parse_cost_models(["m/a", "m/b"]) == {"cost1": "m/a", "cost2": "m/b"}
    assert parse_cost_models(["harm=m/a", "privacy=m/b"]) == {"harm": "m/a", "privacy": "m/b"}
    with pytest.raises(ConfigError, match="twice"):
        parse_cost_models(["harm=m/a", "harm=m/b"])


# ------------------------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def lag_run(quick_text_default: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch ppo_lag run from the quick default's SFT policy (8 answers of at most 8 tokens; a learning rate high
    enough that its answers differ from the SFT policy's)."""
    d = quick_text_default
    config = {"algo": "ppo_lag", "env": "text", "total_steps": 8, "steps_per_epoch": 8, "num_envs": 4,
              "actor_lr": 5e-3, "critic_lr": 1e-4, "batch_size": 4, "update_iters": 2, "torch_threads": 2,
              "device": "cpu",
              "env_kwargs": {"policy": str(d / "sft"), "reward_model": str(d / "reward"),
                             "cost_models": str(d / "cost"), "prompts": str(d / "data" / "prompts.jsonl"),
                             "max_new_tokens": 8, "eval_batch_size": 4}}
    folder = tmp_path_factory.mktemp("arena")
    (folder / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(folder / "run.yaml"), "--out", str(folder / "ppo_lag"), "--no-progress"]) == 0
    return folder / "ppo_lag"


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "arena.jsonl").read_text().splitlines()]


def _check_rows(rows: list[dict], prompts: list[str]) -> None:
    """One line per prompt, in file order, with flags that agree with the scores."""
    from cmdp.envs.text.arena import OUTCOMES

    assert [r["prompt"] for r in rows] == prompts and [r["index"] for r in rows] == list(range(len(prompts)))
    for r in rows:
        assert r["safe_a"] == all(c <= 0 for c in r["costs_a"].values())
        assert r["safe_b"] == all(c <= 0 for c in r["costs_b"].values())
        assert r["b_better"] == (r["reward_b"] > r["reward_a"])
        assert r["outcome"] == OUTCOMES[(0 if r["b_better"] else 2) + (0 if r["safe_b"] else 1)]
        assert isinstance(r["answer_a"], str) and isinstance(r["answer_b"], str)


def _table_counts(text: str) -> dict[str, int]:
    return {name: int(count) for name, count in
            re.findall(r"^\| (better and safe|better but unsafe|worse but safe|worse and unsafe) \| (\d+) \|", text,
                       flags=re.M)}


def _rate(text: str, name: str) -> float:
    return float(re.search(rf"^\| {re.escape(name)}[^|]* \| ([0-9.]+) \| \[", text, flags=re.M).group(1))


def test_arena_between_the_sft_model_folder_and_a_ppo_lag_run(quick_text_default: Path, lag_run: Path,
                                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from cmdp.envs.text.data import load_prompts

    d = quick_text_default
    prompts_file = d / "data" / "prompts_test.jsonl"
    out = tmp_path / "arena"
    # no --reward-model / --cost-models: B is a run folder, its judges are used; the progress bars are on
    assert main(["arena", str(d / "sft"), str(lag_run), "--prompts", str(prompts_file), "--out", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["arena.jsonl", "arena.md", "arena.png"]
    assert (out / "arena.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    assert "A sft" in captured.err and "B ppo_lag" in captured.err  # one progress bar per side

    rows = _rows(out)
    _check_rows(rows, load_prompts(prompts_file)[:NUM_PROMPTS])
    counts = _table_counts(captured.out)
    assert sum(counts.values()) == NUM_PROMPTS == len(rows)
    assert counts == {name: sum(r["outcome"] == name for r in rows) for name in counts}
    wins = sum(r["reward_b"] > r["reward_a"] for r in rows) + 0.5 * sum(r["reward_b"] == r["reward_a"] for r in rows)
    assert _rate(captured.out, "B win rate") == pytest.approx(wins / NUM_PROMPTS, abs=5e-4)
    assert _rate(captured.out, "B safe rate") == pytest.approx(sum(r["safe_b"] for r in rows) / NUM_PROMPTS, abs=5e-4)
    assert _rate(captured.out, "A safe rate") == pytest.approx(sum(r["safe_a"] for r in rows) / NUM_PROMPTS, abs=5e-4)
    assert "checkpoint of epoch 1" in captured.out and str(d / "reward") in captured.out
    assert any(r["answer_a"] != r["answer_b"] for r in rows)  # the trained policy answers differently
    md = (out / "arena.md").read_text()
    assert md.startswith("# Arena: ppo_lag against sft") and _table_counts(md) == counts
    assert f"results: {out}" in captured.out


def test_a_run_whose_config_was_edited_after_training_is_named(quick_text_default: Path, lag_run: Path,
                                                                tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # the arena builds a run's side from its config.yaml as it is now, as cmdp eval does, which says so
    d = quick_text_default
    edited = tmp_path / "edited"
    shutil.copytree(lag_run, edited)
    config = yaml.safe_load((edited / "config.yaml").read_text())
    config["env_kwargs"]["max_new_tokens"] = 6
    (edited / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "arena"
    assert main(["arena", str(d / "sft"), str(edited), "--prompts", str(d / "data" / "prompts_test.jsonl"),
                 "--out", str(out), "--no-progress", "--no-plot", "--num-prompts", "2", "--max-new-tokens", "4",
                 "--device", "cpu"]) == 0
    said = (f"{edited / 'config.yaml'} was edited after its checkpoint was trained: "
            f"env_kwargs.max_new_tokens (trained 8, now 6)")
    assert f"note: {said}; the arena follows config.yaml" in capsys.readouterr().out
    assert (f"- B: its config.yaml was edited after its checkpoint was trained: env_kwargs.max_new_tokens "
            f"(trained 8, now 6); the arena follows config.yaml") in (out / "arena.md").read_text()
    assert "- A: its config.yaml" not in (out / "arena.md").read_text()


def test_the_same_policy_against_itself_ties_everywhere(quick_text_default: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]):
    """Same model, same prompts, same seed: the same answers, so every prompt is a tie (win rate 0.5, none better)
    and both safe rates are equal. The default output folder is runs/arena-<A>-vs-<B>."""
    from cmdp.envs.text.arena import run_arena

    d = quick_text_default
    monkeypatch.chdir(tmp_path)
    result = run_arena(d / "sft", d / "sft", d / "data" / "prompts_test.jsonl", reward_model=str(d / "reward"),
                       cost_models=[str(d / "cost")], num_prompts=NUM_PROMPTS, max_new_tokens=8, device="cpu",
                       plot=False, progress=False, log=None)
    out = tmp_path / "runs" / "arena-sft-vs-sft"
    assert Path(result["out"]) == Path("runs/arena-sft-vs-sft") and out.is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["arena.jsonl", "arena.md"]  # plot=False
    table = result["table"]
    assert table["win_rate"] == 0.5 and table["ties"] == NUM_PROMPTS
    assert table["safe_rate_a"] == table["safe_rate_b"]
    assert table["counts"]["better and safe"] + table["counts"]["better but unsafe"] == 0
    lo, hi = table["intervals"]["win_rate"]
    assert lo < 0.5 < hi and lo == pytest.approx(1 - hi)
    rows = _rows(out)
    assert len(rows) == NUM_PROMPTS and all(r["answer_a"] == r["answer_b"] for r in rows)
    assert all(r["costs_a"] == r["costs_b"] and r["safe_a"] == r["safe_b"] for r in rows)
    assert "# Arena: sft (B) against sft (A)" in (out / "arena.md").read_text()
    # a rerun replaces the arena's files and leaves the rest of the folder alone
    (out / "notes.txt").write_text("mine")
    assert main(["arena", str(d / "sft"), str(d / "sft"), "--prompts", str(d / "data" / "prompts_test.jsonl"),
                 "--reward-model", str(d / "reward"), "--cost-models", f"harm={d / 'cost'}", "--greedy",
                 "--no-progress", *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["arena.jsonl", "arena.md", "arena.png", "notes.txt"]
    assert "cost model" in (out / "arena.md").read_text() and "[harm]" in (out / "arena.md").read_text()
    assert "greedy decoding" in capsys.readouterr().out
    assert _rate((out / "arena.md").read_text(), "B win rate") == 0.5
    # a rerun without a figure takes the previous one away: it had stayed beside files it no longer showed
    assert main(["arena", str(d / "sft"), str(d / "sft"), "--prompts", str(d / "data" / "prompts_test.jsonl"),
                 "--reward-model", str(d / "reward"), "--cost-models", str(d / "cost"), "--no-plot",
                 "--no-progress", *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["arena.jsonl", "arena.md", "notes.txt"]
    assert "results: runs/arena-sft-vs-sft (arena.jsonl, arena.md)" in capsys.readouterr().out


def test_a_failed_write_leaves_nothing(quick_text_default: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The plot fails after the answers are scored: no output folder, no staging folder."""
    import cmdp.envs.text.arena as arena

    def broken_plot(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(arena, "plot_arena", broken_plot)
    d = quick_text_default
    out = tmp_path / "arena"
    with pytest.raises(OSError, match="No space left"):
        main(["arena", str(d / "sft"), str(d / "sft"), "--prompts", str(d / "data" / "prompts_test.jsonl"),
              "--reward-model", str(d / "reward"), "--cost-models", str(d / "cost"), "--out", str(out),
              "--no-progress", "--num-prompts", "2", "--max-new-tokens", "4", "--device", "cpu"])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- bad input

def test_bad_input_gives_one_error_line_and_writes_nothing(quick_text_default: Path, lag_run: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]):
    d = quick_text_default
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a default output folder would appear here
    control_run = tmp_path / "exact-run"
    assert main(["train", "--env", "ExactChain-v0", "--total-steps", "400", "--set", "steps_per_epoch=200",
                 "--no-progress", "--out", str(control_run)]) == 0
    no_checkpoint = tmp_path / "no-checkpoint"
    no_checkpoint.mkdir()
    (no_checkpoint / "config.yaml").write_text((lag_run / "config.yaml").read_text())
    neither = tmp_path / "neither"
    neither.mkdir()
    (neither / "notes.txt").write_text("nothing here")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"prompt": "Hi"}\n{"prompt": "unterminated\n')
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    folder_jsonl = tmp_path / "folder.jsonl"
    folder_jsonl.mkdir()
    other_cost = score_model_of_another_tokenizer(d / "cost", tmp_path / "other-cost")
    capsys.readouterr()

    sft, prompts = str(d / "sft"), str(d / "data" / "prompts_test.jsonl")
    judges = ["--reward-model", str(d / "reward"), "--cost-models", str(d / "cost")]
    out = tmp_path / "out"
    cases = [
        ("unknown path", [str(tmp_path / "nowhere"), sft, "--prompts", prompts, *judges],
         ["A", str(tmp_path / "nowhere"), "no such run folder or model folder"]),
        ("unknown path B", [sft, str(tmp_path / "nowhere"), "--prompts", prompts, *judges], ["B", "no such"]),
        ("not a text run", [str(control_run), sft, "--prompts", prompts, *judges],
         [str(control_run), "ExactChain-v0", "not of the text environment"]),
        ("run without checkpoint", [str(no_checkpoint), sft, "--prompts", prompts], ["no checkpoint"]),
        ("neither run nor model", [sft, str(neither), "--prompts", prompts, *judges],
         [str(neither), "neither a run folder"]),
        ("a file", [str(a_file), sft, "--prompts", prompts, *judges], [str(a_file), "not a folder"]),
        ("bare models, no reward model", [sft, sft, "--prompts", prompts, "--cost-models", str(d / "cost")],
         ["--reward-model is required"]),
        ("bare models, no cost models", [sft, sft, "--prompts", prompts, "--reward-model", str(d / "reward")],
         ["--cost-models is required"]),
        ("missing reward model", [sft, sft, "--prompts", prompts, "--reward-model", str(tmp_path / "no-rm"),
                                  "--cost-models", str(d / "cost")], ["--reward-model", "no such score model"]),
        # judged garbled text without a word until 2026-12-05 (the cost model's embedding was large enough)
        ("cost model of another tokenizer", [sft, str(lag_run), "--prompts", prompts, "--cost-models", str(other_cost)],
         [f"cost model {other_cost}: its tokenizer gives", "the arena's judges must share the policy's tokenizer"]),
        ("reward model as the cost model", [sft, str(lag_run), "--prompts", prompts, "--cost-models", str(d / "reward")],
         [f"{d / 'reward'}: a reward model (its score_head.json says so), given as the cost model"]),
        ("empty prompts file", [sft, str(lag_run), "--prompts", str(empty)], [str(empty), "no data rows"]),
        ("missing prompts file", [sft, str(lag_run), "--prompts", str(tmp_path / "none.jsonl")],
         [str(tmp_path / "none.jsonl"), "no such file"]),
        ("invalid prompts file", [sft, str(lag_run), "--prompts", str(bad_json)], [str(bad_json), "not valid JSON"]),
        ("prompts file is a folder", [sft, str(lag_run), "--prompts", str(folder_jsonl)],
         [str(folder_jsonl), "is a directory"]),
        ("zero prompts", [sft, str(lag_run), "--prompts", prompts, "--num-prompts", "0"], ["--num-prompts", ">= 1"]),
        ("bad seed", [sft, str(lag_run), "--prompts", prompts, "--seed", "-1"],
         ["--seed must be an integer in [0, 4294967295] (2**32 - 1), got -1"]),  # cmdp.config.check_seed's words
    ]
    for name, argv, words in cases:
        assert main(["arena", *argv, "--out", str(out), "--no-progress", "--device", "cpu"]) == 2, name
        line = one_error_line(capsys.readouterr().err)
        assert all(w in line for w in words), (name, words, line)
        assert not out.exists() and not list(work.iterdir()), name
    # the output folder is a file
    assert main(["arena", sft, str(lag_run), "--prompts", prompts, "--out", str(a_file), "--no-progress"]) == 2
    assert "not a folder" in one_error_line(capsys.readouterr().err) and a_file.read_text() == "x"
    # ... or under a file: refused before any answer is generated, not when the files are written
    assert main(["arena", sft, str(lag_run), "--prompts", prompts, "--out", str(a_file / "arena"),
                 "--no-progress"]) == 2
    assert one_error_line(capsys.readouterr().err).endswith(f"{a_file} is a file, not a folder")
    assert a_file.read_text() == "x"
    # the default output folder is not created either
    assert main(["arena", sft, sft, "--prompts", prompts, "--no-progress"]) == 2
    assert "--reward-model is required" in one_error_line(capsys.readouterr().err) and not list(work.iterdir())
