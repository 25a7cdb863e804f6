"""Registries, plugins and entry points: how solvers and environments get in, how failures are reported, and
why a run folder's plugin code is not run without the user's consent.

Plugin modules stay in sys.modules (and their solvers registered) for the rest of the process, so every test
writes its plugins to its own temporary folder and registers names no other test uses.
"""
import importlib.metadata
import os
import shlex
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from cmdp.cli import main
from cmdp.config import load_yaml
from cmdp.registry import algorithms, get_algorithm
from cmdp.trainer import resolve_config
from run_helpers import interrupted_run, one_error_line

FAST = ["--env", "ExactChain-v0", "--total-steps", "400", "--set", "steps_per_epoch=200", "--no-progress"]
BUILTIN_ENV_MODULES = {"safety-gymnasium": "cmdp.envs.safety_gym", "exact": "cmdp.envs.exact",
                       "quadratic-bandit": "cmdp.envs.quadratic_bandit", "text": "cmdp.envs.text_registration"}


def solver_plugin(name: str, doc: str = "A copy of ppo_lag from a plugin file.") -> str:
    return textwrap.dedent(f'''\
        from cmdp.algorithms.ppo_lag import PPOLag
        from cmdp.registry import register_algorithm


        @register_algorithm("{name}")
        class Solver(PPOLag):
            """{doc}"""
        ''')


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def listed_algorithms(stdout: str) -> list[str]:
    """The algorithm names of `cmdp list` output (the lines between 'algorithms:' and 'environments:')."""
    lines = stdout.splitlines()
    start, end = lines.index("algorithms:"), lines.index("environments:")
    return [line.split()[0] for line in lines[start + 1:end]]


def python_env(*paths: Path) -> dict[str, str]:
    """os.environ with PYTHONPATH holding only `paths` (so nothing of the caller's sys.path leaks in)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    return env


def run_python(args: list[str], cwd: Path, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=python_env(*paths), capture_output=True, text=True,
                          timeout=600)


# --- plugins that fail --------------------------------------------------------------------------------------------

def test_plugin_with_a_syntax_error_names_its_file_and_line(tmp_path, capsys):
    bad = write(tmp_path / "bad.py", "x = 1\n\ndef broken(:\n    pass\n")
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(bad), *FAST, "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad) in line and "line 3" in line and "SyntaxError" in line, line
    assert not out.exists()  # nothing written for a run that never started

    assert main(["list", "--plugin", str(bad)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad) in line and "line 3" in line, line


def test_plugin_importing_a_missing_module_names_its_file_and_line(tmp_path, capsys):
    bad = write(tmp_path / "needs_dep.py", "import os\n\nimport cmdp_no_such_dependency_xyz\n")
    assert main(["train", "--plugin", str(bad), *FAST, "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad) in line and "line 3" in line and "cmdp_no_such_dependency_xyz" in line, line
    assert main(["list", "--plugin", str(bad)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(bad) in line and "line 3" in line, line


def test_plugin_path_that_is_a_folder_says_so(tmp_path, capsys):
    # a folder named like a plugin file was reported as "file not found", though it is there
    folder = tmp_path / "solvers.py"
    folder.mkdir()
    assert main(["list", "--plugin", str(folder)]) == 2
    assert one_error_line(capsys.readouterr().err) == \
        f"cmdp: error: plugins: {folder} is a directory; give a Python file (or a module name)"


def test_missing_module_plugin(capsys):
    name = f"cmdp_missing_plugin_{uuid.uuid4().hex[:8]}"
    assert main(["list", "--plugin", name]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot import module '{name}'" in line, line


def test_module_plugin_whose_import_fails_names_its_file_and_line(tmp_path, monkeypatch, capsys):
    """A module plugin (not a .py path) that imports a missing module whose name is a prefix of its own
    (`mysolver_v2` importing `mysolver`): the plugin's own import line is blamed, not "cannot import the plugin"."""
    base = f"labsolver_{uuid.uuid4().hex[:8]}"
    plugin = write(tmp_path / f"{base}_v2.py", f"import math\nimport {base}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "--plugin", f"{base}_v2"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert str(plugin) in line and "line 2" in line and f"No module named '{base}'" in line, line
    assert "cannot import module" not in line, line


def test_plugin_reusing_a_builtin_name_is_blamed_and_leaves_the_registry_unchanged(tmp_path, capsys):
    # the plugin imports no built-in solver (those register themselves on import), only their base: the order of
    # loading alone decides who is blamed, so a fresh process, where nothing is loaded yet, shows it
    dup = write(tmp_path / "dup.py", textwrap.dedent('''\
        from cmdp.registry import register_algorithm
        from cmdp.solver import PolicyGradientSolver


        @register_algorithm("plugin_before_the_clash")
        class Fine(PolicyGradientSolver):
            """Registered before the clash: must not survive it."""


        @register_algorithm("ppo_lag")
        class Clash(PolicyGradientSolver):
            """Takes a built-in's name."""
        '''))
    res = run_python(["-m", "cmdp", "train", "--plugin", str(dup), "--algo", "ppo_lag", *FAST,
                      "--out", str(tmp_path / "run")], tmp_path)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error" in line or "warning" in line]
    # the plugin (file and line of the clashing registration) is blamed, not the built-in's file
    assert len(errors) == 1 and errors[0].startswith(f"cmdp: error: plugin {dup} line 10: "), res.stderr
    assert "'ppo_lag' is already registered" in errors[0], res.stderr
    assert not (tmp_path / "run").exists()

    builtin = get_algorithm("ppo_lag")
    assert main(["list", "--plugin", str(dup)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"cmdp: error: plugin {dup} line 10: "), line
    # all or nothing: the built-in stays, the plugin's earlier registration is gone
    assert get_algorithm("ppo_lag") is builtin and builtin.__module__ == "cmdp.algorithms.ppo_lag"
    assert "plugin_before_the_clash" not in algorithms()
    assert main(["list", "--plugin", str(dup)]) == 2  # not cached as loaded: it fails again the same way
    assert "line 10" in one_error_line(capsys.readouterr().err)


def test_failed_module_plugin_leaves_the_registry_unchanged(tmp_path, monkeypatch, capsys):
    name = f"halfway_plugin_{uuid.uuid4().hex[:8]}"
    write(tmp_path / f"{name}.py", solver_plugin("module_plugin_halfway") + "\nraise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "--plugin", name]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "RuntimeError: boom" in line and "line 9" in line, line
    assert "module_plugin_halfway" not in algorithms()


NOT_SOLVERS = {
    # the class a user writes when they forget the base: the trainer had failed on its missing Config, a traceback
    "no_base": ("class Wrong:\n    \"\"\"No Solver base.\"\"\"\n",
                "Wrong is not a solver class: subclass cmdp.solver.Solver"),
    "config_not_a_dataclass": ("class Wrong(PolicyGradientSolver):\n    class Config:\n        pass\n",
                               "Wrong.Config must be a dataclass subclassing cmdp.config.TrainConfig"),
    # a Solver without the method its schedule calls: the run had started and ended in NotImplementedError
    "no_update": ("class Wrong(Solver):\n    \"\"\"Forgot update().\"\"\"\n",
                  "Wrong does not implement update(), which its schedule (on-policy) calls"),
    "no_update_step": ("class Wrong(Solver):\n    schedule = Schedule.OFF_POLICY\n",
                       "Wrong does not implement update_step() and end_epoch(), which its schedule (off-policy) calls"),
}


@pytest.mark.parametrize("case", sorted(NOT_SOLVERS))
def test_a_class_that_is_not_a_solver_is_refused_where_it_registers(case, tmp_path, capsys):
    body, says = NOT_SOLVERS[case]
    name = f"not_a_solver_{case}"
    plugin = write(tmp_path / f"{case}.py", textwrap.dedent(f'''\
        from cmdp.family import Schedule
        from cmdp.registry import register_algorithm
        from cmdp.solver import PolicyGradientSolver, Solver


        @register_algorithm("{name}")
        ''') + body)
    assert main(["list", "--plugin", str(plugin)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"cmdp: error: plugin {plugin} line 6: RegistrationError: algorithm '{name}': {says}"), line
    assert name not in algorithms()
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(plugin), "--algo", name, *FAST, "--out", str(out)]) == 2
    assert says in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_plugin_that_is_neither_a_python_file_nor_a_module_name_says_so(tmp_path, monkeypatch, capsys):
    # a suite given as the plugin had ended in "TypeError: the 'package' argument is required to perform a relative
    # import for '../suite.yaml'"
    write(tmp_path / "suite.yaml", "name: x\n")
    monkeypatch.chdir(tmp_path / "..")
    for given in (f"{tmp_path.name}/suite.yaml", str(tmp_path / "suite.yaml")):
        assert main(["list", "--plugin", given]) == 2
        assert one_error_line(capsys.readouterr().err) == \
            f"cmdp: error: plugins: {given} is neither a Python file (.py) nor a module name (my_pkg.my_solver)"


def test_a_module_plugin_that_is_a_file_here_says_how_to_load_it(tmp_path, monkeypatch, capsys):
    # `--plugin my_solver` beside my_solver.py: the `cmdp` script does not import from the current folder, and the
    # message had only said "No module named 'my_solver'"
    name = f"here_solver_{uuid.uuid4().hex[:8]}"
    write(tmp_path / f"{name}.py", solver_plugin(f"{name}_algo"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    assert main(["list", "--plugin", name]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"cmdp: error: plugins: cannot import module '{name}': No module named '{name}' ({name}.py here is not on "
        f"Python's module path: give the file, {name}.py, or put its folder on PYTHONPATH)")
    assert main(["list", "--plugin", f"{name}.py"]) == 0
    assert f"{name}_algo" in listed_algorithms(capsys.readouterr().out)


def test_the_eval_a_plugin_run_suggests_runs(tmp_path, capsys):
    # the summary's "next  cmdp eval RUN" had left out the plugin, and cmdp eval refused that command (a run's plugin
    # code is imported only when named again or trusted)
    plugin = write(tmp_path / "suggested.py", solver_plugin("suggested_eval_plugin"))
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(plugin), "--algo", "suggested_eval_plugin", *FAST, "--out", str(out)]) == 0
    suggested = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("next "))
    command = suggested.split(None, 1)[1].split("   |   ")[0]
    assert command == f"cmdp eval {out} --plugin {plugin}"
    assert main([*shlex.split(command)[1:], "--episodes", "2"]) == 0, capsys.readouterr().err


def test_the_resume_an_interrupted_plugin_run_suggests_runs(tmp_path, capsys):
    # "interrupted; continue with: cmdp train --resume RUN" had left the plugin out, and the resume refused it
    plugin = write(tmp_path / "interrupted.py", textwrap.dedent('''\
        from cmdp.algorithms.ppo_lag import PPOLag
        from cmdp.registry import register_algorithm


        @register_algorithm("interrupted_plugin")
        class Interrupted(PPOLag):
            """Ctrl-C in its second epoch, once."""

            updates = 0
            pressed = False

            def update(self, *args):
                self.updates += 1
                if self.updates == 2 and not type(self).pressed:
                    type(self).pressed = True
                    raise KeyboardInterrupt
                return super().update(*args)
        '''))
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(plugin), "--algo", "interrupted_plugin", *FAST, "--out", str(out)]) == 130
    suggested = capsys.readouterr().err.strip().splitlines()[-1]
    assert suggested == f"interrupted; continue with: cmdp train --resume {out} --plugin {plugin}"
    assert main([*shlex.split(suggested.split(": ", 1)[1])[1:], "--no-progress"]) == 0, capsys.readouterr().err
    assert (out / "summary.json").is_file()


def test_a_plugin_config_that_refuses_a_value_with_a_value_error_is_one_line(tmp_path, capsys):
    # the guide's validate() raises ConfigError; one that raises ValueError, as Python code usually does, had ended
    # `cmdp train` in a traceback
    plugin = write(tmp_path / "margin.py", textwrap.dedent('''\
        from dataclasses import dataclass

        from cmdp.algorithms.ppo_lag import PPOLag, PPOLagConfig
        from cmdp.registry import register_algorithm


        @dataclass
        class MarginConfig(PPOLagConfig):
            lag_margin: float = 0.1

            def validate(self) -> None:
                super().validate()
                if not 0 <= self.lag_margin < 1:
                    raise ValueError(f"lag_margin must be in [0, 1), got {self.lag_margin}")


        @register_algorithm("margin_lag_value_error")
        class MarginLag(PPOLag):
            """PPO-Lag whose config refuses with a ValueError."""

            Config = MarginConfig
        '''))
    out = tmp_path / "run"
    args = ["train", "--plugin", str(plugin), "--algo", "margin_lag_value_error", *FAST, "--out", str(out)]
    assert main([*args, "--set", "lag_margin=3"]) == 2
    assert one_error_line(capsys.readouterr().err) == "cmdp: error: lag_margin must be in [0, 1), got 3.0"
    assert not out.exists()


def nan_solver(name: str, base: str, from_epoch: int = 1) -> str:
    """A plugin solver whose actor loss turns NaN from its `from_epoch`-th epoch on (0: from the start, as an off-policy
    solver needs: the replay schedule calls its `update_step`, not `update`)."""
    module, cls = base.rsplit(".", 1)
    return textwrap.dedent(f'''\
        from {module} import {cls}
        from cmdp.registry import register_algorithm


        @register_algorithm("{name}")
        class NaNLoss({cls}):
            """Its actor loss is NaN from update {from_epoch} on."""

            updates = 0

            def update(self, *args):
                self.updates += 1
                return super().update(*args)

            def actor_loss(self, *args):
                loss, info = super().actor_loss(*args)
                return (loss * float("nan") if self.updates >= {from_epoch} else loss), info
        ''')


def test_a_solver_whose_loss_is_nan_stops_in_one_line_and_leaves_no_run(tmp_path, capsys):
    # it had ended in a FloatingPointError traceback (exit status 1), leaving config.yaml and tb/ behind
    plugin = write(tmp_path / "nan_lag.py", nan_solver("nan_lag_plugin", "cmdp.algorithms.ppo_lag.PPOLag"))
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(plugin), "--algo", "nan_lag_plugin", *FAST, "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("cmdp: error: epoch 1: training diverged: actor loss is nan; "), line
    assert line.endswith("Lower the learning rates or max_grad_norm, or check the environment's rewards and costs.")
    assert not out.exists()


def test_a_run_that_diverges_after_its_first_checkpoint_keeps_the_epochs_before(tmp_path, capsys):
    plugin = write(tmp_path / "nan_later.py",
                   nan_solver("nan_later_plugin", "cmdp.algorithms.ppo_lag.PPOLag", from_epoch=2))
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(plugin), "--algo", "nan_later_plugin", *FAST, "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("cmdp: error: epoch 2: training diverged: actor loss is nan; "), line
    assert line.endswith(f" {out} keeps the epochs before it (up to 1)."), line
    assert (out / "checkpoints" / "last.pt").is_file() and not (out / "summary.json").exists()
    assert len((out / "progress.csv").read_text().splitlines()) == 2  # the header and epoch 1


def test_an_off_policy_solver_whose_loss_is_nan_stops_in_one_line(tmp_path, capsys):
    # it had reached the optimiser and ended in "RuntimeError: a gradient norm is non-finite", a traceback
    plugin = write(tmp_path / "nan_sac.py", nan_solver("nan_sac_plugin", "cmdp.algorithms.sac.SAC", from_epoch=0))
    out = tmp_path / "run"
    args = ["train", "--plugin", str(plugin), "--algo", "nan_sac_plugin", "--env", "QuadraticBandit-v0",
            "--total-steps", "400", "--set", "steps_per_epoch=200", "--set", "update_after=100",
            "--set", "random_steps=100", "--set", "batch_size=32", "--no-progress", "--out", str(out)]
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("cmdp: error: epoch 1: training diverged: actor loss is nan in an off-policy update."), line
    assert not out.exists()


@pytest.mark.parametrize("base", ["cmdp.algorithms.trpo_lag.TRPOLag", "cmdp.algorithms.cpo.CPO",
                                  "cmdp.algorithms.pcpo.PCPO"])
def test_a_trust_region_solver_whose_surrogate_is_nan_stops_in_one_line(base, tmp_path, capsys):
    # every try of its line search was refused: the run finished "successfully" without learning
    module, cls = base.rsplit(".", 1)
    plugin = write(tmp_path / "nan_adv.py", textwrap.dedent(f'''\
        from {module} import {cls}
        from cmdp.registry import register_algorithm


        @register_algorithm("nan_adv_{cls.lower()}")
        class NaNAdvantage({cls}):
            def cost_streams(self, batch, *args):
                adv_r, *rest = super().cost_streams(batch, *args)
                return (adv_r * float("nan"), *rest)

            def policy_advantage(self, batch):
                return super().policy_advantage(batch) * float("nan")
        '''))
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(plugin), "--algo", f"nan_adv_{cls.lower()}", *FAST, "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("cmdp: error: epoch 1: training diverged: actor surrogate loss is nan; "), line
    assert not out.exists()


def test_a_finite_loss_with_a_non_finite_gradient_stops_in_one_line(tmp_path, capsys):
    # the optimiser's check had ended the run in "RuntimeError: a gradient norm is non-finite", a traceback
    plugin = write(tmp_path / "nan_grad.py", textwrap.dedent('''\
        from cmdp.algorithms.ppo_lag import PPOLag
        from cmdp.registry import register_algorithm


        @register_algorithm("nan_grad_plugin")
        class NaNGradient(PPOLag):
            """Its actor loss stays finite, but its gradient is NaN: 0 * sqrt(0) differentiates to 0 / 0."""

            def actor_loss(self, *args):
                loss, info = super().actor_loss(*args)
                weight = next(self.agent.actor.parameters())
                return loss + 0 * (weight - weight.detach()).abs().sum().sqrt(), info
        '''))
    out = tmp_path / "run"
    assert main(["train", "--plugin", str(plugin), "--algo", "nan_grad_plugin", *FAST, "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("cmdp: error: epoch 1: training diverged: a gradient norm is not finite (the actor's [nan]"
                           "), so the step cannot be clipped. Lower the learning rates"), line
    assert not out.exists()


def test_a_plugin_a_config_or_suite_file_names_is_reported_with_that_file(tmp_path, capsys, monkeypatch):
    # it had said "plugins: file not found: /margin_lag.py" alone: neither which file named it nor from where a
    # relative path is taken
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    config = write(tmp_path / "run.yaml", "algo: ppo_lag\nenv: ExactChain-v0\nplugins: [margin_lag.py]\n")
    assert main(["train", "--config", str(config), "--no-progress", "--out", str(tmp_path / "run")]) == 2
    here = tmp_path / "work"
    assert one_error_line(capsys.readouterr().err) == (
        f"cmdp: error: {config}: plugins: file not found: {here / 'margin_lag.py'} (a relative path is taken from "
        f"the current folder, {here})")
    suite = write(tmp_path / "s.yaml", "name: s\nalgorithms: [ppo]\nenvironments: [ExactChain-v0]\nseeds: [0]\n"
                                       "total_steps: 400\nconfig: {plugins: [margin_lag.py, 5]}\n")
    assert main(["benchmark", str(suite), "--dry-run"]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"cmdp: error: suite {suite}: config: plugins: file not found: {here / 'margin_lag.py'} (a relative path is "
        f"taken from the current folder, {here})")
    # a plugin the command line names is the command line's own: no file is named
    plain = write(tmp_path / "plain.yaml", "algo: ppo_lag\nenv: ExactChain-v0\n")
    assert main(["train", "--config", str(plain), "--plugin", "other.py", "--no-progress"]) == 2
    assert one_error_line(capsys.readouterr().err) == f"cmdp: error: plugins: file not found: {here / 'other.py'}"
    assert list(here.iterdir()) == [] and not (tmp_path / "run").exists()


def test_plugins_of_a_config_file_and_of_the_command_line_load_together(tmp_path, capsys):
    # --plugin replaced the config file's plugins: the algorithm the file's plugin registers was then unknown
    algo = write(tmp_path / "file_lag.py", textwrap.dedent('''\
        from cmdp.algorithms.ppo_lag import PPOLag
        from cmdp.registry import register_algorithm

        register_algorithm("file_lag_plugin")(type("FileLag", (PPOLag,), {}))
        '''))
    other = write(tmp_path / "flag_lag.py", algo.read_text().replace("file_lag", "flag_lag").replace("FileLag", "F"))
    config = write(tmp_path / "run.yaml", f"algo: file_lag_plugin\nenv: ExactChain-v0\nplugins: [{algo}]\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--plugin", str(other), *FAST[2:], "--out", str(out)]) == 0
    assert load_yaml(out / "config.yaml")["plugins"] == [str(algo), str(other)]


# --- plugins that load ------------------------------------------------------------------------------------------

def test_two_plugin_files_with_the_same_file_name_both_load(tmp_path, capsys):
    a = write(tmp_path / "a" / "my_solver.py", solver_plugin("solver_a", "Solver A from a/my_solver.py."))
    b = write(tmp_path / "b" / "my_solver.py", solver_plugin("solver_b", "Solver B from b/my_solver.py."))
    assert main(["list", "--plugin", str(a), "--plugin", str(b)]) == 0
    out = capsys.readouterr().out
    names = listed_algorithms(out)
    assert "solver_a" in names and "solver_b" in names
    assert "Solver A from a/my_solver.py." in out and "Solver B from b/my_solver.py." in out
    assert get_algorithm("solver_a") is not get_algorithm("solver_b")


def test_list_shows_a_plugin_solver(tmp_path, capsys):
    plugin = write(tmp_path / "listed.py", solver_plugin("listed_plugin_solver", "Listed by cmdp list --plugin."))
    assert main(["list", "--plugin", str(plugin)]) == 0
    out = capsys.readouterr().out
    assert "listed_plugin_solver" in listed_algorithms(out)
    assert "Listed by cmdp list --plugin." in out
    assert "ppo_lag" in listed_algorithms(out)  # the built-ins are still there


# --- entry points -----------------------------------------------------------------------------------------------

def fake_distribution(site: Path, package: str, entry_points: str, files: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds it on sys.path: the package and its .dist-info."""
    for rel, text in files.items():
        write(site / package / rel, text)
    info = site / f"{package}-0.1.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    write(info / "entry_points.txt", entry_points)


MY_SOLVER = textwrap.dedent('''\
    from cmdp.algorithms.ppo_lag import PPOLag


    class MySolver(PPOLag):
        """My solver, installed as an entry point of mypkg."""
    ''')


@pytest.fixture
def site(tmp_path) -> Path:
    """A folder of fake installed distributions: mypkg (a working solver) and brokenpkg (one that fails)."""
    site = tmp_path / "site"
    fake_distribution(site, "mypkg", "[cmdp.algorithms]\nmy_solver = mypkg.solver:MySolver\n",
                      {"__init__.py": "", "solver.py": MY_SOLVER})
    return site


def add_broken_distribution(site: Path) -> None:
    fake_distribution(site, "brokenpkg", "[cmdp.algorithms]\nbroken_solver = brokenpkg.solver:Broken\n",
                      {"__init__.py": "", "solver.py": "import brokenpkg_missing_dependency\n"})


def test_installed_entry_point_solver_is_listed_trains_and_evaluates(tmp_path, site):
    res = run_python(["-m", "cmdp", "list"], tmp_path, site)
    assert res.returncode == 0, res.stderr
    assert "my_solver" in listed_algorithms(res.stdout)
    assert "My solver, installed as an entry point of mypkg." in res.stdout
    assert "warning" not in res.stderr

    out = tmp_path / "run"
    res = run_python(["-m", "cmdp", "train", "--algo", "my_solver", *FAST, "--out", str(out)], tmp_path, site)
    assert res.returncode == 0, res.stderr
    assert "== my_solver on ExactChain-v0" in res.stdout
    assert load_yaml(out / "config.yaml")["plugins"] == []  # an installed solver is no plugin...
    res = run_python(["-m", "cmdp", "eval", str(out), "--episodes", "2"], tmp_path, site)
    assert res.returncode == 0, res.stderr  # ...so its runs evaluate without --trust-plugins
    assert "my_solver on ExactChain-v0" in res.stdout


def test_broken_entry_point_is_one_warning_and_everything_else_works(tmp_path, site):
    add_broken_distribution(site)
    res = run_python(["-m", "cmdp", "list"], tmp_path, site)
    assert res.returncode == 0, res.stderr
    names = listed_algorithms(res.stdout)
    assert "broken_solver" not in names
    assert "my_solver" in names and "ppo_lag" in names and "cpo" in names
    assert "ExactChain-v0" in res.stdout
    warnings = [line for line in res.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, res.stderr
    assert "broken_solver = brokenpkg.solver:Broken" in warnings[0], warnings
    assert "brokenpkg_missing_dependency" in warnings[0], warnings

    res = run_python(["-m", "cmdp", "train", "--algo", "ppo_lag", *FAST, "--out", str(tmp_path / "run")],
                     tmp_path, site)
    assert res.returncode == 0, res.stderr
    assert "== ppo_lag on ExactChain-v0" in res.stdout


def test_builtins_are_entry_points(capsys):
    eps = importlib.metadata.entry_points(group="cmdp.algorithms")
    ours = [ep for ep in eps if ep.dist is not None and ep.dist.name == "cmdp-lab"]
    assert all(ep.value.startswith("cmdp.algorithms.") for ep in ours), ours
    assert main(["list"]) == 0
    listed = listed_algorithms(capsys.readouterr().out)
    registry = algorithms()
    # every built-in `cmdp list` shows is one of our entry points, under its name, and every one is listed
    builtins = {name for name in listed if registry[name].__module__.startswith("cmdp.")}
    assert builtins == {ep.name for ep in ours}
    assert {"ppo_lag", "ppo", "cpo", "sac_lag"} <= builtins
    for ep in ours:
        assert ep.load() is registry[ep.name]
    envs = importlib.metadata.entry_points(group="cmdp.envs")
    assert {ep.name: ep.value for ep in envs if ep.dist is not None and ep.dist.name == "cmdp-lab"} \
        == BUILTIN_ENV_MODULES


def test_cmdp_lab_claims_no_generic_top_level_names(tmp_path):
    code = textwrap.dedent('''\
        import importlib
        for name in ("algorithms", "envs", "benchmarks"):
            try:
                importlib.import_module(name)
            except ImportError:
                print("missing", name)
            else:
                print("found", name)
        import cmdp.algorithms, cmdp.envs, cmdp.benchmarks
        print("ok", cmdp.algorithms.__name__, cmdp.envs.__name__, cmdp.benchmarks.__name__)
        ''')
    res = run_python(["-c", code], tmp_path)  # not from the repository root: its folders are not on sys.path
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["missing algorithms", "missing envs", "missing benchmarks",
                                       "ok cmdp.algorithms cmdp.envs cmdp.benchmarks"]


# --- trust ------------------------------------------------------------------------------------------------------

def test_run_folder_plugins_need_trust(tmp_path, monkeypatch, capsys):
    """A run's config names plugin code; loading the run would import it. The check is on the run's config, not on
    what this process has loaded: the plugin is registered here already, and the untrusted load is still refused."""
    monkeypatch.chdir(tmp_path)
    plugin = write(tmp_path / "trusted_solver.py", solver_plugin("trust_test_solver"))
    cfg, _ = resolve_config({"algo": "trust_test_solver", "plugins": ["trusted_solver.py"], "env": "ExactChain-v0",
                             "total_steps": 600, "steps_per_epoch": 200})
    run = interrupted_run(cfg, tmp_path / "R", after_epoch=1)
    assert load_yaml(run / "config.yaml")["plugins"] == [str(plugin)]

    def epochs_logged() -> int:
        return len((run / "progress.csv").read_text().splitlines()) - 1

    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "names plugin code" in line and str(plugin) in line and "--trust-plugins" in line, line
    assert epochs_logged() == 1  # refused before anything ran
    assert main(["train", "--resume", str(run), "--trust-plugins", "--no-progress"]) == 0
    assert f"resuming {run}" in capsys.readouterr().out
    assert epochs_logged() == 3

    assert main(["eval", str(run), "--episodes", "2"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "names plugin code" in line and str(plugin) in line and "--trust-plugins" in line, line
    assert main(["eval", str(run), "--episodes", "2", "--trust-plugins"]) == 0
    assert "trust_test_solver on ExactChain-v0" in capsys.readouterr().out
    assert main(["eval", str(run), "--episodes", "2", "--plugin", "trusted_solver.py"]) == 0  # relative: same file
    assert "trust_test_solver on ExactChain-v0" in capsys.readouterr().out
    other = write(tmp_path / "other.py", "")
    assert main(["eval", str(run), "--episodes", "2", "--plugin", str(other)]) == 2  # another file is no consent
    assert "--trust-plugins" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("case, returns, got", [
    (0, "loss", "a tensor of shape ()"),
    (1, "loss, info, 1.0", "(tensor of shape (), dict, float)"),
    (2, "loss.expand(3), info", "(tensor of shape (3,), dict)"),
])
def test_an_actor_loss_that_does_not_return_a_loss_and_its_info_is_one_line(case, returns, got, tmp_path, capsys):
    # a bare tensor had ended in "TypeError: iteration over a 0-d tensor", a traceback from inside the loop; a
    # per-sample loss in backward's "grad can be implicitly created only for scalar outputs"
    plugin = write(tmp_path / "bare.py", textwrap.dedent(f'''\
        from cmdp.algorithms.ppo_lag import PPOLag
        from cmdp.registry import register_algorithm


        @register_algorithm("bare_loss_plugin{case}")
        class BareLoss(PPOLag):
            """Its actor_loss returns the wrong thing."""

            def actor_loss(self, mb):
                loss, info = super().actor_loss(mb)
                return {returns}
        '''))
    out = tmp_path / "run"
    args = ["train", "--plugin", str(plugin), "--algo", f"bare_loss_plugin{case}", *FAST, "--out", str(out)]
    assert main(args) == 2
    assert one_error_line(capsys.readouterr().err) == (
        f"cmdp: error: BareLoss.actor_loss ({plugin}) must return (loss, info): a scalar tensor and a dict of scalars to "
        f"log ({{}} for none), got {got}")
    assert not out.exists()
