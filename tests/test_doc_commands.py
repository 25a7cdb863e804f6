"""Every command the docs show still parses, and the runs they describe still resolve.

The README, docs/*.md, benchmarks/README.md, the suite files and the docstrings of the plugin examples
(docs/examples/*.py) quote `cmdp` commands and `python -m` benchmark commands in code blocks (fenced or indented)
and inline code. A renamed flag, a removed `--set` key or a misspelt solver there sends a
reader to an error. Each quoted `cmdp` command must parse with the CLI's own parser and pass the checks `cmdp eval`
and `cmdp train --resume` make of their flags before they read a run folder; a `cmdp train` command must
resolve to a config (`resolve_config`: the algorithm, the environment and every `--set` key and value, with the
`--config` file when the repository has it); a suite or plugin file it names must exist. Each quoted `python -m`
command must parse with its module's parser (its `main` stopped right after parsing).
Placeholders the text defines in prose (A, S, MODE, RUN_DIR, ...) stand for a value: a number where the flag takes
one, anything elsewhere, and a `--set` key whose value is a placeholder is checked for its name only.
"""
from __future__ import annotations

import argparse
import importlib
import re
import shlex
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from cmdp.cli import _parser, check_eval_flags, check_resume_flags
from cmdp.config import ConfigError, TrainConfig, parse_set
from cmdp.registry import get_algorithm
from cmdp.resolve import resolve_config

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md")),
           *sorted((ROOT / "benchmarks" / "suites").glob("*.yaml")),
           *sorted((ROOT / "docs" / "examples").glob("*.py"))]  # the plugin examples' docstrings
SUBCOMMANDS = ("train", "eval", "list", "benchmark", "report", "demo", "text-demo", "train-score-model", "arena")
COMMAND = re.compile(r"(?:\.venv/bin/)?cmdp (?:" + "|".join(SUBCOMMANDS) + r")\b")
#: `python -m` of a benchmark module or of the text default's builder
MODULE_COMMAND = re.compile(r"(?:\.venv/bin/)?python -m ((?:cmdp\.)?benchmarks\.\w+|cmdp\.envs\.text\.make_default)\b")
#: a word that stands for a value the prose names (A, S, MODE, RUN_DIR)
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: flags whose value is a number: a placeholder there becomes 1
NUMBER_FLAGS = {"--total-steps", "--seed", "--num-envs", "--episodes", "--seeds", "--workers", "--video-episodes",
                "--epochs", "--batch-size", "--max-length", "--max-new-tokens", "--num-prompts", "--lr",
                "--eval-fraction", "--steps", "--cores", "--last", "--repeats"}
#: what `--env text` refuses once every key has resolved: the model folders the reader builds or brings
MODELS_TO_GIVE = re.compile(r"^env_kwargs\.\w+( is required for --env text|: \S+ does not exist$)")
#: what argparse says of prose that names a command or a flag without what it takes (`cmdp eval`, `--config`)
ONLY_NAMED = ("the following arguments are required", "expected one argument")


def quoted_commands(text: str, pattern: re.Pattern[str] = COMMAND) -> list[tuple[str, bool]]:
    """The commands `pattern` starts (`cmdp` ones by default) in a Markdown or YAML text, each with whether it is
    meant to run as written: the lines of bash blocks (and of YAML comments) that run one, with backslash
    continuations joined and `&&` chains split (True); and the inline code spans that start with one (False: prose
    may name a command without the arguments it requires)."""
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S)
             for line in block.replace("\\\n", " ").splitlines()]
    lines += [line.strip() for line in re.findall(r"^#(.*)$", text, re.M) if pattern.match(line.strip())]
    # indented code outside the fenced blocks: Markdown's four spaces, a docstring's literal block
    unfenced = re.sub(r"```.*?```", "", text, flags=re.S).replace("\\\n", " ")
    lines += [line.strip() for line in re.findall(r"^ {4,}(\S.*)$", unfenced, re.M) if pattern.match(line.strip())]
    commands = []
    for line in lines:
        found = pattern.search(line)
        if found:
            parts = [part.strip() for part in line[found.start():].split("&&")]
            commands += [(part, True) for part in parts if pattern.match(part)]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    commands += [(span, False) for span in re.findall(r"`([^`]+)`", prose) if pattern.match(span)]
    return [(" ".join(command.split()), runnable) for command, runnable in commands]


def checkable(command: str) -> bool:
    """False for a synopsis (`[--out DIR]`, `A | B`) or an elided command (`...`): they are not meant to run. A
    comment after the command (`# RUN/videos/eval-<time>.mp4`) may name anything."""
    before_comment = re.split(r"\s#", command, maxsplit=1)[0]
    return not any(mark in before_comment for mark in ("[", "|", "...", "<"))


CASES = [(path, command, runnable) for path in SOURCES for command, runnable in quoted_commands(path.read_text())]
MODULE_CASES = [(path, command, runnable) for path in SOURCES
                for command, runnable in quoted_commands(path.read_text(), MODULE_COMMAND)]


def test_the_docs_quote_commands_of_every_kind() -> None:
    """The extraction finds what it should: a reader's commands of each kind (else this test checks nothing)."""
    kinds = {command.split()[1] for _, command, _ in CASES}
    assert {"train", "eval", "benchmark", "report", "demo", "text-demo", "arena", "list"} <= kinds
    assert sum(checkable(command) for _, command, _ in CASES) > 60
    # a command whose comment names a pattern (README: `cmdp eval runs/my-run --video  # ...eval-<time>.mp4`) is
    # still checked
    assert any(checkable(command) and "<" in command for _, command, _ in CASES)
    modules = {MODULE_COMMAND.match(command).group(1) for _, command, _ in MODULE_CASES}
    assert {"benchmarks.omnisafe_side_by_side", "cmdp.benchmarks.update_speed",
            "cmdp.envs.text.make_default"} <= modules


def _tokens(command: str, skip: int = 1) -> list[str]:
    """The command's arguments after its first `skip` words (`cmdp`; `python -m module`), comments dropped, and
    each placeholder made a number where the flag before it takes numbers (`--cores C C`)."""
    out, flag = [], None
    for word in shlex.split(command, comments=True)[skip:]:
        flag = word if word.startswith("--") else flag
        out.append("1" if PLACEHOLDER.match(word) and flag in NUMBER_FLAGS else word)
    return out


@pytest.mark.parametrize("path, command, runnable", CASES,
                         ids=[f"{p.relative_to(ROOT)}:{c[:60]}" for p, c, _ in CASES])
def test_a_quoted_command_parses_and_resolves(path: Path, command: str, runnable: bool,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    if not checkable(command):
        return
    monkeypatch.chdir(ROOT)  # the docs' paths are relative to the repository
    argv = _tokens(command)
    try:
        args = _parser().parse_args(argv)
    except SystemExit:
        err = capsys.readouterr().err
        if not runnable and any(what in err for what in ONLY_NAMED):
            return  # prose naming a command or a flag (`cmdp eval`, `cmdp train --config`), not one to run
        pytest.fail(f"{path.relative_to(ROOT)}: `{command}` does not parse (python -m cmdp.cli {' '.join(argv)})")
    if args.command == "benchmark" and args.suite and not PLACEHOLDER.match(args.suite):
        assert (ROOT / args.suite).is_file(), f"{path.relative_to(ROOT)}: `{command}`: no suite {args.suite}"
    for plugin in getattr(args, "plugin", []):
        if plugin.startswith(("docs/", "benchmarks/")):
            assert (ROOT / plugin).is_file(), f"{path.relative_to(ROOT)}: `{command}`: no plugin {plugin}"
    try:  # the flags cmdp itself refuses before it reads a run folder
        if args.command == "eval":
            check_eval_flags(args)
        if args.command == "train" and args.resume:
            check_resume_flags(args)
    except ConfigError as error:
        pytest.fail(f"{path.relative_to(ROOT)}: `{command}` is refused: {error}")
    if args.command == "train" and not args.resume:
        _resolves(path, command, args)


@pytest.mark.parametrize("command", ["cmdp eval RUN --video --video-episodes 3 --episodes 2",
                                     "cmdp eval RUN --num-envs 4 --episodes 2",
                                     "cmdp train --resume RUN --total-steps 2000000"])
def test_a_quoted_command_that_cmdp_refuses_fails_the_check(command: str, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Commands that parse but that cmdp refuses before it reads the run folder fail the check above."""
    with pytest.raises(pytest.fail.Exception, match="is refused: "):
        test_a_quoted_command_parses_and_resolves(ROOT / "README.md", command, True, monkeypatch, capsys)


@pytest.mark.parametrize("command", [
    # sac_lag's warm-up of 10,000 steps outlasts the budget: the run would never take a gradient step
    "cmdp train --algo sac_lag --env QuadraticBandit-v0 --total-steps 4000",
    "cmdp train --algo ddpg --env QuadraticBandit-v0 --set batch_size=512 --set replay_size=256",
])
def test_a_quoted_train_command_whose_config_cmdp_refuses_fails_the_check(command: str,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A training command that parses but whose config cmdp refuses before anything runs fails the check above."""
    with pytest.raises(pytest.fail.Exception, match="does not resolve: "):
        test_a_quoted_command_parses_and_resolves(ROOT / "docs/off-policy.md", command, True, monkeypatch, capsys)


def _resolves(path: Path, command: str, args: argparse.Namespace) -> None:
    where = f"{path.relative_to(ROOT)}: `{command}`"
    overrides = {flag: getattr(args, flag) for flag in ("algo", "env", "total_steps", "seed", "num_envs")
                 if getattr(args, flag) is not None}
    if any(isinstance(value, str) and PLACEHOLDER.match(value) for value in overrides.values()):
        return  # --algo A: any solver; what A may be is the prose's
    if args.plugin:
        overrides["plugins"] = list(args.plugin)
    settings = parse_set(args.set)
    held = {key for key, value in settings.items() if isinstance(value, str) and PLACEHOLDER.match(value)}
    if held:  # --set key=MODE: the key must exist; its values are the prose's
        names = {f.name for f in fields(get_algorithm(overrides.get("algo", TrainConfig.algo)).Config)}
        assert held <= names, f"{where}: no config key {sorted(held - names)}"
    overrides.update({key: value for key, value in settings.items() if key not in held})
    try:
        # a config file the prose only names (my.yaml) is left out: the flags and --set keys are still checked
        resolve_config(overrides, args.config if args.config and Path(args.config).is_file() else None, args.preset)
    except ConfigError as error:
        if not MODELS_TO_GIVE.match(str(error)):
            pytest.fail(f"{where} does not resolve: {error}")


class _Parsed(Exception):
    """Raised by the patched `parse_args` once a module's command line has parsed: its `main` stops there."""


@pytest.mark.parametrize("path, command, runnable", MODULE_CASES,
                         ids=[f"{p.relative_to(ROOT)}:{c[:70]}" for p, c, _ in MODULE_CASES])
def test_a_quoted_module_command_parses(path: Path, command: str, runnable: bool, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    if not checkable(command):
        return
    module = MODULE_COMMAND.match(command).group(1)
    argv = _tokens(command[command.index(module):], skip=1)
    parse = argparse.ArgumentParser.parse_args

    def parse_only(self: argparse.ArgumentParser, args: list[str] | None = None, namespace: object = None) -> None:
        raise _Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_only)
    monkeypatch.setattr(sys, "argv", [module, *argv])  # text_throughput's main reads sys.argv
    try:
        importlib.import_module(module).main()
    except _Parsed:
        return
    except SystemExit:
        err = capsys.readouterr().err
        if not runnable and any(what in err for what in ONLY_NAMED):
            return  # prose naming the command or a flag without what it takes
        pytest.fail(f"{path.relative_to(ROOT)}: `{command}` does not parse (python -m {module} {' '.join(argv)})")
    pytest.fail(f"{module}.main() returned without parsing its command line")
