"""`cmdp text-demo`: Safe RLHF end to end on a CPU in minutes, from nothing, measured.

1. Build the embedded default (`envs.text.make_default`): data, tokenizer, SFT policy, reward and cost models
   (reused when OUT/default already holds a finished build).
2. From the same SFT policy, train each algorithm (default: `ppo`, reward only, and `ppo_lag`) with
   `cmdp train`'s machinery: every run is an ordinary run folder under OUT/runs/.
3. Evaluate the SFT policy and every trained policy on the held-out prompts (never trained on): mean reward,
   mean cost, share judged safe, win rate against the SFT policy; and the training curves' last epochs.
4. Write OUT/report.md and OUT/results.json, including the checks the demo exists to show, computed from the
   numbers (never asserted): PPO raises reward and cost; PPO-Lagrangian raises reward while its mean cost stays
   at or below the limit.

The runs use `DEMO_CONFIG` below; the same keys work with real models and data given by path
(`cmdp train --env text --config FILE.yaml`).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cmdp.spec import ConfigError

# Hyperparameters of the demo's runs (the text family's defaults cover the rest: undiscounted GAE with
# lambda 0.95, clip 0.2, SGD multiplier from 1.0, cost limit 0 = safe-rlhf's threshold).
# lr_decay: the policy's learning rate falls linearly to 0 while the multiplier keeps its step size, so the last
# epochs move the policy little and the multiplier catches up with it (a fast multiplier with a slow policy is what
# makes the last iterate settle, as on the exact CMDPs). Measured on seed 0 with a constant learning rate instead:
# the training cost stayed within the limit but the final policy ended on the upswing of the oscillation (held-out
# cost 1.50 > 0, multiplier 0.04); with the decay: held-out cost -0.72, multiplier 0 (2026-12-01).
DEMO_CONFIG: dict[str, Any] = {
    "total_steps": 1280, "steps_per_epoch": 64, "num_envs": 32,
    "actor_lr": 1e-4, "critic_lr": 1e-4, "lr_decay": True, "critic_lr_decay": True, "cost_advantage": "standardize",
    "update_iters": 4, "batch_size": 16,
    "lagrangian_lr": 0.2,
}
DEMO_ENV: dict[str, Any] = {"max_new_tokens": 64, "kl_coeff": 0.02}
QUICK_CONFIG: dict[str, Any] = {"total_steps": 32, "steps_per_epoch": 16, "num_envs": 8, "update_iters": 1,
                                "batch_size": 8}
QUICK_ENV: dict[str, Any] = {"max_new_tokens": 16}
# The training summary averages the last half of the epochs: one epoch of 64 answers is noisy, and a Lagrangian
# method's cost oscillates around the limit (the multiplier lags the policy), so a single epoch or the final
# policy alone says little about whether training keeps the cost within the limit.
LAST_FRACTION = 0.5


def demo_run_config(default: Path, algo: str, seed: int, quick: bool, device: str | None) -> dict[str, Any]:
    """The config of one demo run on the default built in `default`."""
    values: dict[str, Any] = {"algo": algo, "env": "text", "seed": seed, **(QUICK_CONFIG if quick else DEMO_CONFIG)}
    if algo != "ppo_lag":
        values.pop("lagrangian_lr", None)
    if device:
        values["device"] = device
    data = default / "data"
    values["env_kwargs"] = {"policy": str(default / "sft"), "reward_model": str(default / "reward"),
                            "cost_models": str(default / "cost"), "prompts": str(data / "prompts_train.jsonl"),
                            "eval_prompts": str(data / "prompts_test.jsonl"), **(QUICK_ENV if quick else DEMO_ENV)}
    return values


def _default_ready(path: Path) -> bool:
    return (path / "manifest.json").is_file() and (path / "data" / "prompts_test.jsonl").is_file()


def _last_epochs(run_dir: Path, fraction: float) -> dict[str, float]:
    """Mean reward and cost of the first epoch and of the last `fraction` of the epochs of a run's progress.csv."""
    import csv

    with open(run_dir / "progress.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["ep_return"] not in ("", "nan")]
    last = rows[-max(1, math.ceil(fraction * len(rows))):]
    return {"train_reward_first": float(rows[0]["ep_return"]), "train_cost_first": float(rows[0]["ep_cost"]),
            "train_reward_last": float(np.mean([float(r["ep_return"]) for r in last])),
            "train_cost_last": float(np.mean([float(r["ep_cost"]) for r in last])), "epochs_averaged": len(last)}


def run_demo(out: str | Path, algos: Sequence[str] = ("ppo", "ppo_lag"), seed: int = 0, quick: bool = False,
             device: str | None = None, eval_samples: int = 4, progress: bool = True) -> dict[str, Any]:
    """Build (or reuse) the default, train each algorithm, evaluate, write the report; return the results."""
    from cmdp.envs.text.make_default import DefaultConfig, build_default

    out = Path(out)
    default = out / "default"
    started = time.perf_counter()
    if not _default_ready(default):
        if default.exists() and any(default.iterdir()):
            raise ConfigError(f"{default} holds an unfinished build; remove it and run again")
        print(f"[1/3] building the embedded default in {default} (data, tokenizer, SFT, reward and cost models)")
        build_default(default, DefaultConfig.quick(seed) if quick else DefaultConfig(seed=seed),
                      device="auto" if device is None else device)
    else:
        print(f"[1/3] reusing the embedded default in {default}")
    t_build = time.perf_counter() - started

    from cmdp.trainer import Trainer, new_run, resolve_config

    runs: dict[str, Path] = {}
    for algo in algos:
        cfg, _ = resolve_config(demo_run_config(default, algo, seed, quick, device))
        run_dir = out / "runs" / algo
        if (run_dir / "summary.json").is_file() and json.loads((run_dir / "summary.json").read_text()).get("finished"):
            print(f"[2/3] {algo}: reusing the finished run {run_dir}")
        else:
            print(f"[2/3] {algo}: training {cfg.total_steps} responses from the SFT policy -> {run_dir}")
            if run_dir.exists() and any(run_dir.iterdir()):
                Trainer(cfg).train(run_dir, resume=True, progress=progress)
            else:
                trainer, run_dir = new_run(cfg, str(run_dir))
                trainer.train(run_dir, progress=progress)
        runs[algo] = run_dir

    print(f"[3/3] evaluating the SFT policy and {', '.join(algos)} on the held-out prompts")
    results = evaluate_demo(default, runs, seed, quick, device, eval_samples)
    results["seconds"] = {"build": round(t_build, 1), "total": round(time.perf_counter() - started, 1)}
    results["checks"] = demo_checks(results)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "report.md").write_text(format_report(results))
    print(format_report(results, brief=True))
    print(f"report: {out / 'report.md'}")
    return results


def evaluate_demo(default: Path, runs: dict[str, Path], seed: int, quick: bool, device: str | None,
                  samples_per_prompt: int) -> dict[str, Any]:
    """Held-out evaluation of the SFT policy and every run's final policy, by the run's reward and cost models."""
    import torch

    from cmdp.checkpoint import load_checkpoint
    from cmdp.trainer import CHECKPOINT, Trainer, resolve_config
    from cmdp.envs.text.data import load_prompts
    from cmdp.envs.text.evaluation import _answer_and_score, is_safe, win_rate

    first = next(iter(runs))
    cfg, _ = resolve_config(demo_run_config(default, first, seed, quick, device))
    trainer = Trainer(cfg)
    run = trainer.run
    prompts = load_prompts(default / "data" / "prompts_test.jsonl") * samples_per_prompt
    limit = float(trainer.spec.cost_limits[0])

    def summarise(result: dict[str, Any], reference: np.ndarray | None) -> dict[str, Any]:
        costs = result["costs"][:, 0]
        # half-width of a normal 95% confidence interval of the mean cost over the sampled answers
        ci95 = 1.96 * float(costs.std(ddof=1)) / math.sqrt(len(costs)) if len(costs) > 1 else float("nan")
        row = {"reward": float(result["reward"].mean()), "cost": float(costs.mean()), "cost_ci95": ci95,
               "safe_share": float(is_safe(costs).mean()), "answers": len(costs)}
        if reference is not None:
            row["win_rate_vs_sft"] = win_rate(result["reward"], reference)
        return row

    autocast = run.agent.actor.autocast
    sft = _answer_and_score(run.agent.actor.model, run, prompts, seed + 1, greedy=False, autocast=autocast)
    table: dict[str, Any] = {"sft": summarise(sft, None)}
    examples: dict[str, list[dict[str, Any]]] = {}
    for algo, run_dir in runs.items():
        state = load_checkpoint(run_dir / CHECKPOINT)
        run.agent.load_state_dict(state["agent"])
        with torch.no_grad():
            result = _answer_and_score(run.agent.actor.model, run, prompts, seed + 1, greedy=False, autocast=autocast)
        table[algo] = {**summarise(result, sft["reward"]), **_last_epochs(run_dir, LAST_FRACTION),
                       "multiplier": json.loads((run_dir / "summary.json").read_text())["multipliers"].get("cost"),
                       "run_dir": str(run_dir)}
        examples[algo] = [{"prompt": prompts[i], "answer": result["texts"][i], "reward": float(result["reward"][i]),
                           "cost": float(result["costs"][i, 0]), "sft_answer": sft["texts"][i]}
                          for i in _example_indices(default, prompts)]
    trainer.close()
    return {"limit": limit, "held_out_prompts": len(prompts) // samples_per_prompt,
            "samples_per_prompt": samples_per_prompt, "table": table, "examples": examples, "quick": quick,
            "config": DEMO_CONFIG if not quick else QUICK_CONFIG, "env": DEMO_ENV if not quick else QUICK_ENV}


def _example_indices(default: Path, prompts: list[str]) -> list[int]:
    """Two harmful and one helpful held-out prompt, for the report's samples."""
    rows = [json.loads(line) for line in (default / "data" / "prompts_test.jsonl").read_text().splitlines() if line]
    harmful = [i for i, r in enumerate(rows) if r.get("is_harmful_prompt")][:2]
    helpful = [i for i, r in enumerate(rows) if not r.get("is_harmful_prompt")][:1]
    return harmful + helpful


def demo_checks(results: dict[str, Any]) -> dict[str, Any]:
    """What the demo is meant to show, each as a measured yes/no: rewards from the held-out evaluation; costs both
    over the last half of training (what "keeping the cost within the limit" means for an iterative method) and for
    the final policy on the held-out prompts.

    A Lagrangian method converges to a policy whose mean cost *equals* a binding limit, so the final policy's
    measured cost lies on either side of the limit by sampling noise alone; its check therefore asks whether the cost
    is above the limit by more than its 95% confidence interval (a measurable violation). The table shows the cost
    with that interval, so the strict comparison can be read off too."""
    table, limit = results["table"], results["limit"]
    sft = table["sft"]
    checks: dict[str, Any] = {}
    if "ppo" in table:
        ppo = table["ppo"]
        checks["ppo_raises_reward"] = ppo["reward"] > sft["reward"]
        checks["ppo_raises_cost"] = ppo["cost"] > sft["cost"]
    if "ppo_lag" in table:
        lag = table["ppo_lag"]
        checks["ppo_lag_raises_reward"] = lag["reward"] > sft["reward"]
        checks["ppo_lag_training_cost_within_limit"] = lag["train_cost_last"] <= limit
        checks["ppo_lag_final_policy_cost_not_above_limit_beyond_95ci"] = lag["cost"] - lag["cost_ci95"] <= limit
    checks["all"] = all(checks.values())
    return checks


def format_report(results: dict[str, Any], brief: bool = False) -> str:
    """The markdown report (or its table and checks only, for the terminal)."""
    table, limit = results["table"], results["limit"]

    def num(v: Any) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    lines = []
    if not brief:
        lines += ["# Safe RLHF on the embedded default", "",
                  "The SFT policy, then PPO (reward only) and PPO-Lagrangian (reward, subject to mean cost <= "
                  f"{limit:g}) trained from it; all scored by the same reward model (helpfulness) and cost model "
                  "(harmfulness; cost > 0 means unsafe).", "",
                  f"Held-out evaluation: {results['held_out_prompts']} prompts never trained on, "
                  f"{results['samples_per_prompt']} sampled answers each, from the final policies (cost: mean ± the "
                  f"half-width of its 95% confidence interval). Training: the first epoch, and the mean over the "
                  f"last {LAST_FRACTION:.0%} of the epochs.", ""]
    lines += ["| policy | reward | cost | safe share | win rate vs SFT | train reward (first -> last) | "
              "train cost (first -> last) | lambda |", "|---|---|---|---|---|---|---|---|"]
    for name, row in table.items():
        train_r = f"{num(row.get('train_reward_first'))} -> {num(row.get('train_reward_last'))}" if name != "sft" else ""
        train_c = f"{num(row.get('train_cost_first'))} -> {num(row.get('train_cost_last'))}" if name != "sft" else ""
        lines.append(f"| {name} | {num(row['reward'])} | {num(row['cost'])} ± {num(row['cost_ci95'])} | "
                     f"{num(row['safe_share'])} | "
                     f"{num(row.get('win_rate_vs_sft'))} | {train_r} | {train_c} | {num(row.get('multiplier'))} |")
    lines += ["", "Checks (computed from the numbers above):", ""]
    for name, ok in results["checks"].items():
        if name != "all":
            lines.append(f"- {name.replace('_', ' ')}: {'yes' if ok else 'NO'}")
    if brief:
        return "\n".join(lines)
    lines += ["", f"Cost limit {limit:g}. Time: {results['seconds']['total']:.0f} s in all "
                  f"({results['seconds']['build']:.0f} s building the default).", "",
              "## Configuration", "", "```json", json.dumps({"config": results["config"], "env_kwargs": results["env"]},
                                                            indent=2), "```", "", "## Samples (held-out prompts)", ""]
    for algo, examples in results["examples"].items():
        lines += [f"### {algo}", ""]
        for ex in examples:
            lines += [f"- **prompt**: {ex['prompt']}", f"  - **{algo}** (reward {ex['reward']:.2f}, cost "
                                                       f"{ex['cost']:.2f}): {ex['answer']}",
                      f"  - **sft**: {ex['sft_answer']}"]
        lines.append("")
    return "\n".join(lines) + "\n"
