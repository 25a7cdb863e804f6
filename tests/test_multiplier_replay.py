"""`python -m cmdp.benchmarks.multiplier_replay`: a run's multipliers replayed under other update rules."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cmdp.benchmarks.multiplier_replay import main, parse_rule, replay
from cmdp.cli import main as cmdp_main
from cmdp.logger import read_progress
from cmdp.trainer import resolve_config
from run_helpers import interrupted_run, one_error_line

BANDIT = ["--env", "QuadraticBandit-v0", "--total-steps", "2000", "--no-progress", "--set", "steps_per_epoch=400",
          "--set", "num_envs=4", "--set", "update_after=400", "--set", "random_steps=400", "--set", "batch_size=32",
          "--set", "actor_hidden=[16]", "--set", "critic_hidden=[16]", "--set", "updates_per_step=0.25",
          "--set", "multiplier_delay=1", "--set", "lagrangian_lr=0.01", "--set", "cost_limits=0.2"]


@pytest.fixture(scope="module")
def sac_lag_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "sac_lag"
    assert cmdp_main(["train", "--algo", "sac_lag", *BANDIT, "--out", str(out)]) == 0
    return out


def test_the_runs_own_rule_gives_back_its_logged_multipliers_and_the_other_rule_differs(
        sac_lag_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = replay(sac_lag_run)
    logged = [float(row["lambda/effort_0"]) for row in read_progress(sac_lag_run / "progress.csv")]
    assert result["own"] == "update:0.01" and result["rules"] == ["update:0.01", "epoch:1"]  # 100 updates an epoch
    assert [row["update:0.01/effort_0"] for row in result["rows"]] == pytest.approx(logged, abs=1e-12)
    assert result["max_diff"] < 1e-12
    assert logged[1] > logged[0]  # the multiplier moved after its one-epoch delay
    assert [row["epoch:1/effort_0"] for row in result["rows"]] != pytest.approx(logged, abs=1e-6)
    assert main([str(sac_lag_run), "--rule", "epoch:0.5", "--out", str(tmp_path / "out")]) == 0
    assert "check:" not in capsys.readouterr().out  # the run's own rule was not replayed: nothing to check
    assert replay(sac_lag_run, [parse_rule("epoch:0.5")])["max_diff"] is None
    assert (tmp_path / "out" / "replay.png").stat().st_size > 0
    header = (tmp_path / "out" / "replay.csv").read_text().splitlines()[0]
    assert header == "epoch,cost_seen/effort_0,logged/effort_0,epoch:0.5/effort_0"


def test_a_run_made_before_lagrangian_steps_is_opened_and_resumed_as_it_began(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A *_lag run's config.yaml from before 2026-12-05 has no lagrangian_steps: its multipliers moved once per
    epoch, and that is how it resumes (cmdp.loading.EARLIER_BEHAVIOUR), without a note about the key."""
    full = tmp_path / "full"
    args = ["train", "--algo", "sac_lag", *BANDIT, "--set", "lagrangian_steps=epoch", "--out", str(full)]
    assert cmdp_main(args) == 0
    cfg, _ = resolve_config({**yaml.safe_load((full / "config.yaml").read_text())})
    cut = interrupted_run(cfg, tmp_path / "cut", after_epoch=2)
    config = cut / "config.yaml"
    config.write_text("".join(line + "\n" for line in config.read_text().splitlines()
                              if not line.startswith("lagrangian_steps:")))
    capsys.readouterr()
    assert cmdp_main(["train", "--resume", str(cut), "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert replay(cut)["own"] == "epoch:0.01"

    def rows(run: Path) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if not k.startswith(("wall_s", "steps_per_s", "time_"))}
                for row in read_progress(run / "progress.csv")]

    assert rows(cut) == rows(full)


@pytest.mark.parametrize("args, expected", [
    (["--rule", "often:1"], "--rule 'often:1': expected STEPS:LR with STEPS one of epoch, update and LR > 0"),
    (["--rule", "update:-1"], "--rule 'update:-1': expected STEPS:LR"),
])
def test_bad_rules_are_one_line(sac_lag_run: Path, args: list[str], expected: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sac_lag_run), *args]) == 2
    assert expected in one_error_line(capsys.readouterr().err, "multiplier_replay")


def test_runs_it_cannot_replay_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid = tmp_path / "pid"
    assert cmdp_main(["train", "--algo", "sac_pid", *BANDIT[:-6], "--out", str(pid)]) == 0
    ppo = tmp_path / "ppo"
    assert cmdp_main(["train", "--algo", "ppo_lag", "--env", "ExactChain-v0", "--total-steps", "1000",
                      "--set", "steps_per_epoch=500", "--no-progress", "--out", str(ppo)]) == 0
    capsys.readouterr()
    for args, expected in ([str(pid)], "sac_pid has no gradient-ascent multipliers to replay"), \
            ([str(ppo), "--rule", "update:0.1"], "progress.csv has no `updates` column"), \
            ([str(tmp_path / "nothing")], "is not a run folder"):
        assert main(args) == 2
        assert expected in one_error_line(capsys.readouterr().err, "multiplier_replay")
    blocker = tmp_path / "taken.txt"
    blocker.write_text("")
    assert main([str(ppo), "--out", str(blocker)]) == 2  # was "[Errno 17] File exists: '...'"
    assert one_error_line(capsys.readouterr().err, "multiplier_replay") == \
        f"multiplier_replay: error: output folder {blocker} exists and is not a folder; choose another --out"
    assert main([str(ppo)]) == 0  # its own rule, one step per epoch, alone: an on-policy run has no updates column
    assert "check: the run's own rule (epoch:0.035) gives back the logged multipliers to within 0" \
        in capsys.readouterr().out
    assert parse_rule("update:1e-5").lr == 1e-5


def test_the_epoch_axis_of_replay_png_has_whole_number_ticks(sac_lag_run: Path) -> None:
    """replay.png's epoch axis had ticks at 1.5, 2.5, ... (matplotlib's default locator on a 5-epoch run), epochs
    that do not exist; every panel's epoch ticks are whole numbers now."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cmdp.benchmarks.multiplier_replay import replay_figure

    result = replay(sac_lag_run)
    assert [row["epoch"] for row in result["rows"]] == [1, 2, 3, 4, 5]
    fig = replay_figure(result)
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    assert len(fig.axes) == 2
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
