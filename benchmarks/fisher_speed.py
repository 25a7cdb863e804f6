"""Fisher-product speed: the trust region's two Fisher-vector products (cmdp/fisher.py) side by side, in one process.

    python -m cmdp.benchmarks.fisher_speed [--algo cpo] [--env SafetyHopperVelocity-v1] [--steps 20000]
        [--repeats 20] [--out FILE.json]

One epoch of `--steps` environment steps (one copy) is collected with the algorithm's defaults. Then, for each of
`fisher_product`'s methods in turn (`jacobian`, `double_backward`), from the same weights:

- the solver's own `fisher(batch)`: its setup (a forward pass and, for the double backward, the KL's gradient with
  its graph), then `--repeats` products with random vectors, each timed;
- the solver's whole `policy_step` on that batch (every product of its conjugate gradients, the line search, and
  the rest), `--repeats` times from the same weights.

The methods take turns at each repeat, and medians are reported with the ratio double_backward / jacobian: how much
faster the default makes a product and a trust-region step.

Timings, not a test: run it on an idle machine, pinned to one core (`taskset -c 1`, `torch_threads` is 1).
"""
from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cmdp  # noqa: F401  (first: it imports gymnasium quietly)
import numpy as np
import torch
from cmdp.cli import OneLineParser
from cmdp.errors import ConfigError
from cmdp.fisher import FISHER_PRODUCTS
from cmdp.optim import trainable_parameters
from cmdp.benchmarks.update_speed import collected_epoch, solver_for
from cmdp.registry import get_algorithm
from cmdp.trust_region import TrustRegionSolver


def measure(algo: str, env: str, steps: int, repeats: int, seed: int = 0) -> dict[str, Any]:
    """Median milliseconds per product and per setup, and seconds per policy step, for each method."""
    if repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {repeats}")
    if not issubclass(get_algorithm(algo), TrustRegionSolver):
        raise ConfigError(f"algorithm '{algo}' takes no trust-region step (the trust-region solvers only: cpo, "
                          "trpo_lag, pcpo, ...)")
    cfg, trainer, batch = collected_epoch(algo, env, steps, seed)
    try:
        assert isinstance(trainer.solver, TrustRegionSolver)
        episodes = batch.episodes.costs
        mean_costs = episodes.mean(0) if len(episodes) else np.zeros(trainer.spec.num_costs)
        weights = {k: v.clone() for k, v in trainer.agent.state_dict().items()}
        n = sum(p.numel() for p in trainable_parameters(trainer.agent.actor))
        vectors = torch.randn(repeats, n, generator=torch.Generator().manual_seed(seed))
        times: dict[str, dict[str, list[float]]] = {m: {"setup": [], "product": [], "step": []}
                                                    for m in FISHER_PRODUCTS}
        for i in range(repeats):
            for method in FISHER_PRODUCTS:
                trainer.agent.load_state_dict(weights)
                method_cfg = dataclasses.replace(cfg, fisher_product=method)
                solver = solver_for(trainer, method_cfg, trainer.updater)
                start = time.perf_counter()
                fvp = solver.fisher(batch)
                times[method]["setup"].append(time.perf_counter() - start)
                start = time.perf_counter()
                fvp(vectors[i])
                times[method]["product"].append(time.perf_counter() - start)
                start = time.perf_counter()
                solver.policy_step(batch, mean_costs)
                times[method]["step"].append(time.perf_counter() - start)
    finally:
        trainer.close()
    result = {method: {"setup_ms": 1e3 * statistics.median(t["setup"]),
                       "product_ms": 1e3 * statistics.median(t["product"]),
                       "policy_step_s": statistics.median(t["step"])} for method, t in times.items()}
    return {"algo": algo, "env": env, "samples": batch.size, "parameters": n, "repeats": repeats, **result}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m cmdp.benchmarks.fisher_speed", description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="cpo", help="a trust-region solver (default cpo)")
    p.add_argument("--env", default="SafetyHopperVelocity-v1")
    p.add_argument("--steps", type=int, default=20_000, help="samples in the batch (default: OmniSafe's epoch)")
    p.add_argument("--repeats", type=int, default=20, help="products and policy steps per method; medians reported")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    try:
        result = measure(args.algo, args.env, args.steps, args.repeats)
    except ConfigError as exc:
        print(f"fisher_speed: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.algo} on {args.env}, {result['samples']:,} samples, {result['parameters']:,} actor parameters:")
    for method in FISHER_PRODUCTS:
        r = result[method]
        print(f"  {method:>15}: {r['product_ms']:7.2f} ms per product, setup {r['setup_ms']:6.2f} ms, "
              f"policy step {r['policy_step_s']:.3f} s")
    slow, fast = result["double_backward"], result["jacobian"]
    print(f"  double_backward / jacobian: {slow['product_ms'] / fast['product_ms']:.2f}x per product, "
          f"{slow['policy_step_s'] / fast['policy_step_s']:.2f}x per policy step", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
