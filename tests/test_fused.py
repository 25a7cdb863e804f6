"""`compile_update` (cmdp/fused.py): the compiled minibatch step takes the eager step's steps (to rounding), with
the same clipping and step counts; a non-finite loss moves nothing and is reported as the eager step reports it; a
compiled run resumes bit-exactly; losses that do not compile, and the text family, are refused in one line."""
from __future__ import annotations

import copy
import csv
from pathlib import Path
from typing import Any

import pytest
import torch

from cmdp.cli import main
from cmdp.errors import ConfigError
from cmdp.logger import TIMING_COLUMNS
from cmdp.trainer import Trainer, epoch_reset_seed, resolve_config
from run_helpers import interrupted_run

HOPPER = "SafetyHopperVelocity-v1"
# 640 samples: ten minibatches of 64, so one compiled shape per test
SETTINGS = {"algo": "ppo_lag", "env": HOPPER, "num_envs": 1, "steps_per_epoch": 640, "total_steps": 640,
            "torch_threads": 1, "seed": 0}


def collected(**changes: Any) -> tuple[Trainer, Any]:
    """A trainer and one collected epoch with its policy advantage, for stepping by hand."""
    cfg, _ = resolve_config({**SETTINGS, **changes})
    trainer = Trainer(cfg)
    batch = trainer.run.collect(cfg, trainer.rng, epoch_reset_seed(0, 0), None)
    return trainer, batch


def parameters(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.agent.state_dict().items()}


@pytest.mark.parametrize("changes, binds", [({}, False),  # per-critic clipping, which does not bind at 40
                                            ({"critic_clip": "joint", "max_grad_norm": 0.05}, True),
                                            ({"env": "ExactChain-v0"}, False)])  # a softmax policy
def test_the_compiled_step_takes_the_eager_steps(changes: dict, binds: bool) -> None:
    trainer, batch = collected(**changes)
    try:
        solver, updater = trainer.solver, trainer.updater
        minibatches = list(batch.minibatch_pass(64, solver.generator, solver.policy_advantage(batch)))
        start, start_updater = parameters(trainer), copy.deepcopy(updater.state_dict())

        eager_logged = []
        for mb in minibatches:
            loss_pi, loss_v, info = solver.minibatch_losses(mb)
            eager_logged.append({"loss_pi": loss_pi.item(), "loss_v": loss_v.item(), "clip_frac": float(info["clip_frac"])})
            updater.step(actor_loss=loss_pi, critic_loss=loss_v)
        eager, eager_counts = parameters(trainer), updater.end_epoch()
        eager_steps = [part.steps for part in updater.parts.values()]

        trainer.agent.load_state_dict(start)
        updater.load_state_dict(copy.deepcopy(start_updater))
        fused = updater.fused(solver.minibatch_losses)
        fused_logged = [fused(mb) for mb in minibatches]
        compiled, fused_counts = parameters(trainer), updater.end_epoch()

        assert [part.steps for part in updater.parts.values()] == eager_steps == [10, 10]
        assert fused_counts == eager_counts == {"grad_clip_actor": float(binds), "grad_clip_critic": float(binds)}
        assert fused_logged[0] == pytest.approx(eager_logged[0], rel=1e-5)  # the first step's losses: same weights
        for key in start:
            assert not torch.equal(eager[key], start[key]), key  # every parameter moved ...
            torch.testing.assert_close(compiled[key], eager[key], rtol=1e-4, atol=1e-6)  # ... to the same place
    finally:
        trainer.close()


def test_cups_compiled_projection_takes_the_eager_steps() -> None:
    """CUP's second minibatch loop (its projection) compiles too: from the same weights and batch (two trainers of
    one seed), the same passes and to rounding the same actor."""
    (eager, eager_batch), (compiled, compiled_batch) = (collected(algo="cup", update_iters=3, compile_update=flag)
                                                        for flag in (False, True))
    try:
        start = parameters(eager)
        assert all(torch.equal(start[key], value) for key, value in parameters(compiled).items())
        assert eager.solver.projection_step is None and compiled.solver.projection_step is not None
        eager_metrics, compiled_metrics = eager.solver.project(eager_batch), compiled.solver.project(compiled_batch)
        assert eager_metrics["proj_iters"] == compiled_metrics["proj_iters"] == 3.0
        assert compiled_metrics["proj_loss"] == pytest.approx(eager_metrics["proj_loss"], rel=1e-4, abs=1e-7)
        moved, compiled_moved = parameters(eager), parameters(compiled)
        for key in start:
            if key.startswith("actor."):
                assert not torch.equal(moved[key], start[key]), key
                torch.testing.assert_close(compiled_moved[key], moved[key], rtol=1e-4, atol=1e-6)
            else:  # the projection moves the actor alone
                assert torch.equal(moved[key], start[key]) and torch.equal(compiled_moved[key], start[key]), key
    finally:
        eager.close()
        compiled.close()


def test_a_non_finite_loss_moves_nothing_and_is_reported() -> None:
    trainer, batch = collected(compile_update=True)
    try:
        batch.returns[:, 0] = float("nan")  # in every minibatch: the first step meets it
        start = parameters(trainer)
        with pytest.raises(FloatingPointError, match="critic loss is nan; batch advantages finite: True; "
                                                     "returns finite: False"):
            trainer.solver.optimize(batch, trainer.solver.policy_advantage(batch))
        assert all(torch.equal(value, start[key]) for key, value in parameters(trainer).items())
        assert [part.steps for part in trainer.updater.parts.values()] == [0, 0]
    finally:
        trainer.close()


def test_losses_that_do_not_compile_are_refused_in_one_line() -> None:
    trainer, batch = collected()
    try:
        def losses(mb: Any) -> tuple[Any, Any, dict]:  # a Python branch on a tensor's value
            loss_v = trainer.solver.minibatch_losses(mb)[1]
            return None, (loss_v if loss_v > 1.0 else 2 * loss_v), {}

        fused = trainer.updater.fused(losses)
        mb = next(batch.minibatch_pass(64, trainer.solver.generator, None))
        with pytest.raises(ConfigError, match=r"^compile_update: this solver's losses do not compile as one graph "
                                              r"\(.+\); set compile_update=false$"):
            fused(mb)
    finally:
        trainer.close()


def test_a_compiled_run_resumes_bit_exactly(tmp_path: Path) -> None:
    settings = {**SETTINGS, "total_steps": 1920, "seed": 3, "compile_update": True}
    sets = ["--set=steps_per_epoch=640", "--set=torch_threads=1", "--set=compile_update=true", "--set=num_envs=1"]
    assert main(["train", "--env", HOPPER, "--total-steps", "1920", "--seed", "3", "--no-progress", *sets,
                 "--out", str(tmp_path / "full")]) == 0
    cfg, _ = resolve_config(settings)
    run_dir = interrupted_run(cfg, tmp_path / "cut", after_epoch=2)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    full = torch.load(tmp_path / "full/checkpoints/last.pt", weights_only=True)
    resumed = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    for key in full["agent"]:
        assert torch.equal(full["agent"][key], resumed["agent"][key]), key
    for part in ("actor", "critic"):  # Adam's moments and step counts too
        saved, again = full["solver"]["updater"][part], resumed["solver"]["updater"][part]
        assert saved["steps"] == again["steps"] > 0
        assert torch.equal(saved["exp_avg"], again["exp_avg"]) and torch.equal(saved["exp_avg_sq"], again["exp_avg_sq"])
    assert rows(tmp_path / "full") == rows(run_dir)


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "progress.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def test_losses_that_need_a_new_graph_at_every_step_are_refused_in_one_line() -> None:
    trainer, batch = collected()
    try:
        calls = []

        def losses(mb: Any) -> tuple[Any, Any, dict]:  # a Python number that changes: each value is a new graph
            calls.append(1)
            return None, trainer.solver.minibatch_losses(mb)[1] * float(len(calls)), {}

        fused = trainer.updater.fused(losses)
        mb = next(batch.minibatch_pass(64, trainer.solver.generator, None))
        with torch._dynamo.config.patch(recompile_limit=1):
            fused(mb)
            with pytest.raises(ConfigError, match=r"^compile_update: this solver's losses needed a new graph more than "
                                                  r"1 times .*; set compile_update=false$"):
                fused(mb)
    finally:
        trainer.close()


ON_POLICY_CONTROL = ["cpo", "crpo", "cup", "focops", "ipo", "npg", "p3o", "pcpo", "pdo", "pg", "pid_lag", "ppo",
                     "ppo_early_terminated", "ppo_lag", "ppo_saute", "ppo_simmer_pid", "rcpo", "reward_shaping", "trpo",
                     "trpo_lag", "trpo_pid", "trpo_saute"]


def test_the_list_of_on_policy_control_solvers_is_complete() -> None:
    from cmdp.group import GroupConfig
    from cmdp.registry import algorithms
    from cmdp.solver import PolicyGradientSolver

    on_policy = {name for name, cls in algorithms().items()  # the shipped ones (other tests register plugins)
                 if cls.__module__.startswith("cmdp.algorithms.") and issubclass(cls, PolicyGradientSolver)
                 and not issubclass(cls.Config, GroupConfig)}
    assert on_policy == set(ON_POLICY_CONTROL)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ON_POLICY_CONTROL)
def test_every_on_policy_control_solver_trains_compiled(tmp_path: Path, algo: str) -> None:
    """Their losses compile as one graph and keep it over 12 epochs (no new graph per epoch). For the trust-region
    solvers the compiled step is the critics' regression; their actor step stays eager."""
    cfg, _ = resolve_config({**SETTINGS, "algo": algo, "steps_per_epoch": 256, "total_steps": 256 * 12,
                             "update_iters": 2, "compile_update": True})
    trainer = Trainer(cfg)
    try:
        assert trainer.solver.fused_step is not None
        trainer.train(tmp_path / "run", progress=False)
        assert trainer.updater.parts["critic"].steps > 0
    finally:
        trainer.close()


def test_without_a_cpp_compiler_the_run_is_refused_before_anything_is_written(tmp_path: Path, capsys) -> None:
    import torch._inductor.config

    out = tmp_path / "run"
    with torch._inductor.config.patch({"cpp.cxx": (None, str(tmp_path / "no-such-g++"))}):  # where inductor looks
        assert main(["train", "--env", HOPPER, "--total-steps", "640", "--no-progress", "--set", "steps_per_epoch=640",
                     "--set", "compile_update=true", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cmdp: error: compile_update=true needs a C++ compiler at run "
                                                    "time (") and "or set compile_update=false" in err, err
    assert not out.exists()


BRANCHY = """
from cmdp.algorithms.ppo_lag import PPOLag
from cmdp.registry import register_algorithm


@register_algorithm("{name}")
class Branchy(PPOLag):
    def actor_loss(self, mb):
        loss, info = super().actor_loss(mb)
        return (loss if loss > 0 else 2 * loss), info  # a Python branch on a tensor's value
"""


@pytest.mark.parametrize("out_exists", [False, True])
def test_a_plugin_whose_loss_does_not_compile_fails_in_one_line_and_leaves_no_run(tmp_path: Path, capsys,
                                                                                 out_exists: bool) -> None:
    """The refusal comes at the first update (tracing needs a minibatch), after the run folder was made: it goes
    again (an empty folder the user gave is kept, empty)."""
    plugin, name = tmp_path / "branchy.py", f"ppo_branchy_{out_exists}".lower()  # one name per plugin file
    plugin.write_text(BRANCHY.format(name=name))
    out = tmp_path / "run"
    if out_exists:
        out.mkdir()
    assert main(["train", "--plugin", str(plugin), "--algo", name, "--env", HOPPER,
                 "--total-steps", "640", "--no-progress", "--set", "steps_per_epoch=640", "--set",
                 "compile_update=true", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == ("cmdp: error: compile_update: this solver's losses do not compile as one graph (Data-dependent "
                   "branching); set compile_update=false\n")
    assert (out.is_dir() and not any(out.iterdir())) if out_exists else not out.exists()
