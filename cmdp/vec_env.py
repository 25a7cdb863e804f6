"""Vectorised CMDP environments: N copies stepped together, auto-reset, episode statistics.

Every environment family (Safety-Gymnasium, the exact tabular CMDPs, ...) ends up as a `VecCMDP`.
Solvers and collectors only ever see this class, so episode bookkeeping lives here, once.

Auto-reset convention: when copy i finishes an episode (terminated or truncated), `step` returns the
first observation of its next episode in `obs[i]` and the last observation of the finished episode
in `final_obs[i]` (needed to bootstrap the value of a truncated episode).
"""
from __future__ import annotations

import multiprocessing as mp
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from cmdp.spec import CMDPSpec, ConfigError


@dataclass
class EpisodeStats:
    """Statistics of the M episodes that finished during one vectorised step (M may be 0)."""

    returns: np.ndarray  # (M,)
    costs: np.ndarray  # (M, K) undiscounted episode total of each cost
    lengths: np.ndarray  # (M,)

    @staticmethod
    def empty(num_costs: int) -> "EpisodeStats":
        return EpisodeStats(np.zeros(0), np.zeros((0, num_costs)), np.zeros(0, dtype=np.int64))

    @staticmethod
    def concatenate(parts: Sequence["EpisodeStats"], num_costs: int) -> "EpisodeStats":
        parts = [p for p in parts if len(p.returns)]
        if not parts:
            return EpisodeStats.empty(num_costs)
        return EpisodeStats(np.concatenate([p.returns for p in parts]),
                            np.concatenate([p.costs for p in parts]),
                            np.concatenate([p.lengths for p in parts]))


@dataclass
class StepResult:
    """What one call of `VecCMDP.step` returns; arrays have the number of copies N as first axis."""

    obs: np.ndarray  # (N, *obs_shape)
    reward: np.ndarray  # (N,) float64
    costs: np.ndarray  # (N, K) float64
    terminated: np.ndarray  # (N,) bool: the episode ended in a terminal state (no bootstrap)
    truncated: np.ndarray  # (N,) bool: the episode was cut by a time limit (bootstrap from final_obs)
    final_obs: np.ndarray  # (N, *obs_shape); rows of unfinished copies equal obs
    episodes: EpisodeStats | None = None


class _EpisodeTracker:
    """Running totals of each copy's current episode; emits the totals of episodes that finish."""

    def __init__(self, num_envs: int, num_costs: int) -> None:
        self.num_costs = num_costs
        self.ret = np.zeros(num_envs)
        self.cost = np.zeros((num_envs, num_costs))
        self.length = np.zeros(num_envs, dtype=np.int64)
        # what a step without a finished episode reports: one shared empty record (read only, as every consumer
        # uses it), not three new arrays at each environment step
        self.no_episodes = EpisodeStats.empty(num_costs)

    def reset(self) -> None:
        self.ret[:] = 0.0
        self.cost[:] = 0.0
        self.length[:] = 0

    def discard(self, idx: np.ndarray) -> None:
        """Forget the running totals of copies `idx` (their episodes were ended from outside, not reported)."""
        self.ret[idx] = 0.0
        self.cost[idx] = 0.0
        self.length[idx] = 0

    def update(self, reward: np.ndarray, costs: np.ndarray, done: np.ndarray) -> EpisodeStats:
        self.ret += reward
        self.cost += costs
        self.length += 1
        if not done.any():
            return self.no_episodes
        idx = np.flatnonzero(done)
        stats = EpisodeStats(self.ret[idx].copy(), self.cost[idx].copy(), self.length[idx].copy())
        self.discard(idx)
        return stats


class VecCMDP(ABC):
    """N copies of one CMDP. Subclasses implement `_reset` and `_step`; this class keeps episode totals."""

    spec: CMDPSpec
    num_envs: int

    def __init__(self, spec: CMDPSpec, num_envs: int) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.spec = spec
        self.num_envs = num_envs
        self._tracker = _EpisodeTracker(num_envs, spec.num_costs)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a new episode in every copy; copy i is seeded with `seed + i` when a seed is given."""
        self._tracker.reset()
        return self._reset(seed)

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply one action per copy; finished copies restart automatically (see module docstring)."""
        result = self._step(actions)
        result.episodes = self._tracker.update(result.reward, result.costs, result.terminated | result.truncated)
        return result

    def end_episodes(self, mask: np.ndarray) -> np.ndarray:
        """Restart now the copies where `mask` (N,) is True, mid-episode (early termination needs it): returns the
        first observations of their new episodes, (M, *obs_shape) in copy order. Their running totals are dropped,
        not reported as a finished episode (the caller reports the episode it ended)."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        self._tracker.discard(idx)
        return self._reset_copies(idx)

    def close(self) -> None:
        """Release processes and simulator resources."""

    @abstractmethod
    def _reset(self, seed: int | None) -> np.ndarray: ...

    def _reset_copies(self, idx: np.ndarray) -> np.ndarray:
        """Start a new episode in copies `idx` (unseeded: each continues its random stream); their observations."""
        raise NotImplementedError(f"{type(self).__name__} cannot restart single copies (implement _reset_copies; "
                                  "the early_terminated transformation needs it)")

    @abstractmethod
    def _step(self, actions: np.ndarray) -> StepResult: ...

    def __enter__(self) -> "VecCMDP":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CMDPEnv(Protocol):
    """One copy of a CMDP, for environments that are not natively vectorised."""

    spec: CMDPSpec

    def reset(self, seed: int | None = None) -> np.ndarray: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool, bool]:
        """Return observation, reward, costs (K,), terminated, truncated."""
        ...

    def close(self) -> None: ...


class SyncVecCMDP(VecCMDP):
    """Steps N single environments one after another in this process (the right choice for N = 1)."""

    def __init__(self, env_fns: Sequence[Callable[[], CMDPEnv]]) -> None:
        self.envs = [fn() for fn in env_fns]
        super().__init__(self.envs[0].spec, len(self.envs))

    def _reset(self, seed: int | None) -> np.ndarray:
        return np.stack([env.reset(None if seed is None else seed + i) for i, env in enumerate(self.envs)])

    def _reset_copies(self, idx: np.ndarray) -> np.ndarray:
        return np.stack([self.envs[i].reset(None) for i in idx])

    def _step(self, actions: np.ndarray) -> StepResult:
        n = self.num_envs
        obs, final_obs = [None] * n, [None] * n
        reward = np.empty(n)
        costs = np.empty((n, self.spec.num_costs))
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        for i, env in enumerate(self.envs):
            o, reward[i], costs[i], terminated[i], truncated[i] = env.step(actions[i])
            final_obs[i] = o
            obs[i] = env.reset(None) if (terminated[i] or truncated[i]) else o
        obs_arr = np.stack(obs)
        done = terminated | truncated
        return StepResult(obs_arr, reward, costs, terminated, truncated,
                          np.stack(final_obs) if done.any() else obs_arr)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _worker(conn: Any, env_fn: Callable[[], CMDPEnv]) -> None:
    """Subprocess loop: owns one environment, answers reset/step/close commands."""
    env = None
    try:
        env = env_fn()
        conn.send(("ok", env.spec))
        while True:
            cmd, arg = conn.recv()
            if cmd == "step":
                o, r, c, te, tr = env.step(arg)
                final = o
                if te or tr:
                    o = env.reset(None)
                conn.send(("ok", (o, r, c, te, tr, final)))
            elif cmd == "reset":
                conn.send(("ok", env.reset(arg)))
            elif cmd == "close":
                break
    except KeyboardInterrupt:
        pass
    except ConfigError as exc:  # a refusal meant for the user (a setting the environment cannot take): its one line
        try:
            conn.send(("refused", str(exc)))
        except Exception:
            pass
    except Exception:  # report instead of dying silently; the parent raises it
        try:
            conn.send(("error", traceback.format_exc()))
        except Exception:
            pass
    finally:
        if env is not None:
            env.close()
        conn.close()


class SubprocVecCMDP(VecCMDP):
    """One subprocess per copy; the copies step in parallel. `env_fns` must be picklable."""

    def __init__(self, env_fns: Sequence[Callable[[], CMDPEnv]], start_method: str = "spawn") -> None:
        ctx = mp.get_context(start_method)
        self._conns, self._procs = [], []
        for fn in env_fns:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, fn), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._closed = False
        try:
            specs = self._gather()
        except Exception:
            self.close()
            raise
        super().__init__(specs[0], len(env_fns))

    def _gather(self, conns: Sequence[Any] | None = None) -> list[Any]:
        out = []
        for conn in self._conns if conns is None else conns:
            try:
                status, payload = conn.recv()
            except EOFError:
                raise RuntimeError("an environment subprocess died") from None
            if status == "refused":
                raise ConfigError(payload)
            if status == "error":
                raise RuntimeError(f"an environment subprocess failed:\n{payload}")
            out.append(payload)
        return out

    def _reset(self, seed: int | None) -> np.ndarray:
        for i, conn in enumerate(self._conns):
            conn.send(("reset", None if seed is None else seed + i))
        return np.stack(self._gather())

    def _reset_copies(self, idx: np.ndarray) -> np.ndarray:
        conns = [self._conns[i] for i in idx]
        for conn in conns:
            conn.send(("reset", None))  # the worker's reset command, unseeded: the copy continues its stream
        return np.stack(self._gather(conns))

    def _step(self, actions: np.ndarray) -> StepResult:
        for conn, action in zip(self._conns, actions):
            conn.send(("step", action))
        o, r, c, te, tr, final = zip(*self._gather())
        obs = np.stack(o)
        terminated, truncated = np.array(te, dtype=bool), np.array(tr, dtype=bool)
        done = terminated | truncated
        return StepResult(obs, np.array(r, dtype=np.float64), np.stack(c).astype(np.float64),
                          terminated, truncated, np.stack(final) if done.any() else obs)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
