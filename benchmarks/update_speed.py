"""Update speed: seconds per minibatch pass of an on-policy solver's update, at several minibatch sizes, in one process.

    python -m cmdp.benchmarks.update_speed [--algo ppo_lag] [--env SafetyHopperVelocity-v1] [--steps 20000]
        [--batch-sizes 64 1000] [--repeats 5] [--against REV] [--compile] [--breakdown] [--out FILE.json]

One epoch of `--steps` environment steps (one copy) is collected with the algorithm's defaults. Then the solver's
minibatch loop (`PolicyGradientSolver.optimize`: the actor's and the critics' losses, one backward and one optimiser
step per minibatch, KL early stopping off) makes one pass over that batch at each minibatch size, always from the
same weights, with a fresh `TorchUpdater` and a solver built on it (`solver_for`); the sizes take turns `--repeats`
times and the median is reported. The ratio between two sizes is what a smaller minibatch costs per pass
(OmniSafe's 64, our default since 2026-12-03, against the 1000 we used before; docs/omnisafe-differences.md row 9).

`--against REV` also times the `TorchUpdater` of the git revision REV (its `cmdp/optim.py`, loaded beside this
tree's; the rest of the code is this tree's), alternating with this tree's on the same passes, and reports REV's
time over this tree's: how much a change of the updater sped a pass up (run from the repository's root).

`--compile` also times this tree's updater with `compile_update` (cmdp/fused.py: the whole minibatch step as one
compiled function), alternating with the eager one on the same passes, and reports the eager time over the compiled:
how much faster `--set compile_update=true` makes a pass. Before each compiled pass, untimed, its step is compiled
(or its graphs loaded from the cache) on one minibatch of each shape; the first of these per size is reported
apart (`compile_seconds`: what a fresh process pays, once the compiler's cache holds the graphs if it ran before).

`--breakdown` also splits an eager minibatch step at the smallest size (`step_breakdown`): the losses' forward pass,
their backward pass and the rest of the optimiser step, in microseconds, and the ATen operators the step runs. At
OmniSafe's 64 samples most of a step is the fixed cost of running an operator, not arithmetic.

Timings, not a test: run it on an idle machine, pinned to one core (`taskset -c 1`, `torch_threads` is 1).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import cmdp  # noqa: F401  (first: it imports gymnasium quietly)
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from cmdp.cli import OneLineParser
from cmdp.errors import ConfigError
from cmdp.optim import TorchUpdater
from cmdp.registry import get_algorithm
from cmdp.rollout import RolloutBatch
from cmdp.solver import PolicyGradientSolver
from cmdp.trainer import Trainer, epoch_reset_seed, resolve_config

#: Builds an updater as `TorchUpdater(actor, critic, cfg, num_epochs)` does.
UpdaterFactory = Callable[[torch.nn.Module, torch.nn.Module | None, Any, int], Any]


def updater_at(revision: str) -> UpdaterFactory:
    """`TorchUpdater` as git revision `revision`'s cmdp/optim.py defines it, loaded as a module of its own."""
    shown = subprocess.run(["git", "show", f"{revision}:cmdp/optim.py"], capture_output=True, text=True)
    if shown.returncode != 0:
        raise ConfigError(f"--against {revision}: git cannot show its cmdp/optim.py "
                          f"({(shown.stderr.strip().splitlines() or ['not a git repository?'])[-1]})")
    module = types.ModuleType(f"optim_at_{revision}")
    exec(compile(shown.stdout, f"{revision}:cmdp/optim.py", "exec"), module.__dict__)
    if not isinstance(module.__dict__.get("TorchUpdater"), type):
        raise ConfigError(f"--against {revision}: its cmdp/optim.py defines no TorchUpdater")
    return module.TorchUpdater


#: The name `--compile`'s variant is reported under.
COMPILED = "this tree, compiled"


def collected_epoch(algo: str, env: str, steps: int, seed: int) -> tuple[Any, Trainer, RolloutBatch]:
    """(config, trainer, batch): a trainer of `algo` on `env` at its defaults (one copy, one torch thread), and one
    epoch of `steps` steps it collected. The caller closes the trainer."""
    cfg, _ = resolve_config({"algo": algo, "env": env, "num_envs": 1, "steps_per_epoch": steps, "total_steps": steps,
                             "torch_threads": 1, "seed": seed})
    trainer = Trainer(cfg)
    try:
        return cfg, trainer, trainer.run.collect(cfg, trainer.rng, epoch_reset_seed(seed, 0), None)
    except BaseException:
        trainer.close()
        raise


def solver_for(trainer: Trainer, cfg: Any, updater: Any) -> Any:
    """A new solver of the trainer's algorithm as a run of `cfg` builds it (its fused step too, with
    `compile_update`), on the trainer's agent and spec, stepping through `updater`, with a generator seeded as the
    run's: each variant's pass draws the same minibatches."""
    return type(trainer.solver)(cfg, trainer.spec, trainer.agent, updater, torch.Generator().manual_seed(cfg.seed))


def step_breakdown(trainer: Trainer, cfg: Any, batch: RolloutBatch, advantage: torch.Tensor, size: int,
                   repeats: int) -> dict[str, float]:
    """Where one eager minibatch step at `size` goes, with this tree's updater: microseconds in the losses' forward
    pass, in their backward pass and in the rest of the optimiser step (clipping and Adam), each the median over
    `repeats` passes; and the ATen operators a step runs (forward, backward and optimiser alike, as a
    `TorchDispatchMode` sees them), counted over one more pass."""
    pass_cfg = dataclasses.replace(cfg, batch_size=size, target_kl=0.0)
    solver = solver_for(trainer, pass_cfg, TorchUpdater(trainer.agent.actor, trainer.agent.critic, pass_cfg, 1))
    minibatches = list(batch.minibatch_pass(size, torch.Generator().manual_seed(cfg.seed), advantage))

    def forward(mb: Any) -> None:
        solver.minibatch_losses(mb)

    def backward(mb: Any) -> None:
        losses = [loss for loss in solver.minibatch_losses(mb)[:2] if loss is not None]
        (losses[0] if len(losses) == 1 else losses[0] + losses[1]).backward()

    def step(mb: Any) -> None:
        loss_pi, loss_v, _ = solver.minibatch_losses(mb)
        solver.updater.step(actor_loss=loss_pi, critic_loss=loss_v)

    def per_step(fn: Callable[[Any], None]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for mb in minibatches:
                fn(mb)
            times.append((time.perf_counter() - start) / len(minibatches))
        return 1e6 * statistics.median(times)

    forward_us, backward_us, step_us = per_step(forward), per_step(backward), per_step(step)
    with _OperatorCount() as count:
        for mb in minibatches:
            step(mb)
    return {"minibatch": size, "forward_us": forward_us, "backward_us": backward_us - forward_us,
            "optimiser_us": step_us - backward_us, "step_us": step_us,
            "operators_per_step": count.operators / len(minibatches)}


class _OperatorCount(TorchDispatchMode):
    """Counts the ATen operators run while it is active (views and in-place ones included)."""

    def __init__(self) -> None:
        super().__init__()
        self.operators = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.operators += 1
        return func(*args, **(kwargs or {}))


def measure(algo: str, env: str, steps: int, batch_sizes: list[int], repeats: int,
            updaters: dict[str, UpdaterFactory], seed: int = 0, compiled: bool = False,
            breakdown: bool = False) -> dict[str, Any]:
    """Median seconds per pass for each (updater, minibatch size), from one collected epoch; with `compiled`, also
    for this tree's `TorchUpdater` stepping through its compiled step (`COMPILED`); with `breakdown`, also
    `step_breakdown` at the smallest size."""
    if not batch_sizes or any(size < 1 for size in batch_sizes):
        raise ConfigError(f"--batch-sizes must be positive, got {batch_sizes}")
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {repeats}")
    if not issubclass(get_algorithm(algo), PolicyGradientSolver):
        raise ConfigError(f"algorithm '{algo}' has no on-policy minibatch update to time (on-policy solvers only)")
    cfg, trainer, batch = collected_epoch(algo, env, steps, seed)
    try:
        assert isinstance(trainer.solver, PolicyGradientSolver)
        weights = {k: v.clone() for k, v in trainer.agent.state_dict().items()}
        advantage = trainer.solver.policy_advantage(batch)
        times: dict[tuple[str, int], list[float]] = {}
        compile_seconds: dict[str, float] = {}
        variants = [*updaters, *([COMPILED] if compiled else [])]
        for _ in range(repeats):
            for size in batch_sizes:
                for name in variants:
                    trainer.agent.load_state_dict(weights)
                    make = TorchUpdater if name == COMPILED else updaters[name]
                    # every pass runs whole (no KL early stop) at this minibatch size
                    pass_cfg = dataclasses.replace(cfg, batch_size=size, target_kl=0.0,
                                                   compile_update=name == COMPILED)
                    solver = solver_for(trainer, pass_cfg, make(trainer.agent.actor, trainer.agent.critic,
                                                                pass_cfg, 1))
                    if solver.fused_step is not None:
                        # a new updater's step compiles anew (the first time) or loads its graphs from the cache:
                        # done untimed, on one minibatch of each shape of a pass, then weights and state reset
                        fresh = copy.deepcopy(solver.updater.state_dict())
                        start = time.perf_counter()
                        # a pass's minibatches, whose layout (strides too) the graphs are specialised to; drawn with
                        # a generator of their own, so that the timed passes draw what they would without this
                        shapes = {}
                        for mb in batch.minibatch_pass(size, torch.Generator().manual_seed(0), advantage):
                            shapes.setdefault(mb.logp_old.shape[0], mb)
                        for mb in shapes.values():
                            solver.fused_step(mb)
                        compile_seconds.setdefault(str(size), time.perf_counter() - start)
                        trainer.agent.load_state_dict(weights)
                        solver.updater.load_state_dict(fresh)
                    start = time.perf_counter()
                    solver.optimize(batch, advantage, update_iters=1)
                    times.setdefault((name, size), []).append(time.perf_counter() - start)
        if breakdown:
            trainer.agent.load_state_dict(weights)
            parts = step_breakdown(trainer, cfg, batch, advantage, min(batch_sizes), repeats)
    finally:
        trainer.close()
    return {"algo": algo, "env": env, "samples": batch.size, "repeats": repeats,
            "seconds_per_pass": {name: {str(size): statistics.median(times[(name, size)]) for size in batch_sizes}
                                 for name in variants},
            **({"compile_seconds": compile_seconds} if compiled else {}), **({"breakdown": parts} if breakdown else {})}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m cmdp.benchmarks.update_speed", description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="ppo_lag", help="an on-policy solver (default ppo_lag)")
    p.add_argument("--env", default="SafetyHopperVelocity-v1")
    p.add_argument("--steps", type=int, default=20_000, help="samples in the batch (default: OmniSafe's epoch)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1000], help="minibatch sizes (default 64 1000)")
    p.add_argument("--repeats", type=int, default=5, help="passes per size and updater; the median is reported")
    p.add_argument("--against", metavar="REV", help="also time git revision REV's TorchUpdater, alternating")
    p.add_argument("--compile", action="store_true",
                   help="also time this tree's updater with compile_update (the compiled minibatch step), alternating")
    p.add_argument("--breakdown", action="store_true",
                   help="also split an eager step at the smallest size into forward, backward and optimiser time, "
                        "and count the operations it dispatches")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    try:
        updaters: dict[str, UpdaterFactory] = {"this tree": TorchUpdater}
        if args.against:
            updaters[args.against] = updater_at(args.against)
        result = measure(args.algo, args.env, args.steps, args.batch_sizes, args.repeats, updaters,
                         compiled=args.compile, breakdown=args.breakdown)
    except ConfigError as exc:
        print(f"update_speed: error: {exc}", file=sys.stderr)
        return 2
    passes = result["seconds_per_pass"]
    largest = str(max(args.batch_sizes))
    for size in map(str, args.batch_sizes):
        line = f"{args.algo} on {args.env}, {result['samples']:,} samples, minibatch {size:>5}: " + ", ".join(
            f"{name} {passes[name][size]:.3f} s/pass" for name in passes)
        line += f" ({passes['this tree'][size] / passes['this tree'][largest]:.2f}x a pass at {largest})"
        if args.against:
            line += f"; {args.against} / this tree: {passes[args.against][size] / passes['this tree'][size]:.2f}"
        if args.compile:
            line += (f"; eager / compiled: {passes['this tree'][size] / passes[COMPILED][size]:.2f} (compiled in "
                     f"{result['compile_seconds'][size]:.1f} s)")
        print(line, flush=True)
    if args.breakdown:
        b = result["breakdown"]
        print(f"an eager step at {b['minibatch']}: {b['step_us']:.0f} us, of which the losses' forward pass "
              f"{b['forward_us']:.0f} us, their backward pass {b['backward_us']:.0f} us, the rest of the optimiser "
              f"step {b['optimiser_us']:.0f} us; {b['operators_per_step']:.0f} ATen operators run")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
