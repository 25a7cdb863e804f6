"""End to end through the `cmdp` command: training, the run folder, eval, resume, determinism, bad input."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cmdp.cli import main
from cmdp.logger import TIMING_COLUMNS
from cmdp.trainer import Trainer, resolve_config
from run_helpers import interrupted_run

HOPPER = "SafetyHopperVelocity-v1"
FAST = ["--set", "steps_per_epoch=1000", "--no-progress"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cmdp", *args], capture_output=True, text=True, timeout=600)


def rows_without_timing(path: Path) -> list[dict]:
    with (path / "progress.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def test_train_point_goal_end_to_end_then_eval(tmp_path):
    out = tmp_path / "run"
    res = run_cli("train", "--env", "SafetyPointGoal1-v0", "--total-steps", "2000", "--seed", "1",
                  "--out", str(out), *FAST)
    assert res.returncode == 0, res.stderr
    assert "final cost" in res.stdout and str(out) in res.stdout
    for name in ("config.yaml", "progress.csv", "summary.json", "checkpoints/last.pt"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader((out / "progress.csv").open()))
    assert [int(r["env_steps"]) for r in rows] == [1000, 2000]
    for col in ("env_steps", "ep_return", "ep_cost", "ep_len", "lambda/cost", "loss_pi", "loss_v", "steps_per_s"):
        assert col in rows[0], col
    assert float(rows[-1]["ep_len"]) == 1000.0  # PointGoal1 episodes run to the 1000-step limit
    summary = json.loads((out / "summary.json").read_text())
    for key in ("algo", "env", "seed", "env_steps", "wall_seconds", "final_return", "final_costs", "cost_limits"):
        assert key in summary, key
    assert summary["env_steps"] == 2000 and summary["seed"] == 1
    assert summary["cost_limits"] == {"cost": 25.0}
    assert summary["final_return"] == pytest.approx(float(rows[-1]["ep_return"]))

    ev = run_cli("eval", str(out), "--episodes", "1", "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["episodes"] == 1 and result["len_mean"] == 1000.0 and "cost_mean/cost" in result


def test_train_hopper_in_process(tmp_path, capsys):
    out = tmp_path / "hop"
    assert main(["train", "--env", HOPPER, "--total-steps", "3000", "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == HOPPER and summary["env_steps"] == 3000 and summary["epochs"] == 3
    assert summary["final_ep_len"] < 1000  # Hopper terminates early when it falls
    assert main(["eval", str(out), "--episodes", "3"]) == 0
    printed = capsys.readouterr().out
    assert "3 episodes from seed 12345" in printed and "(mean ± std over the episodes)" in printed
    # more copies than episodes: refused in one line (10**8 copies ended in numpy's MemoryError traceback)
    assert main(["eval", str(out), "--episodes", "2", "--num-envs", str(10**8)]) == 2
    assert capsys.readouterr().err == f"cmdp: error: --num-envs ({10**8}) must be at most --episodes (2)\n"


def test_same_seed_same_progress_and_different_seed_differs(tmp_path):
    def run(name, seed):
        assert main(["train", "--env", HOPPER, "--total-steps", "3000", "--seed", str(seed),
                     "--out", str(tmp_path / name), *FAST]) == 0
        return rows_without_timing(tmp_path / name)

    a, b, c = run("a", 7), run("b", 7), run("c", 8)
    assert a == b
    assert a != c


@pytest.mark.parametrize("extra", [{}, {"reward_normalize": True, "cost_normalize": True, "num_envs": 2}])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, extra):
    sets = [f"--set={k}={str(v).lower()}" for k, v in extra.items()]
    args = ["train", "--env", HOPPER, "--total-steps", "4000", "--seed", "3", *FAST, *sets]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0

    cfg, _ = resolve_config({"env": HOPPER, "total_steps": 4000, "seed": 3, "steps_per_epoch": 1000, **extra})
    run_dir = interrupted_run(cfg, tmp_path / "cut", after_epoch=2)
    assert len(rows_without_timing(run_dir)) == 2
    assert not (run_dir / "summary.json").exists()
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0

    assert rows_without_timing(tmp_path / "full") == rows_without_timing(run_dir)
    full = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    resumed = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    for key in full["agent"]:
        assert torch.equal(full["agent"][key], resumed["agent"][key]), key
    assert full["family"] == resumed["family"]  # the observation normaliser and the reward and cost scalers
    assert full["numpy_rng"] == resumed["numpy_rng"]
    if extra:
        assert full["family"]["reward_scaler"] is not None and full["family"]["cost_scaler"] is not None


def test_list_shows_algorithms_and_environments(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ppo_lag" in out and "SafetyPointGoal1-v0" in out and "SafetyHopperVelocity-v1" in out
    # each solver's line is a whole sentence, not a docstring's first line cut mid-phrase (cup's was)
    assert "lowers the cost surrogate near the improved policy." in out
    solver_lines = out.split("environments:")[0].splitlines()[1:]
    assert solver_lines and all(line.rstrip().endswith((".", ")")) for line in solver_lines), solver_lines
    # ... nor cut at a dot that is notation ("r - lambda . c" ended rcpo's line at "lambda .")
    cut = [line for line in solver_lines if line.rstrip().endswith(" .")]
    assert not cut, cut


def test_train_help_gives_the_readmes_config_precedence(capsys):
    """`cmdp train --help` named three of the six layers ("algorithm defaults < --config file < flags < --set"): the
    environment family's defaults and --preset, which the README lists and resolve_config applies, were missing."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    layers = ["algorithm defaults", "family's", "--preset", "--config", "flags", "--set"]
    for text in (help_text[help_text.index("Precedence"):], readme[readme.index("Config precedence"):]):
        places = [text.find(layer) for layer in layers]
        assert -1 not in places and places == sorted(places), (layers, places)


def test_first_sentence_joins_wrapped_lines_and_stops_at_the_full_stop():
    from cmdp.cli import first_sentence

    assert first_sentence("""A wrapped
    summary line. More text.

    Body.""") == "A wrapped summary line."
    assert first_sentence("No stop at all\n\nBody.") == "No stop at all"
    assert first_sentence("Costs, e.g. a speed, i.e. one. Next.") == "Costs, e.g. a speed, i.e. one."
    assert first_sentence(None) == ""


@pytest.mark.parametrize("args, message", [
    (["--algo", "nope"], "unknown algorithm 'nope'"),
    (["--env", "SafetyPointGoal9-v0"], "unknown environment 'SafetyPointGoal9-v0'"),
    (["--set", "learning_rate=0.1"], "unknown key 'learning_rate'"),
    (["--set", "cost_limits=-1"], "cost_limits"),
    (["--set", "cost_limits=lots"], "cost_limits"),
    (["--set", "total_steps=many"], "total_steps must be an integer"),
    (["--set", "gamma=1.5"], "gamma must be in [0, 1]"),
    (["--set", "device=cuda:x"], "device must be cpu, cuda or cuda:N, got 'cuda:x'"),  # was torch.device's traceback
    (["--set", "novalue"], "--set expects key=value"),
    (["--config", "does-not-exist.yaml"], "config file not found"),
    (["--plugin", "no_such_module_xyz"], "cannot import module 'no_such_module_xyz'"),
])
def test_bad_input_fails_cleanly(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = main(["train", "--env", HOPPER, "--total-steps", "1000", "--out", str(out), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("cmdp: error:")
    assert not out.exists()


@pytest.mark.parametrize("argv, line", [
    (["train", "--total-steps", "abc"], "cmdp train: error: argument --total-steps: invalid int value: 'abc' "
                                        "(`cmdp train --help` lists the options)"),
    (["eval"], "cmdp eval: error: the following arguments are required: run_dir (`cmdp eval --help` lists the "
               "options)"),
    (["train", "--bogus"], "cmdp train: error: unrecognized arguments: --bogus (`cmdp train --help` lists the "
                           "options)"),
    (["--bogus", "train"], "cmdp: error: unrecognized arguments: --bogus (`cmdp --help` lists the options)"),
])
def test_a_usage_error_is_one_line(argv, line, capsys):
    # argparse printed the subcommand's whole usage (five lines for train) above its error line
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err == line + "\n"


#: each subcommand's required arguments, so that only the unknown option is wrong
REQUIRED_ARGUMENTS = {"eval": ["RUN"], "report": ["RUN"], "arena": ["A", "B", "--prompts", "P"],
                      "train-score-model": ["--kind", "reward", "--data", "D", "--model", "M", "--out", "O"]}


def subcommands() -> list[str]:
    from cmdp.cli import _parser

    action = next(a for a in _parser()._actions if a.dest == "command")
    return list(action.choices)


@pytest.mark.parametrize("command", subcommands())
def test_an_unknown_option_of_a_subcommand_names_that_subcommands_help(command, capsys):
    # argparse handed a subcommand's unknown arguments up to the top-level parser, whose error named `cmdp --help`:
    # that lists the subcommands, not the options the user got wrong
    with pytest.raises(SystemExit) as info:
        main([command, *REQUIRED_ARGUMENTS.get(command, []), "--bogus"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (f"cmdp {command}: error: unrecognized arguments: --bogus "
                                       f"(`cmdp {command} --help` lists the options)\n")


def test_bad_config_file_contents(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- just\n- a list\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "must hold a mapping" in capsys.readouterr().err
    cfg.write_text("env: SafetyHopperVelocity-v1\nclip: [0.2\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_resume_names_the_keys_an_older_config_yaml_lacks(tmp_path, capsys):
    """A run's config.yaml names every key of the version that began it; keys added since take today's defaults
    on resume, and the user is told which (a changed default would change the run's course unannounced)."""
    cfg, _ = resolve_config({"env": "ExactChain-v0", "total_steps": 2000, "steps_per_epoch": 1000, "seed": 0})
    intact = interrupted_run(cfg, tmp_path / "intact", after_epoch=1)
    older = interrupted_run(cfg, tmp_path / "older", after_epoch=1)
    config = older / "config.yaml"
    lines = config.read_text().splitlines()
    config.write_text("".join(f"{line}\n" for line in lines if not line.startswith(("cost_window:", "entropy_coef:"))))
    assert main(["train", "--resume", str(intact), "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main(["train", "--resume", str(older), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"note: {config} was written by an earlier cmdp-lab and does not name cost_window (now 0), " \
           f"entropy_coef (now 0.0): the resumed run takes these defaults" in err
    assert rows_without_timing(older) == rows_without_timing(intact)  # here the defaults are what it began with


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "stuff").mkdir()
    assert main(["train", "--resume", str(tmp_path / "stuff")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert main(["eval", str(tmp_path / "stuff")]) == 2
    res = run_cli("train", "--resume", str(tmp_path / "stuff"))
    assert res.returncode == 2 and "not a run folder" in res.stderr


def test_existing_output_folder_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["train", "--env", HOPPER, "--out", str(out), "--no-progress"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_config_file_and_set_precedence(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("env: SafetyHopperVelocity-v1\nseed: 5\nclip: 0.1\ncost_limits: 10\n")
    cfg, _ = resolve_config({"seed": 6, "clip": "0.3"}, str(cfg_file))
    assert (cfg.env, cfg.seed, cfg.clip, cfg.cost_limits) == (HOPPER, 6, 0.3, 10)
    trainer = Trainer(cfg)
    assert trainer.spec.cost_limits.tolist() == [10.0]
    trainer.run.env.close()


# --- an environment MuJoCo refuses at import ------------------------------------------------------------------

@pytest.mark.parametrize("value", ["foo", "eggl"])
def test_a_mujoco_gl_value_mujoco_refuses_is_one_line_and_import_cmdp_still_works(value):
    import os

    env = {**os.environ, "MUJOCO_GL": value}
    res = subprocess.run([sys.executable, "-m", "cmdp", "list"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip() == f"cmdp: error: MUJOCO_GL={value!r} is not a value MuJoCo accepts (egl, osmesa or " \
                                 f"glfw); set one of those or unset it"
    # the library imports (gymnasium is left alone), and importing gymnasium gives MuJoCo's own error
    probe = "import cmdp, sys; print('gymnasium' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "False"


def test_mujoco_gl_problem_names_a_backend_library_that_is_missing(monkeypatch):
    from cmdp import mujoco_gl as offscreen

    monkeypatch.setattr(offscreen.platform, "system", lambda: "Linux")
    monkeypatch.setattr(offscreen.ctypes.util, "find_library", lambda name: None)
    for value, library in (("osmesa", "OSMesa"), ("EGL", "EGL")):
        monkeypatch.setenv("MUJOCO_GL", value)
        assert offscreen.mujoco_gl_problem().startswith(f"MUJOCO_GL={value.lower()}, but the {library} library is "
                                                        f"not installed")
    for value in ("glfw", "disable", ""):
        monkeypatch.setenv("MUJOCO_GL", value)
        assert offscreen.mujoco_gl_problem() is None
    monkeypatch.delenv("MUJOCO_GL")
    assert offscreen.mujoco_gl_problem() is None


def test_every_shipped_algorithm_has_a_row_in_the_readme_table():
    """Every solver cmdp-lab ships (its `cmdp.algorithms` entry points) has a row in the README's algorithm table.

    Entry points, not the registry: other tests register plugin solvers of their own in this process."""
    from importlib.metadata import entry_points

    from cmdp.registry import ALGORITHM_GROUP

    shipped = {ep.name for ep in entry_points(group=ALGORITHM_GROUP) if ep.value.startswith("cmdp.algorithms.")}
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    named = {name for line in readme.splitlines() if line.startswith("| `")
             for name in re.findall(r"`([a-z0-9_]+)`", line.split("|")[1])}
    assert len(shipped) > 30 and "grpo_pid" in shipped
    assert shipped <= named, sorted(shipped - named)


def test_the_unconstrained_baselines_are_declared_at_registration():
    """`register_algorithm(name, constrained=False)` marks the baselines the demos expect to break a limit; a
    subclass registered under another name (ppo_saute from ppo) is constrained unless it says otherwise."""
    from importlib.metadata import entry_points

    from cmdp.registry import ALGORITHM_GROUP, is_constrained
    from cmdp.spec import ConfigError

    shipped = {ep.name for ep in entry_points(group=ALGORITHM_GROUP) if ep.value.startswith("cmdp.algorithms.")}
    unconstrained = {name for name in shipped if not is_constrained(name)}
    assert unconstrained == {"ppo", "pg", "npg", "trpo", "grpo", "rloo", "ddpg", "td3", "sac", "reward_shaping"}
    assert is_constrained("ppo_saute") and is_constrained("ppo_lag")
    with pytest.raises(ConfigError, match="unknown algorithm"):
        is_constrained("no_such_solver")


def test_the_summary_explains_a_short_constrained_run_above_its_limit():
    # `cmdp train` with no arguments runs 2 epochs and ends above the limit: the summary says why, in one line, and
    # only for a constrained solver that ended above a limit (tests/test_summary_notes.py: those without multipliers)
    from cmdp.cli import format_summary, multiplier_delay

    summary = {"algo": "ppo_lag", "env": "SafetyPointGoal1-v0", "seed": 0, "env_steps": 40000, "epochs": 2,
               "wall_seconds": 40.0, "steps_per_s": 1000.0, "final_return": 0.5, "final_epoch_with_episodes": 2,
               "final_costs": {"cost": 36.9}, "cost_limits": {"cost": 25.0}, "multipliers": {"cost": 0.07}}
    note = ("note           above the limit after 2 epochs: a multiplier takes many epochs to bring a cost down, "
            "and OmniSafe's benchmarks train 500 (1e7 steps on-policy, 1e6 off-policy: --total-steps)")
    text = format_summary(summary, Path("run"))
    assert "(ABOVE limit), lambda 0.0700" in text and note in text.splitlines()
    # an off-policy run shorter than its multipliers' delay: they never moved, which the note says instead
    waiting = format_summary({**summary, "algo": "sac_lag", "multipliers": {"cost": 0.001}}, Path("run"), delay=100)
    assert ("note           above the limit after 2 epochs: the multipliers wait 100 epochs before they first move "
            "(multiplier_delay, OmniSafe's warmup_epochs); OmniSafe's benchmarks train 500 (--total-steps)"
            ) in waiting.splitlines()
    assert multiplier_delay(resolve_config({"algo": "sac_lag", "env": "SafetyHopperVelocity-v1"})[0]) == 100
    assert multiplier_delay(resolve_config({"algo": "sac_pid", "env": "SafetyHopperVelocity-v1"})[0]) == 100
    assert multiplier_delay(resolve_config({"algo": "ppo_lag", "env": "SafetyHopperVelocity-v1"})[0]) == 0
    assert multiplier_delay(resolve_config({"algo": "ppo", "env": "SafetyHopperVelocity-v1"})[0]) == 0
    for changes in ({"final_costs": {"cost": 12.0}}, {"final_costs": {"cost": float("nan")}},
                    {"algo": "ppo", "multipliers": {}}):
        assert "note" not in format_summary({**summary, **changes}, Path("run")), changes


def test_a_run_as_long_as_omnisafes_benchmarks_gets_no_short_run_note():
    # the note on a run that ended above its limit says it was short ("a multiplier takes many epochs ... OmniSafe's
    # benchmarks train 500"); after 500 epochs or more it excused a solver that failed with advice already followed
    from cmdp.cli import OMNISAFE_EPOCHS, format_summary

    summary = {"algo": "ppo_lag", "env": "SafetyPointGoal1-v0", "seed": 0, "env_steps": 10_000_000, "epochs": 500,
               "wall_seconds": 9000.0, "steps_per_s": 1111.0, "final_return": 20.1, "final_epoch_with_episodes": 500,
               "final_costs": {"cost": 31.2}, "cost_limits": {"cost": 25.0}, "multipliers": {"cost": 1.3}}
    assert OMNISAFE_EPOCHS == 500
    for epochs in (500, 800):
        text = format_summary({**summary, "epochs": epochs}, Path("run"))
        assert "(ABOVE limit), lambda 1.3000" in text and "note" not in text, epochs
    assert "note           above the limit after 499 epochs: a multiplier takes many epochs" in format_summary(
        {**summary, "epochs": 499}, Path("run"))
    # multipliers that had not yet moved are worth the note however long the run
    assert "the multipliers wait 600 epochs" in format_summary({**summary, "epochs": 550}, Path("run"), delay=600)


def test_the_summary_of_a_run_that_finished_no_episode_says_so():
    # an epoch shorter than an episode (steps_per_epoch=500 on a 1000-step Safety-Gymnasium task) never finishes
    # one, since every epoch starts new episodes: summary.json's final_epoch_with_episodes is null. The summary
    # printed "(mean over the episodes of epoch None)" and "(n/a)" without a word on why
    from cmdp.cli import format_summary

    summary = {"algo": "ppo_lag", "env": "SafetyPointGoal1-v0", "seed": 0, "env_steps": 1000, "epochs": 2,
               "wall_seconds": 3.4, "steps_per_s": 291.5, "final_return": float("nan"),
               "final_epoch_with_episodes": None, "final_costs": {"cost": float("nan")},
               "cost_limits": {"cost": 25.0}, "multipliers": {"cost": 0.001}}
    lines = format_summary(summary, Path("run")).splitlines()
    assert "final return   n/a  (no episode finished in the run's 2 epochs)" in lines
    assert "final cost     n/a / limit 25 (not measured), lambda 0.0010   [cost]" in lines
    assert not any("None" in line for line in lines)
    note = [line for line in lines if line.startswith("note")]
    assert note == ["note           no episode finished: every epoch starts new episodes, so an epoch needs at least "
                    "one episode's steps per environment copy (steps_per_epoch / num_envs); without one nothing "
                    "measures the return or the cost and the multipliers never move"]
    unconstrained = format_summary({**summary, "algo": "ppo", "epochs": 1, "multipliers": {}}, Path("run"))
    assert "(no episode finished in the run's 1 epoch)" in unconstrained
    assert unconstrained.rstrip().count("measures the return or the cost\n") == 1


@pytest.mark.parametrize("env, steps_per_epoch, num_envs, expect", [
    ("QuadraticBandit-v0", 16, 2, "an epoch gives each environment copy 8 steps (steps_per_epoch / num_envs), fewer "
                                  "than an episode's 10"),
    ("QuadraticBandit-v0", 20, 2, None),  # 10 steps per copy: each episode of 10 finishes
    ("ExactChain-v0", 16, 1, None),  # no time limit: nothing to compare with
])
def test_an_epoch_shorter_than_an_episode_is_noted_at_the_start(tmp_path, capsys, env, steps_per_epoch, num_envs,
                                                                 expect):
    # such a run measured only the episodes that ended early, or none, and said so (if at all) only at its end
    out = tmp_path / "run"
    assert main(["train", "--algo", "ppo_lag", "--env", env, "--total-steps", str(2 * steps_per_epoch),
                 "--num-envs", str(num_envs), "--set", f"steps_per_epoch={steps_per_epoch}", "--no-progress",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    notes = [line for line in printed.splitlines() if line.startswith("note: an epoch gives")]
    if expect is None:
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith(f"note: {expect}")
        assert notes[0].endswith(f"set steps_per_epoch to at least {10 * num_envs}")
        assert printed.index(notes[0]) < printed.index("== ppo_lag")  # at the start, before the summary


def test_a_refused_new_run_prints_no_note_on_its_config(tmp_path, capsys):
    # the notes on a new run's config (total_steps rounded to whole epochs) were printed before the run folder was
    # made, so a run refused there (its --out already holds a run) read as one that had begun above its error line
    out = tmp_path / "run"
    argv = ["train", "--env", "ExactChain-v0", "--total-steps", "450", "--set", "steps_per_epoch=200",
            "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    assert "note: total_steps rounded from 450 to 400" in capsys.readouterr().out
    assert main(argv) == 2
    printed, err = capsys.readouterr()
    assert printed == "" and len(err.strip().splitlines()) == 1 and str(out) in err


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("command", [["list"], ["benchmark", "benchmarks/suites/smoke.yaml", "--dry-run"]],
                         ids=["list", "dry-run"])
def test_a_reader_that_leaves_early_ends_the_command_quietly(command, unbuffered, tmp_path):
    """`cmdp list | head`: the reader closes the pipe before the output ends. The command had ended in a
    BrokenPipeError traceback (exit status 1), or, where its output was short enough to stay in Python's buffer (the
    dry run's list of cells), in "Exception ignored ... BrokenPipeError" at exit (status 120); now it stops without a
    word, with the status of a tool that SIGPIPE ended (141), as `ls | head` does."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    argv = command + (["--out", str(tmp_path / "suite")] if "--dry-run" in command else [])
    proc = subprocess.Popen([sys.executable, "-m", "cmdp", *argv], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # gone before the command has written a line
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert not (tmp_path / "suite").exists()


def test_ctrl_c_while_a_command_starts_is_one_line(tmp_path, capsys, monkeypatch):
    # Ctrl-C while `cmdp train --env text` loaded its models (the first seconds, before training's own handler)
    # printed a torch/transformers traceback
    import cmdp.trainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmdp.trainer.Trainer, "__init__", interrupted)
    out = tmp_path / "run"
    assert main(["train", "--algo", "ppo", "--env", "ExactChain-v0", "--out", str(out), "--no-progress"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted"]
    assert not out.exists()
