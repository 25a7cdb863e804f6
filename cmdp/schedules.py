"""One epoch of training under each schedule a solver can declare (`cmdp.family.Schedule`).

The trainer owns the epoch count, logging and checkpoints; a loop here owns what happens inside one epoch:

- `OnPolicyLoop` (on-policy and group schedules): collect an epoch with the current policy, update once on it;
- `OffPolicyLoop`: reset, then alternate collecting a few steps into the replay buffer with gradient steps from
  it; the multipliers move at the epoch's end (the solver's `end_epoch`: one step per gradient update of the epoch
  or one for the epoch, `lagrangian_steps`).

Every loop returns an `EpochResult`: the episodes that finished, the metrics to log, and the time spent
collecting and updating. Loops hold their own state (the replay buffer) for checkpoints.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import gymnasium
import numpy as np
import torch

from cmdp.family import FamilyRun
from cmdp.networks import flat_obs_dim
from cmdp.normalize import StepStandardizer
from cmdp.replay import ReplayBuffer, available_memory, row_bytes, row_layout
from cmdp.spec import ConfigError
from cmdp.vec_env import EpisodeStats


@dataclass
class EpochResult:
    episodes: EpisodeStats
    mean_costs: np.ndarray  # (K,) mean episode cost per cost; NaN when no episode finished
    metrics: dict[str, float]
    time_collect: float
    time_update: float


def mean_episode_costs(episodes: EpisodeStats, num_costs: int) -> np.ndarray:
    """(K,) mean episode total of each cost; NaN when no episode finished (the multipliers then hold still)."""
    return episodes.costs.mean(0) if len(episodes.returns) else np.full(num_costs, np.nan)


class CostWindow:
    """The episode cost a solver sees each epoch (config key `cost_window`): with size 0 the mean over the
    epoch's finished episodes; with size N the mean over the last N finished episodes, whichever epochs they
    finished in (safe-rlhf's multiplier sees the last 128 episodes). NaN while no episode has finished."""

    def __init__(self, size: int, num_costs: int) -> None:
        self.size, self.num_costs = int(size), int(num_costs)
        self.recent = np.zeros((0, num_costs))  # the last `size` episodes' costs, oldest first

    def see(self, episodes: EpisodeStats) -> np.ndarray:
        """Add an epoch's finished episodes; (K,) the cost the solver sees (logged as `cost_seen/<name>` when it
        is a window; the logged `ep_cost` stays the epoch's own mean)."""
        if self.size == 0:
            return mean_episode_costs(episodes, self.num_costs)
        costs = np.asarray(episodes.costs, dtype=np.float64).reshape(-1, self.num_costs)
        self.recent = np.concatenate([self.recent, costs])[-self.size:]
        return self.recent.mean(0) if len(self.recent) else np.full(self.num_costs, np.nan)

    def metrics(self, seen: np.ndarray, names: list[str]) -> dict[str, float]:
        """What to log: the windowed cost per name (nothing without a window: it is the logged ep_cost)."""
        return {f"cost_seen/{name}": float(c) for name, c in zip(names, seen)} if self.size else {}

    def state_dict(self) -> dict[str, Any]:
        return {"recent": self.recent.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.recent = np.array(state["recent"], dtype=np.float64).reshape(-1, self.num_costs)


class OnPolicyLoop:
    """Collect one epoch with the current policy, then one solver update on it."""

    def __init__(self, cfg: Any, run: FamilyRun, solver: Any) -> None:
        self.cfg, self.run, self.solver = cfg, run, solver
        self.costs = CostWindow(cfg.cost_window, run.spec.num_costs)

    def epoch(self, rng: np.random.Generator, reset_seed: int, env_steps: int,
              progress: Callable[[int], None] | None) -> EpochResult:
        t0 = time.perf_counter()
        batch = self.run.collect(self.cfg, rng, reset_seed, progress)
        t1 = time.perf_counter()
        seen = self.costs.see(batch.episodes)
        metrics = {**batch.info, **self.solver.update(batch, seen), **self.costs.metrics(seen, self.run.spec.cost_names)}
        return EpochResult(batch.episodes, mean_episode_costs(batch.episodes, self.run.spec.num_costs), metrics,
                           t1 - t0, time.perf_counter() - t1)

    def state_dict(self) -> dict[str, Any]:
        return {"costs": self.costs.state_dict()}

    def load_state_dict(self, state: dict[str, Any], log: Callable[[str], None]) -> None:
        self.costs.load_state_dict(state.get("costs", {"recent": []}))  # checkpoints before cost_window have none


def check_replay_memory(capacity: int, row: int, save_replay: bool, available: int | None) -> None:
    """ConfigError in one line when a replay buffer of `capacity` transitions of `row` bytes, with its copy in each
    checkpoint (`save_replay`: the stored rows are copied while it is written), needs more than the `available`
    bytes (None: not known, not checked). Allocated anyway, such a buffer ends in the allocator's traceback, or the
    system's out-of-memory killer stops the run (or another process) once it has filled."""
    need = capacity * row
    if available is None or need * (2 if save_replay else 1) <= available:
        return

    def memory_text(count: int) -> str:
        for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
            if count >= size:
                return f"{count / size:.1f} {unit}"
        return f"{count} bytes"

    copy = ", and as much again for its copy in each checkpoint (save_replay)" if save_replay else ""
    advice = "lower replay_size" + (", or set save_replay=false (a resume then starts it empty)"
                                    if save_replay and need <= available else "")
    raise ConfigError(f"the replay buffer does not fit in memory: {capacity:,} transitions (the smaller of "
                      f"replay_size and total_steps) of {row:,} bytes take {memory_text(need)}{copy}, and this "
                      f"machine has {memory_text(available)} available; {advice}")


class OffPolicyLoop:
    """Collect `update_every` steps per copy, store them, then `updates_per_step` gradient steps per stored step
    once `update_after` steps were collected; uniformly random actions for the first `random_steps`."""

    def __init__(self, cfg: Any, run: FamilyRun, solver: Any, generator: torch.Generator) -> None:
        self.cfg, self.run, self.solver, self.generator = cfg, run, solver, generator
        spec = run.spec
        discrete = isinstance(spec.action_space, gymnasium.spaces.Discrete)
        shape = (flat_obs_dim(spec.observation_space), () if discrete else tuple(spec.action_space.shape),
                 spec.num_costs, discrete)
        capacity = min(cfg.replay_size, cfg.total_steps)
        if torch.device(cfg.device).type == "cpu":
            check_replay_memory(capacity, row_bytes(row_layout(*shape)), cfg.save_replay, available_memory())
        try:
            self.replay = ReplayBuffer(capacity, *shape, cfg.device)
        except torch.OutOfMemoryError:  # a GPU's memory, which is not overcommitted: refused at once
            raise ConfigError(f"the replay buffer of {capacity:,} transitions (the smaller of replay_size and "
                              f"total_steps) does not fit in the memory of {cfg.device}; lower replay_size") from None
        self.update_debt = 0.0  # fractional gradient steps owed (updates_per_step need not be a whole number)
        self.refill = 0  # transitions the buffer holds again before updates go on (a resume without the buffer)
        self.costs = CostWindow(cfg.cost_window, spec.num_costs)
        # `cost_standardize`: the costs the critics learn from, standardised step by step as OmniSafe stores them
        self.cost_standardizer = StepStandardizer((spec.num_costs,)) if cfg.cost_standardize else None

    def epoch(self, rng: np.random.Generator, reset_seed: int, env_steps: int,
              progress: Callable[[int], None] | None) -> EpochResult:
        cfg, n = self.cfg, self.cfg.num_envs
        t_collect = t_update = 0.0
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}  # per key: a delayed actor reports on some updates only
        updates = 0
        episodes: list[EpisodeStats] = []
        self.run.start_steps(cfg, reset_seed)
        steps_per_env = cfg.steps_per_epoch // n
        for start in range(0, steps_per_env, cfg.update_every):
            t0 = time.perf_counter()
            chunk = self.run.steps(cfg, cfg.update_every, rng, random_actions=env_steps < cfg.random_steps,
                                   last=start + cfg.update_every >= steps_per_env)
            if self.cost_standardizer is not None:
                chunk = replace(chunk, costs=self.standardized(chunk.costs, n))
            self.replay.add(chunk)
            episodes.append(chunk.episodes)
            collected = cfg.update_every * n
            env_steps += collected
            t1 = time.perf_counter()
            t_collect += t1 - t0
            if progress is not None:
                progress(collected)
            if env_steps < cfg.update_after or len(self.replay) < self.refill:
                continue
            self.update_debt += collected * cfg.updates_per_step
            while self.update_debt >= 1.0:
                self.update_debt -= 1.0
                for key, value in self.solver.update_step(self.replay.sample(cfg.batch_size, self.generator)).items():
                    sums[key] = sums.get(key, 0.0) + float(value)
                    counts[key] = counts.get(key, 0) + 1
                updates += 1
            t_update += time.perf_counter() - t1
        stats = EpisodeStats.concatenate(episodes, self.run.spec.num_costs)
        seen = self.costs.see(stats)
        t2 = time.perf_counter()
        metrics = {k: v / counts[k] for k, v in sums.items()}
        metrics.update(self.solver.end_epoch(seen, updates))
        metrics.update(self.costs.metrics(seen, self.run.spec.cost_names))
        metrics.update({"updates": float(updates), "replay_size": float(len(self.replay))})
        return EpochResult(stats, mean_episode_costs(stats, self.run.spec.num_costs), metrics, t_collect,
                           t_update + time.perf_counter() - t2)

    def standardized(self, costs: torch.Tensor, n: int) -> torch.Tensor:
        """(T * N, K) costs, T steps of `n` copies in time order, through the standardiser one step at a time."""
        steps = costs.double().numpy().reshape(-1, n, costs.shape[1])
        return torch.as_tensor(np.concatenate([self.cost_standardizer(step) for step in steps]), dtype=torch.float32)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"update_debt": self.update_debt, "costs": self.costs.state_dict()}
        if self.cost_standardizer is not None:
            state["cost_standardizer"] = self.cost_standardizer.state_dict()
        if self.cfg.save_replay:
            state["replay"] = self.replay.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], log: Callable[[str], None]) -> None:
        self.update_debt = float(state["update_debt"])
        self.costs.load_state_dict(state["costs"])
        if self.cost_standardizer is not None:
            self.cost_standardizer.load_state_dict(state["cost_standardizer"])
        if "replay" in state:
            self.replay.load_state_dict(state["replay"])
        else:  # the warm-up again: updates on the few transitions stored since would repeat them in every minibatch
            self.refill = min(self.cfg.update_after, self.replay.capacity)
            log(f"note: this run's checkpoints do not hold the replay buffer (save_replay: false); it starts empty "
                f"again and the updates wait until it holds update_after ({self.refill:,}) transitions, so the "
                f"resumed run differs from an uninterrupted one")
