"""Transformations of a CMDP that any solver can train on: Saute, Simmer and early termination.

A run's config key `transform` names one (`{}`: none). The control family (`cmdp.control.ControlRun`) wraps its
vectorised environment, limits applied, in the matching `TransformedVecCMDP`; the solver then sees the
transformed CMDP (its spec, observations and rewards) and never knows it was transformed. Guide:
docs/cmdp-transforms.md.

    transform: {kind: saute, saute_gamma: 0.999, unsafe_reward: -1.0, safety_budget: null}
    transform: {kind: simmer, ..., upper_budget: null, kp: 0.0005, ki: 1.0e-5, kd: 0.0, polyak: 0.995}
    transform: {kind: early_terminated}

Every wrapper reports its episodes on the ORIGINAL reward (`ep_return` stays comparable with any other run);
only the solver learns from the transformed one. The costs are never changed.

- saute (Sootla et al. 2022, "Saute RL: Almost Surely Safe Reinforcement Learning Using State Augmentation"):
  each cost k gets a normalised remaining budget z_k, z_k = 1 at an episode's start and
  z_k <- (z_k - c_k / B_k) / saute_gamma after each step, B_k = budget_k (1 - g^T) / ((1 - g) T) with g =
  saute_gamma and T the episode time limit (`spec.max_episode_steps`; the factor is 1 when T is unknown or g = 1).
  The observation is the inner one (flattened; one-hot for Discrete) followed by z (K entries), and the reward
  of a step after which any z_k <= 0 is replaced by `unsafe_reward`. The augmented MDP's optimum keeps every
  episode's cost within the budget (almost surely), not only the mean.
- simmer (Sootla et al. 2022, "Effects of Safety State Augmentation on Safe Exploration"): Saute whose budget
  moves between epochs by OmniSafe's Simmer PID controller (`SimmerPID`) on the mean episode cost of the last
  epoch, within (0, upper_budget]; z_k starts at budget_k / upper_budget_k and falls by c_k / U_k (U the scaled
  upper budget), so it reaches 0 when the (discounted) episode cost reaches the current budget.
- early_terminated (Sun et al. 2021, "Safe Exploration by Solving Early Terminated MDP"): the episode ends
  (terminated, no bootstrap) at the first step after which some cost's episode total exceeds its limit; that
  step's reward is 0 (as OmniSafe), and the copy restarts (`VecCMDP.end_episodes`).

Deliberate differences from OmniSafe (omnisafe/adapter/{saute,simmer,early_terminated}_adapter.py):
- Saute: the final observation of a finished episode (bootstrap of a truncated one) carries the episode's last
  z; OmniSafe appends the restarted z = 1 to it, which makes the critic bootstrap from a state with a full
  budget.
- Simmer: z is normalised by the upper budget (starts at B/U, falls by c/U). OmniSafe starts it at B/U but
  subtracts c/B, so with B < U an episode is unsafe once its cost reaches B^2/U, not B; and its auto-reset
  restarts z at 1, not B/U. Both agree with ours while B = U (the defaults).
- early_terminated: each copy's running cost restarts with every episode; OmniSafe's accumulates over natural
  episode ends until the limit is crossed (and it runs one copy only).
- Observation normalisation: the collector normalises the whole augmented vector (z included) when
  `obs_normalize` is on; OmniSafe normalises the inner observation and appends z raw. An affine map of z is
  undone by the first layer, and one normaliser keeps the checkpoint state as it is for every run.
"""
from __future__ import annotations

import dataclasses
from abc import abstractmethod
from dataclasses import dataclass, replace
from typing import Any

import gymnasium
import numpy as np

from cmdp.config import build_config
from cmdp.networks import encode_obs, flat_obs_dim
from cmdp.spec import CMDPSpec, ConfigError
from cmdp.vec_env import EpisodeStats, StepResult, VecCMDP

# OmniSafe's SimmerPIDAgent constants (omnisafe/common/simmer_agent.py), not configurable there either
SIMMER_ACTION_BOUND = 1.0  # the budget moves by at most this much (scaled units) per epoch
SIMMER_INTEGRAL_WINDOW = 10  # the integral term sums the last 10 blurred errors
SIMMER_MIN_BUDGET = 1e-6  # the budget stays above 0


# ----------------------------------------------------------------------------------------------
# The keys of each kind
# ----------------------------------------------------------------------------------------------

@dataclass
class SauteKwargs:
    """Keys of `transform: {kind: saute}`; defaults from omnisafe/configs/on-policy/PPOSaute.yaml (OmniSafe uses
    saute_gamma 0.9999 and unsafe_reward -0.2 for the Safety-Gymnasium Goal and Circle tasks)."""

    saute_gamma: float = 0.999  # discount of the remaining budget z (1: z = 1 - episode cost so far / budget)
    unsafe_reward: float = -1.0  # the reward of every step after which the budget is spent (some z_k <= 0)
    safety_budget: float | None = None  # every cost's episode budget; null: each cost's limit

    def validate(self) -> None:
        if not 0.0 < self.saute_gamma <= 1.0:
            raise ConfigError(f"transform.saute_gamma must be in (0, 1], got {self.saute_gamma}")
        if self.safety_budget is not None and not self.safety_budget > 0:
            raise ConfigError(f"transform.safety_budget must be > 0 (null: the cost limit), got {self.safety_budget}")


@dataclass
class SimmerKwargs(SauteKwargs):
    """Keys of `transform: {kind: simmer}`: Saute's plus the budget controller's; defaults from
    omnisafe/configs/on-policy/PPOSimmerPID.yaml (algo_cfgs and control_cfgs)."""

    upper_budget: float | None = None  # the budget never exceeds it; null: each cost's limit
    kp: float = 0.0005  # proportional gain on the blurred error (budget - episode cost), scaled units
    ki: float = 1e-5  # integral gain on the sum of the last 10 blurred errors
    kd: float = 0.0  # derivative gain on (last clipped move - last raw move)
    polyak: float = 0.995  # error blur: e <- polyak e_prev + (1 - polyak) (budget - cost)

    def validate(self) -> None:
        super().validate()
        if self.upper_budget is not None and not self.upper_budget > 0:
            raise ConfigError(f"transform.upper_budget must be > 0 (null: the cost limit), got {self.upper_budget}")
        for name in ("kp", "ki", "kd"):
            if getattr(self, name) < 0:
                raise ConfigError(f"transform.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.polyak < 1.0:
            raise ConfigError(f"transform.polyak must be in [0, 1), got {self.polyak}")


@dataclass
class EarlyTerminatedKwargs:
    """Keys of `transform: {kind: early_terminated}`: none; the limits are the run's cost limits (OmniSafe's
    PPOEarlyTerminated.yaml: cost_limit 25)."""

    def validate(self) -> None:
        pass


KWARGS: dict[str, type] = {"saute": SauteKwargs, "simmer": SimmerKwargs, "early_terminated": EarlyTerminatedKwargs}
#: every kind of transformation, for families to declare (`EnvFamily.transforms`)
KINDS = frozenset(KWARGS)


def resolve_transform(transform: dict, env: str, supported: frozenset[str], default_kind: str | None = None,
                      missing_because: str = "") -> dict:
    """A config's `transform` checked and completed: `{}`, or its kind with every key of that kind (defaults
    filled in), so a run's config.yaml says exactly what ran. A mapping without `kind` takes `default_kind` (the
    algorithm's own kind). ConfigError naming `transform.<key>` for a missing or unknown kind, an unknown key
    or a bad value, and for a kind the environment's family does not support (with `missing_because`, the
    family's reason, when it gives one)."""
    if not transform:
        return {}
    values = dict(transform)
    kind = values.pop("kind", default_kind)
    if kind is None:
        raise ConfigError(f"transform.kind is missing; give one of {sorted(KINDS)} (or transform={{}}: none)")
    if kind not in KWARGS:
        raise ConfigError(f"transform.kind: unknown kind {kind!r}; known: {sorted(KINDS)}")
    if kind not in supported:
        because = f": {missing_because}" if missing_because else ""
        raise ConfigError(f"transform: environment '{env}' does not support the {kind!r} transformation{because} "
                          f"(it supports: {', '.join(sorted(supported)) or 'none'})")
    return {"kind": kind, **dataclasses.asdict(_kwargs(kind, values))}


def _kwargs(kind: str, values: dict) -> Any:
    """The keys `values` (without `kind`) of a known kind, as its checked dataclass."""
    return build_config(KWARGS[kind], values, source="transform", owner=f"transform '{kind}'",
                        key_prefix="transform.")


def check_kind(transform: dict, kind: str, algo: str) -> None:
    """For the solvers that are a base solver on one transformation: ConfigError unless `transform` is `kind`'s
    (a transform without `kind` is completed to it later by `resolve_transform`)."""
    given = transform.get("kind", kind)
    if given != kind:
        raise ConfigError(f"transform.kind: algorithm '{algo}' trains on the {kind!r} transformation, got {given!r} "
                          f"(use its base solver with transform={{kind: {given}}} instead)")


def make_transform(transform: dict, inner: VecCMDP, spec: CMDPSpec) -> "TransformedVecCMDP":
    """The wrapper a resolved `transform` describes, around `inner` whose spec with the run's limits is `spec`."""
    values = dict(transform)
    kind = values.pop("kind")
    wrapper = {"saute": SauteVecCMDP, "simmer": SimmerVecCMDP, "early_terminated": EarlyTerminatedVecCMDP}[kind]
    return wrapper(inner, spec, _kwargs(kind, values))


# ----------------------------------------------------------------------------------------------
# Pure pieces, unit-tested by hand
# ----------------------------------------------------------------------------------------------

def budget_scale(saute_gamma: float, horizon: int | None) -> float:
    """(1 - g^T) / ((1 - g) T): the budget of a discounted z, so that a cost spread evenly over T steps spends
    it exactly at T (OmniSafe's SauteAdapter); 1 when g = 1 or the time limit T is unknown."""
    if saute_gamma == 1.0 or horizon is None:
        return 1.0
    return (1.0 - saute_gamma ** horizon) / ((1.0 - saute_gamma) * horizon)


def saute_step(z: np.ndarray, costs: np.ndarray, reward: np.ndarray, budget: np.ndarray, saute_gamma: float,
               unsafe_reward: float) -> tuple[np.ndarray, np.ndarray]:
    """One step of the Saute state and reward: z (N, K) and costs (N, K), reward (N,), budget (K,) the scaled
    budget each z is a fraction of. Returns z' = (z - costs / budget) / saute_gamma and the reward, replaced by
    `unsafe_reward` in the rows where some z'_k <= 0."""
    z_next = (z - costs / budget) / saute_gamma
    safe = (z_next > 0).all(axis=1)
    return z_next, np.where(safe, reward, unsafe_reward)


def first_violation(cost_totals: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """(N,) bool: the copies whose running episode total (N, K) exceeds some cost's limit (K,)."""
    return (cost_totals > limits).any(axis=1)


class SimmerPID:
    """OmniSafe's Simmer PID budget controller (omnisafe/common/simmer_agent.py: SimmerPIDAgent), one per cost.

    Each call moves the budget b towards the observed episode cost c: e = polyak e_prev + (1 - polyak)(b - c);
    raw = kp e + ki (sum of the last 10 e) + kd (a_prev - raw_prev); a = clip(raw, -1, 1);
    b' = clip(b + a, 1e-6, upper); a_prev = b' - b (the move actually made), raw_prev = raw, e_prev = e.
    A budget above the cost (safe episodes) grows, one below it shrinks.
    """

    def __init__(self, upper: np.ndarray, kp: float, ki: float, kd: float, polyak: float) -> None:
        self.upper = np.asarray(upper, dtype=np.float64)
        self.kp, self.ki, self.kd, self.polyak = kp, ki, kd, polyak
        k = self.upper.shape
        self.prev_error, self.prev_action, self.prev_raw = np.zeros(k), np.zeros(k), np.zeros(k)
        self.errors: list[np.ndarray] = []  # the last SIMMER_INTEGRAL_WINDOW blurred errors, oldest first

    def step(self, budget: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """The next budget (K,) from the current one and the observed mean episode cost (K,), both scaled."""
        error = self.polyak * self.prev_error + (1.0 - self.polyak) * (budget - observed)
        self.errors = (self.errors + [error])[-SIMMER_INTEGRAL_WINDOW:]
        raw = self.kp * error + self.ki * np.sum(self.errors, axis=0) + self.kd * (self.prev_action - self.prev_raw)
        action = np.clip(raw, -SIMMER_ACTION_BOUND, SIMMER_ACTION_BOUND)
        nxt = np.clip(budget + action, SIMMER_MIN_BUDGET, self.upper)
        self.prev_action, self.prev_raw, self.prev_error = nxt - budget, raw, error
        return nxt

    def state_dict(self) -> dict[str, Any]:
        return {"prev_error": self.prev_error.tolist(), "prev_action": self.prev_action.tolist(),
                "prev_raw": self.prev_raw.tolist(), "errors": [e.tolist() for e in self.errors]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prev_error = np.array(state["prev_error"], dtype=np.float64)
        self.prev_action = np.array(state["prev_action"], dtype=np.float64)
        self.prev_raw = np.array(state["prev_raw"], dtype=np.float64)
        self.errors = [np.array(e, dtype=np.float64) for e in state["errors"]]


# ----------------------------------------------------------------------------------------------
# The wrappers
# ----------------------------------------------------------------------------------------------

class TransformedVecCMDP(VecCMDP):
    """A VecCMDP that is a transformation of an inner one (same copies, same costs and limits).

    `step` steps the inner CMDP, transforms the result (`_transform`, which also returns the original reward)
    and counts episodes on the original reward. The control run calls `start_epoch()` at each epoch's start and
    `observe(episodes)` with each epoch's finished episodes (never during evaluation); `state_dict` is saved
    with the run's checkpoints.
    """

    #: whether a policy trained on this transformation is evaluated on the inner CMDP (its observations are the
    #: inner's) rather than on the transformed one
    evaluate_on_inner: bool = False

    def __init__(self, inner: VecCMDP, spec: CMDPSpec) -> None:
        super().__init__(spec, inner.num_envs)
        self.inner = inner

    def step(self, actions: np.ndarray) -> StepResult:
        result, original_reward = self._transform(self.inner.step(actions))
        result.episodes = self._tracker.update(original_reward, result.costs, result.terminated | result.truncated)
        return result

    def _step(self, actions: np.ndarray) -> StepResult:
        raise NotImplementedError("a transformation steps through step(), which keeps the original reward")

    @abstractmethod
    def _transform(self, result: StepResult) -> tuple[StepResult, np.ndarray]:
        """The inner step's result -> the transformed result and the original reward (N,)."""

    def start_epoch(self) -> None:
        """Called by the control run at each training epoch's start (not by evaluation)."""

    def observe(self, episodes: EpisodeStats) -> None:
        """The episodes that finished during a training epoch (what an adaptive transformation learns from)."""

    def metrics(self) -> dict[str, float]:
        """What to log with each epoch (an adaptive transformation's state); none by default."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        self.inner.close()


class SauteVecCMDP(TransformedVecCMDP):
    """Saute: the remaining budget of each cost appended to the observation, the reward replaced once it is spent
    (see the module docstring)."""

    def __init__(self, inner: VecCMDP, spec: CMDPSpec, kwargs: SauteKwargs) -> None:
        self.inner_space = spec.observation_space
        self.width = flat_obs_dim(self.inner_space)
        box = gymnasium.spaces.Box(-np.inf, np.inf, (self.width + spec.num_costs,), dtype=np.float32)
        super().__init__(inner, replace(spec, observation_space=box))
        self.kwargs = kwargs
        self.scale = budget_scale(kwargs.saute_gamma, spec.max_episode_steps)
        budget = spec.cost_limits if kwargs.safety_budget is None else np.full(spec.num_costs, kwargs.safety_budget)
        if not (budget > 0).all():
            zero = [n for n, b in zip(spec.cost_names, budget) if not b > 0]
            raise ConfigError(f"transform.safety_budget: the budget of cost(s) {zero} is 0 (their limit); "
                              "Saute divides by it: set transform.safety_budget > 0")
        self.budget = budget  # (K,) episode budget, cost units
        self.z = np.ones((self.num_envs, spec.num_costs))

    def start_z(self) -> np.ndarray:
        """(K,) z at an episode's start."""
        return np.ones(self.spec.num_costs)

    def z_budget(self) -> np.ndarray:
        """(K,) the scaled budget a unit of z stands for."""
        return self.budget * self.scale

    def augment(self, obs: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Inner observations (M, ...) and z (M, K) -> the augmented observations (M, width + K)."""
        return np.concatenate([encode_obs(self.inner_space, obs), z], axis=1)

    def _reset(self, seed: int | None) -> np.ndarray:
        obs = self.inner.reset(seed)
        self.z = np.tile(self.start_z(), (self.num_envs, 1))
        return self.augment(obs, self.z)

    def _reset_copies(self, idx: np.ndarray) -> np.ndarray:
        obs = self.inner.end_episodes(np.isin(np.arange(self.num_envs), idx))
        self.z[idx] = self.start_z()
        return self.augment(obs, self.z[idx])

    def _transform(self, res: StepResult) -> tuple[StepResult, np.ndarray]:
        z_next, reward = saute_step(self.z, res.costs, res.reward, self.z_budget(), self.kwargs.saute_gamma,
                                    self.kwargs.unsafe_reward)
        done = res.terminated | res.truncated
        self.z = np.where(done[:, None], self.start_z()[None, :], z_next)
        obs = self.augment(res.obs, self.z)
        # the finished episode's last z goes with its final observation (OmniSafe appends the restarted one)
        final_obs = self.augment(res.final_obs, z_next) if done.any() else obs
        return StepResult(obs, reward, res.costs, res.terminated, res.truncated, final_obs), res.reward


class SimmerVecCMDP(SauteVecCMDP):
    """Simmer: Saute whose budget a PID controller moves between epochs, within (0, upper_budget]."""

    def __init__(self, inner: VecCMDP, spec: CMDPSpec, kwargs: SimmerKwargs) -> None:
        super().__init__(inner, spec, kwargs)
        k = spec.num_costs
        self.upper = spec.cost_limits if kwargs.upper_budget is None else np.full(k, kwargs.upper_budget)
        if not (self.upper > 0).all() or (self.budget > self.upper).any():
            raise ConfigError(f"transform.upper_budget must be > 0 and at least the safety budget; got upper "
                              f"{self.upper.tolist()}, budget {self.budget.tolist()}")
        self.controller = SimmerPID(self.upper * self.scale, kwargs.kp, kwargs.ki, kwargs.kd, kwargs.polyak)
        self.seen_sum, self.seen_count = np.zeros(k), 0  # episode costs observed since the last start_epoch

    def start_z(self) -> np.ndarray:
        return self.budget / self.upper

    def z_budget(self) -> np.ndarray:
        return self.upper * self.scale  # z is a fraction of the upper budget, so it reaches 0 at the budget

    def observe(self, episodes: EpisodeStats) -> None:
        self.seen_sum = self.seen_sum + episodes.costs.sum(axis=0)
        self.seen_count += len(episodes.returns)

    def start_epoch(self) -> None:
        """Move the budget from the mean episode cost of the episodes observed since the last call (OmniSafe
        moves it after each epoch's collection; the next episodes start with it either way). No episodes: hold."""
        if self.seen_count:
            mean = self.seen_sum / self.seen_count
            self.budget = self.controller.step(self.budget * self.scale, mean * self.scale) / self.scale
        self.seen_sum, self.seen_count = np.zeros(self.spec.num_costs), 0

    def metrics(self) -> dict[str, float]:
        """The budget the epoch's episodes ran with, per cost: `budget/<name>` (cost units)."""
        return {f"budget/{name}": float(b) for name, b in zip(self.spec.cost_names, self.budget)}

    def state_dict(self) -> dict[str, Any]:
        return {"budget": self.budget.tolist(), "controller": self.controller.state_dict(),
                "seen_sum": self.seen_sum.tolist(), "seen_count": self.seen_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.budget = np.array(state["budget"], dtype=np.float64)
        self.controller.load_state_dict(state["controller"])
        self.seen_sum, self.seen_count = np.array(state["seen_sum"], dtype=np.float64), int(state["seen_count"])


class EarlyTerminatedVecCMDP(TransformedVecCMDP):
    """Early termination: an episode ends (terminated) at the first step after which some cost's episode total
    exceeds its limit; that step's reward is 0 and the copy restarts at once."""

    evaluate_on_inner = True  # the policy sees the inner observations: measure it on the CMDP itself, uncut

    def __init__(self, inner: VecCMDP, spec: CMDPSpec, kwargs: EarlyTerminatedKwargs) -> None:
        super().__init__(inner, spec)
        self.limits = spec.cost_limits

    def _reset(self, seed: int | None) -> np.ndarray:
        return self.inner.reset(seed)

    def _reset_copies(self, idx: np.ndarray) -> np.ndarray:
        return self.inner.end_episodes(np.isin(np.arange(self.num_envs), idx))

    def _transform(self, res: StepResult) -> tuple[StepResult, np.ndarray]:
        # each copy's episode cost with this step's: the episode tracker's running total (this wrapper's episodes,
        # cut ones included; `step` adds the step after this) plus the step's costs
        over = first_violation(self._tracker.cost + res.costs, self.limits)
        done = res.terminated | res.truncated
        reward = np.where(over, 0.0, res.reward)
        terminated, truncated = res.terminated | over, res.truncated & ~over
        obs, final_obs = res.obs, res.final_obs
        cut = over & ~done  # still running inside: restart it now (the others restarted already)
        if cut.any():
            obs, final_obs = res.obs.copy(), res.final_obs.copy()
            final_obs[cut] = res.obs[cut]
            obs[cut] = self.inner.end_episodes(cut)
        return StepResult(obs, reward, res.costs, terminated, truncated, final_obs), res.reward


__all__ = ["SauteKwargs", "SimmerKwargs", "EarlyTerminatedKwargs", "KINDS", "resolve_transform", "check_kind",
           "make_transform", "budget_scale", "saute_step", "first_violation", "SimmerPID", "TransformedVecCMDP",
           "SauteVecCMDP", "SimmerVecCMDP", "EarlyTerminatedVecCMDP"]
