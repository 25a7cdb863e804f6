"""QuadraticBandit-v0: a continuous-action contextual bandit with a closed-form constrained optimum.

This is the correctness oracle for continuous-action solvers (DDPG/TD3/SAC-Lagrangian, and the on-policy solvers
with a Gaussian actor), as the tabular CMDPs of `cmdp.envs.exact` are for discrete actions: train a solver on it,
evaluate the learnt policy with `evaluate_bandit_policy`, and compare with `bandit_optimum`.

The problem, with K = `num_costs` (at most MAX_NUM_COSTS, 256) and H = `horizon`:

- every step the observation is a fresh context s ~ Uniform[-1, 1]^K, independent across steps and copies;
  observation space Box(-1, 1, (K,)), action space Box(-1, 1, (K,)) (actions outside are clipped);
- the action a answers the context it was chosen for: reward r = 1 - mean_k (a_k - s_k)^2, costs
  effort_k = a_k^2 (one cost per action dimension, named "effort_0", ..., "effort_{K-1}");
- episodes last exactly H steps and end by TRUNCATION (truncated=True, terminated=False): there is no terminal
  state, so a critic must bootstrap across the cut from `final_obs`;
- default limits: H * d_k on the expected episode total of each cost, with per-step budget d_k = 1/12.

Closed form (all values are UNDISCOUNTED expected episode totals, what a Lagrangian solver constrains). The
dimensions decouple and contexts are i.i.d., so the optimum spends the budget evenly over the steps: per step and
dimension, maximise -E[(a - s)^2] subject to E[a^2] <= d_k = limit_k / H. Pointwise maximisation of the Lagrangian
r - sum_k lambda_k c_k gives a_k = s_k / (1 + K lambda_k), a linear policy a_k = scale_k s_k, and with
E[s^2] = 1/3:

    scale_k      = 1                    if d_k >= 1/3 (the unconstrained a = s already meets the limit)
                 = sqrt(3 d_k)          otherwise (the limit binds: E[a_k^2] = scale_k^2 / 3 = d_k)
    return       = H * (1 - mean_k (1 - scale_k)^2 / 3)
    cost_k       = H * scale_k^2 / 3
    lambda_k     = (1 / scale_k - 1) / K        (= d return / d limit_k; 0 when unconstrained, inf at limit 0)

Any stochastic or nonlinear policy does strictly worse (for each context the Lagrangian is strictly concave in a).
An action does not influence the next context, so the optimal policy is myopic: it is the same for every discount
factor, which may (and, for critics that bootstrap across the cut, should) stay below 1.
Default limits (d_k = 1/12): scale 1/2, return H * 11/12 (9.1667 for H = 10), costs H / 12 (0.8333), lambda 1/K.
Unconstrained: a = s, return H (10), costs H / 3 (3.333, four times the default limit). Best zero-cost policy
(a = 0): H * 2/3 (6.667).

    cmdp train --env QuadraticBandit-v0 --algo ppo_lag --set 'env_kwargs={num_costs: 2, horizon: 10}'
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium
import numpy as np

from cmdp.config import check_seed
from cmdp.control import VectorFamily
from cmdp.registry import register_env
from cmdp.spec import CMDPSpec, ConfigError, CostSpec
from cmdp.vec_env import StepResult, VecCMDP

NAME = "QuadraticBandit-v0"
DEFAULT_HORIZON = 10
#: per-step budget of each cost under the default limits: the optimal action is then a_k = s_k / 2
DEFAULT_BUDGET = 1.0 / 12.0
_CONTEXT_SECOND_MOMENT = 1.0 / 3.0  # E[s^2] for s ~ Uniform[-1, 1]
#: the most costs (action dimensions) K a bandit takes. Each cost has its own multiplier, progress.csv columns and
#: critic over the K-dimensional context, so a run's memory grows as K^2 (a 200-step ppo_lag run peaks at 0.39 GB
#: of RSS with K = 100 and 2.2 GB with K = 1,000); a K far beyond this ran out of memory in a traceback
MAX_NUM_COSTS = 256


def bandit_cost_names(num_costs: int) -> list[str]:
    """The cost names of a bandit with `num_costs` action dimensions: "effort_0", ..., "effort_{K-1}"."""
    return [f"effort_{k}" for k in range(num_costs)]


def default_cost_limits(horizon: int = DEFAULT_HORIZON, num_costs: int = 1) -> np.ndarray:
    """The environment's default limits (K,): H / 12 per cost, the budget at which the optimum is a = s / 2."""
    return np.full(num_costs, horizon * DEFAULT_BUDGET)


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_num_costs(name: str, value: Any) -> int:
    """`value` as the bandit's number of costs K; ConfigError naming `name` unless it is an integer in
    [1, MAX_NUM_COSTS]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_NUM_COSTS:
        raise ConfigError(f"{name} must be an integer in [1, {MAX_NUM_COSTS}] (a run's memory grows as its "
                          f"square), got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------------------------
# Closed-form optimum and Monte Carlo evaluation
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BanditOptimum:
    """Result of `bandit_optimum`: the optimal policy a_k = scales[k] * s_k and its expected episode totals.

    value: optimal expected undiscounted episode return; costs: (K,) its expected episode costs; scales: (K,)
    the optimal policy's gain per dimension; multipliers: (K,) the Lagrange multipliers lambda_k >= 0 in the units
    of this reward (the optimal policy maximises r - sum_k lambda_k c_k pointwise; lambda_k = d value / d limit_k;
    0 where a limit does not bind, inf where a limit is 0).
    """

    value: float
    costs: np.ndarray
    scales: np.ndarray
    multipliers: np.ndarray


def bandit_optimum(limits: float | Sequence[float] | np.ndarray, horizon: int = DEFAULT_HORIZON,
                   num_costs: int | None = None) -> BanditOptimum:
    """The exact constrained optimum of the bandit for episode cost limits `limits`.

    `limits` is one number for every cost or one per cost (math.inf: unconstrained); `num_costs` defaults to the
    number of limits given (1 for a single number). With per-step budgets d_k = limit_k / H:
    scale_k = min(1, sqrt(3 d_k)); value = H (1 - mean_k (1 - scale_k)^2 / 3); cost_k = H scale_k^2 / 3;
    lambda_k = (1 / scale_k - 1) / K. See the module docstring for the derivation.
    """
    horizon = _check_int("horizon", horizon)
    arr = np.asarray(limits, dtype=np.float64)
    if num_costs is None:
        num_costs = 1 if arr.ndim == 0 else arr.size
    k = check_num_costs("num_costs", num_costs)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.size not in (1, k)):
        raise ValueError(f"limits must be one number or {k} numbers, got shape {arr.shape}")
    arr = np.broadcast_to(arr.reshape(-1) if arr.ndim else arr, (k,)).astype(np.float64)
    if np.isnan(arr).any() or (arr < 0).any():
        raise ValueError(f"limits must be non-negative (math.inf: unconstrained), got {arr}")
    budget = arr / horizon
    scales = np.where(budget >= _CONTEXT_SECOND_MOMENT, 1.0,
                      np.sqrt(3.0 * np.minimum(budget, _CONTEXT_SECOND_MOMENT)))
    with np.errstate(divide="ignore"):
        multipliers = (1.0 / scales - 1.0) / k  # inf where a limit is 0 (scale 0)
    value = horizon * (1.0 - np.mean((1.0 - scales) ** 2) * _CONTEXT_SECOND_MOMENT)
    costs = horizon * scales ** 2 * _CONTEXT_SECOND_MOMENT
    return BanditOptimum(float(value), costs, scales, multipliers)


def evaluate_bandit_policy(act: Callable[[np.ndarray], Any], num_costs: int, horizon: int = DEFAULT_HORIZON,
                           samples: int = 20000, seed: int = 0) -> tuple[float, np.ndarray]:
    """Monte Carlo estimate of a policy's expected episode return and episode costs (K,).

    `act` maps a (N, K) float32 array of contexts to (N, K) actions (any array-like; it may be stochastic;
    actions are clipped to [-1, 1] as the environment does). Contexts are i.i.d. and the policy sees only the
    context, so every step has the same expectation: this draws `samples` contexts (from `seed`), averages the
    per-step reward and costs of one call of `act` on them, and multiplies by H.

    The estimate is Monte Carlo, not exact: its standard error is H * sigma / sqrt(samples), with sigma the
    per-step standard deviation (reward: at most 2; each cost: at most 0.5; for a = s / 2 and K = 1 both are
    sqrt(1/180) = 0.0745, so with the defaults H = 10 and 20000 samples the standard error is 0.0053 on the
    return and on the cost).
    """
    k = check_num_costs("num_costs", num_costs)
    horizon = _check_int("horizon", horizon)
    samples = _check_int("samples", samples)
    contexts = np.random.default_rng(seed).uniform(-1.0, 1.0, (samples, k)).astype(np.float32)
    actions = np.asarray(act(contexts.copy()), dtype=np.float64)
    if actions.size != samples * k:
        raise ValueError(f"act must return {samples} x {k} actions, got an array of shape {actions.shape}")
    reward, costs = _reward_and_costs(contexts.astype(np.float64), actions.reshape(samples, k))
    return float(horizon * reward.mean()), horizon * costs.mean(axis=0)


def _reward_and_costs(contexts: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-step reward (N,) and costs (N, K) of actions (N, K) (clipped to [-1, 1]) answering contexts (N, K)."""
    a = np.clip(actions, -1.0, 1.0)
    return 1.0 - np.mean((a - contexts) ** 2, axis=1), a ** 2


# ----------------------------------------------------------------------------------------------
# Vectorised environment
# ----------------------------------------------------------------------------------------------

class QuadraticBanditVecCMDP(VecCMDP):
    """N copies of the quadratic bandit, stepped together with numpy (no per-copy Python loop).

    Observations are contexts, float32 arrays (N, K); actions are (N, K) arrays (or (N,) when K = 1), clipped to
    [-1, 1]. Each step returns the reward and costs of the action for the context observed before it, then a
    fresh context. After H steps a copy reports truncated=True (never terminated), final_obs = a fresh context
    (what the episode would have observed next: the state to bootstrap from) and obs = the first context of its
    next episode. All randomness comes from one `np.random.Generator`, re-created by `reset(seed)` (a given seed
    always gives the same contexts); `reset(None)` continues the current generator.
    """

    def __init__(self, num_envs: int = 1, num_costs: int = 1, horizon: int = DEFAULT_HORIZON,
                 seed: int | None = None) -> None:
        k = check_num_costs("env_kwargs.num_costs", num_costs)
        horizon = _check_int("env_kwargs.horizon", horizon)
        box = gymnasium.spaces.Box(-1.0, 1.0, (k,), dtype=np.float32)
        limits = default_cost_limits(horizon, k)
        spec = CMDPSpec(box, gymnasium.spaces.Box(-1.0, 1.0, (k,), dtype=np.float32),
                        tuple(CostSpec(n, float(l)) for n, l in zip(bandit_cost_names(k), limits)), horizon)
        super().__init__(spec, num_envs)
        self.num_costs = k
        self.horizon = horizon
        self._rng = np.random.default_rng(seed)
        self._obs = self._draw(num_envs)
        self._t = np.zeros(num_envs, dtype=np.int64)

    def _draw(self, count: int) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, (count, self.num_costs)).astype(np.float32)

    def _reset(self, seed: int | None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._obs = self._draw(self.num_envs)
        self._t[:] = 0
        return self._obs.copy()

    def _reset_copies(self, idx: np.ndarray) -> np.ndarray:
        self._obs[idx] = self._draw(len(idx))
        self._t[idx] = 0
        return self._obs[idx].copy()

    def _step(self, actions: np.ndarray) -> StepResult:
        n, k = self.num_envs, self.num_costs
        a = np.asarray(actions, dtype=np.float64)
        if a.size != n * k:
            raise ValueError(f"expected {n} x {k} actions, got an array of shape {a.shape}")
        a = a.reshape(n, k)
        if not np.all(np.isfinite(a)):
            raise ValueError("actions must be finite")
        reward, costs = _reward_and_costs(self._obs.astype(np.float64), a)
        self._t += 1
        truncated = self._t >= self.horizon
        terminated = np.zeros(n, dtype=bool)
        nxt = self._draw(n)
        final_obs = nxt.copy()
        if truncated.any():
            idx = np.flatnonzero(truncated)
            nxt[idx] = self._draw(len(idx))
            self._t[idx] = 0
        self._obs = nxt
        return StepResult(nxt.copy(), reward, costs, terminated, truncated, final_obs)


# ----------------------------------------------------------------------------------------------
# Registration
# ----------------------------------------------------------------------------------------------

@dataclass
class QuadraticBanditKwargs:
    """The `env_kwargs` QuadraticBandit-v0 accepts.

    The time limit is `horizon` itself (spec.max_episode_steps = horizon): there is no separate
    `max_episode_steps`, because the default limits and `bandit_optimum` are stated per episode of H steps.
    """

    num_costs: int = 1  # K: action dimensions, one cost each (at most MAX_NUM_COSTS)
    horizon: int = DEFAULT_HORIZON  # H: steps per episode (every episode is truncated after H steps)
    seed: int | None = None  # seed of the copies' random stream

    def validate(self) -> None:
        check_num_costs("env_kwargs.num_costs", self.num_costs)
        if self.horizon < 1:
            raise ConfigError(f"env_kwargs.horizon must be >= 1, got {self.horizon}")
        check_seed("env_kwargs.seed", self.seed)


_FACTORY_KWARGS = tuple(f.name for f in dataclasses.fields(QuadraticBanditKwargs))


def make_quadratic_bandit(num_envs: int = 1, **kwargs: Any) -> QuadraticBanditVecCMDP:
    """Build QuadraticBandit-v0: `make_quadratic_bandit(num_envs=1, num_costs=1, horizon=10, seed=None)`."""
    unknown = sorted(set(kwargs) - set(_FACTORY_KWARGS))
    if unknown:
        raise ConfigError(f"env_kwargs: unknown key(s) {unknown} for {NAME}; it accepts {list(_FACTORY_KWARGS)}")
    return QuadraticBanditVecCMDP(num_envs, **kwargs)


class QuadraticBanditFamily(VectorFamily):
    """The control family for the bandit: its cost names follow `env_kwargs.num_costs` (registered with
    `copies_in_process`: its copies are numpy rows)."""

    def cost_names(self, cfg: Any) -> list[str] | None:
        num_costs = (cfg.env_kwargs or {}).get("num_costs", QuadraticBanditKwargs.num_costs)
        return bandit_cost_names(int(num_costs))  # validate() ran first: an integer >= 1


register_env(NAME, QuadraticBanditFamily(make_quadratic_bandit, QuadraticBanditKwargs, copies_in_process=True),
             group="exact", description="continuous contextual bandit, K action dims each with an effort cost, "
                                        "episodes truncated at H (closed-form optimum 9.1667 at cost 0.8333 per dim "
                                        "for H 10)")
