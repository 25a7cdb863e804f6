"""`cmdp text-demo`: Safe RLHF end to end on a CPU, from nothing, on one or several seeds, measured.

For each seed s (0..N-1), in OUT/seed<s>/:

1. Build the embedded default with seed s (`envs.text.make_default`): data, tokenizer, SFT policy, reward and cost
   models, in `default/` (reused when it holds a finished build). Every seed is its own world: its own corpus,
   tokenizer and models, so a result that holds on every seed does not hang on one build.
2. Set the cost limit from the SFT policy's measured cost (`limit.json`): the mean cost score of its answers to the
   training prompts, minus `LIMIT_MARGIN` standard deviations of that score. The SFT policy thus starts above the
   limit, as Alpaca-7B starts above safe-rlhf's threshold in the Safe RLHF paper, and the constraint binds from the
   first epoch (see `limit_from_sft`).
3. Train every algorithm from the SFT policy through `cmdp benchmark`'s machinery (one run per core, a status line,
   resume): the unconstrained `ppo`, `grpo`, `rloo` and the constrained `ppo_lag`, `grpo_lag`, `rloo_lag`. Every run
   is an ordinary run folder under `runs/text/<algo>/seed<s>/`.
4. Evaluate the SFT policy and every final policy on the held-out prompts (never trained on, `EVAL_SAMPLES` answers
   each): mean reward, mean cost with its 95% interval over prompts, the share of answers judged safe (cost score
   <= 0), the win rate against SFT, and the share of each kind of answer (`corpus.kind_shares`: a compliance, a
   redirect, a refusal, ... read from the corpus's templates). The seed's table and checks are printed and saved in
   `results.json` as soon as it is done.

Then OUT/report.md, OUT/results.json and OUT/text-demo.png (reward against cost per policy and seed) hold every seed,
with the checks the demo exists to show, computed from the numbers (never asserted), on each seed:
- every constrained solver ends within the limit up to the 95% interval of its held-out cost, with a reward above
  the SFT policy's and a safe share at least the SFT policy's (both helpfulness and harmlessness improve, the
  paper's claim);
- every unconstrained solver breaks the limit (beyond its 95% interval) and ends less safe than the SFT policy.

The runs' settings are `DEMO_CONFIG` and `DEMO_ENV` below; the same keys work with real models and data given by
path (`cmdp train --env text --config FILE.yaml`).
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cmdp.registry import is_constrained
from cmdp.config import check_device_available, check_device_name, make_output_folder
from cmdp.resolve import check_algorithm_fits
from cmdp.spec import ConfigError

#: The demo's algorithms; those registered with `constrained=False` (ppo, grpo, rloo) are its unconstrained baselines.
DEMO_ALGOS: tuple[str, ...] = ("ppo", "ppo_lag", "grpo", "grpo_lag", "rloo", "rloo_lag")

# Hyperparameters of the demo's runs (the text family's defaults cover the rest: undiscounted GAE with lambda 0.95,
# clip 0.2, KL penalty in the reward, SGD multiplier from 1.0; the group solvers answer every prompt 4 times).
# lr_decay: the policy's learning rate falls linearly to 0 while the multiplier keeps its step size, so the last
# epochs move the policy little and the multiplier catches up with it (a fast multiplier with a slow policy is what
# makes the last iterate settle, as on the exact CMDPs). Measured on seed 0 with a constant learning rate instead
# (2026-12-01, limit 0): the training cost stayed within the limit but the final policy ended on the upswing of the
# oscillation (held-out cost 1.50 > 0, multiplier 0.04); with the decay: held-out cost -0.72.
DEMO_CONFIG: dict[str, Any] = {
    "steps_per_epoch": 64, "num_envs": 32, "torch_threads": 1,
    "actor_lr": 1e-4, "critic_lr": 1e-4, "lr_decay": True, "critic_lr_decay": True,
    "update_iters": 4, "batch_size": 16,
}
DEMO_STEPS = 1280  # responses per run
DEMO_ENV: dict[str, Any] = {"max_new_tokens": 64, "kl_coeff": 0.02}
# The constrained solvers' multipliers start at 0 and move by SGD with lr 0.1 (the text family's rate; ppo_lag's is
# 0.3, see below). Safe-rlhf's start of 1 sits far above this world's equilibrium multiplier: with the SFT policy
# above the limit, measured on seed 0 (ppo_lag, start 1, lr 0.2, 2026-12-02, on the default as built before its
# relabelling that day) the policy fled into refusals within 4 epochs (training cost -10.2 against a limit of -5.4,
# reward -3.1) and ended below the SFT policy's reward.
# The group solvers' advantages are centred per group, then treated over the batch as ppo_lag's are (group_scale:
# false, standardize_advantages: true): the reward's standardised, the cost's centred (`cost_advantage: center`).
# GRPO's per-group std scaling puts every group's reward and cost advantages on the same +-1 scale whatever their
# sizes, so one multiplier cannot trade a large cost saving against a small reward loss: at lambda < 1 a group
# prefers complying with a harmful request, at lambda > 1 it prefers refusing a harmless one. Measured on seed 0
# with the scaling (multiplier from 1, lr 0.2, on two builds of the default as it was before 2026-12-02, whose
# cost model ranked refusals safest): grpo_lag ended over-safe, held-out cost 1.9 and 2.6 below the limit, reward 0.9
# and 1.8 below the SFT policy's (docs/text.md). grpo_lag keeps GRPO's other mark, the KL to the reference in the
# loss (DeepSeekMath's beta 0.04), besides the KL in the reward every text solver has. The leave-one-out and
# group-mean baselines differ by the factor n / (n - 1), which the reward's standardisation removes and the
# multiplier absorbs for the cost, so that KL term is what tells grpo_lag and rloo_lag apart here.
_LAGRANGE = {"lagrangian_init": 0.0, "lagrangian_lr": 0.1}
_GROUP = {"group_scale": False, "standardize_advantages": True}
# ppo_lag's multiplier moves 3x faster. A gradient-ascent multiplier integrates the cost's error and the policy
# answers the multiplier, so the pair circles the constrained optimum without damping (period 10-12 epochs here) and
# the run ends wherever the circle is. A faster multiplier catches the policy sooner once it crosses the limit. At lr
# 0.1 ppo_lag's last iterate ended above the limit on 2 of seeds 0-4 (held-out cost minus its 95% interval 0.45
# and 0.10 above it, seeds 2 and 3); at 0.3 on none, its held-out cost 0.27 below the limit on average against 0.46
# above, though seeds 2 and 3 still end near the limit (2026-12-03, docs/text.md, "ppo_lag's multiplier rate").
# The group solvers keep 0.1: they ended within the limit with it on every demo seed.
DEMO_ALGO_CONFIG: dict[str, dict[str, Any]] = {
    "ppo_lag": {**_LAGRANGE, "lagrangian_lr": 0.3},
    "grpo_lag": {**_LAGRANGE, **_GROUP, "kl_loss_coeff": 0.04},
    "rloo_lag": {**_LAGRANGE, **_GROUP},
}
QUICK_CONFIG: dict[str, Any] = {"steps_per_epoch": 16, "num_envs": 8, "torch_threads": 1, "update_iters": 1,
                                "batch_size": 8}
QUICK_STEPS = 32
QUICK_ENV: dict[str, Any] = {"max_new_tokens": 16}

#: How far below the SFT policy's mean cost the limit is set, in standard deviations of its per-answer cost score.
# Why 0.25: a safe answer scores about -7 and a harmful compliance about +7 on this default, so the limit asks for a
# cut in compliance, and the safe-share check must see that cut through the noise of 288 held-out answers. Seed 0's
# build (2026-12-02): the SFT policy's training-prompt cost -4.40 (std 5.45) means about 37% of harmful requests
# complied with. At 0.1 std the limit allows 30% (a safe share only about 4 points above the SFT policy's, near its
# noise); at 0.25, 19% (about 9 points), still well above the 0% a policy can reach while it answers everything.
LIMIT_MARGIN = 0.25
#: Answers per training prompt sampled to measure the SFT policy's cost.
LIMIT_SAMPLES = 2
# The training summary averages the last half of the epochs: one epoch of 64 answers is noisy, and a Lagrangian
# method's cost oscillates around the limit (the multiplier lags the policy).
LAST_FRACTION = 0.5
#: Sampled answers per held-out prompt in the evaluation. Why 8: with 4 (288 answers) the SFT policy's mean reward on
# one seed's build ranged from 0.78 to 1.50 over five sampling seeds (2026-12-02), as wide as the gains the checks
# look for; the interval of the cost is over the prompts' means either way.
EVAL_SAMPLES = 8
FIGURE = "text-demo.png"


# ------------------------------------------------------------------------------------------- one seed's setup

def seed_dir(out: str | Path, seed: int) -> Path:
    """Where seed `seed` of a demo folder keeps its build, limit and runs."""
    return Path(out) / f"seed{seed}"


def env_kwargs(default: Path, quick: bool) -> dict[str, Any]:
    """The text environment's settings for the default built in `default`."""
    data = default / "data"
    return {"policy": str(default / "sft"), "reward_model": str(default / "reward"),
            "cost_models": str(default / "cost"), "prompts": str(data / "prompts_train.jsonl"),
            "eval_prompts": str(data / "prompts_test.jsonl"), **(QUICK_ENV if quick else DEMO_ENV)}


def shared_config(quick: bool, device: str | None, limit: float | None = None) -> dict[str, Any]:
    """The config keys every demo run of a seed shares (besides its algorithm's own, `DEMO_ALGO_CONFIG`)."""
    values: dict[str, Any] = dict(QUICK_CONFIG if quick else DEMO_CONFIG)
    if limit is not None:
        values["cost_limits"] = limit
    if device:
        values["device"] = device
    return values


def run_config(default: Path, algo: str, seed: int, quick: bool, device: str | None,
               limit: float | None = None) -> dict[str, Any]:
    """The config of one demo run (as `cmdp train` takes it) on the default built in `default`."""
    return {"algo": algo, "env": "text", "seed": seed, "total_steps": QUICK_STEPS if quick else DEMO_STEPS,
            **shared_config(quick, device, limit), **DEMO_ALGO_CONFIG.get(algo, {}),
            "env_kwargs": env_kwargs(default, quick)}


def _default_ready(path: Path) -> bool:
    return (path / "manifest.json").is_file() and (path / "data" / "prompts_test.jsonl").is_file()


def build_seed_default(default: Path, seed: int, quick: bool, device: str | None) -> float:
    """Build the default for `seed` in `default` unless a finished build is there; the seconds it took."""
    from cmdp.envs.text.make_default import DefaultConfig, build_default

    if _default_ready(default):
        print(f"seed {seed}: reusing the embedded default in {default}")
        return 0.0
    if default.exists() and any(default.iterdir()):
        raise ConfigError(f"{default} holds an unfinished build; remove it and run again")
    print(f"seed {seed}: building the embedded default in {default} (data, tokenizer, SFT, reward and cost models)")
    started = time.perf_counter()
    try:
        build_default(default, DefaultConfig.quick(seed) if quick else DefaultConfig(seed=seed),
                      device="auto" if device is None else device)
    except BaseException:  # Ctrl-C or a failure: a rerun builds afresh instead of refusing the half-built folder
        shutil.rmtree(default, ignore_errors=True)
        raise
    return time.perf_counter() - started


class Judge:
    """The text run the demo scores answers with: the default's tokenizer, reward and cost models, and a policy
    model whose weights are swapped in (the SFT policy's, or a trained run's)."""

    def __init__(self, default: Path, seed: int, quick: bool, device: str | None) -> None:
        from cmdp.trainer import Trainer, resolve_config

        # grpo: a config whose run loads no value models (the judge needs the policy and the scorers only)
        cfg, _ = resolve_config(run_config(default, "grpo", seed, quick, device))
        self.trainer = Trainer(cfg)
        self.run = self.trainer.run
        self.model = self.run.agent.actor.model
        self.sft_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_sft(self) -> None:
        self.model.load_state_dict(self.sft_weights)

    def load_run(self, run_dir: Path) -> None:
        """The final policy of a demo run (its last checkpoint's actor)."""
        from cmdp.checkpoint import load_checkpoint
        from cmdp.trainer import CHECKPOINT

        prefix = "actor.model."  # TextAgent(actor=TextActor(model), critic=...): the policy's weights
        state = load_checkpoint(run_dir / CHECKPOINT)
        self.model.load_state_dict({k[len(prefix):]: v for k, v in state["agent"].items() if k.startswith(prefix)})

    def answer(self, prompts: list[str], seed: int) -> dict[str, Any]:
        """Sampled answers to `prompts` by the loaded policy, with their reward and cost scores."""
        import torch

        from cmdp.envs.text.evaluation import _answer_and_score

        with torch.no_grad():
            return _answer_and_score(self.model, self.run, prompts, seed, greedy=False,
                                     autocast=self.run.agent.actor.autocast)

    def close(self) -> None:
        self.trainer.close()


def limit_from_sft(sft_costs: np.ndarray, margin: float = LIMIT_MARGIN) -> dict[str, Any]:
    """The demo's cost limit from the SFT policy's per-answer cost scores on the training prompts.

    The limit is their mean minus `margin` standard deviations. Why: with safe-rlhf's threshold of 0, the SFT policy
    of our embedded default starts well inside the limit (mean cost about -4), so the constraint never binds and a
    Lagrangian method simply trades safety for reward. Safe RLHF's SFT model (Alpaca-7B) starts *above* its
    threshold, and the paper's effect (more helpful and more harmless at once) is what a binding constraint buys.
    Setting the limit from the measured SFT cost makes it bind on every build, whatever the cost model's scale and
    offset on that seed and machine (Moskovitz et al. 2023 likewise set constrained-RLHF thresholds from measured
    reward-model values). The margin is in the score's own spread, so it means the same on every build.
    """
    costs = np.asarray(sft_costs, dtype=np.float64)
    mean, std = float(costs.mean()), float(costs.std(ddof=1))
    # rounded: the limit is written into every run's config and printed beside every cost
    return {"limit": round(mean - margin * std, 3), "sft_train_cost": mean, "sft_train_cost_std": std,
            "sft_train_cost_ci95": 1.96 * std / math.sqrt(len(costs)), "answers": len(costs), "margin_std": margin}


def measure_limit(judge: Judge, default: Path, seed: int, quick: bool) -> dict[str, Any]:
    """Sample the SFT policy's answers to the training prompts and set the limit from their cost scores."""
    from cmdp.envs.text.data import load_prompts

    prompts = load_prompts(default / "data" / "prompts_train.jsonl") * (1 if quick else LIMIT_SAMPLES)
    judge.load_sft()
    result = judge.answer(prompts, seed=10_000 + seed)
    return limit_from_sft(result["costs"][:, 0])


# ------------------------------------------------------------------------------------------- training

def seed_suite(default: Path, algos: Sequence[str], seed: int, limit: float, quick: bool, device: str | None) -> Any:
    """The benchmark suite of one seed: every algorithm on the text environment of `default`, at `limit`."""
    from cmdp.benchmarks.suite import Suite

    return Suite(name=f"text-demo-seed{seed}", path=Path(__file__), algorithms=tuple(algos), environments=("text",),
                 seeds=(seed,), total_steps=QUICK_STEPS if quick else DEMO_STEPS,
                 config=shared_config(quick, device, limit),
                 env_config={"text": {"env_kwargs": env_kwargs(default, quick)}},
                 algo_config={a: DEMO_ALGO_CONFIG[a] for a in algos if a in DEMO_ALGO_CONFIG},
                 description=f"cmdp text-demo, seed {seed}: {', '.join(algos)} from the SFT policy, limit {limit:.3f}")


def _last_epochs(run_dir: Path, fraction: float) -> dict[str, float]:
    """Mean reward and cost of the first epoch and of the last `fraction` of the epochs of a run's progress.csv."""
    import csv

    with open(run_dir / "progress.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["ep_return"] not in ("", "nan")]
    last = rows[-max(1, math.ceil(fraction * len(rows))):]
    return {"train_reward_first": float(rows[0]["ep_return"]), "train_cost_first": float(rows[0]["ep_cost"]),
            "train_reward_last": float(np.mean([float(r["ep_return"]) for r in last])),
            "train_cost_last": float(np.mean([float(r["ep_cost"]) for r in last])), "epochs_averaged": len(last)}


# ------------------------------------------------------------------------------------------- evaluation

def cost_interval(costs: np.ndarray, prompts: int) -> float:
    """Half-width of the normal 95% interval of the mean cost of answers to `prompts` prompts, answer i being to
    prompt i % prompts. The answers to one prompt are not independent (a harmful prompt draws costlier answers), so
    the interval is over the prompts' mean costs: what varies when another set of prompts is drawn."""
    per_prompt = np.asarray(costs, dtype=np.float64).reshape(-1, prompts).mean(axis=0)
    return 1.96 * float(per_prompt.std(ddof=1)) / math.sqrt(prompts) if prompts > 1 else float("nan")


def summarise(result: dict[str, Any], reference: np.ndarray | None, prompts: int) -> dict[str, Any]:
    """Mean reward, mean cost with the half-width of its 95% interval over prompts (`cost_interval`), safe share
    (cost score <= 0) and the win rate against `reference` (the SFT policy's rewards on the same prompts)."""
    from cmdp.envs.text.evaluation import is_safe, win_rate

    costs = result["costs"][:, 0]
    ci95 = cost_interval(costs, prompts)
    row = {"reward": float(result["reward"].mean()), "cost": float(costs.mean()), "cost_ci95": ci95,
           "safe_share": float(is_safe(costs).mean()), "answers": len(costs)}
    if reference is not None:
        row["win_rate_vs_sft"] = win_rate(result["reward"], reference)
    return row


def evaluate_seed(judge: Judge, default: Path, runs: dict[str, Path], seed: int,
                  samples_per_prompt: int) -> dict[str, Any]:
    """Held-out evaluation of the SFT policy and every run's final policy, with the same prompts and random stream."""
    from cmdp.envs.text.corpus import kind_shares
    from cmdp.envs.text.data import load_prompts

    prompts = load_prompts(default / "data" / "prompts_test.jsonl") * samples_per_prompt
    flags = _harmful_flags(default)
    harmful = flags * samples_per_prompt
    shown = _example_indices(flags)
    judge.load_sft()
    sft = judge.answer(prompts, seed + 1)
    count = len(prompts) // samples_per_prompt
    table: dict[str, Any] = {"sft": {**summarise(sft, None, count),
                                     "kinds": kind_shares(prompts, harmful, sft["texts"])}}
    examples: dict[str, list[dict[str, Any]]] = {}
    for algo, run_dir in runs.items():
        judge.load_run(run_dir)
        result = judge.answer(prompts, seed + 1)
        summary = json.loads((run_dir / "summary.json").read_text())
        table[algo] = {**summarise(result, sft["reward"], count), **_last_epochs(run_dir, LAST_FRACTION),
                       "kinds": kind_shares(prompts, harmful, result["texts"]),
                       "multiplier": summary["multipliers"].get("cost"), "constrained": is_constrained(algo),
                       "run_dir": str(run_dir)}
        examples[algo] = [{"prompt": prompts[i], "answer": result["texts"][i], "reward": float(result["reward"][i]),
                           "cost": float(result["costs"][i, 0]), "sft_answer": sft["texts"][i]}
                          for i in shown]
    return {"held_out_prompts": count, "samples_per_prompt": samples_per_prompt,
            "table": table, "examples": examples}


def _harmful_flags(default: Path) -> list[bool]:
    """Whether each held-out prompt of the default built in `default` is a harmful request."""
    rows = [json.loads(line) for line in (default / "data" / "prompts_test.jsonl").read_text().splitlines() if line]
    return [bool(r["is_harmful_prompt"]) for r in rows]


def _example_indices(flags: Sequence[bool]) -> list[int]:
    """Two harmful and one helpful held-out prompt (`flags`: whether each is harmful), for the report's samples."""
    return [i for i, h in enumerate(flags) if h][:2] + [i for i, h in enumerate(flags) if not h][:1]


def seed_checks(table: dict[str, Any], limit: float) -> dict[str, bool]:
    """What the demo is meant to show on one seed, each as a measured yes/no (held-out numbers).

    A Lagrangian method converges to a policy whose mean cost *equals* a binding limit, so the final policy's
    measured cost lies on either side of it by sampling noise alone: "within the limit" asks that the cost is not
    above the limit by more than its 95% interval, and "breaks the limit" that it is above by more than that."""
    sft = table["sft"]
    checks: dict[str, bool] = {}
    for algo, row in table.items():
        if algo == "sft":
            continue
        if row["constrained"]:
            checks[f"{algo} within the limit"] = row["cost"] - row["cost_ci95"] <= limit
            checks[f"{algo} reward above SFT"] = row["reward"] > sft["reward"]
            checks[f"{algo} safe share at least SFT"] = row["safe_share"] >= sft["safe_share"]
        else:
            checks[f"{algo} breaks the limit"] = row["cost"] - row["cost_ci95"] > limit
            checks[f"{algo} less safe than SFT"] = row["safe_share"] < sft["safe_share"]
    return checks


# ------------------------------------------------------------------------------------------- the demo

def run_demo(out: str | Path = "runs/text-demo", algos: Sequence[str] = DEMO_ALGOS, seeds: int = 1,
             quick: bool = False, device: str | None = None, workers: int | None = None,
             eval_samples: int = EVAL_SAMPLES, plots: bool = True) -> dict[str, Any]:
    """Build, set the limit, train, evaluate for seeds 0..seeds-1; write the report; return the results.

    Ctrl-C ends the process with status 130 (SystemExit) after one line that says how to go on; a rerun reuses
    what finished (an interrupted build is removed, not left half-written)."""
    from cmdp.benchmarks.report import check_matplotlib

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {workers}")
    if not algos:
        raise ConfigError("--algos: give at least one algorithm")
    twice = [algo for i, algo in enumerate(algos) if algo in algos[:i]]
    if twice:  # two workers would train the one run folder at once
        raise ConfigError(f"--algos: '{twice[0]}' is listed twice")
    if device is not None:  # before minutes of building: torch refuses a bad name only once the models are made
        check_device_name("--device", device)
        check_device_available("--device", device)
    for algo in algos:  # before minutes of building: an off-policy or transformation solver cannot train on text
        check_algorithm_fits(algo, "text")
    if plots:  # before minutes of building and training, not at the figure after them
        check_matplotlib("cmdp text-demo")
    out = Path(out)
    make_output_folder(out)
    flags = (f" --seeds {seeds}" if seeds != 1 else "") + (" --quick" if quick else "") + \
        (f" --algos {','.join(algos)}" if tuple(algos) != DEMO_ALGOS else "")
    try:
        return _run_seeds(out, algos, seeds, quick, device, workers, eval_samples, plots, flags)
    except KeyboardInterrupt:
        # one line and `cmdp train`'s status 130, not a traceback: the CLI's entry returns 0 for a finished demo,
        # so the interrupt ends the command here
        print(f"\ninterrupted; what finished is kept, rerun to continue: cmdp text-demo --out {out}{flags}",
              file=sys.stderr)
        raise SystemExit(130) from None


def _run_seeds(out: Path, algos: Sequence[str], seeds: int, quick: bool, device: str | None, workers: int | None,
               eval_samples: int, plots: bool, flags: str) -> dict[str, Any]:
    """`run_demo` once its inputs are checked and `out` exists; `flags` are those a rerun needs."""
    from cmdp.benchmarks.cells import cell_dir
    from cmdp.benchmarks.runner import run_suite

    started = time.perf_counter()
    per_seed: dict[str, Any] = {}
    build_seconds = 0.0
    for seed in range(seeds):
        where = seed_dir(out, seed)
        default = where / "default"
        build_seconds += build_seed_default(default, seed, quick, device)
        judge = Judge(default, seed, quick, device)
        try:
            limit_file = where / "limit.json"
            if limit_file.is_file():
                limit_info = json.loads(limit_file.read_text())
            else:
                limit_info = measure_limit(judge, default, seed, quick)
                limit_file.write_text(json.dumps(limit_info, indent=2) + "\n")
            limit = limit_info["limit"]
            print(f"seed {seed}: the SFT policy's mean cost on the training prompts is "
                  f"{limit_info['sft_train_cost']:.3f} (std {limit_info['sft_train_cost_std']:.3f}); cost limit "
                  f"{limit:.3f} = mean - {limit_info['margin_std']:g} std")
            suite = seed_suite(default, algos, seed, limit, quick, device)
            status = run_suite(suite, out=where / "runs", workers=workers,
                               rerun=f"cmdp text-demo --out {out}{flags}")
            if status == 130:  # interrupted: the suite has said so and how to go on
                raise SystemExit(130)
            if status != 0:
                raise ConfigError(f"seed {seed}: training did not finish (see {where / 'runs' / 'status.json'}); "
                                  f"rerun to resume: cmdp text-demo --out {out}{flags}")
            runs = {algo: cell_dir(where / "runs", "text", algo, seed) for algo in algos}
            print(f"seed {seed}: evaluating the SFT policy and {', '.join(algos)} on the held-out prompts")
            evaluation = evaluate_seed(judge, default, runs, seed, eval_samples)
        finally:
            judge.close()
        evaluation["limit"] = limit
        evaluation["limit_measurement"] = limit_info
        evaluation["checks"] = seed_checks(evaluation["table"], limit)
        per_seed[str(seed)] = evaluation
        (where / "results.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        print("\n".join(seed_lines(seed, evaluation)))
    checks = {name: all(s["checks"][name] for s in per_seed.values()) for name in per_seed["0"]["checks"]}
    results = {"seeds": per_seed, "checks": checks, "all": all(checks.values()), "quick": quick,
               "algorithms": list(algos), "total_steps": QUICK_STEPS if quick else DEMO_STEPS,
               "config": QUICK_CONFIG if quick else DEMO_CONFIG, "env": QUICK_ENV if quick else DEMO_ENV,
               "algo_config": DEMO_ALGO_CONFIG, "limit_margin_std": LIMIT_MARGIN,
               "seconds": {"build": round(build_seconds, 1), "total": round(time.perf_counter() - started, 1)}}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if plots:
        plot_demo(results, out / FIGURE)
    (out / "report.md").write_text(format_report(results, figure=plots))
    print(format_report(results, brief=True))
    if plots:
        print(f"picture: {out / FIGURE}")
    print(f"report: {out / 'report.md'}")
    return results


# ------------------------------------------------------------------------------------------- the report

def _num(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def seed_table(evaluation: dict[str, Any]) -> list[str]:
    """The markdown table of one seed."""
    lines = ["| policy | reward | cost ± 95% | safe share | win rate vs SFT | train cost (first -> last half) | "
             "lambda |", "|---|---|---|---|---|---|---|"]
    for name, row in evaluation["table"].items():
        kind = "" if name == "sft" else (" (constrained)" if row["constrained"] else "")
        train_c = f"{_num(row['train_cost_first'])} -> {_num(row['train_cost_last'])}" if name != "sft" else ""
        lines.append(f"| {name}{kind} | {_num(row['reward'])} | {_num(row['cost'])} ± {_num(row['cost_ci95'])} | "
                     f"{_num(row['safe_share'])} | {_num(row.get('win_rate_vs_sft'))} | {train_c} | "
                     f"{_num(row.get('multiplier'))} |")
    return lines


#: The columns of the answer-kind table: (prompt kind, answer kinds summed into the column, header).
KIND_COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("helpful", ("helpful_detailed",), "detailed"), ("helpful", ("helpful_brief",), "brief"),
    ("helpful", ("off_topic",), "off topic"), ("helpful", ("refusal",), "refusal"),
    ("helpful", ("garbled",), "garbled"),
    ("harmful", ("comply_detailed", "comply_brief"), "comply"), ("harmful", ("redirect",), "redirect"),
    ("harmful", ("refusal",), "refusal"), ("harmful", ("off_topic",), "off topic"),
    ("harmful", ("garbled",), "garbled"))


def kinds_table(evaluation: dict[str, Any]) -> list[str]:
    """The markdown table of what every policy of one seed answers: the share of each answer kind, in percent,
    among its answers to the helpful and to the harmful held-out requests (`corpus.kind_shares`)."""
    heads: list[str] = []
    for i, (prompt, _, head) in enumerate(KIND_COLUMNS):  # each group of columns names its requests once
        heads.append(head if i and KIND_COLUMNS[i - 1][0] == prompt else f"{prompt}: {head}")
    lines = ["| policy | " + " | ".join(heads) + " |", "|---" * (len(KIND_COLUMNS) + 1) + "|"]
    for name, row in evaluation["table"].items():
        shares = [sum(row["kinds"][prompt][k] for k in kinds) for prompt, kinds, _ in KIND_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.0f}" for v in shares) + " |")
    return lines


def seed_lines(seed: int | str, evaluation: dict[str, Any]) -> list[str]:
    """One seed's limit, table and checks (markdown)."""
    failed = [name for name, ok in evaluation["checks"].items() if not ok]
    return [f"Seed {seed}: cost limit {evaluation['limit']:.3f} (the SFT policy on the training prompts: "
            f"{evaluation['limit_measurement']['sft_train_cost']:.3f})", "", *seed_table(evaluation), "",
            f"Checks on seed {seed}: {len(evaluation['checks']) - len(failed)} of {len(evaluation['checks'])} hold" +
            (f"; NOT: {'; '.join(failed)}" if failed else ""), ""]


def format_report(results: dict[str, Any], brief: bool = False, figure: bool = True) -> str:
    """The markdown report (or, `brief`, the checks over every seed only: the terminal's end, below each seed's
    table, which was printed as the seed finished)."""
    seeds = results["seeds"]
    lines: list[str] = []
    if not brief:
        first = next(iter(seeds.values()))
        lines += ["# Safe RLHF on the embedded default", "",
                  "The SFT policy, then the unconstrained ppo, grpo, rloo and the constrained ppo_lag, grpo_lag, "
                  "rloo_lag (reward, subject to mean cost <= the limit) trained from it; all scored by the same "
                  "reward model (helpfulness) and cost model (harmfulness; a cost score > 0 is unsafe).", "",
                  f"The limit is the SFT policy's mean cost on the training prompts minus "
                  f"{results['limit_margin_std']:g} standard deviations of its per-answer cost, so the SFT policy "
                  f"starts above it, as Alpaca-7B does in the Safe RLHF paper.", "",
                  f"Held-out evaluation: {first['held_out_prompts']} prompts never trained on, "
                  f"{first['samples_per_prompt']} sampled answers each, from the final policies. Training cost: the "
                  f"first epoch, and the mean over the last {LAST_FRACTION:.0%} of the epochs.", ""]
        if figure:
            lines += [f"![reward against cost]({FIGURE})", ""]
    if not brief:
        for seed, evaluation in seeds.items():
            lines += seed_lines(seed, evaluation)
    lines += [f"Checks on every seed ({len(seeds)}):", ""]
    for name, ok in results["checks"].items():
        lines.append(f"- {name}: {'yes' if ok else 'NO'}")
    if brief:
        return "\n".join(lines)
    lines += ["", "## What the policies answer", "",
              "The share (%) of each kind of answer to the held-out helpful and harmful requests, read from the "
              "corpus's own templates (`envs/text/corpus.py: answer_kind`), the ground truth that the reward and "
              "cost models only approximate. *garbled* follows no template: a small policy sampled at temperature 1 "
              "often starts an answer well and loses it.", ""]
    for seed, evaluation in seeds.items():
        lines += [f"Seed {seed}:", "", *kinds_table(evaluation), ""]
    lines += [f"Time: {results['seconds']['total']:.0f} s in all ({results['seconds']['build']:.0f} s building "
                  f"defaults).", "", "## Configuration", "", "```json",
              json.dumps({"total_steps": results["total_steps"], "config": results["config"],
                          "algo_config": results["algo_config"], "env_kwargs": results["env"]}, indent=2), "```", ""]
    first_seed, first = next(iter(seeds.items()))
    lines += [f"## Samples (held-out prompts, seed {first_seed})", ""]
    for algo, examples in first["examples"].items():
        lines += [f"### {algo}", ""]
        for ex in examples:
            lines += [f"- **prompt**: {ex['prompt']}", f"  - **{algo}** (reward {ex['reward']:.2f}, cost "
                                                       f"{ex['cost']:.2f}): {ex['answer']}",
                      f"  - **sft**: {ex['sft_answer']}"]
        lines.append("")
    return "\n".join(lines) + "\n"


def _family(algo: str) -> str:
    """The unconstrained solver a constrained one is built on, by name (`ppo_lag` -> `ppo`)."""
    return algo.removesuffix("_lag")


def plot_demo(results: dict[str, Any], path: Path) -> None:
    """One column per seed. Top: reward against cost of every policy on the held-out prompts, the limit dashed, the
    cost's 95% interval as a bar, constrained solvers filled, unconstrained ones hollow, the SFT policy a black star.
    Below: what each policy answers to the harmful and to the helpful requests, as stacked shares of the answer kinds
    (`KIND_COLUMNS`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = results["seeds"]
    width = 4.2 * len(seeds) + 1.6
    fig, axes = plt.subplots(3, len(seeds), figsize=(width, 3.8 + 2 * 2.6), squeeze=False,
                             gridspec_kw={"height_ratios": (3.8, 2.6, 2.6)})
    colours = plt.get_cmap("tab10")
    algos = results["algorithms"]
    families = list(dict.fromkeys(_family(a) for a in algos))
    for ax, (seed, evaluation) in zip(axes[0], seeds.items()):
        table = evaluation["table"]
        ax.axvline(evaluation["limit"], color="0.3", linestyle="--", linewidth=1, label="cost limit")
        sft = table["sft"]
        ax.errorbar(sft["cost"], sft["reward"], xerr=sft["cost_ci95"], fmt="*", color="black", markersize=12,
                    label="SFT")
        for algo in algos:
            row = table[algo]
            colour = colours(families.index(_family(algo)))  # a solver and its constrained version share a colour
            ax.errorbar(row["cost"], row["reward"], xerr=row["cost_ci95"], fmt="o", color=colour,
                        markerfacecolor=colour if row["constrained"] else "white", markersize=8, label=algo)
        ax.set_title(f"seed {seed}")
        ax.set_xlabel("mean cost (harm) on held-out prompts")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean reward (helpfulness)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", bbox_to_anchor=(1.0, 0.93), frameon=False)
    kind_colours = {"comply": "tab:red", "detailed": "tab:green", "brief": "yellowgreen", "redirect": "tab:blue",
                    "refusal": "0.55", "off topic": "tab:orange", "garbled": "0.85"}
    kind_rows = ((axes[1], "harmful"), (axes[2], "helpful"))
    for row_axes, prompt in kind_rows:
        columns = [(kinds, head) for p, kinds, head in KIND_COLUMNS if p == prompt]
        for ax, evaluation in zip(row_axes, seeds.values()):
            names = list(evaluation["table"])
            left = np.zeros(len(names))
            for kinds, head in columns:
                share = np.array([sum(evaluation["table"][n]["kinds"][prompt][k] for k in kinds) for n in names])
                ax.barh(names, share, left=left, color=kind_colours[head], label=head)
                left += share
            ax.set_xlim(0, 1)
            ax.invert_yaxis()
            ax.set_xlabel(f"share of the answers to {prompt} requests")
    fig.suptitle("Safe RLHF on the embedded default, held-out prompts\nfilled: constrained, hollow: unconstrained, "
                 "bars: 95% interval of the cost", fontsize=10, y=0.995)
    fig.tight_layout(rect=(0, 0, 1 - 1.5 / width, 0.96))
    for row_axes, _ in kind_rows:  # beside its row, where the layout put it
        handles, labels = row_axes[0].get_legend_handles_labels()
        box = row_axes[-1].get_position()
        fig.legend(handles, labels, loc="center left", frameon=False, fontsize=8,
                   bbox_to_anchor=(1 - 1.45 / width, 0.5 * (box.y0 + box.y1)))
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["run_demo", "limit_from_sft", "seed_checks", "format_report", "plot_demo", "DEMO_ALGOS",
           "DEMO_CONFIG", "DEMO_ENV", "LIMIT_MARGIN"]
