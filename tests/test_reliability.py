"""User-facing failures end as one `cmdp: error: ...` line (exit status 2), never a traceback, and leave nothing
half-written: bad config numbers, files that are not UTF-8 or cannot be read, run folders that cannot be created,
damaged checkpoints, unknown env_kwargs."""
from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cmdp.cli import main
from cmdp.logger import read_progress
from cmdp.spec import ConfigError
from run_helpers import one_error_line

FAST = ["--env", "ExactChain-v0", "--total-steps", "400", "--set", "steps_per_epoch=200", "--no-progress"]
RUN_FILES = {"config.yaml", "checkpoints", "progress.csv", "summary.json", "tb"}


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit status 2 and exactly one `cmdp: error:` line on stderr (no traceback); return it."""
    capsys.readouterr()
    assert main(argv) == 2
    return one_error_line(capsys.readouterr().err)


def chain_suite(path: Path, config: str) -> Path:
    """A one-cell suite file (ppo on ExactChain-v0, 400 steps) whose `config:` is the YAML flow mapping `config`."""
    path.write_text("algorithms: [ppo]\nenvironments: [ExactChain-v0]\nseeds: 1\ntotal_steps: 400\n"
                    f"config: {config}\n")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def close_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records every Trainer.close() call (the real close still runs)."""
    from cmdp.trainer import Trainer

    calls: list[object] = []
    real_close = Trainer.close

    def close(self: Trainer) -> None:
        calls.append(self)
        real_close(self)

    monkeypatch.setattr(Trainer, "close", close)
    return calls


# --- 1. config values ------------------------------------------------------------------------------------------

def test_seed_outside_the_unsigned_32_bit_range_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # -1 and 2**64 raised from numpy / torch seeding; 2**32 and up would not reach every seeder (np.random.seed)
    for seed in (-1, 2**32, 2**64):
        line = fails(["train", *FAST, "--seed", str(seed), "--out", str(tmp_path / "run")], capsys)
        assert line == f"cmdp: error: seed must be an integer in [0, 4294967295] (2**32 - 1), got {seed}"
        assert not (tmp_path / "run").exists()
    assert main(["train", *FAST, "--seed", str(2**32 - 1), "--out", str(tmp_path / "run")]) == 0  # the bound itself


@pytest.mark.parametrize("setting", ["actor_hidden=[-3]", "actor_hidden=[0]", "critic_hidden=[64, 0]"])
def test_hidden_layer_sizes_below_one_are_refused(setting: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(["train", *FAST, "--set", setting, "--out", str(tmp_path / "run")], capsys)
    assert setting.split("=")[0] in line and "must list layer sizes >= 1" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting", ["critic_l2=-5", "entropy_coef=-0.1"])
def test_negative_penalty_coefficients_are_refused(setting: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(["train", *FAST, "--set", setting, "--out", str(tmp_path / "run")], capsys)
    assert f"{setting.split('=')[0]} must be >= 0" in line


def test_init_log_std_whose_exp_is_not_a_positive_float32_is_refused(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(["train", *FAST, "--set", "init_log_std=100", "--out", str(tmp_path / "run")], capsys)
    assert "init_log_std must be in (-80, 80)" in line


@pytest.mark.parametrize("algo", ["ppo_lag", "cup", "trpo_lag"])
@pytest.mark.parametrize("value", ["-1", "0"])
def test_lagrangian_lr_must_be_positive(algo: str, value: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(["train", *FAST, "--algo", algo, "--set", f"lagrangian_lr={value}", "--out", str(tmp_path / "run")],
                 capsys)
    assert "lagrangian_lr must be > 0" in line


@pytest.mark.parametrize("algo", ["ppo_lag", "cup", "trpo_lag"])
def test_negative_lagrangian_upper_bound_is_refused_before_any_run_folder(algo: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # it used to be accepted and crash in epoch 1 (1 + lambda = 0), leaving a half-written run folder
    line = fails(["train", *FAST, "--algo", algo, "--set", "lagrangian_upper_bound=-1",
                  "--out", str(tmp_path / "run")], capsys)
    assert "lagrangian_upper_bound must be >= 0" in line
    assert not (tmp_path / "run").exists()


def test_multiplier_constructors_refuse_the_same_numbers() -> None:
    from cmdp.lagrange import LagrangeMultiplier, PIDMultiplier

    limits = np.array([1.0])
    with pytest.raises(ValueError, match="learning rate must be > 0"):
        LagrangeMultiplier(limits, lr=-1.0)
    with pytest.raises(ValueError, match="learning rate must be > 0"):
        LagrangeMultiplier(limits, lr=0.0)
    with pytest.raises(ValueError, match="upper bound must be >= 0"):
        LagrangeMultiplier(limits, upper_bound=-1.0)
    with pytest.raises(ValueError, match="upper bound must be >= 0"):
        PIDMultiplier(limits, upper_bound=-1.0)
    LagrangeMultiplier(limits, upper_bound=0.0)  # 0 is a bound (the multiplier stays 0), not an error


# --- 2. files that are not UTF-8 or cannot be read -------------------------------------------------------------

NOT_UTF8 = b"\xff\xfe\x00bad"


def test_config_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(NOT_UTF8)
    line = fails(["train", *FAST, "--config", str(bad), "--out", str(tmp_path / "run")], capsys)
    assert f"config file {bad} is not UTF-8 text" in line
    assert not (tmp_path / "run").exists()


def test_config_path_that_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = fails(["train", *FAST, "--config", str(tmp_path), "--out", str(tmp_path / "run")], capsys)
    assert line == f"cmdp: error: config file {tmp_path} is a directory; give a file"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads any file whatever its permission bits, so an unreadable file cannot be made; "
                           "test_config_file_the_os_refuses_to_read covers the same handling")
def test_config_file_without_read_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("seed: 1\n")
    secret.chmod(0)
    line = fails(["train", *FAST, "--config", str(secret), "--out", str(tmp_path / "run")], capsys)
    assert line == f"cmdp: error: cannot read config file {secret}: Permission denied"


def test_config_file_the_os_refuses_to_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # as root (and on any OS) a read error is simulated: the file is there, reading it fails with EACCES
    secret = tmp_path / "secret.yaml"
    secret.write_text("seed: 1\n")
    real_read_text = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self == secret:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    line = fails(["train", *FAST, "--config", str(secret), "--out", str(tmp_path / "run")], capsys)
    assert line == f"cmdp: error: cannot read config file {secret}: {os.strerror(errno.EACCES)}"


def test_benchmark_suite_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(NOT_UTF8)
    line = fails(["benchmark", str(bad), "--dry-run"], capsys)
    assert str(bad) in line and "UTF-8" in line


@pytest.mark.parametrize("text, where", [
    ("algo: [ppo\nenv: x\n", "line 2, column 4: expected ',' or ']', but got ':' "
                               "(while parsing a flow sequence that began at line 1, column 7)"),
    ("env: \"ExactChain-v0\n", "line 2, column 1: found unexpected end of stream "
                             "(while scanning a quoted scalar that began at line 1, column 6)"),
    ("seed: 1\n total_steps: 2\n", "line 2, column 13: mapping values are not allowed here"),
    ("seed: \x07\n", "character 7 is #x0007: special characters are not allowed"),
    # PyYAML keeps the last of two values without a word: this file trained seed 2
    ("seed: 1\nenv: ExactChain-v0\nseed: 2\n", "line 3, column 1: key 'seed' appears twice (first on line 1)"),
])
@pytest.mark.parametrize("command", ["train", "benchmark"])
def test_yaml_that_does_not_parse_is_one_line_with_its_place(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            text: str, where: str, command: str) -> None:
    # PyYAML's own message spans five lines, quotes the source under a caret and calls the file "<unicode string>"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    argv = ["train", "--config", str(bad)] if command == "train" else ["benchmark", str(bad)]
    line = fails([*argv, "--out", str(tmp_path / "out")], capsys)
    what = "config file" if command == "train" else "suite file"
    assert line == f"cmdp: error: {what} {bad} is not valid YAML: {where}"
    assert not (tmp_path / "out").exists()


def test_text_data_files_that_are_not_utf8_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cmdp.envs.text.data import load_preferences, load_prompts, load_sft

    for name in ("bad.jsonl", "bad.csv"):
        bad = tmp_path / name
        bad.write_bytes(NOT_UTF8 if name.endswith(".jsonl") else b"prompt\nfine\n" + NOT_UTF8 + b"\n")
        for load in (load_prompts, load_preferences, load_sft):
            with pytest.raises(ConfigError) as info:
                load(bad)
            assert str(info.value).startswith(f"{bad}: not UTF-8 text")
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load_prompts(folder)
    data = tmp_path / "data"  # a folder without a data file's suffix was "unsupported file type '(none)'"
    data.mkdir()
    with pytest.raises(ConfigError, match=f"^{data}: is a directory, not a data file$"):
        load_prompts(data)
    # and through the command that reads preference pairs (the data are read before any model is loaded)
    pytest.importorskip("transformers")
    bad = tmp_path / "bad.jsonl"
    line = fails(["train-score-model", "--kind", "reward", "--data", str(bad), "--model", str(tmp_path),
                  "--out", str(tmp_path / "model"), "--no-progress"], capsys)
    assert line.startswith(f"cmdp: error: {bad}: not UTF-8 text")
    assert not (tmp_path / "model").exists()


# --- 3. run folders that cannot be created ---------------------------------------------------------------------

def test_out_under_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], close_calls: list) -> None:
    somefile = tmp_path / "somefile.txt"
    somefile.write_text("not a folder\n")
    line = fails(["train", *FAST, "--out", str(somefile / "run")], capsys)
    assert line == f"cmdp: error: cannot create the run folder {somefile / 'run'}: {os.strerror(errno.ENOTDIR)}"
    assert somefile.read_text() == "not a folder\n" and len(close_calls) == 1


def test_out_that_is_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], close_calls: list) -> None:
    somefile = tmp_path / "somefile.txt"
    somefile.write_text("not a folder\n")
    line = fails(["train", *FAST, "--out", str(somefile)], capsys)
    assert line == f"cmdp: error: output folder {somefile} exists and is not a folder; choose another --out"
    assert somefile.read_text() == "not a folder\n" and len(close_calls) == 1


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_under_proc(capsys: pytest.CaptureFixture[str], close_calls: list) -> None:
    line = fails(["train", *FAST, "--out", "/proc/x/run"], capsys)
    assert line.startswith("cmdp: error: cannot create the run folder /proc/x/run: ")
    assert not Path("/proc/x").exists() and len(close_calls) == 1


def _out_commands(tmp_path: Path) -> dict[str, list[str]]:
    """Every `cmdp` command that writes into a folder `--out` names, as far as its output folder (a run for report)."""
    run = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(run)]) == 0
    smoke = Path(__file__).resolve().parents[1] / "benchmarks" / "suites" / "smoke.yaml"
    return {"benchmark": ["benchmark", str(smoke)], "benchmark --dry-run": ["benchmark", str(smoke), "--dry-run"],
            "demo": ["demo", "--quick"], "text-demo": ["text-demo", "--quick"], "report": ["report", str(run)]}


@pytest.mark.parametrize("under", [False, True], ids=["is-a-file", "under-a-file"])
def test_every_out_that_a_file_blocks_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  under: bool) -> None:
    # these ended in a FileExistsError or NotADirectoryError traceback from mkdir until 2026-12-04
    somefile = tmp_path / "somefile.txt"
    somefile.write_text("not a folder\n")
    out = somefile / "deeper" / "out" if under else somefile
    expected = (f"cmdp: error: cannot create the output folder {out}: {somefile} is a file, not a folder" if under
                else f"cmdp: error: output folder {out} exists and is not a folder; choose another --out")
    for name, argv in _out_commands(tmp_path).items():
        capsys.readouterr()
        assert main([*argv, "--out", str(out)]) == 2, name
        printed = capsys.readouterr()
        assert (printed.out, printed.err) == ("", expected + "\n"), name  # nothing before it: no plan, no progress
        assert somefile.read_text() == "not a folder\n", name


def test_out_on_a_read_only_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str], close_calls: list) -> None:
    # simulated (a read-only mount needs privileges; chmod does not stop root): mkdir fails with EROFS below `ro`
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if Path(str(path)).parent == read_only:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    line = fails(["train", *FAST, "--out", str(read_only / "a" / "run")], capsys)
    assert line == f"cmdp: error: cannot create the run folder {read_only / 'a' / 'run'}: {os.strerror(errno.EROFS)} " \
                   f"({read_only / 'a'})"
    assert list(read_only.iterdir()) == [] and len(close_calls) == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write into a folder whatever its permission bits; "
                           "test_out_on_a_read_only_file_system covers the same handling")
def test_out_in_a_folder_without_write_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        line = fails(["train", *FAST, "--out", str(locked / "run")], capsys)
    finally:
        locked.chmod(0o755)
    assert line == f"cmdp: error: cannot create the run folder {locked / 'run'}: {os.strerror(errno.EACCES)}"


def _another_process_makes(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay a race: just before our mkdir of `folder`, another process (a sibling grid cell) makes it."""
    real_mkdir = os.mkdir

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if Path(str(path)) == folder and not folder.exists():
            real_mkdir(path)
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


def test_a_parent_made_by_another_process_meanwhile_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # two local workers of a benchmark grid start seed0 and seed1 of one cell at once: both see <algo>/ missing
    # and both create it; the one that loses the race must still start (CI failed on this once)
    parent = tmp_path / "ExactChain-v0" / "ppo"
    _another_process_makes(parent, monkeypatch)
    assert main(["train", *FAST, "--out", str(parent / "seed1")]) == 0
    assert RUN_FILES <= {p.name for p in (parent / "seed1").iterdir()}


def test_a_run_folder_made_by_another_process_meanwhile_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        close_calls: list) -> None:
    # the run folder itself stays exclusive: two starts of one run must not write into one folder; what the
    # other start made stays, untouched
    out = tmp_path / "new" / "run"
    _another_process_makes(out, monkeypatch)
    line = fails(["train", *FAST, "--out", str(out)], capsys)
    assert line == f"cmdp: error: cannot create the run folder {out}: {os.strerror(errno.EEXIST)}"
    assert out.is_dir() and list(out.iterdir()) == [] and len(close_calls) == 1


def test_failed_config_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], close_calls: list) -> None:
    # the disk fills up while config.yaml is written: the half-written file and the folders made go again
    real_write_text = Path.write_text

    def write_text(self: Path, data: str, *args: object, **kwargs: object) -> int:
        if self.name == "config.yaml":
            real_write_text(self, data[:10], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "new" / "run"
    line = fails(["train", *FAST, "--out", str(out)], capsys)
    assert line == f"cmdp: error: cannot create the run folder {out}: {os.strerror(errno.ENOSPC)} ({out / 'config.yaml'})"
    assert list(tmp_path.iterdir()) == [] and len(close_calls) == 1
    # an empty folder the user made stays, empty
    out.mkdir(parents=True)
    fails(["train", *FAST, "--out", str(out)], capsys)
    assert out.is_dir() and list(out.iterdir()) == []


# --- 4. damaged checkpoints ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("reliability") / "run"
    assert main(["train", *FAST, "--out", str(run)]) == 0
    assert RUN_FILES <= {p.name for p in run.iterdir()}
    return run


def damaged_copy(finished_run: Path, tmp_path: Path, damage: str) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    checkpoint = run / "checkpoints" / "last.pt"
    data = checkpoint.read_bytes()
    if damage == "missing keys":
        torch.save({"epoch": 1, "agent": {}}, checkpoint)
    else:
        checkpoint.write_bytes({"empty": b"", "truncated": data[:len(data) // 2],
                                "random": os.urandom(len(data))}[damage])
    return run


@pytest.mark.parametrize("command", ["eval", "resume"])
@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "missing keys"])
def test_damaged_checkpoint_is_one_line_without_weights_only_advice(finished_run: Path, tmp_path: Path, damage: str,
                                                                    command: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run = damaged_copy(finished_run, tmp_path, damage)
    before = snapshot(run)
    argv = ["eval", str(run)] if command == "eval" else ["train", "--resume", str(run), "--no-progress"]
    line = fails(argv, capsys)
    checkpoint = run / "checkpoints" / "last.pt"
    if damage == "missing keys":
        assert line.startswith(f"cmdp: error: {checkpoint} is not a complete cmdp checkpoint (missing 'wall_seconds'")
    else:
        assert line.startswith(f"cmdp: error: {checkpoint} is not a readable cmdp checkpoint (truncated or corrupted: ")
    assert "weights_only" not in line and "Weights only" not in line
    assert snapshot(run) == before  # a failed resume writes nothing (no progress rows, no TensorBoard events)


def test_checkpoint_whose_parts_have_the_wrong_type(finished_run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # readable, every key there, but not what a run saves: load_policy caught only KeyError and RuntimeError
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    checkpoint = run / "checkpoints" / "last.pt"
    state = torch.load(checkpoint, weights_only=True)
    for key, value in (("agent", [1, 2]), ("epoch", "last")):
        torch.save({**state, key: value}, checkpoint)
        line = fails(["eval", str(run)], capsys)
        error = "TypeError" if key == "agent" else "ValueError"
        assert line.startswith(f"cmdp: error: {checkpoint} does not match the run's config ({error}: ")


@pytest.mark.parametrize("command", ["eval", "resume"])
def test_a_checkpoint_that_an_edited_config_no_longer_fits_names_the_edits(finished_run: Path, tmp_path: Path,
                                                                           command: str,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # the line named only the checkpoint and torch's first line, "(RuntimeError: Error(s) in loading state_dict for
    # ActorCritic:)", though config.yaml's edit that made the networks another shape was known (config_edits)
    run = unfinished_copy(finished_run, tmp_path)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("actor_hidden:\n- 64\n- 64\n", "actor_hidden:\n- 32\n"))
    before = snapshot(run)
    argv = ["eval", str(run)] if command == "eval" else ["train", "--resume", str(run), "--no-progress"]
    line = fails(argv, capsys)
    assert line.startswith(f"cmdp: error: {run / 'checkpoints' / 'last.pt'} does not match the run's config, which "
                           f"was edited after the checkpoint was trained: actor_hidden (trained [64, 64], now [32]); "
                           f"undo the edits, or train a new run with them (RuntimeError: ")
    assert snapshot(run) == before


@pytest.mark.parametrize("damage", ["not UTF-8", "epoch not a number"])
def test_resume_of_a_damaged_progress_log_is_one_line_and_rewrites_nothing(finished_run: Path, tmp_path: Path,
                                                                           damage: str,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # the resume rewrites progress.csv without the rows after its checkpoint: a damaged log ended in a
    # UnicodeDecodeError or ValueError traceback
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    log = run / "progress.csv"
    rows = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(rows[0] + (b"1,2\x00\xff\n" if damage == "not UTF-8" else b"x1,200\n") + b"".join(rows[2:]))
    before = snapshot(run)
    line = fails(["train", "--resume", str(run), "--no-progress"], capsys)
    # the \xff after the header and "1,2\x00"
    problem = f"is not UTF-8 text (byte {len(rows[0]) + 4}: invalid start byte)" if damage == "not UTF-8" else \
        "is damaged at line 2: epoch 'x1' is not a number"
    assert line == f"cmdp: error: progress log {log} {problem}; restore it from a copy, or train the run again"
    assert snapshot(run) == before


# --- 5. unknown env_kwargs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ["ExactChain-v0", "SafetyPointGoal1-v0"])
def test_unknown_env_kwargs_key_is_refused_before_anything_is_built(env: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # checked when the config is resolved: no trainer (so no environment, no simulator, no subprocess) is built.
    # Safety-Gymnasium used to fail inside its Builder with a raw TypeError; the exact CMDPs' factory refused the
    # key, but only once the trainer was building the environment.
    from cmdp.trainer import Trainer

    built: list[object] = []
    real_init = Trainer.__init__

    def init(self: Trainer, *args: object, **kwargs: object) -> None:
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", init)
    out = tmp_path / "run"
    line = fails(["train", "--env", env, "--total-steps", "400", "--set", "steps_per_epoch=200", "--no-progress",
                  "--set", "env_kwargs={bogus: 1}", "--out", str(out)], capsys)
    assert "env_kwargs" in line and "bogus" in line and env in line
    assert built == [] and not out.exists()


@pytest.mark.parametrize("env, num_envs", [("SafetyPointGoal1-v0", 1), ("SafetyPointGoal1-v0", 2),
                                           ("SafetyPointGoal1Vision-v0", 1)])
@pytest.mark.parametrize("config, refusal", [("{foo: 1}", "Bad key foo"), ("{agent_name: Robot}", "agent not found")])
def test_a_task_configuration_safety_gymnasium_refuses_is_one_line(env: str, num_envs: int, config: str, refusal: str,
                                                                   tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # upstream refuses with a bare AssertionError from inside its task: a traceback (exit status 1), and with
    # --num-envs 2 a RuntimeError carrying the subprocess's traceback
    out = tmp_path / "run"
    line = fails(["train", "--env", env, "--num-envs", str(num_envs), "--total-steps", "400", "--set",
                  "steps_per_epoch=200", "--no-progress", "--set", f"env_kwargs={{config: {config}}}", "--out",
                  str(out)], capsys)
    assert line.startswith(f"cmdp: error: env_kwargs.config: {env} refuses its task configuration ({refusal}); ")
    assert not out.exists()


@pytest.mark.parametrize("env", ["SafetyPointGoal1-v0", "SafetyHopperVelocity-v1", "SafetyPointGoal1Vision-v0"])
def test_a_window_without_a_display_is_one_line_before_anything_is_built(env: str, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # env_kwargs={render_mode: human} on a machine without a display: GLFW aborted the process at the first frame
    # (SIGABRT, exit status 134, an assertion of its C code), leaving a run folder of config.yaml and tb/
    from cmdp.trainer import Trainer

    def init(self: Trainer, *args: object, **kwargs: object) -> None:
        raise AssertionError("a trainer was built: its environment would open a window")

    monkeypatch.setattr(Trainer, "__init__", init)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "run"
    line = fails(["train", "--env", env, "--total-steps", "400", "--set", "steps_per_epoch=200", "--no-progress",
                  "--set", "env_kwargs={render_mode: human}", "--out", str(out)], capsys)
    assert line.startswith("cmdp: error: env_kwargs.render_mode human opens a window, and there is no display here")
    assert "cmdp eval RUN --video" in line and not out.exists()


# --- 6. keys that are not names --------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["config file", "env_kwargs", "suite env_kwargs"])
def test_a_key_yaml_reads_as_a_number_is_one_line(where: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # YAML reads `1: 2` as an int key: the unknown-key message's close-match search ended in difflib's TypeError
    out = tmp_path / "run"
    if where == "suite env_kwargs":
        suite = chain_suite(tmp_path / "s.yaml", "{env_kwargs: {1: 2}}")
        line = fails(["benchmark", str(suite), "--dry-run", "--out", str(out)], capsys)
        assert line.startswith(f"cmdp: error: suite {suite}: cell ExactChain-v0/ppo/seed0: env_kwargs: unknown key "
                               f"'1' for environment 'ExactChain-v0'; known keys: ")
    elif where == "env_kwargs":
        line = fails(["train", *FAST, "--set", "env_kwargs={1: 2}", "--out", str(out)], capsys)
        assert line.startswith("cmdp: error: env_kwargs: unknown key '1' for environment 'ExactChain-v0'")
    else:
        config = tmp_path / "c.yaml"
        config.write_text("1: 2\n")
        line = fails(["train", *FAST, "--config", str(config), "--out", str(out)], capsys)
        # the algorithm by its name, also when the file does not name one (was its config class, 'PPOLagConfig')
        assert line.startswith(f"cmdp: error: {config}: unknown key '1' for algorithm 'ppo_lag'; known keys: algo, ")
    assert not out.exists()


# --- 7. something else where a run's checkpoint belongs ---------------------------------------------------------

@pytest.mark.parametrize("command", ["eval", "resume"])
@pytest.mark.parametrize("blocked", ["checkpoint is a folder", "checkpoints is a file"])
def test_a_checkpoint_that_is_not_a_file_is_one_line_and_rewrites_nothing(finished_run: Path, tmp_path: Path,
                                                                         blocked: str, command: str,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # the resume took the run for one without a checkpoint: it started over, cut progress.csv to its header, trained
    # an epoch and ended in os.replace's IsADirectoryError (or mkdir's FileExistsError) traceback beside a
    # last.pt.tmp; eval said the run had no checkpoint yet
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    folder = run / "checkpoints"
    shutil.rmtree(folder)
    if blocked == "checkpoint is a folder":
        (folder / "last.pt").mkdir(parents=True)
        problem = f"{folder / 'last.pt'} is a folder where a run keeps a file"
    else:
        folder.write_text("")
        problem = f"{folder} is a file where a run keeps a folder"
    before = snapshot(run)
    argv = ["eval", str(run)] if command == "eval" else ["train", "--resume", str(run), "--no-progress"]
    assert fails(argv, capsys) == f"cmdp: error: {problem}; restore it from a copy, or train the run again"
    assert snapshot(run) == before  # progress.csv as it was, and no last.pt.tmp


# --- 8. a progress log that lost rows the checkpoint has --------------------------------------------------------

def unfinished_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the 2-epoch run whose config asks for a third epoch, so that a resume would train and log."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("total_steps: 400\n", "total_steps: 600\n"))
    return run


@pytest.mark.parametrize("damage, problem", [
    ("empty", "is empty"),
    ("missing", "is missing"),
    ("header only", "ends after epoch 0"),
    ("epoch 1 gone", "holds epoch 2 where epoch 1's row belongs"),
    ("no header", "does not start with its header (line 1 begins '1')"),
    ("last line cut", "ends in a cut line (epoch 2's row has no line end)"),
    ("row cut short", "cuts epoch 2's row short (3 of its "),
])
def test_resume_of_a_progress_log_that_lost_rows_is_one_line_and_rewrites_nothing(
        finished_run: Path, tmp_path: Path, damage: str, problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    # the resume kept what was left and trained on: progress.csv then lacked the checkpoint's epochs for good (an
    # empty or missing log: every epoch before the resume), and `cmdp report` drew curves from the rest
    run = unfinished_copy(finished_run, tmp_path)
    log = run / "progress.csv"
    header, first, second = log.read_bytes().splitlines(keepends=True)
    cut = {"empty": b"", "header only": header, "epoch 1 gone": header + second, "no header": first + second,
           "last line cut": header + first + second[:-12], "row cut short": header + first + b",".join(
               second.split(b",")[:3]) + b"\r\n"}
    if damage == "missing":
        log.unlink()
    else:
        log.write_bytes(cut[damage])
    before = snapshot(run)
    line = fails(["train", "--resume", str(run), "--no-progress"], capsys)
    assert line.startswith(f"cmdp: error: progress log {log} {problem}")
    assert line.endswith(", but the checkpoint is of epoch 2; restore it from a copy, or train the run again")
    assert snapshot(run) == before


def test_resume_of_a_finished_run_is_one_line_saying_how_to_train_it_longer(finished_run: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # it printed `resuming RUN` and the end-of-run summary as if it had trained again (exit status 0), wrote a new
    # TensorBoard event file and rewrote progress.csv and summary.json
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    line = fails(["train", "--resume", str(run), "--no-progress"], capsys)
    assert line == (f"cmdp: error: {run} has finished: its checkpoint is of epoch 2, and its total_steps (400) make "
                    f"2 epochs; to train it longer, raise total_steps in {run / 'config.yaml'} and resume it")
    assert snapshot(run) == before
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("total_steps: 400\n", "total_steps: 600\n"))  # as the line says
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert [row["epoch"] for row in read_progress(run / "progress.csv")] == ["1", "2", "3"]


@pytest.mark.parametrize("left", ["summary.json", "progress log"])
def test_resume_of_a_run_that_lost_its_checkpoint_is_one_line_and_rewrites_nothing(
        finished_run: Path, tmp_path: Path, left: str, capsys: pytest.CaptureFixture[str]) -> None:
    # taken for a run interrupted before its first checkpoint: the resume started it over, cut the progress log's
    # epochs and trained them again (exit status 0)
    run = unfinished_copy(finished_run, tmp_path)
    checkpoint = run / "checkpoints" / "last.pt"
    checkpoint.unlink()
    if left == "progress log":
        (run / "summary.json").unlink()
        lost = "the progress log holds 2 epochs (checkpoint_every 1)"
    else:
        lost = "summary.json says the run trained to its end"
    before = snapshot(run)
    line = fails(["train", "--resume", str(run), "--no-progress"], capsys)
    assert line == (f"cmdp: error: {checkpoint} is missing, but {lost}, so the run had saved it (a resume would "
                    f"start over); restore it from a copy, or train the run again")
    assert snapshot(run) == before


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_the_start(finished_run: Path, tmp_path: Path) -> None:
    # killed after epoch 1's row, before its checkpoint: nothing says a checkpoint was lost, so the run starts over
    run = unfinished_copy(finished_run, tmp_path)
    (run / "checkpoints" / "last.pt").unlink()
    (run / "summary.json").unlink()
    log = run / "progress.csv"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:2]))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert [row["epoch"] for row in read_progress(log)] == ["1", "2", "3"]


def test_a_row_cut_after_the_checkpoint_is_dropped_by_the_resume(finished_run: Path, tmp_path: Path) -> None:
    # killed while appending epoch 3's row, before epoch 3's checkpoint: the resume drops the cut row and goes on
    run = unfinished_copy(finished_run, tmp_path)
    log = run / "progress.csv"
    whole = log.read_bytes()
    log.write_bytes(whole + b"3,60")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    rows = log.read_bytes().splitlines(keepends=True)
    assert b"".join(rows[:3]) == whole and rows[3].startswith(b"3,600,") and len(rows) == 4
    assert not (run / "progress.csv.tmp").exists()


@pytest.mark.parametrize("damage", ["checkpoint truncated", "progress log emptied"])
def test_a_refused_resume_announces_nothing(finished_run: Path, tmp_path: Path, damage: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # `resuming RUN` was printed on stdout (and the note on keys an older config.yaml lacks on stderr) before the
    # checkpoint was read and the progress log checked: a refused resume read as one that had begun
    run = unfinished_copy(finished_run, tmp_path)
    config = run / "config.yaml"
    config.write_text("".join(line for line in config.read_text().splitlines(keepends=True)
                              if not line.startswith("cost_window:")))  # an older version's: a note on resume
    checkpoint, log = run / "checkpoints" / "last.pt", run / "progress.csv"
    whole = {path: path.read_bytes() for path in (checkpoint, log)}
    if damage == "checkpoint truncated":
        checkpoint.write_bytes(whole[checkpoint][:len(whole[checkpoint]) // 2])
    else:
        log.write_bytes(b"")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    one_error_line(err)
    for path, data in whole.items():  # repaired: the same resume announces itself, once it has begun
        path.write_bytes(data)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"resuming {run}\n") and "does not name cost_window (now 0)" in err


def test_a_resume_of_a_config_edited_since_its_checkpoint_names_the_edits(finished_run: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # an edited learning rate changed how the rest of the run trained without a word, so the curves joined two
    # configs; total_steps (how a run is continued) is no such edit
    run = unfinished_copy(finished_run, tmp_path)
    config = run / "config.yaml"
    assert "actor_lr: 0.0003\n" in config.read_text()
    config.write_text(config.read_text().replace("actor_lr: 0.0003\n", "actor_lr: 0.001\n"))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: {config} was edited after its checkpoint was trained: actor_lr (trained 0.0003, now "
                     f"0.001); the resumed run follows config.yaml"]
    assert main(["train", "--resume", str(unfinished_copy(finished_run, tmp_path / "plain")), "--no-progress"]) == 0
    assert "edited" not in capsys.readouterr().out


# --- 9. a run folder's config.yaml that is not a whole run config -----------------------------------------------

@pytest.mark.parametrize("command", ["eval", "resume"])
def test_an_emptied_run_config_is_one_line_naming_it(finished_run: Path, tmp_path: Path, command: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # opened as today's defaults (ppo_lag on SafetyPointGoal1-v0): the resume printed a note listing every key of
    # the config, then both failed on the checkpoint's weights, naming the checkpoint and not the config
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    config = run / "config.yaml"
    argv = ["eval", str(run)] if command == "eval" else ["train", "--resume", str(run), "--no-progress"]
    config.write_text("")
    before = snapshot(run)
    assert fails(argv, capsys) == f"cmdp: error: {config} is not a whole run config (it does not name algo, env, " \
                                  f"seed, total_steps, steps_per_epoch); restore it from a copy, or train the run again"
    assert snapshot(run) == before
    # a key no solver has: the message names the run's config.yaml, not "config"
    config.write_text(finished_run.joinpath("config.yaml").read_text() + "stray: 1\n")
    assert fails(argv, capsys).startswith(f"cmdp: error: {config}: unknown key 'stray' for algorithm 'ppo_lag'")


# --- 10. text-demo's device and algorithms ----------------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--device", "gpu"], "--device must be cpu, cuda or cuda:N, got 'gpu'"),
    (["--device", "cuda:x"], "--device must be cpu, cuda or cuda:N, got 'cuda:x'"),
    pytest.param(["--device", "cuda"], "--device is 'cuda', but CUDA is not available on this machine; use cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    (["--algos", "ppo,ppo_lag,ppo"], "--algos: 'ppo' is listed twice"),
])
def test_text_demo_refuses_a_bad_device_or_an_algorithm_listed_twice_before_building(
        flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a bad device ended in torch.device's RuntimeError traceback once the data and tokenizer were built (CUDA without
    # a GPU: once the SFT model was); an algorithm listed twice had two workers train one run folder at once, one
    # failing, and the command still exited 0
    out = tmp_path / "demo"
    assert fails(["text-demo", "--quick", "--out", str(out), *flags], capsys) == f"cmdp: error: {message}"
    assert not out.exists()


def test_text_demo_without_matplotlib_is_refused_before_it_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # it had built the default and trained every run, then stopped at its figure
    for module in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, module, None)  # `import matplotlib` raises ImportError
    out = tmp_path / "demo"
    assert fails(["text-demo", "--quick", "--out", str(out)], capsys) == (
        "cmdp: error: cmdp text-demo needs matplotlib for its figures: pip install 'cmdp-lab[report]' "
        "(or use --no-plots)")
    assert not out.exists()


def test_every_device_check_is_one_function_with_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # text-demo's --device check repeated TrainConfig's name check and the CUDA check of the trainer and of the text
    # side's resolve_device, each in its own words ("device is 'cuda' but no GPU is available; use device=cpu",
    # "device 'cuda': CUDA is not available on this machine (use auto or cpu)")
    from cmdp.envs.text.score_model import resolve_device
    from cmdp.trainer import Trainer, resolve_config

    demo = fails(["text-demo", "--quick", "--out", str(tmp_path / "d"), "--device", "cuda:x"], capsys)
    train = fails(["train", *FAST, "--out", str(tmp_path / "r"), "--set", "device=cuda:x"], capsys)
    assert demo == train.replace("device", "--device")
    assert demo == "cmdp: error: --device must be cpu, cuda or cuda:N, got 'cuda:x'"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA, whichever runs this
    message = "is 'cuda', but CUDA is not available on this machine; use cpu"
    assert fails(["text-demo", "--quick", "--out", str(tmp_path / "d"), "--device", "cuda"], capsys) == \
        f"cmdp: error: --device {message}"
    cfg, _ = resolve_config({"env": "ExactChain-v0", "device": "cuda"})
    with pytest.raises(ConfigError) as trainer:
        Trainer(cfg)
    with pytest.raises(ConfigError) as text_side:
        resolve_device("cuda")
    assert str(trainer.value) == str(text_side.value) == f"device {message}"
    assert not (tmp_path / "d").exists() and not (tmp_path / "r").exists()


# --- 11. an environment seed out of range -----------------------------------------------------------------------

@pytest.mark.parametrize("env, algo", [("ExactChain-v0", "ppo_lag"), ("QuadraticBandit-v0", "sac_lag")])
def test_a_negative_env_kwargs_seed_is_one_line_before_anything_is_built(env: str, algo: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # numpy's default_rng refused it once the environment was being built: a ValueError traceback
    out = tmp_path / "run"
    line = fails(["train", "--env", env, "--algo", algo, "--total-steps", "400", "--set", "steps_per_epoch=200",
                  "--no-progress", "--set", "env_kwargs={seed: -1}", "--out", str(out)], capsys)
    assert line == "cmdp: error: env_kwargs.seed must be an integer in [0, 4294967295] (2**32 - 1), got -1"
    assert not out.exists()


# --- 12. plugins that are not names -----------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["--set", "suite"])
def test_a_plugin_entry_that_is_not_a_name_is_one_line(where: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # `plugins: [5]` ended in an AttributeError traceback (int has no endswith)
    out = tmp_path / "out"
    if where == "suite":
        suite = chain_suite(tmp_path / "s.yaml", "{plugins: [5]}")
        argv = ["benchmark", str(suite), "--dry-run", "--out", str(out)]
    else:
        argv = ["train", *FAST, "--set", "plugins=[5]", "--out", str(out)]
    named_in = f"suite {tmp_path / 's.yaml'}: config: " if where == "suite" else ""  # the file that names it
    assert fails(argv, capsys) == f"cmdp: error: {named_in}plugins: each must be a module name or a .py file, got 5"
    assert not out.exists()


# --- 13. --resume with a flag it cannot honour ------------------------------------------------------------------

def test_resume_with_a_preset_is_refused(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the preset was dropped without a word: the run resumed with its saved config, as if none had been given
    run = unfinished_copy(finished_run, tmp_path)
    before = snapshot(run)
    line = fails(["train", "--resume", str(run), "--preset", "omnisafe", "--no-progress"], capsys)
    assert line == "cmdp: error: --resume continues a run with its saved config; drop --preset"
    assert snapshot(run) == before
    # the flag a user reaches for to train a run longer: the line says how that is done
    line = fails(["train", "--resume", str(run), "--total-steps", "800", "--no-progress"], capsys)
    assert line == (f"cmdp: error: --resume continues a run with its saved config; drop --total-steps (to train it "
                    f"longer, raise total_steps in {run / 'config.yaml'})")
    assert snapshot(run) == before


@pytest.mark.parametrize("name", ["summary.json", "tb", "progress.csv"])
def test_a_run_file_of_the_wrong_kind_stops_the_resume_before_it_trains(finished_run: Path, tmp_path: Path,
                                                                        name: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # summary.json as a folder: the resume trained every epoch, then ended in an IsADirectoryError traceback at the
    # summary; tb as a file: a traceback from TensorBoard's writer after the progress log was rewritten
    run = unfinished_copy(finished_run, tmp_path)
    where = run / name
    if where.is_dir():
        shutil.rmtree(where)
        where.write_text("")
        problem = "a file where a run keeps a folder"
    else:
        where.unlink()
        where.mkdir()
        problem = "a folder where a run keeps a file"
    before = snapshot(run)
    line = fails(["train", "--resume", str(run), "--no-progress"], capsys)
    assert line == f"cmdp: error: {where} is {problem}; restore it from a copy, or train the run again"
    assert snapshot(run) == before


# --- 14. the python -m tools' usage errors ----------------------------------------------------------------------

@pytest.mark.parametrize("tool", ["multiplier_replay", "update_speed", "fisher_speed"])
def test_a_module_tools_usage_error_is_one_line(tool: str, capsys: pytest.CaptureFixture[str]) -> None:
    # argparse printed the tool's whole usage (up to seven lines) above its error line
    import importlib

    main_of_tool = importlib.import_module(f"cmdp.benchmarks.{tool}").main
    with pytest.raises(SystemExit) as info:
        main_of_tool(["--bogus", *(["run"] if tool == "multiplier_replay" else [])])  # the replay needs a run folder
    assert info.value.code == 2
    prog = f"python -m cmdp.benchmarks.{tool}"
    assert capsys.readouterr().err == f"{prog}: error: unrecognized arguments: --bogus (`{prog} --help` lists the " \
                                      f"options)\n"
