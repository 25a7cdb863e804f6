"""`cmdp eval` and `cmdp.load_policy`: which policy is measured, the Python API, what is read of the checkpoint, and
TensorBoard after a resume."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import cmdp.checkpoint
import cmdp.loading
from cmdp.cli import main
from cmdp.config import MAX_SEED
from cmdp.envs.exact import evaluate_policy
from cmdp.logger import read_progress
from cmdp.spec import ConfigError
from cmdp.trainer import resolve_config
from run_helpers import interrupted_run

FAST = ["--env", "ExactChain-v0", "--total-steps", "400", "--set", "steps_per_epoch=200", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short ppo_lag run on ExactChain-v0: its policy is still clearly stochastic (no action near probability 1)."""
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(["train", *FAST, "--seed", "0", "--out", str(out)]) == 0
    return out


def exact_values(policy: "cmdp.loading.LoadedPolicy") -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """The actor's action probabilities (S, A), and the exact (return, cost) of the stochastic policy and of its
    argmax policy."""
    cmdp_table = policy.run.env.cmdp
    assert policy.run.obs_normalizer is None  # one-hot observations go to the actor as they are
    with torch.no_grad():
        probs = policy.run.agent.actor.probs(torch.eye(cmdp_table.num_states)).double().numpy()
    value, costs = evaluate_policy(cmdp_table, probs)
    argmax = np.eye(cmdp_table.num_actions)[probs.argmax(axis=1)]
    det_value, det_costs = evaluate_policy(cmdp_table, argmax)
    return probs, (value, float(costs[0])), (det_value, float(det_costs[0]))


# --- which policy `cmdp eval` measures --------------------------------------------------------------------------

def test_eval_says_which_policy_it_measures(run_dir, capsys):
    assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "stochastic" in header and "deterministic" not in header, header
    assert main(["eval", str(run_dir), "--episodes", "3", "--deterministic"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "deterministic" in header and "stochastic" not in header, header

    assert main(["eval", str(run_dir), "--episodes", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deterministic"] is False
    assert main(["eval", str(run_dir), "--episodes", "3", "--json", "--deterministic"]) == 0
    assert json.loads(capsys.readouterr().out)["deterministic"] is True


def test_eval_prints_plus_minus_as_the_report_and_counts_one_episode_in_the_singular(run_dir, capsys):
    # eval wrote "return  4.20 +- 1.30" where cmdp report writes "±", and "1 episodes ..., mean +- std over them"
    # with a std of 0.00 over that one episode
    from cmdp.wording import count_text

    assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("; 3 episodes from seed 12345"), lines[0]
    assert lines[1].endswith("   (mean ± std over the episodes)"), lines[1]  # said where a spread is shown
    assert [line.split()[0] for line in lines] == ["ppo_lag", "return", "cost", "length"]
    assert " ± " in lines[1] and " ± " in lines[2] and "+-" not in "\n".join(lines)
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("; 1 episode from seed 12345"), lines[0]
    assert lines[1].split() == ["return", lines[1].split()[1]]  # the episode's return alone, no spread
    assert lines[2].startswith("cost    ") and "(limit" in lines[2] and "±" not in "\n".join(lines)
    assert [count_text(n, "prompts") for n in (1, 2)] == ["1 prompt", "2 prompts"]


def test_eval_measures_the_trained_stochastic_policy_by_default(run_dir, capsys):
    """The default measures the policy that was trained (actions sampled): over 2000 episodes its mean return and
    cost match the exact values of the actor's probabilities within sampling error; --deterministic measures the
    argmax policy. (eval used to take the mean / most likely action by default.)"""
    with cmdp.loading.load_policy(run_dir) as policy:
        probs, (value, cost), (det_value, det_cost) = exact_values(policy)
    assert probs.min() > 0.05  # a stochastic policy: sampling and argmax differ
    results = {}
    for flags in ([], ["--deterministic"]):
        assert main(["eval", str(run_dir), "--episodes", "2000", "--num-envs", "16", "--seed", "1", "--json",
                     *flags]) == 0
        results[bool(flags)] = json.loads(capsys.readouterr().out)

    stochastic, deterministic = results[False], results[True]
    assert stochastic["episodes"] == deterministic["episodes"] == 2000
    for mean, std, exact in ((stochastic["return_mean"], stochastic["return_std"], value),
                             (stochastic["cost_mean/cost"], stochastic["cost_std/cost"], cost)):
        assert abs(mean - exact) <= 4 * std / math.sqrt(2000) + 1e-9, (mean, exact, std)
    # ExactChain rewards and costs are the expected ones of (state, action): the argmax policy's spread comes from
    # the transitions alone, its mean is exact up to their sampling error
    for mean, std, exact in ((deterministic["return_mean"], deterministic["return_std"], det_value),
                             (deterministic["cost_mean/cost"], deterministic["cost_std/cost"], det_cost)):
        assert abs(mean - exact) <= 4 * std / math.sqrt(2000) + 1e-9, (mean, exact, std)
    # and the two policies are far apart compared with that error, so the test tells them apart
    assert abs(value - det_value) > 20 * stochastic["return_std"] / math.sqrt(2000)


def test_eval_seed_out_of_range_is_one_line(run_dir, capsys):
    # cmdp.config.check_seed's message, as a run's seed and the arena's --seed (the evaluation's had its own words)
    for seed in ("-1", str(MAX_SEED + 1)):
        assert main(["eval", str(run_dir), "--seed", seed]) == 2
        err = capsys.readouterr().err
        assert err == (f"cmdp: error: the evaluation seed must be an integer in [0, {MAX_SEED}] (2**32 - 1), "
                       f"got {seed}\n")
    assert main(["eval", str(run_dir), "--seed", str(MAX_SEED), "--episodes", "1"]) == 0


def test_eval_of_a_config_edited_after_training_says_so(run_dir, tmp_path, capsys):
    # a config.yaml edited after training (tanh -> relu: the weights fit, the policy is another) was evaluated as
    # edited without a word; the checkpoint now holds the config the run trained with, and eval names the edits
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    config = run / "config.yaml"
    text = config.read_text()
    edited = text.replace("activation: tanh\n", "activation: relu\n").replace("cost_limits: null\n", "cost_limits: 3\n")
    edited = edited.replace("env_kwargs: {}\n", "env_kwargs: {max_episode_steps: 7}\n")
    edited = edited.replace("total_steps: 400\n", "total_steps: 600\n")  # to continue the run: no edit to the policy
    assert edited.count("relu") == 1 and "cost_limits: 3" in edited and "max_episode_steps: 7" in edited
    config.write_text(edited)
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == (f"note: {config} was edited after its checkpoint was trained: cost_limits (trained None, now 3), "
                   f"env_kwargs.max_episode_steps (trained None, now 7), activation (trained 'tanh', now 'relu'); "
                   f"the evaluation follows config.yaml\n")
    assert json.loads(out)["config_edits"] == {"cost_limits": {"trained": None, "now": 3},
                                               "env_kwargs.max_episode_steps": {"trained": None, "now": 7},
                                               "activation": {"trained": "tanh", "now": "relu"}}
    config.write_text(text.replace("total_steps: 400\n", "total_steps: 600\n"))
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "config_edits" not in json.loads(out)
    # a checkpoint written before checkpoints held the config: evaluated as before, nothing to compare
    config.write_text(edited)
    checkpoint = run / "checkpoints" / "last.pt"
    state = torch.load(checkpoint, weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "config"}, checkpoint)
    assert main(["eval", str(run), "--episodes", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "config_edits" not in json.loads(out)


@pytest.fixture(scope="module")
def td3_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short td3 run on QuadraticBandit-v0: a deterministic actor, which explored with Gaussian noise."""
    out = tmp_path_factory.mktemp("eval-td3") / "run"
    settings = ["total_steps=800", "steps_per_epoch=400", "num_envs=4", "update_after=400", "random_steps=400",
                "batch_size=32", "actor_hidden=[16]", "critic_hidden=[16]", "updates_per_step=0.25"]
    assert main(["train", "--algo", "td3", "--env", "QuadraticBandit-v0", "--seed", "0", "--out", str(out),
                 "--no-progress", *[arg for key in settings for arg in ("--set", key)]]) == 0
    return out


def test_eval_of_a_deterministic_actor_leaves_out_its_exploration_noise(td3_run, run_dir, capsys):
    """A TD3 (or DDPG) policy is its actor's action; the Gaussian noise it acted with only explored in training.
    eval measured it with the noise added unless --deterministic, and said "actions sampled from the trained
    policy"; OmniSafe's evaluator takes the noiseless action. Now both ways measure the actor's own action."""
    results = []
    for flags in ([], ["--deterministic"]):
        assert main(["eval", str(td3_run), "--episodes", "8", "--seed", "1", "--json", *flags]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0] == results[1] and results[0]["deterministic"] is True
    assert main(["eval", str(td3_run), "--episodes", "2"]) == 0  # the header says what was measured
    header = capsys.readouterr().out.splitlines()[0]
    assert "(deterministic: the trained actor's action, without its exploration noise)" in header, header
    with cmdp.loading.load_policy(td3_run) as policy:
        assert policy.stochastic is False
        assert policy.evaluate(episodes=8, seed=1) == results[0]
        assert policy.acts_deterministically(False) is True
        which = policy.action_description(False)
        assert which == policy.action_description(True) and which.startswith("deterministic: ")
        assert "exploration noise" in which and "sampled" not in which and "stochastic" not in which
    # a policy that is a distribution is still sampled unless asked otherwise (test above for the numbers)
    with cmdp.loading.load_policy(run_dir) as policy:
        assert policy.stochastic is True and policy.acts_deterministically(False) is False
        assert policy.action_description(False) == "stochastic: actions sampled from the trained policy"
        assert policy.action_description(True) == "deterministic: the mean or most likely action"


def mapped_kib(path: Path) -> tuple[int, int] | None:
    """(size, resident) in KiB of this process's memory mappings of the file `path`; None where none maps it."""
    size = resident = 0
    found, current = False, ""
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                fields = line.split(None, 5)
                current = fields[5].strip() if len(fields) > 5 else ""
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if current == str(path):
                    found, size = True, size + (end - start) // 1024
            elif line.startswith("Rss:") and current == str(path):
                resident += int(line.split()[1])
    return (size, resident) if found else None


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads the process's mappings from /proc (Linux)")
def test_eval_reads_the_weights_of_the_checkpoint_not_its_replay_buffer(td3_run, tmp_path, monkeypatch):
    """An off-policy checkpoint holds the replay buffer (about 3 GB on Humanoid), which evaluating needs nothing of:
    eval read the whole file into memory. It now maps the file: the replay rows are never read."""
    run = tmp_path / "run"
    shutil.copytree(td3_run, run)
    checkpoint = (run / "checkpoints" / "last.pt").resolve()
    state = torch.load(checkpoint, weights_only=True)
    replay = state["schedule"]["replay"]["data"]
    width = replay["obs"].shape[1]
    replay["obs"] = torch.ones(2**24 // width, width)  # 64 MiB of rows: a buffer much larger than the networks
    torch.save(state, checkpoint)
    loaded = []

    def keep(*args, **kwargs):  # holds the loaded state (and so its mapping) for the check below
        loaded.append(cmdp.checkpoint.load_checkpoint(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(cmdp.loading, "load_checkpoint", keep)
    with cmdp.loading.load_policy(run) as policy:
        result = policy.evaluate(episodes=4, seed=2)
    mapped = mapped_kib(checkpoint)
    assert mapped is not None, "the checkpoint was read into memory, not mapped"
    size, resident = mapped
    assert size >= 64 * 1024 and resident < 8 * 1024, mapped  # the 64 MiB of replay rows stayed on disk
    assert len(loaded) == 1 and loaded[0]["schedule"]["replay"]["data"]["obs"].shape == (2**24 // width, width)
    monkeypatch.undo()
    with cmdp.loading.load_policy(td3_run) as policy:  # the mapped weights are the weights
        assert {**result, "run_dir": ""} == {**policy.evaluate(episodes=4, seed=2), "run_dir": ""}


# --- the Python API ---------------------------------------------------------------------------------------------

def test_load_policy_is_exported_without_importing_torch(tmp_path):
    code = textwrap.dedent('''\
        import sys
        import cmdp
        from cmdp import load_policy
        print(callable(load_policy), "torch" in sys.modules, "cmdp.loading" in sys.modules)
        ''')
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "False", "False"]


def test_load_policy_evaluates_and_closes(run_dir, monkeypatch):
    from cmdp import load_policy

    with load_policy(run_dir, num_envs=4) as policy:
        assert isinstance(policy, cmdp.loading.LoadedPolicy)
        assert policy.cfg.env == "ExactChain-v0" and policy.epoch == 2 and policy.spec.cost_names == ["cost"]
        result = policy.evaluate(episodes=20, seed=3)
        assert result["episodes"] == 20 and result["deterministic"] is False and result["epoch"] == 2
        for key in ("return_mean", "return_std", "len_mean", "cost_mean/cost", "cost_std/cost"):
            assert isinstance(result[key], float) and math.isfinite(result[key]), key
        assert result == policy.evaluate(episodes=20, seed=3)  # same seed, same episodes
        det = policy.evaluate(episodes=20, seed=3, deterministic=True)
        assert det["deterministic"] is True and det["return_mean"] != result["return_mean"]
        with pytest.raises(ConfigError, match="seed"):
            policy.evaluate(episodes=1, seed=-1)
        with pytest.raises(ConfigError, match="episodes"):
            policy.evaluate(episodes=0)
        closed = []
        monkeypatch.setattr(policy.run.env, "close", lambda: closed.append(True))
        assert closed == []
    assert closed == [True]  # leaving the with block closed the environment


def test_load_policy_of_a_folder_that_is_not_a_run(tmp_path, run_dir):
    from cmdp import load_policy

    with pytest.raises(ConfigError, match="not a run folder"):
        load_policy(tmp_path)
    with pytest.raises(ConfigError, match="not a run folder"):
        load_policy(tmp_path / "missing")
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    # and says when a run has one, and how one stopped before continues (it had said "train it first")
    with pytest.raises(ConfigError, match=rf"^{half} has no checkpoint yet \(checkpoints/last.pt\): a run saves its "
                                          rf"first after checkpoint_every epochs \(one stopped before that continues "
                                          rf"with cmdp train --resume {half}\)$"):
        load_policy(half)


def test_module_docstring_example_runs(run_dir, capsys):
    doc = cmdp.loading.__doc__
    example = textwrap.dedent("\n".join(line for line in doc.splitlines() if line.startswith("    ")))
    assert '"runs/my-run"' in example and "load_policy" in example
    exec(compile(example.replace('"runs/my-run"', repr(str(run_dir))), "cmdp/loading.py docstring", "exec"), {})
    printed = capsys.readouterr().out
    assert "'return_mean'" in printed and "'cost_mean/cost'" in printed and "'episodes': 20" in printed, printed


# --- TensorBoard after a resume ---------------------------------------------------------------------------------

def test_tensorboard_after_resume_holds_one_point_per_epoch(tmp_path):
    """Checkpoints every 2 epochs, interrupted after epoch 3: the resume starts again from epoch 2, so epoch 3's
    point must be purged (not doubled) and epochs 1-2's kept. Scalars are logged at env steps, so the purge step
    must be an env step too (given in epochs it dropped every earlier point)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, _ = resolve_config({"env": "ExactChain-v0", "total_steps": 1200, "steps_per_epoch": 200,
                             "checkpoint_every": 2, "seed": 0})
    run = interrupted_run(cfg, tmp_path / "run", after_epoch=3)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2  # one file per writer session

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    points = events.Scalars("ep_return")
    assert [p.step for p in points] == [200, 400, 600, 800, 1000, 1200]
    rows = read_progress(run / "progress.csv")
    assert [int(r["env_steps"]) for r in rows] == [200, 400, 600, 800, 1000, 1200]
    assert [p.value for p in points] == pytest.approx([float(r["ep_return"]) for r in rows], rel=1e-6)
