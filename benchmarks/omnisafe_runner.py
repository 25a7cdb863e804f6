"""Train one OmniSafe algorithm with OmniSafe's defaults: OmniSafe's half of `benchmarks/omnisafe_side_by_side.py`.

    .venv-omnisafe/bin/python -I benchmarks/omnisafe_runner.py --algo PPOLag --env SafetyHopperVelocity-v1 \
        --steps 40000 --steps-per-epoch 20000 --seed 0 --cost-limit 25 --cost-limit-section lagrange_cfgs \
        --log-dir DIR

It runs under OmniSafe's own virtual environment (`benchmarks/omnisafe_venv.sh`), so it never imports cmdp; it
imports Safety-Gymnasium through `envs/safety_gym_compat.py`, loaded by file path, as cmdp-lab does. Every OmniSafe
default stays except the settings both sides of the comparison share: total steps, steps per epoch, one
environment, no parallel workers, seed, cost limit, CPU with one torch thread, and the log folder. OmniSafe writes
its usual log folder, DIR/<algo>-{<env>}/seed-<seed>-<time>/ (progress.csv, config.json, tb/, torch_save/), and
this script adds runner.json there: the versions and the settings it passed, and once training has finished,
`wall_s`, this script's seconds from its start to the end of training (what the side-by-side's `--omnisafe-run`
reads as the process's wall time of a finished run).
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

COMPAT_PATH = Path(__file__).resolve().parents[1] / "envs" / "safety_gym_compat.py"


def load_compat() -> ModuleType:
    """envs/safety_gym_compat.py, loaded by its path (this process has no cmdp-lab installed)."""
    spec = importlib.util.spec_from_file_location("safety_gym_compat", COMPAT_PATH)
    if spec is None or spec.loader is None:
        raise SystemExit(f"omnisafe_runner: cannot load {COMPAT_PATH}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def custom_cfgs(args: argparse.Namespace) -> dict[str, Any]:
    """The settings this comparison shares with cmdp-lab's run; OmniSafe's defaults for everything else."""
    cfgs: dict[str, Any] = {
        "seed": args.seed,
        "train_cfgs": {"total_steps": args.steps, "vector_env_nums": 1, "parallel": 1, "device": "cpu",
                       "torch_threads": 1},
        "algo_cfgs": {"steps_per_epoch": args.steps_per_epoch},
        "logger_cfgs": {"log_dir": str(Path(args.log_dir).resolve()), "use_wandb": False},
    }
    # OmniSafe keeps the limit in `lagrange_cfgs` for its Lagrangian algorithms and in `algo_cfgs` for CPO
    cfgs.setdefault(args.cost_limit_section, {})["cost_limit"] = args.cost_limit
    return cfgs


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", required=True, help="OmniSafe's algorithm name, e.g. PPOLag, CUP, CPO")
    p.add_argument("--env", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--steps-per-epoch", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--cost-limit", type=float, required=True)
    p.add_argument("--cost-limit-section", required=True, choices=["lagrange_cfgs", "algo_cfgs"],
                   help="the config section that holds this algorithm's cost_limit")
    p.add_argument("--log-dir", required=True)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # OmniSafe sets train_cfgs.torch_threads again when the agent is built
    load_compat().import_patched()
    import omnisafe

    cfgs = custom_cfgs(args)
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    agent = omnisafe.Agent(args.algo, args.env, custom_cfgs=copy.deepcopy(cfgs))  # it edits what it is given
    log_dir = Path(agent.agent.logger.log_dir)
    record = {"omnisafe": omnisafe.__version__, "torch": torch.__version__, "python": sys.version.split()[0],
              "algo": args.algo, "env": args.env, "custom_cfgs": cfgs, "cores": sorted(os.sched_getaffinity(0))}
    (log_dir / "runner.json").write_text(json.dumps(record, indent=2) + "\n")
    ep_ret, ep_cost, ep_len = agent.learn()
    record["wall_s"] = time.perf_counter() - started
    (log_dir / "runner.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"omnisafe_runner: finished {args.algo} on {args.env}: return {ep_ret:.2f}, cost {ep_cost:.2f}, "
          f"length {ep_len:.1f}; log folder {log_dir}", flush=True)


if __name__ == "__main__":
    main()
