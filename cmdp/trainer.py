"""The training loop: collect an epoch, update the solver, log, checkpoint; resumable bit for bit.

A run is fully described by its resolved config. Randomness comes from three seeded sources whose
state is checkpointed after every epoch: a numpy Generator (action sampling), a torch Generator
(minibatch order) and the environments, which are reset at each epoch start with a seed derived
from (seed, epoch). So `--resume` continues an interrupted run to the same numbers an
uninterrupted run produces (same machine, CPU).
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import gymnasium
import numpy as np
import torch

from cmdp.checkpoint import load_checkpoint, save_checkpoint
from cmdp.config import TrainConfig, build_config, dump_yaml, field_names, load_yaml, to_dict
from cmdp.logger import RunLogger
from cmdp.networks import ActorCritic, flat_obs_dim
from cmdp.normalize import ObsNormalizer, ReturnScaler
from cmdp.registry import get_algorithm, get_env, load_plugins
from cmdp.rollout import VecCollector
from cmdp.spec import ConfigError

CHECKPOINT = "checkpoints/last.pt"


def resolve_config(overrides: dict[str, Any], config_file: str | None = None) -> tuple[Any, list[str]]:
    """Defaults < config file < overrides -> the algorithm's config dataclass, plus notices for the user.

    The algorithm (and its plugins) must be known before its config class can check the other keys.
    """
    values: dict[str, Any] = load_yaml(config_file) if config_file else {}
    values.update(overrides)
    plugins = values.get("plugins") or []
    if not isinstance(plugins, list):
        raise ConfigError(f"plugins must be a list of module names or .py files, got {plugins!r}")
    # a plugin file is recorded by absolute path so that --resume works from any directory
    plugins = [str(Path(p).resolve()) if isinstance(p, str) and p.endswith(".py") else p for p in plugins]
    values["plugins"] = plugins
    load_plugins(plugins)
    algo = values.get("algo", TrainConfig.algo)
    if not isinstance(algo, str):
        raise ConfigError(f"algo must be a string, got {algo!r}")
    solver_cls = get_algorithm(algo)
    env = values.get("env", TrainConfig.env)
    if not isinstance(env, str):
        raise ConfigError(f"env must be a string, got {env!r}")
    entry = get_env(env)  # unknown environment -> ConfigError now, not after a folder exists
    if entry.config_defaults is not None:
        known = set(field_names(solver_cls.Config))
        values = {**{k: v for k, v in entry.config_defaults().items() if k in known}, **values}
    cfg = build_config(solver_cls.Config, values, source=config_file or "config")
    if entry.validate is not None:
        entry.validate(cfg)
    return plan_epochs(cfg)


def plan_epochs(cfg: Any) -> tuple[Any, list[str]]:
    """Fit the step budget to whole epochs; say so when the numbers had to change."""
    notes = []
    if cfg.total_steps < cfg.steps_per_epoch:
        per_epoch = max(cfg.num_envs, cfg.total_steps - cfg.total_steps % cfg.num_envs)
        notes.append(f"steps_per_epoch lowered from {cfg.steps_per_epoch} to {per_epoch} to fit total_steps")
        cfg = replace(cfg, steps_per_epoch=per_epoch)
    epochs = max(1, cfg.total_steps // cfg.steps_per_epoch)
    if epochs * cfg.steps_per_epoch != cfg.total_steps:
        notes.append(f"total_steps rounded from {cfg.total_steps} to {epochs * cfg.steps_per_epoch} "
                     f"({epochs} epochs of {cfg.steps_per_epoch})")
        cfg = replace(cfg, total_steps=epochs * cfg.steps_per_epoch)
    return cfg, notes


def epoch_reset_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class Trainer:
    """Builds everything a run needs from its config and trains it, writing into a run folder."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        torch.set_num_threads(cfg.torch_threads)
        load_plugins(cfg.plugins)
        solver_cls = get_algorithm(cfg.algo)
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device is 'cuda' but no GPU is available; use device=cpu")
        entry = get_env(cfg.env)
        self.num_epochs = cfg.total_steps // cfg.steps_per_epoch
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.env, self.parts = None, None
        self.obs_normalizer = self.reward_scaler = self.cost_scaler = None
        if entry.builder is not None:
            # a family with its own models and collector (text): the same solvers, the same loop
            self.parts = entry.builder(cfg)
            self.spec, self.agent = self.parts.spec, self.parts.agent
        else:
            self._build_control(cfg, entry)
        try:
            self.solver = solver_cls(cfg, self.spec, self.agent, self.num_epochs, self.generator)
        except Exception:
            self.close()
            raise
        self.epoch = 0
        self.wall_seconds = 0.0
        self.last_episodes: dict[str, Any] = {}

    def _build_control(self, cfg: Any, entry: Any) -> None:
        """A vectorised environment, the MLP actor-critic, normalisers and the vectorised collector."""
        self.env = entry.factory(num_envs=cfg.num_envs, **cfg.env_kwargs)
        try:
            self.spec = self.env.spec.with_limits(cfg.cost_limits)
            torch.manual_seed(cfg.seed)
            self.agent = ActorCritic(self.spec.observation_space, self.spec.action_space, self.spec.num_costs,
                                     cfg.actor_hidden, cfg.critic_hidden, cfg.activation,
                                     cfg.init_log_std).to(self.device)
            # one-hot encodings of Discrete observations need no normalising
            box_obs = isinstance(self.spec.observation_space, gymnasium.spaces.Box)
            self.obs_normalizer = (ObsNormalizer((flat_obs_dim(self.spec.observation_space),))
                                   if cfg.obs_normalize and box_obs else None)
            k = self.spec.num_costs
            self.reward_scaler = ReturnScaler(cfg.num_envs, 1, cfg.gamma) if cfg.reward_normalize else None
            self.cost_scaler = ReturnScaler(cfg.num_envs, k, cfg.cost_gamma) if cfg.cost_normalize else None
            self.collector = VecCollector(self.env, self.agent, np.array([cfg.gamma] + [cfg.cost_gamma] * k),
                                          np.array([cfg.lam] + [cfg.cost_lam] * k), self.obs_normalizer,
                                          self.reward_scaler, self.cost_scaler, self.device)
        except Exception:
            self.env.close()
            raise

    def collect(self, progress: Callable[[int], None] | None) -> Any:
        """One epoch of experience as a RolloutBatch."""
        cfg = self.cfg
        reset_seed = epoch_reset_seed(cfg.seed, self.epoch)
        if self.parts is not None:
            return self.parts.collect(cfg, self.rng, reset_seed, progress)
        return self.collector.collect(cfg.steps_per_epoch // cfg.num_envs, self.rng, reset_seed, progress=progress)

    def close(self) -> None:
        """Release environments (subprocesses, simulators) and models."""
        if self.env is not None:
            self.env.close()
        if self.parts is not None:
            self.parts.close()

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder (one of several data-parallel processes does)."""
        return bool(getattr(self.parts, "is_main", True))

    @property
    def env_steps(self) -> int:
        return self.epoch * self.cfg.steps_per_epoch

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "env_steps": self.env_steps, "wall_seconds": self.wall_seconds,
            "agent": self._agent_state(), "solver": self.solver.state_dict(),
            "obs_normalizer": self.obs_normalizer.state_dict() if self.obs_normalizer else None,
            "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
            "cost_scaler": self.cost_scaler.state_dict() if self.cost_scaler else None,
            "numpy_rng": self.rng.bit_generator.state, "torch_rng": self.generator.get_state(),
            "last_episodes": self.last_episodes,
        }

    def _weights_gatherer(self) -> Any:
        """The updater's `gathered(module, write=False)` context when it partitions weights (DeepSpeed ZeRO-3), else None."""
        return getattr(getattr(self.solver, "updater", None), "gathered", None)

    def _agent_state(self) -> dict[str, Any]:
        """The agent's full weights (an updater that partitions them gathers them first)."""
        gathered = self._weights_gatherer()
        if gathered is None:
            return self.agent.state_dict()
        with gathered(self.agent):
            return {k: v.detach().clone() for k, v in self.agent.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.wall_seconds = int(state["epoch"]), float(state["wall_seconds"])
        gathered = self._weights_gatherer()
        with gathered(self.agent, write=True) if gathered else contextlib.nullcontext():
            self.agent.load_state_dict(state["agent"])
        self.solver.load_state_dict(state["solver"])
        for name in ("obs_normalizer", "reward_scaler", "cost_scaler"):
            if getattr(self, name) is not None:
                getattr(self, name).load_state_dict(state[name])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["torch_rng"])
        self.last_episodes = state.get("last_episodes") or {}

    # --- the loop ----------------------------------------------------------------------------
    def train(self, run_dir: Path, resume: bool = False, progress: bool = True,
              on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train to `total_steps`, writing progress.csv, TensorBoard, checkpoints and summary.json."""
        cfg = self.cfg
        if resume and (run_dir / CHECKPOINT).is_file():
            self.load_state_dict(load_checkpoint(run_dir / CHECKPOINT))
        main = self.is_main
        logger = RunLogger(run_dir, resume_epoch=self.epoch) if main else None
        bar = _progress_bar(cfg, self.env_steps) if progress and main else None
        try:
            while self.epoch < self.num_epochs:
                t0 = time.perf_counter()
                batch = self.collect(bar.update if bar else None)
                t1 = time.perf_counter()
                eps = batch.episodes
                # NaN when no episode finished: the multiplier then takes no step
                mean_costs = eps.costs.mean(0) if len(eps.returns) else np.full(self.spec.num_costs, np.nan)
                metrics = self.solver.update(batch, mean_costs)
                t2 = time.perf_counter()
                self.epoch += 1
                self.wall_seconds += t2 - t0
                row = self._row(eps, mean_costs, {**batch.info, **metrics}, t1 - t0, t2 - t1)
                if logger is not None:
                    logger.log(row)
                if bar is not None:
                    bar.set_postfix_str(_postfix(row, self.spec.cost_names), refresh=False)
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
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
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
        """What summary.json holds: final numbers are the means over the last epoch that finished episodes."""
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


def _postfix(row: dict[str, Any], cost_names: list[str]) -> str:
    parts = [f"ret {row['ep_return']:.2f}"]
    parts += [f"cost {row[f'ep_cost/{n}']:.2f}" if len(cost_names) == 1 else f"{n} {row[f'ep_cost/{n}']:.2f}"
              for n in cost_names]
    parts += [f"lam {v:.3f}" for k, v in row.items() if k.startswith("lambda/")]
    return ", ".join(parts)


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (path / CHECKPOINT).is_file()


def new_run(cfg: Any, out: str | None) -> tuple["Trainer", Path]:
    """Build the trainer first (so bad input fails before anything is written), then the run folder."""
    trainer = Trainer(cfg)
    run_dir = Path(out) if out else Path("runs") / f"{cfg.algo}-{cfg.env}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not trainer.is_main:
        if out is None:
            raise ConfigError("several processes need --out (each must name the same run folder)")
        return trainer, run_dir
    if run_dir.exists() and any(run_dir.iterdir()):
        trainer.close()
        hint = " (use --resume to continue it)" if is_run_dir(run_dir) else ""
        raise ConfigError(f"output folder {run_dir} already exists and is not empty{hint}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_yaml(cfg))
    return trainer, run_dir


def open_run(run_dir: str | Path, need_checkpoint: bool = True) -> tuple[Any, Path]:
    """Read a run folder's resolved config; ConfigError if the folder is not a run.

    A run interrupted before its first checkpoint has a config but no checkpoint: it can be resumed
    (from scratch) but not evaluated.
    """
    path = Path(run_dir)
    if not path.is_dir() or not (path / "config.yaml").is_file():
        raise ConfigError(f"{path} is not a run folder (no config.yaml in it)")
    if need_checkpoint and not (path / CHECKPOINT).is_file():
        raise ConfigError(f"{path} has no checkpoint yet ({CHECKPOINT}); train it first")
    values = load_yaml(path / "config.yaml")
    cfg, _ = resolve_config(values)
    return cfg, path


__all__ = ["Trainer", "resolve_config", "new_run", "open_run", "to_dict"]
