"""The training loop: an epoch under the solver's schedule, then log and checkpoint; resumable bit for bit.

config -> family.build (spec, agent, collection) -> the schedule's epoch (cmdp.schedules: a collected batch and
one update, or replay steps and updates) -> logger and checkpoint. The trainer never asks which family or solver
it holds: the solver declares its needs (cmdp.solver), the family provides them (cmdp.family).

A run is fully described by its resolved config. Randomness comes from three seeded sources whose
state is checkpointed (every `checkpoint_every` epochs and at the end): a numpy Generator (action sampling), a
torch Generator (minibatch order, replay sampling) and the environments, which are reset at each epoch start with
a seed derived from (seed, epoch). So `--resume` continues an interrupted run to the same numbers an
uninterrupted run produces (same machine, CPU); off-policy runs checkpoint their replay buffer too.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from cmdp.checkpoint import load_checkpoint, save_checkpoint
from cmdp.config import RESTORE_RUN_FILE, check_device_available, dump_yaml, to_dict
from cmdp.family import FamilyRun, Schedule, SolverNeeds
from cmdp.loading import (CHECKPOINT, CHECKPOINT_MISMATCH, NOT_TRAINED, check_run_paths, checkpoint_mismatch,
                          config_edits, config_edits_note, open_run)
from cmdp.logger import RunLogger, read_progress_rows, resumed_rows, strict_json_text
from cmdp.registry import get_algorithm, get_env, load_plugins
from cmdp.resolve import resolve_config
from cmdp.schedules import OffPolicyLoop, OnPolicyLoop
from cmdp.spec import ConfigError
from cmdp.wording import count_text


def epoch_reset_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class Trainer:
    """Builds everything a run needs from its config and trains it, writing into a run folder.

    The environment side comes from the run's family (`cmdp.family`), whatever it is; the solver gets the
    agent and the updater the family made and the parts it declared it needs.
    """

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        torch.set_num_threads(cfg.torch_threads)
        load_plugins(cfg.plugins)
        solver_cls = get_algorithm(cfg.algo)
        check_device_available("device", cfg.device)
        self.num_epochs = cfg.total_steps // cfg.steps_per_epoch
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.needs = SolverNeeds.of(solver_cls)
        self.run: FamilyRun = get_env(cfg.env).family.build(cfg, self.needs)
        self.spec, self.agent = self.run.spec, self.run.agent
        try:
            self.updater = self.run.make_updater(cfg, self.num_epochs)
            self.solver = solver_cls(cfg, self.spec, self.agent, self.updater, self.generator)
            self.loop = (OffPolicyLoop(cfg, self.run, self.solver, self.generator)
                         if self.needs.schedule is Schedule.OFF_POLICY else OnPolicyLoop(cfg, self.run, self.solver))
        except Exception:
            self.close()
            raise
        self.epoch = 0
        self.wall_seconds = 0.0
        self.last_episodes: dict[str, Any] = {}

    def close(self) -> None:
        """Release environments (subprocesses, simulators) and models."""
        self.run.close()

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder (one of several data-parallel processes does)."""
        return self.run.is_main

    @property
    def env_steps(self) -> int:
        return self.epoch * self.cfg.steps_per_epoch

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "env_steps": self.env_steps, "wall_seconds": self.wall_seconds,
            "agent": self._agent_state(), "solver": self.solver.state_dict(), "family": self.run.state_dict(),
            "schedule": self.loop.state_dict(),
            "numpy_rng": self.rng.bit_generator.state, "torch_rng": self.generator.get_state(),
            "last_episodes": self.last_episodes,
            # the config the run trained with, so that an evaluation can tell a config.yaml edited since
            # (cmdp.loading.config_edits); a resume reads config.yaml, and its checkpoints then hold that
            "config": to_dict(self.cfg),
        }

    def _agent_state(self) -> dict[str, Any]:
        """The agent's full weights (an updater that partitions them, DeepSpeed ZeRO-3, gathers them first)."""
        with self.updater.gathered(self.agent):
            return {k: v.detach().clone() for k, v in self.agent.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any], log: Callable[[str], None] = print) -> None:
        """Restore a checkpoint's state; `log` gets the notes loading it has for the user (one line each)."""
        self.epoch, self.wall_seconds = int(state["epoch"]), float(state["wall_seconds"])
        with self.updater.gathered(self.agent, write=True):
            self.agent.load_state_dict(state["agent"])
        self.solver.load_state_dict(state["solver"])
        self.run.load_state_dict(state["family"])
        self.loop.load_state_dict(state["schedule"], log=log)
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["torch_rng"])
        self.last_episodes = state.get("last_episodes") or {}

    # --- the loop ----------------------------------------------------------------------------
    def _start(self, run_dir: Path, resume: bool, notes: list[str]) -> RunLogger | None:
        """Before the first epoch: with `resume`, check the run folder's paths (a folder in place of a file, or the
        reverse, fails before any epoch) and load its checkpoint (its notes for the user go to `notes`); then open
        the progress log (the main process's; a damaged log refuses the resume)."""
        if resume:
            check_run_paths(run_dir, ("progress.csv", "summary.json", "tb"))
            if (run_dir / CHECKPOINT).is_file():
                state = load_checkpoint(run_dir / CHECKPOINT)
                edits = config_edits(self.cfg, state, ignore=NOT_TRAINED)
                if edits:  # the curves before and after the resume then come from two configs: say so
                    notes.append(config_edits_note(run_dir, edits, "the resumed run"))
                try:
                    self.load_state_dict(state, log=notes.append)
                except CHECKPOINT_MISMATCH as exc:
                    raise checkpoint_mismatch(run_dir, exc, edits) from None
            else:
                self._check_no_checkpoint_was_saved(run_dir)
            if self.epoch >= self.num_epochs and (run_dir / "summary.json").is_file():
                resumed_rows(run_dir / "progress.csv", self.epoch)  # a damaged log is said first, as for any resume
                raise ConfigError(f"{run_dir} has finished: its checkpoint is of epoch {self.epoch}, and its "
                                  f"total_steps ({self.cfg.total_steps:,}) make {count_text(self.num_epochs, 'epochs')}"
                                  f"; to train it longer, raise total_steps in {run_dir / 'config.yaml'} and resume it")
        return RunLogger(run_dir, resume_epoch=self.epoch, resume_step=self.env_steps) if self.is_main else None

    def _check_no_checkpoint_was_saved(self, run_dir: Path) -> None:
        """ConfigError in one line when a run folder without a checkpoint shows that it had one: a resume would
        start the run over and drop the progress log's epochs. The last epoch always saves one, before summary.json
        is written; epoch `checkpoint_every` saves the first, after its row of the log."""
        lost = None
        if (run_dir / "summary.json").is_file():
            lost = "summary.json says the run trained to its end"
        elif (run_dir / "progress.csv").is_file():
            logged, every = len(read_progress_rows(run_dir / "progress.csv")[1:]), self.cfg.checkpoint_every
            if logged > every:
                lost = f"the progress log holds {count_text(logged, 'epochs')} (checkpoint_every {every})"
        if lost:
            raise ConfigError(f"{run_dir / CHECKPOINT} is missing, but {lost}, so the run had saved it (a resume "
                              f"would start over); {RESTORE_RUN_FILE}")

    def train(self, run_dir: Path, resume: bool = False, progress: bool = True,
              on_epoch: Callable[[dict[str, Any]], None] | None = None,
              on_start: Callable[[], None] | None = None) -> dict[str, Any]:
        """Train to `total_steps`, writing progress.csv, TensorBoard, checkpoints and summary.json.

        `on_start` is called once the run has started, before the first epoch: after a resume's checks passed and
        its checkpoint loaded (so that `cmdp train --resume` announces no resume that is then refused); the
        checkpoint's notes for the user are printed after it."""
        cfg = self.cfg
        notes: list[str] = []
        logger: RunLogger | None = None
        try:  # a resume refused here (the run folder damaged, a checkpoint that does not fit) closes the environments
            logger = self._start(run_dir, resume, notes)
            if on_start is not None:
                on_start()
            for note in notes:
                print(note)
        except BaseException:
            if logger is not None:
                logger.close()
            self.close()
            raise
        main = self.is_main
        bar = _progress_bar(cfg, self.env_steps) if progress and main else None
        try:
            while self.epoch < self.num_epochs:
                result = self.loop.epoch(self.rng, epoch_reset_seed(cfg.seed, self.epoch), self.env_steps,
                                         bar.update if bar else None)
                self.epoch += 1
                self.wall_seconds += result.time_collect + result.time_update
                row = self._row(result.episodes, result.mean_costs, result.metrics, result.time_collect,
                                result.time_update)
                if logger is not None:
                    logger.log(row)
                if bar is not None:
                    bar.set_postfix_str(_postfix(row, self.spec.cost_names, self.solver.multiplier_name),
                                        refresh=False)
                if self.epoch % cfg.checkpoint_every == 0 or self.epoch == self.num_epochs:
                    state = self.state_dict()  # every rank: gathering partitioned weights is collective
                    if main:
                        save_checkpoint(run_dir / CHECKPOINT, state)
                if on_epoch is not None:
                    on_epoch(row)
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
            self.close()
        summary = self.summary()
        if main:
            (run_dir / "summary.json").write_text(strict_json_text(summary))
        return summary

    def _row(self, eps: Any, mean_costs: np.ndarray, metrics: dict[str, float], t_collect: float,
             t_update: float) -> dict[str, Any]:
        names = self.spec.cost_names
        has = len(eps.returns) > 0
        row: dict[str, Any] = {
            "epoch": self.epoch, "env_steps": self.env_steps,
            "ep_return": float(np.mean(eps.returns)) if has else float("nan"),
            "ep_cost": float(np.sum(mean_costs)) if has else float("nan"),
            "ep_len": float(np.mean(eps.lengths)) if has else float("nan"),
            "episodes": int(len(eps.returns)),
        }
        for i, name in enumerate(names):
            row[f"ep_cost/{name}"] = float(mean_costs[i])
        for name, value in self.solver.multipliers().items():
            row[f"lambda/{name}"] = float(value)
        row.update({k: float(v) for k, v in metrics.items()})
        row.update({"wall_s": self.wall_seconds, "steps_per_s": self.cfg.steps_per_epoch / (t_collect + t_update),
                    "time_collect_s": t_collect, "time_update_s": t_update})
        if has:
            self.last_episodes = {"epoch": self.epoch, "return": row["ep_return"], "len": row["ep_len"],
                                  "costs": dict(zip(names, [float(c) for c in mean_costs]))}
        return row

    def summary(self) -> dict[str, Any]:
        """What summary.json holds: final numbers are the means over the last epoch that finished episodes (NaN when
        none did, written null: `cmdp.logger.strict_json_text`)."""
        last = self.last_episodes
        nan = float("nan")
        return {
            "algo": self.cfg.algo, "env": self.cfg.env, "seed": self.cfg.seed,
            "env_steps": self.env_steps, "epochs": self.epoch, "wall_seconds": round(self.wall_seconds, 3),
            "steps_per_s": round(self.env_steps / self.wall_seconds, 1) if self.wall_seconds else None,
            "final_return": last.get("return", nan),
            "final_costs": last.get("costs", {n: nan for n in self.spec.cost_names}),
            "final_ep_len": last.get("len", nan),
            "final_epoch_with_episodes": last.get("epoch"),
            "cost_limits": dict(zip(self.spec.cost_names, self.spec.cost_limits.tolist())),
            "multipliers": self.solver.multipliers(),
            "finished": self.epoch >= self.num_epochs,
        }


def _progress_bar(cfg: Any, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=cfg.total_steps, initial=initial, unit="step", unit_scale=True, dynamic_ncols=True,
                desc=f"{cfg.algo} {cfg.env} seed {cfg.seed}", mininterval=0.5)


def _postfix(row: dict[str, Any], cost_names: list[str], multiplier: str = "lambda") -> str:
    """The progress bar's numbers: return, costs, and the multipliers under `multiplier` ("lam" for lambda)."""
    parts = [f"ret {row['ep_return']:.2f}"]
    parts += [f"cost {row[f'ep_cost/{n}']:.2f}" if len(cost_names) == 1 else f"{n} {row[f'ep_cost/{n}']:.2f}"
              for n in cost_names]
    short = "lam" if multiplier == "lambda" else multiplier
    parts += [f"{short} {v:.3f}" for k, v in row.items() if k.startswith("lambda/")]
    return ", ".join(parts)


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / CHECKPOINT).is_file()


def _create_run_folder(run_dir: Path, config_text: str) -> None:
    """Create the run folder `run_dir` (and its missing parents) holding `config_text` as config.yaml.

    ConfigError if `run_dir` exists and is not an empty folder, or if the OS refuses (a file in the way, a
    read-only or special file system such as /proc, no permission, no space): the message names the path and
    the OS's reason, and whatever this call created is removed again, so a failed start leaves nothing behind.
    """
    def reason(exc: OSError) -> str:
        text = exc.strerror or str(exc)
        return f"{text} ({exc.filename})" if exc.filename and Path(exc.filename) != run_dir else text

    try:
        if run_dir.exists():
            if not run_dir.is_dir():
                raise ConfigError(f"output folder {run_dir} exists and is not a folder; choose another --out")
            if any(run_dir.iterdir()):
                hint = " (use --resume to continue it)" if is_run_dir(run_dir) else ""
                raise ConfigError(f"output folder {run_dir} already exists and is not empty{hint}")
    except OSError as exc:
        raise ConfigError(f"cannot use output folder {run_dir}: {reason(exc)}") from None
    missing: list[Path] = []  # run_dir and the parents it lacks, deepest first
    folder = run_dir
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    config = run_dir / "config.yaml"
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                # Another process (a sibling cell of a benchmark grid) made this parent between our look and
                # our mkdir: it is not ours to remove on failure. The run folder itself stays exclusive.
                if folder == run_dir or not folder.is_dir():
                    raise
                continue
            created.append(folder)
        config.write_text(config_text, encoding="utf-8")
    except OSError as exc:
        try:
            config.unlink(missing_ok=True)  # a partly written one (the folder was empty before)
        except OSError:
            pass
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise ConfigError(f"cannot create the run folder {run_dir}: {reason(exc)}") from None


def new_run(cfg: Any, out: str | None) -> tuple["Trainer", Path]:
    """Build the trainer first (so bad input fails before anything is written), then the run folder.

    On any failure after the trainer is built (the folder cannot be created, ...) the trainer is closed
    (environment subprocesses, simulators) before the error propagates.
    """
    trainer = Trainer(cfg)
    try:
        run_dir = Path(out) if out else Path("runs") / f"{cfg.algo}-{cfg.env}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        if not trainer.is_main:
            if out is None:
                raise ConfigError("several processes need --out (each must name the same run folder)")
            return trainer, run_dir
        _create_run_folder(run_dir, dump_yaml(cfg))
    except BaseException:
        trainer.close()
        raise
    return trainer, run_dir


__all__ = ["Trainer", "resolve_config", "new_run", "open_run", "to_dict", "CHECKPOINT"]
