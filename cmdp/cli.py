"""The `cmdp` command: train, eval, list, benchmark, report, demo, and the text side's text-demo, train-score-model,
arena."""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn, Sequence

# nothing here imports gymnasium (cmdp.errors imports nothing): main() checks MUJOCO_GL before anything does
from cmdp.errors import ConfigError
from cmdp.mujoco_gl import mujoco_gl_problem
from cmdp.wording import count_text


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser, except that a usage error (an unknown flag, `--total-steps abc`) is one line on stderr with
    exit status 2, as every other refusal of the command is: argparse prints the whole usage above it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


class SubcommandParser(OneLineParser):
    """The parser of one subcommand (`cmdp train`): refuses an argument it does not know itself, so the one-line
    error names `cmdp train --help`. argparse hands a subcommand's unknown arguments up to the top-level parser,
    whose error named `cmdp --help`, which does not list the subcommand's options."""

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="cmdp", description="Constrained RL: train and compare safe RL solvers.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=SubcommandParser)

    t = sub.add_parser("train", help="train a solver on a CMDP (defaults: ppo_lag on SafetyPointGoal1-v0)",
                       description="Train a solver. Precedence: algorithm defaults < the environment family's (Safety-"
                                   "Gymnasium's cost_window 50) < --preset < --config file < flags < --set.")
    t.add_argument("--algo", help="solver name (see `cmdp list`); default ppo_lag")
    t.add_argument("--env", help="environment name (see `cmdp list`); default SafetyPointGoal1-v0")
    t.add_argument("--total-steps", type=int, help="environment steps to train for (all copies together)")
    t.add_argument("--seed", type=int)
    t.add_argument("--num-envs", type=int, help="environment copies (Safety-Gymnasium: one subprocess each when > 1; "
                                                 "the exact CMDPs step them in this process)")
    t.add_argument("--config", help="YAML file of config keys")
    t.add_argument("--preset", help="a shipped set of keys reproducing another library: safe-rlhf "
                                    "(docs/safe-rlhf-preset.md) or omnisafe, OmniSafe 0.5.0's on-policy solvers "
                                    "(docs/omnisafe-differences.md); below --config and --set")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable), e.g. --set cost_limits=10")
    t.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (registers your own algorithms or environments)")
    t.add_argument("--out", help="run folder to create (default runs/<algo>-<env>-seed<seed>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--trust-plugins", action="store_true",
                   help="with --resume: import the plugin code the run folder names (refused otherwise)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="evaluate a run's saved policy",
                       description="Measure the saved policy of a run folder on fresh episodes (text runs: prompts). "
                                   "By default the trained stochastic policy (actions sampled, as in training; a "
                                   "constrained optimum is stochastic); --deterministic takes the mean or most likely "
                                   "action instead. A DDPG or TD3 run's policy is deterministic: it is evaluated "
                                   "without the exploration noise it trained with.")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, default=10, help="episodes (text runs: prompts to answer)")
    e.add_argument("--seed", type=int, default=12345, help="seed of the evaluation episodes")
    e.add_argument("--num-envs", type=int, default=1, help="environment copies, at most --episodes (Safety-Gymnasium: "
                                                             "one subprocess each when > 1)")
    e.add_argument("--deterministic", action="store_true",
                   help="the policy's mean (Box) or most likely (Discrete, text: greedy) action instead of sampling")
    e.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="plugin code the run needs, trusted (the run folder's own are refused without --trust-plugins)")
    e.add_argument("--trust-plugins", action="store_true", help="import the plugin code the run folder names")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--video", action="store_true",
                   help="also film the evaluation's first episode, rendered offscreen with the cumulative cost drawn "
                        "on each frame, into RUN_DIR/videos/eval-<time>.mp4 (GIF without imageio-ffmpeg); "
                        "Safety-Gymnasium tasks")
    e.add_argument("--video-episodes", type=int, metavar="N",
                   help="with --video: film the first N evaluated episodes (default 1, at most --episodes)")

    ls = sub.add_parser("list", help="list registered algorithms and environments")
    ls.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="import MODULE first, so its algorithms and environments are listed too")

    b = sub.add_parser("benchmark", help="train a suite: algorithms x environments x seeds, locally or on Ray",
                       description="Train every cell of a suite file (see benchmarks/suites/) into DIR/<env>/<algo>/"
                                   "seed<seed>/. A rerun skips finished cells and resumes interrupted ones. Exit "
                                   "status: 0 all finished, 1 a cell failed, 2 invalid suite.")
    b.add_argument("suite", nargs="?", help="suite file (YAML), e.g. benchmarks/suites/smoke.yaml")
    b.add_argument("--out", help="benchmark folder (default runs/benchmark-<suite name>)")
    b.add_argument("--workers", type=int, help="local worker processes (default: CPUs / CPUs per cell; 0: in this "
                                               "process, one cell after another)")
    b.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run cells as Ray tasks: a local Ray, or the cluster at ADDRESS (e.g. auto, ray://host:10001)")
    b.add_argument("--dry-run", action="store_true", help="validate the suite and list its cells; train nothing")

    m = sub.add_parser("demo", help="constrained against unconstrained learning in about ten minutes on 2 cores: "
                                    "ppo and pid_lag on SafetyPointCircle1-v0, curves and checks",
                       description="Trains the demo suite (benchmarks/suites/demo.yaml: ppo, reward only, and pid_lag, "
                                   "PID Lagrangian, on SafetyPointCircle1-v0, cost limit 25) into OUT/<env>/<algo>/"
                                   "seed<seed>/, one run per core, writes `cmdp report`'s report and learning-curve "
                                   "PNG to OUT/report, and prints each run's final return and cost against the limit "
                                   "with the checks: every constrained run ends within its limit, every "
                                   "unconstrained run breaks it. A rerun reuses finished runs.")
    m.add_argument("--out", help="demo folder (default runs/demo; runs/demo-quick with --quick)")
    m.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1 per algorithm (default 1: seed 0)")
    m.add_argument("--total-steps", type=int, metavar="N", help="environment steps per run (default 260,000)")
    m.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: one per CPU)")
    m.add_argument("--quick", action="store_true", help="2 epochs of 1,000 steps: checks the pipeline in seconds, "
                                                        "learns nothing")
    m.add_argument("--no-plots", action="store_true", help="no learning-curve PNG (no matplotlib needed)")

    d = sub.add_parser("text-demo", help="Safe RLHF on a CPU from nothing: ppo, grpo, rloo against ppo_lag, grpo_lag, "
                                         "rloo_lag from one SFT policy, limit set so the constraint binds, evaluated",
                       description="For each seed: builds the embedded text default from scratch (data, tokenizer, SFT "
                                   "policy, reward and cost models) in OUT/seed<s>/default, sets the cost limit from "
                                   "the SFT policy's measured cost (its mean minus 0.25 std on the training prompts, "
                                   "so it starts above the limit, as Alpaca-7B does in the Safe RLHF paper), trains "
                                   "each algorithm from the SFT policy (one run per core), evaluates every policy on "
                                   "held-out prompts and writes OUT/report.md, OUT/results.json and OUT/text-demo.png "
                                   "with the checks on each seed. Seed 0 with the six default algorithms: about 15 "
                                   "minutes on 2 cores. A rerun reuses what is finished.")
    d.add_argument("--out", default="runs/text-demo", help="demo folder (default runs/text-demo)")
    d.add_argument("--algos", default="ppo,ppo_lag,grpo,grpo_lag,rloo,rloo_lag",
                   help="comma-separated algorithms (default ppo,ppo_lag,grpo,grpo_lag,rloo,rloo_lag)")
    d.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds 0..N-1, each with its own build "
                                                                     "(default 1)")
    d.add_argument("--workers", type=int, metavar="N", help="runs trained at once (default: one per CPU)")
    d.add_argument("--quick", action="store_true", help="tiny sizes and budgets: a smoke run in about a minute, "
                                                        "learns nothing")
    d.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    d.add_argument("--no-plots", action="store_true", help="no PNG (no matplotlib needed)")

    # Defaults are left to envs.text.score_model.train_score_model (flags not given are not passed); the help
    # texts repeat them for the reader.
    s = sub.add_parser("train-score-model", help="train a reward or cost model (Safe RLHF) on preference pairs",
                       description="Fit a score model on decoupled preference pairs (PKU-SafeRLHF columns; JSONL, CSV "
                                   "or Parquet): --kind reward learns better_response_id, --kind cost learns "
                                   "safer_response_id plus the safe/unsafe sign. Writes the model, its tokenizer and "
                                   "metrics.json to --out and prints the held-out accuracy. Needs the [text] extra.")
    s.add_argument("--kind", required=True, metavar="reward|cost", help="which score model to train")
    s.add_argument("--data", required=True, metavar="FILE", help="preference pairs to train on")
    s.add_argument("--model", required=True, metavar="PATH",
                   help="Hugging Face model folder or name (a fresh head is added) or a score model folder")
    s.add_argument("--out", required=True, metavar="DIR", help="folder to create (must not exist or be empty)")
    s.add_argument("--epochs", type=int, metavar="N", help="passes over the training pairs (default 3)")
    s.add_argument("--lr", type=float, metavar="X", help="AdamW learning rate (default 5e-4, for tiny models; "
                                                          "about 1e-5 suits a pretrained 100M+ model)")
    s.add_argument("--batch-size", type=int, metavar="N", help="pairs per step (default 16)")
    s.add_argument("--max-length", type=int, metavar="N",
                   help="tokens per sequence, longer ones are cut (default 512, at most the model's context)")
    s.add_argument("--eval-fraction", type=float, metavar="F",
                   help="share of the distinct prompts of --data held out for evaluation (default 0.1)")
    s.add_argument("--eval-data", metavar="FILE", help="held-out preference pairs (instead of --eval-fraction)")
    s.add_argument("--seed", type=int, metavar="S", help="seed of the split, the head and the batch order (default 0)")
    s.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto: CUDA when present")
    s.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model folder's own Python code (off by default: it would run on load)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")

    a = sub.add_parser("arena", help="two text policies answer the same prompts, judged by the same reward and cost "
                                     "models (safe-rlhf's arena)",
                       description="Each side is a run folder of `cmdp train --env text` (its saved policy) or a "
                                   "Hugging Face causal-LM folder. Both answer the same prompts with the same decoding "
                                   "and seed; the same reward and cost models score every answer (safe: every cost "
                                   "<= 0). Prints safe-rlhf's table of B against A (better/worse by reward x "
                                   "safe/unsafe), B's win rate and both safe rates with 95% Wilson intervals, and "
                                   "writes arena.jsonl, arena.md and arena.png to --out. Judges and decoding: the "
                                   "flags', else A's run's, else B's run's. Needs the [text] extra (and matplotlib for "
                                   "the plot).")
    a.add_argument("a", metavar="RUN_OR_MODEL_A", help="side A, the baseline: a text run folder or a model folder")
    a.add_argument("b", metavar="RUN_OR_MODEL_B", help="side B, compared against A")
    a.add_argument("--prompts", required=True, metavar="FILE",
                   help="prompts to answer: JSONL, CSV or Parquet with a `prompt` column")
    a.add_argument("--reward-model", metavar="PATH",
                   help="score model that judges helpfulness (default: the run's; required with two model folders)")
    a.add_argument("--cost-models", nargs="+", metavar="PATH",
                   help="score model(s) that judge harm, PATH or NAME=PATH each (default: the run's; required with "
                        "two model folders)")
    a.add_argument("--out", metavar="DIR", help="folder for the results (default runs/arena-<A name>-vs-<B name>)")
    a.add_argument("--seed", type=int, default=12345, help="seed of the sampled answers, the same for both sides")
    a.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    a.add_argument("--max-new-tokens", type=int, metavar="N", help="answer length limit (default: the run's, else 32)")
    a.add_argument("--num-prompts", type=int, metavar="N", help="answer only the first N prompts of the file")
    a.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default auto: CUDA when present")
    a.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model folders' own Python code (off by default: it would run on load)")
    a.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="plugin code a run needs, trusted (a run folder's own are refused without --trust-plugins)")
    a.add_argument("--trust-plugins", action="store_true", help="import the plugin code the run folders name")
    a.add_argument("--no-plot", action="store_true", help="no arena.png (no matplotlib needed)")
    a.add_argument("--no-progress", action="store_true", help="no progress bars")

    r = sub.add_parser("report", help="tables and learning curves of a folder of runs (e.g. a benchmark's)",
                       description="Per algorithm x environment over seeds: final return and cost (mean ± std), "
                                   "share of the last epochs within the cost limit, wall time, steps/s; markdown, "
                                   "CSV, learning-curve PNGs and a return-against-cost PNG per environment, with "
                                   "OmniSafe's published numbers beside ours.")
    r.add_argument("run_dir", help="folder holding run folders (searched recursively)")
    r.add_argument("--out", help="report folder (default RUN_DIR/report)")
    r.add_argument("--partial", action="store_true",
                   help="include unfinished runs (their last logged epoch counts as final)")
    r.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    return p


def check_resume_flags(args: argparse.Namespace) -> None:
    """`cmdp train --resume`'s refusal of the flags that would change the run, before its folder is read (also
    how tests/test_doc_commands.py checks the docs' resume commands)."""
    given = [f for f in ("algo", "env", "total_steps", "seed", "num_envs", "config", "preset", "out")
             if getattr(args, f) is not None] + (["set"] if args.set else [])
    if given:
        longer = (f" (to train it longer, raise total_steps in {Path(args.resume) / 'config.yaml'})"
                  if given[0] == "total_steps" else "")
        raise ConfigError(f"--resume continues a run with its saved config; drop --{given[0].replace('_', '-')}"
                          f"{longer}")


def _train(args: argparse.Namespace) -> int:
    from cmdp.loading import defaults_since
    from cmdp.solver import TrainingDiverged
    from cmdp.trainer import CHECKPOINT, Trainer, new_run, open_run, resolve_config

    existed = False
    added: dict[str, Any] = {}  # with --resume: the keys the run's config.yaml lacks (defaults_since)
    config_notes: list[str] = []  # a new run's notes on its config (resolve_config), printed once it has started
    if args.resume:
        check_resume_flags(args)
        cfg, run_dir = open_run(args.resume, need_checkpoint=False, trust_plugins=args.trust_plugins,
                                given_plugins=args.plugin)
        added = defaults_since(run_dir, cfg)
        trainer = Trainer(cfg)
    else:
        from cmdp.config import parse_set

        overrides: dict[str, Any] = {}
        for flag in ("algo", "env", "total_steps", "seed", "num_envs"):
            if getattr(args, flag) is not None:
                overrides[flag] = getattr(args, flag)
        overrides.update(parse_set(args.set))
        cfg, config_notes = resolve_config(overrides, args.config, args.preset, more_plugins=args.plugin)
        existed = args.out is not None and Path(args.out).is_dir()  # an empty folder the user gave: kept
        trainer, run_dir = new_run(cfg, args.out)

    def started() -> None:
        """Once the run has started (a resume's checks passed, its checkpoint loaded; a new run's folder made): a
        refused run announces nothing, its one error line stands alone."""
        for note in config_notes:
            print(f"note: {note}")
        if added:
            print(f"note: {run_dir / 'config.yaml'} was written by an earlier cmdp-lab and does not name "
                  f"{', '.join(f'{k} (now {v!r})' for k, v in added.items())}: the resumed run takes these defaults "
                  f"of this version; to continue as it began, add them to that file with the values its version used",
                  file=sys.stderr)
        if args.resume:
            print(f"resuming {run_dir}")
        if trainer.is_main:
            for note in trainer.run.notes(trainer.cfg):
                print(f"note: {note}")

    def remove_unsaved_run() -> bool:
        """A new run stopped before its first checkpoint has nothing to resume: its folder goes (an empty folder the
        user gave is emptied), as a start refused before it was written leaves none. Whether it went."""
        if args.resume or not trainer.is_main or (run_dir / CHECKPOINT).exists():
            return False
        if existed:
            for child in run_dir.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        return True

    try:
        summary = trainer.train(run_dir, resume=bool(args.resume), progress=not args.no_progress, on_start=started)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: cmdp train --resume {run_dir}{plugin_flags(trainer.cfg.plugins)}",
              file=sys.stderr)
        return 130
    except ConfigError:
        remove_unsaved_run()  # refused at the first update (a solver's losses that compile_update cannot compile)
        raise
    except TrainingDiverged as exc:  # a loss went NaN or infinite: what diverged, in one line
        epoch = trainer.epoch + 1
        kept = "" if remove_unsaved_run() else f" {run_dir} keeps the epochs before it (up to {epoch - 1})."
        raise ConfigError(f"epoch {epoch}: {exc}{kept}") from None
    if trainer.is_main:
        print(format_summary(summary, run_dir, multiplier_delay(trainer.cfg), trainer.solver.multiplier_name,
                             trainer.cfg.plugins))
    return 0


def _num(v: Any, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def multiplier_delay(cfg: Any) -> int:
    """Epochs the config's multipliers wait before they first move (`multiplier_delay`); 0 without multipliers."""
    from cmdp.lagrange import LagrangeOptions, PIDOptions

    return cfg.multiplier_delay if isinstance(cfg, (LagrangeOptions, PIDOptions)) else 0


#: epochs OmniSafe's benchmarks train (1e7 steps of 20,000 on-policy, 1e6 of 2,000 off-policy): the summary's note
#: on a run that ended above its limit says it was shorter than that, so it is left out of runs as long
OMNISAFE_EPOCHS = 500


def plugin_flags(plugins: Sequence[str]) -> str:
    """' --plugin P' for each of a run's plugins: a command suggested for the run names them again, without which
    `cmdp eval` and `--resume` refuse to import its plugin code unasked."""
    return "".join(f" --plugin {plugin}" for plugin in plugins)


def format_summary(summary: dict[str, Any], run_dir: Path, delay: int = 0, multiplier: str = "lambda",
                   plugins: Sequence[str] = ()) -> str:
    """The one-screen end-of-run report; `delay`: the epochs the run's multipliers waited before moving;
    `multiplier`: what the solver calls them (its `multiplier_name`); `plugins`: the run's, which the `cmdp eval` it
    suggests names. Whether the solver acts on the cost limits is its name's declaration
    (`register_algorithm(name, constrained=...)`, `cmdp.registry.is_constrained`), so `summary["algo"]` must be a
    registered name."""
    # here, not at the top: cmdp.registry imports cmdp.spec, which imports gymnasium (main() checks MUJOCO_GL first)
    from cmdp.registry import is_constrained

    # only a solver that acts on the limits has an excuse for a short run above them: an unconstrained baseline
    # (ppo, or reward_shaping's fixed penalties) is above them by what it is, however long it trains
    constrained = is_constrained(summary["algo"])
    # multipliers that move towards the limits (the Lagrangian solvers'); reward_shaping's are shown but never move
    moving = constrained and bool(summary["multipliers"])
    epochs = summary["epochs"]
    measured = summary["final_epoch_with_episodes"] is not None  # None: no epoch finished an episode
    of = (f"mean over the episodes of epoch {summary['final_epoch_with_episodes']}" if measured else
          f"no episode finished in the run's {count_text(epochs, 'epochs')}")
    lines = ["", f"== {summary['algo']} on {summary['env']} (seed {summary['seed']}) ==",
             f"env steps      {summary['env_steps']:,} in {summary['wall_seconds']:.1f} s "
             f"({_num(summary['steps_per_s'], 0)} steps/s)",
             f"final return   {_num(summary['final_return'])}  ({of})"]
    for name, cost in summary["final_costs"].items():
        limit = summary["cost_limits"][name]
        verdict = ("n/a" if measured else "not measured") if isinstance(cost, float) and math.isnan(cost) else \
            ("within limit" if cost <= limit else "ABOVE limit")
        lam = summary["multipliers"].get(name)
        lam_text = f", {multiplier} {lam:.4f}" if lam is not None else ""
        lines.append(f"final cost     {_num(cost)} / limit {limit:g} ({verdict}){lam_text}   [{name}]")
    above = [n for n, c in summary["final_costs"].items() if c > summary["cost_limits"][n]]  # NaN compares False
    if not measured:
        # every epoch starts new episodes (the environments are reset with the epoch's seed), so an epoch shorter
        # than an episode never finishes one: nothing measured the return or the cost, and no multiplier moved
        lines.append("note           no episode finished: every epoch starts new episodes, so an epoch needs at least "
                     "one episode's steps per environment copy (steps_per_epoch / num_envs); without one nothing "
                     "measures the return or the cost" + (" and the multipliers never move" if moving else ""))
    if above and constrained:
        # a short run (the default's 2 epochs) ends above the limit by design: say so, rather than let it read as
        # a solver that failed; a run as long as OmniSafe's benchmarks has no such excuse, and gets no note
        after = f"above the limit after {count_text(epochs, 'epochs')}"
        if moving and epochs <= delay:
            lines.append(f"note           {after}: the multipliers wait {delay} epochs before they first move "
                         f"(multiplier_delay, OmniSafe's warmup_epochs); OmniSafe's benchmarks train "
                         f"{OMNISAFE_EPOCHS} (--total-steps)")
        elif epochs < OMNISAFE_EPOCHS:
            # without multipliers to wait for (cpo's projection, crpo's cost steps, ppo_saute's budget) the update
            # acts on the cost from the first epoch, but a clipped or trust-region step moves the policy only a little
            why = ("a multiplier takes many epochs to bring a cost down" if moving else
                   f"{summary['algo']}'s update acts on the cost from the first epoch, but moves the policy a small "
                   f"step at a time, so bringing a cost down takes many epochs")
            lines.append(f"note           {after}: {why}, and OmniSafe's benchmarks train {OMNISAFE_EPOCHS} (1e7 "
                         f"steps on-policy, 1e6 off-policy: --total-steps)")
    lines += [f"run folder     {run_dir}",
              f"next           cmdp eval {run_dir}{plugin_flags(plugins)}   |   tensorboard --logdir {run_dir / 'tb'}"]
    return "\n".join(lines)


def check_eval_flags(args: argparse.Namespace) -> None:
    """`cmdp eval`'s refusals of its flags alone, before the run folder is read (also how
    tests/test_doc_commands.py checks the docs' eval commands)."""
    if args.episodes < 1 or args.num_envs < 1:
        raise ConfigError("--episodes and --num-envs must be >= 1")
    if args.num_envs > args.episodes:  # the extra copies would only run episodes that are thrown away
        raise ConfigError(f"--num-envs ({args.num_envs}) must be at most --episodes ({args.episodes})")
    if args.video_episodes is not None and (not args.video or args.video_episodes < 1):
        raise ConfigError("--video-episodes needs --video and must be >= 1")
    if (args.video_episodes or 0) > args.episodes:  # the video films the evaluated episodes, no others
        raise ConfigError(f"--video-episodes ({args.video_episodes}) must be at most --episodes ({args.episodes})")


def _eval(args: argparse.Namespace) -> int:
    from cmdp.loading import config_edits_note, load_policy

    check_eval_flags(args)
    with load_policy(args.run_dir, num_envs=args.num_envs, trust_plugins=args.trust_plugins,
                     plugins=args.plugin) as policy:
        if args.video:
            from cmdp.video import record_video, video_env_maker

            video_env_maker(policy)  # refuses an environment that cannot be filmed before anything runs
        result = policy.evaluate(args.episodes, args.seed, deterministic=args.deterministic)
        if args.video:
            # the measured episodes: the evaluation's result says whether they were deterministic
            path, lengths = record_video(policy, args.video_episodes or 1, args.seed, result["deterministic"])
            result["video"] = str(path)
        if policy.config_edits:  # after the evaluation: a refused one's error line stands alone
            print(config_edits_note(policy.run_dir, policy.config_edits), file=sys.stderr)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        which = policy.action_description(args.deterministic)
        print(f"{policy.cfg.algo} on {policy.cfg.env}, checkpoint of epoch {result['epoch']} ({which}); "
              f"{count_text(args.episodes, policy.run.evaluation_unit)} from seed {args.seed}")
        print(policy.run.format_evaluation(result))
        if args.video:
            print(f"video   {path}  ({' + '.join(map(str, lengths))} frames)")
    return 0


def first_sentence(doc: str | None) -> str:
    """A docstring's first sentence on one line (`cmdp list`): its first paragraph's lines joined, up to the first
    full stop followed by a space (not that of "e.g." or "i.e."); the whole paragraph when it has none."""
    paragraph = " ".join(line.strip() for line in (doc or "").strip().split("\n\n")[0].splitlines())
    end = re.search(r"(?<!e\.g)(?<!i\.e)\. ", paragraph)
    return paragraph if end is None else paragraph[:end.start() + 1]


def _list(args: argparse.Namespace) -> int:
    from cmdp.registry import ENTRY_POINT_ERRORS, algorithms, envs, load_plugins

    load_plugins(args.plugin)
    print("algorithms:")
    solvers = algorithms()
    width = max(map(len, solvers), default=0)  # one column for every name, the longest included
    for name, cls in solvers.items():
        print(f"  {name:<{width}} {first_sentence(cls.__doc__)}")
    by_family: dict[str, list[str]] = {}
    for name, entry in envs().items():
        by_family.setdefault(entry.group, []).append(name)
    print("environments:")
    for family, names in by_family.items():
        print(f"  [{family}] ({len(names)})")
        width = max(28, *map(len, names))  # one column width per group, the longest name included
        per_line = max(1, 120 // (width + 2))
        for i in range(0, len(names), per_line):
            print("    " + "  ".join(f"{n:<{width}}" for n in names[i:i + per_line]).rstrip())
    for error in ENTRY_POINT_ERRORS:
        print(f"warning: {error}", file=sys.stderr)
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from cmdp.benchmarks.runner import run_suite

    suite = args.suite
    if suite is None and args.ray and args.ray.endswith((".yaml", ".yml")):
        suite, args.ray = args.ray, ""  # `cmdp benchmark --ray suite.yaml`: the file is the suite, not an address
    if suite is None:
        raise ConfigError("benchmark: give a suite file, e.g. cmdp benchmark benchmarks/suites/smoke.yaml")
    return run_suite(suite, out=args.out, workers=args.workers, use_ray=args.ray is not None,
                     ray_address=args.ray or None, dry_run=args.dry_run)


def _demo(args: argparse.Namespace) -> int:
    from cmdp.benchmarks.demo import run_demo

    out = args.out or ("runs/demo-quick" if args.quick else "runs/demo")
    status, _ = run_demo(out, seeds=args.seeds, total_steps=args.total_steps, quick=args.quick,
                         workers=args.workers, plots=not args.no_plots)
    return status


def _text_demo(args: argparse.Namespace) -> int:
    from cmdp.envs.text.demo import run_demo

    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    run_demo(args.out, algos, seeds=args.seeds, quick=args.quick, device=args.device, workers=args.workers,
             plots=not args.no_plots)
    return 0


def _train_score_model(args: argparse.Namespace) -> int:
    """`cmdp train-score-model`: envs.text.score_model.train_score_model with a progress bar and a one-line result."""
    # imported here: the control side of the CLI must work without the [text] extra (and never load transformers)
    from cmdp.envs.text.score_model import METRICS_FILE, describe_metrics, import_transformers, train_score_model

    if args.eval_data is not None and args.eval_fraction is not None:
        raise ConfigError("--eval-data and --eval-fraction exclude each other: the held-out pairs come from one")
    kwargs: dict[str, Any] = {key: getattr(args, key) for key in ("epochs", "lr", "batch_size", "seed", "device",
                                                                    "max_length", "eval_fraction")
                              if getattr(args, key) is not None}
    if args.eval_data is not None:
        kwargs["eval_data_path"] = args.eval_data
    hf_logging = import_transformers().utils.logging
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # transformers' own load/save bars would interleave with ours
    bar: Any = None

    def progress(step: int, total: int, loss: float) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="step", dynamic_ncols=True, desc=f"{args.kind} model", mininterval=0.5)
        bar.update(step - bar.n)
        bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)

    def log(line: str) -> None:
        if bar is not None:
            bar.clear()  # keep the bar below the epoch lines instead of torn through them
        print(line)
        if bar is not None:
            bar.refresh()

    try:
        metrics = train_score_model(args.kind, args.data, args.model, args.out,
                                    trust_remote_code=args.trust_remote_code, log=log,
                                    progress=None if args.no_progress else progress, **kwargs)
    except KeyboardInterrupt:
        print(f"\ninterrupted; nothing was saved to {args.out}", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
        if bars_were_on:
            hf_logging.enable_progress_bar()
    print(describe_metrics(metrics))
    print(f"saved to {args.out} (metrics in {Path(args.out) / METRICS_FILE})")
    return 0


def _arena(args: argparse.Namespace) -> int:
    """`cmdp arena`: envs.text.arena.run_arena, then its table on the screen."""
    from cmdp.envs.text.arena import format_arena, run_arena

    try:
        result = run_arena(args.a, args.b, args.prompts, reward_model=args.reward_model, cost_models=args.cost_models,
                           out=args.out, seed=args.seed, greedy=args.greedy, max_new_tokens=args.max_new_tokens,
                           num_prompts=args.num_prompts, device=args.device, trust_remote_code=args.trust_remote_code,
                           trust_plugins=args.trust_plugins, plugins=args.plugin, plot=not args.no_plot,
                           progress=not args.no_progress)
    except KeyboardInterrupt:
        print("\ninterrupted; nothing was written", file=sys.stderr)
        return 130
    print(format_arena(result, title=False))
    files = ", ".join(n for n in ("arena.jsonl", "arena.md", "arena.png") if not (n == "arena.png" and args.no_plot))
    print(f"results: {result['out']} ({files})")
    return 0


def _report(args: argparse.Namespace) -> int:
    from cmdp.benchmarks.report import write_report

    path = write_report(args.run_dir, out=args.out, partial=args.partial, plots=not args.no_plots)
    print(f"report: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    problem = mujoco_gl_problem()  # every command imports gymnasium, which imports MuJoCo
    if problem:
        print(f"cmdp: error: {problem}", file=sys.stderr)
        return 2
    try:
        status = {"train": _train, "eval": _eval, "list": _list, "benchmark": _benchmark,
                  "report": _report, "demo": _demo, "text-demo": _text_demo,
                  "train-score-model": _train_score_model, "arena": _arena}[args.command](args)
        sys.stdout.flush()  # here, where a reader that left is caught below, not at the interpreter's exit
        return status
    except ConfigError as exc:
        print(f"cmdp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before a command's own handler could say more (`--env text` loading its models)
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output left (`cmdp list | head`): stop quietly, as `ls | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # else the flush at exit fails again
        return 141  # 128 + SIGPIPE: the status of a tool that signal ended


if __name__ == "__main__":
    sys.exit(main())
