"""Framework overhead: end-to-end training steps/s of a solver against raw stepping of the same env.

    python -m cmdp.benchmarks.throughput [--envs E1 E2] [--steps N] [--num-envs N] [--algo A1 A2] [--out FILE.json]

For each environment, in one process: (1) raw: the same vectorised environment (our `VecCMDP`,
the same number of copies) stepped with uniformly random actions drawn in one numpy call per step;
(2) end to end: `cmdp train` with the algorithm's default config for the same number of steps
(collection, GAE, updates, logging, checkpoints). The ratio end-to-end / raw is the share of time
the environment gets; 1 - ratio is the framework's overhead. Several algorithms run side by side in
one invocation. Off-policy solvers (sac_lag, td3_lag, ...) start their updates after one epoch here
(`update_after` = `random_steps` = `steps_per_epoch`, instead of 10,000-25,000) so that the measurement
is the steady state of one gradient step per environment step; `--set device=cuda` runs their updates on
a GPU. Timings, not a test: run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import cmdp  # noqa: F401  (first: it imports gymnasium quietly)
import gymnasium
import numpy as np
from cmdp.config import parse_set
from cmdp.family import Schedule
from cmdp.registry import get_algorithm, get_env
from cmdp.trainer import Trainer, resolve_config


def raw_rate(env_name: str, steps: int, num_envs: int, seed: int = 0,
             env_kwargs: dict[str, Any] | None = None) -> float:
    """Random-action environment steps per second through the VecCMDP API (the training run's `env_kwargs`)."""
    env = get_env(env_name).family.factory(num_envs=num_envs, **(env_kwargs or {}))
    try:
        space = env.spec.action_space
        rng = np.random.default_rng(seed)
        env.reset(seed=seed)
        n_calls = steps // num_envs
        start = time.perf_counter()
        for _ in range(n_calls):
            if isinstance(space, gymnasium.spaces.Box):
                actions = rng.uniform(space.low, space.high, size=(num_envs, *space.shape))
            else:
                actions = rng.integers(space.n, size=num_envs)
            env.step(actions)
        return n_calls * num_envs / (time.perf_counter() - start)
    finally:
        env.close()


def train_rate(env_name: str, steps: int, num_envs: int, algo: str, seed: int = 0,
               overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """End-to-end training steps per second with the algorithm's default config (plus `overrides`)."""
    values = {"algo": algo, "env": env_name, "total_steps": steps, "num_envs": num_envs, "seed": seed}
    off_policy = get_algorithm(algo).schedule is Schedule.OFF_POLICY
    # an off-policy warm-up of 0 first, as the budget may be below the default one (which is refused)
    cfg, _ = resolve_config({**values, **({"update_after": 0, "random_steps": 0} if off_policy else {}),
                             **(overrides or {})})
    if off_policy:  # measure updates from the second epoch on
        warm = {"update_after": cfg.steps_per_epoch, "random_steps": cfg.steps_per_epoch}
        cfg, _ = resolve_config({**values, **warm, **(overrides or {})})
    trainer = Trainer(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        rows: list[dict[str, Any]] = []
        summary = trainer.train(Path(tmp), progress=False, on_epoch=rows.append)
        wall = time.perf_counter() - start
    return {"steps": summary["env_steps"], "wall_s": wall, "steps_per_s": summary["env_steps"] / wall,
            "collect_s": sum(r["time_collect_s"] for r in rows), "update_s": sum(r["time_update_s"] for r in rows),
            # gradient steps per epoch: minibatch passes (on-policy) or replay updates (off-policy)
            "updates": [r["update_iters"] if "update_iters" in r else r["updates"] for r in rows],
            "batch_size": cfg.batch_size,
            "steps_per_epoch": cfg.steps_per_epoch}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=["SafetyHopperVelocity-v1", "SafetyPointGoal1-v0"])
    p.add_argument("--steps", type=int, default=40_000, help="steps per measurement (whole epochs of 20k)")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--algo", nargs="+", default=["ppo_lag"], help="one or more algorithms, measured side by side")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for the training run (default: the algorithm's defaults); its env_kwargs "
                        "also reach the raw measurement")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    overrides = parse_set(args.set)
    results = []
    for name, algo in [(name, algo) for name in args.envs for algo in args.algo]:
        raw = raw_rate(name, args.steps, args.num_envs, env_kwargs=overrides.get("env_kwargs"))
        e2e = train_rate(name, args.steps, args.num_envs, algo, overrides=overrides)
        # Where the wall time went: the simulator (its raw time for these steps), the solver's own arithmetic
        # (the update phase) and everything else, which is the framework's overhead proper (collection bookkeeping,
        # normalisation, GAE, logging, checkpoints).
        env_s = e2e["steps"] / raw
        overhead_s = max(0.0, e2e["wall_s"] - env_s - e2e["update_s"])
        shares = {"share_env": env_s / e2e["wall_s"], "share_update": e2e["update_s"] / e2e["wall_s"],
                  "share_framework": overhead_s / e2e["wall_s"]}
        results.append({"env": name, "num_envs": args.num_envs, "algo": algo, "overrides": overrides,
                        "raw_steps_per_s": raw, "train": e2e, "ratio": e2e["steps_per_s"] / raw, **shares})
        print(f"{name:<28} raw {raw:8.0f} steps/s | {algo} end to end {e2e['steps_per_s']:8.0f} steps/s "
              f"= {100 * e2e['steps_per_s'] / raw:5.1f}% of raw (collect {e2e['collect_s']:.1f} s, "
              f"update {e2e['update_s']:.1f} s, {sum(e2e['updates'])} updates) | wall time: environment "
              f"{shares['share_env']:.0%}, solver update {shares['share_update']:.0%}, "
              f"framework overhead {shares['share_framework']:.0%}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
