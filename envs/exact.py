"""Small exact CMDPs: tabular environments with known tables, an LP solver and exact policy evaluation.

These are the correctness oracle for the constrained RL solvers of the project. Each instance is a
`TabularCMDP` (transition, reward and cost tables); `solve_lp` computes its exact constrained (or
unconstrained) optimum, `evaluate_policy` the exact return and costs of any stochastic policy, and
`TabularVecCMDP` steps N copies natively with numpy so a solver can be trained on it like on any
other `VecCMDP`. A test can then train a solver and compare `evaluate_policy` of the learnt policy
with `solve_lp`.

All values are UNDISCOUNTED expected episode totals (what a Lagrangian solver constrains: mean
episode cost <= limit). Every instance is built so that every policy ends its episodes with
probability 1 (checked by `TabularCMDP` itself), which makes these totals finite and the LP over
expected state-action visitation counts exact.

Registered instances (family "exact"; build one with `make_exact(name, num_envs)` or through the
registry; the factories accept `max_episode_steps` and `seed`). Exact LP optima, undiscounted:

    name             constrained value / costs (limits)    unconstrained value / costs   E[length] c/u
    ExactChain-v0    5.6875 / 1.5        (1.5)             10.0   / 5.0                  5.88 / 5.00
    ExactGrid-v0     5.5187 / 0.3        (0.3)             7.4574 / 1.0041               7.47 / 4.24
    ExactTwoCost-v0  4.8625 / 1.5, 1.0   (1.5, 1.0)        9.4    / 4.0, 4.0             4.63 / 4.00

In every instance each limit binds at the constrained optimum, the unconstrained optimum violates
each limit by far more than 30%, and the best (nearly) zero-cost policy is far worse.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import gymnasium
import numpy as np
from scipy.optimize import linprog

from cmdp.config import check_seed
from cmdp.control import VectorFamily
from cmdp.registry import register_env
from cmdp.spec import CMDPSpec, ConfigError, CostSpec
from cmdp.vec_env import StepResult, VecCMDP

_ROW_TOL = 1e-8  # how far a probability row may be from summing to 1


class LPInfeasibleError(ValueError):
    """The constrained LP has no feasible policy: no policy meets every cost limit."""


def _frozen(a: Any, dtype: Any) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class TabularCMDP:
    """A finite CMDP given by its tables; episodes are undiscounted and end in terminal states.

    P: (S, A, S) transition probabilities P[s, a, s'] (every row sums to 1, terminal rows included).
    R: (S, A) expected reward of acting with a in s.
    C: (S, A, K) expected costs of acting with a in s.
    mu0: (S,) initial state distribution (no mass on terminal states).
    terminal: (S,) bool; entering a terminal state ends the episode, terminal states are never acted in.
    cost_names: K names; cost_limits: (K,) limits on the expected episode total of each cost.

    Construction validates shapes and probabilities and checks that every policy (stationary or not)
    reaches a terminal state with probability 1 from every non-terminal state, so that undiscounted
    expected totals are finite for every policy. The arrays are stored read-only.
    """

    name: str
    P: np.ndarray
    R: np.ndarray
    C: np.ndarray
    mu0: np.ndarray
    terminal: np.ndarray
    cost_names: tuple[str, ...]
    cost_limits: np.ndarray

    def __post_init__(self) -> None:
        put = functools.partial(object.__setattr__, self)
        P, R, C = (np.asarray(x, dtype=np.float64) for x in (self.P, self.R, self.C))
        mu0 = np.asarray(self.mu0, dtype=np.float64)
        terminal = np.asarray(self.terminal)
        names = tuple(str(n) for n in self.cost_names)
        limits = np.asarray(self.cost_limits, dtype=np.float64).reshape(-1)
        where = f"TabularCMDP '{self.name}'"
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] < 1 or P.shape[1] < 1:
            raise ValueError(f"{where}: P must have shape (S, A, S), got {P.shape}")
        S, A, _ = P.shape
        if R.shape != (S, A):
            raise ValueError(f"{where}: R must have shape (S, A) = {(S, A)}, got {R.shape}")
        if C.ndim != 3 or C.shape[:2] != (S, A) or C.shape[2] < 1:
            raise ValueError(f"{where}: C must have shape (S, A, K) = ({S}, {A}, K>=1), got {C.shape}")
        K = C.shape[2]
        if mu0.shape != (S,):
            raise ValueError(f"{where}: mu0 must have shape (S,) = ({S},), got {mu0.shape}")
        if terminal.shape != (S,) or terminal.dtype != np.bool_:
            raise ValueError(f"{where}: terminal must be a bool array of shape ({S},), got "
                             f"{terminal.dtype} {terminal.shape}")
        if len(names) != K or limits.shape != (K,):
            raise ValueError(f"{where}: need one cost name and one limit per cost (K = {K}), got "
                             f"{len(names)} name(s) and {limits.size} limit(s)")
        if len(set(names)) != K:
            raise ValueError(f"{where}: cost names must be unique, got {names}")
        for label, arr in (("P", P), ("R", R), ("C", C), ("mu0", mu0), ("cost_limits", limits)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{where}: {label} contains non-finite values")
        if (P < 0).any():
            raise ValueError(f"{where}: P has negative probabilities")
        bad = np.argwhere(np.abs(P.sum(axis=2) - 1.0) > _ROW_TOL)
        if len(bad):
            s, a = bad[0]
            raise ValueError(f"{where}: rows of P must sum to 1; P[{s}, {a}, :] sums to {P[s, a].sum():.12g} "
                             f"({len(bad)} bad row(s))")
        if (mu0 < 0).any() or abs(mu0.sum() - 1.0) > _ROW_TOL:
            raise ValueError(f"{where}: mu0 must be a probability vector (sums to {mu0.sum():.12g})")
        if not terminal.any():
            raise ValueError(f"{where}: at least one state must be terminal")
        if (mu0[terminal] > 0).any():
            raise ValueError(f"{where}: mu0 puts mass on terminal states {np.flatnonzero(terminal & (mu0 > 0))}")
        if (limits < 0).any():
            raise ValueError(f"{where}: cost limits must be >= 0, got {limits}")
        trapped = _trap_states(P, terminal)
        if len(trapped):
            raise ValueError(f"{where}: some policy never terminates from state(s) {trapped.tolist()}; "
                             "undiscounted totals would be infinite (add a termination probability)")
        put("P", _frozen(P, np.float64))
        put("R", _frozen(R, np.float64))
        put("C", _frozen(C, np.float64))
        put("mu0", _frozen(mu0, np.float64))
        put("terminal", _frozen(terminal, np.bool_))
        put("cost_names", names)
        put("cost_limits", _frozen(limits, np.float64))

    @property
    def num_states(self) -> int:
        return self.P.shape[0]

    @property
    def num_actions(self) -> int:
        return self.P.shape[1]

    @property
    def num_costs(self) -> int:
        return self.C.shape[2]

    @property
    def nonterminal(self) -> np.ndarray:
        """Indices of the non-terminal states (the ones acted in)."""
        return np.flatnonzero(~self.terminal)

    def spec(self, max_episode_steps: int | None = None) -> CMDPSpec:
        """The `CMDPSpec` of this CMDP: Discrete(S) observations, Discrete(A) actions, its costs."""
        return CMDPSpec(gymnasium.spaces.Discrete(self.num_states), gymnasium.spaces.Discrete(self.num_actions),
                        tuple(CostSpec(n, float(l)) for n, l in zip(self.cost_names, self.cost_limits)),
                        max_episode_steps)

    def with_limits(self, limits: float | Sequence[float]) -> "TabularCMDP":
        """A copy with other cost limits (one number for every cost, or one per cost)."""
        arr = np.broadcast_to(np.asarray(limits, dtype=np.float64), (self.num_costs,))
        return replace(self, cost_limits=arr)


def _trap_states(P: np.ndarray, terminal: np.ndarray) -> np.ndarray:
    """Non-terminal states from which some policy can avoid the terminal states forever.

    Computes the largest set W of non-terminal states in which, from every state, some action keeps
    the next state inside W with probability 1. W empty <=> every policy terminates with probability 1.
    """
    inside = ~terminal.copy()
    support = P > 0
    while True:
        # an action keeps s inside if all its successors are inside
        keeps = ~(support & ~inside[None, None, :]).any(axis=2)  # (S, A)
        new = inside & keeps.any(axis=1)
        if (new == inside).all():
            return np.flatnonzero(inside)
        inside = new


# ----------------------------------------------------------------------------------------------
# Exact solution and exact evaluation
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LPSolution:
    """Result of `solve_lp`.

    value: optimal expected undiscounted episode return; costs: (K,) expected episode costs of the
    optimal policy; policy: (S, A) action probabilities (x normalised per state, uniform where a state
    has zero visitation and in terminal states); visits: (S, A) expected state-action visitation
    counts x(s, a) (zero in terminal states); duals: (K,) the Lagrange multipliers of the cost
    constraints, d value / d limit_k (>= 0; zero when unconstrained or not binding).
    """

    value: float
    costs: np.ndarray
    policy: np.ndarray
    visits: np.ndarray
    duals: np.ndarray

    @property
    def expected_length(self) -> float:
        """Expected number of steps of an episode under the optimal policy."""
        return float(self.visits.sum())


def solve_lp(cmdp: TabularCMDP, constrained: bool = True,
             cost_limits: float | Sequence[float] | None = None) -> LPSolution:
    """Exact optimum of `cmdp` by linear programming over expected state-action visitation counts.

    Variables x(s, a) >= 0 for non-terminal s; flow constraints
    sum_a x(s', a) - sum_{s, a} P(s, a, s') x(s, a) = mu0(s') for every non-terminal s';
    maximise sum R x subject to sum C_k x <= limit_k for every cost k (only when `constrained`).
    `cost_limits` overrides the CMDP's own limits. Raises `LPInfeasibleError` if no policy meets the
    limits.
    """
    nt = cmdp.nonterminal
    n, A, K = len(nt), cmdp.num_actions, cmdp.num_costs
    limits = cmdp.cost_limits if cost_limits is None else np.broadcast_to(
        np.asarray(cost_limits, dtype=np.float64), (K,))
    P_nt = cmdp.P[nt][:, :, nt].reshape(n * A, n)  # row (s, a) -> next non-terminal state
    A_eq = np.repeat(np.eye(n), A, axis=1) - P_nt.T
    b_eq = cmdp.mu0[nt]
    c = -cmdp.R[nt].reshape(n * A)
    C_nt = cmdp.C[nt].reshape(n * A, K)
    kwargs: dict[str, Any] = {}
    if constrained:
        kwargs = dict(A_ub=C_nt.T, b_ub=limits)
    res = linprog(c, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs", **kwargs)
    if res.status == 2:
        raise LPInfeasibleError(f"{cmdp.name}: no policy meets the cost limits "
                                f"{dict(zip(cmdp.cost_names, limits.tolist()))}")
    if res.status != 0:
        raise RuntimeError(f"{cmdp.name}: linprog failed (status {res.status}): {res.message}")
    x = np.clip(res.x, 0.0, None).reshape(n, A)
    visits = np.zeros((cmdp.num_states, A))
    visits[nt] = x
    policy = np.full((cmdp.num_states, A), 1.0 / A)
    mass = x.sum(axis=1)
    seen = mass > 1e-12
    policy[nt[seen]] = x[seen] / mass[seen, None]
    duals = np.zeros(K)
    if constrained:
        duals = np.clip(-np.asarray(res.ineqlin.marginals, dtype=np.float64), 0.0, None)
    value = float((cmdp.R * visits).sum())
    costs = np.einsum("sa,sak->k", visits, cmdp.C)
    return LPSolution(value, costs, policy, visits, duals)


def _check_policy(cmdp: TabularCMDP, policy: np.ndarray) -> np.ndarray:
    pi = np.asarray(policy, dtype=np.float64)
    if pi.shape != (cmdp.num_states, cmdp.num_actions):
        raise ValueError(f"policy must have shape (S, A) = {(cmdp.num_states, cmdp.num_actions)}, got {pi.shape}")
    nt = cmdp.nonterminal
    if not np.all(np.isfinite(pi[nt])) or (pi[nt] < 0).any():
        raise ValueError("policy must hold finite non-negative probabilities")
    sums = pi[nt].sum(axis=1)
    if np.abs(sums - 1.0).max() > 1e-6:
        worst = sums[np.argmax(np.abs(sums - 1.0))]
        raise ValueError(f"policy rows of non-terminal states must sum to 1 (worst: {worst:.9g})")
    return pi


def state_action_visits(cmdp: TabularCMDP, policy: np.ndarray) -> np.ndarray:
    """Expected number of visits x(s, a) of each state-action pair in one episode under `policy`.

    Solves (I - P_pi^T) x_s = mu0 on the non-terminal states, then x(s, a) = x_s(s) policy(s, a).
    Rows of terminal states are zero. `visits.sum()` is the expected episode length.
    """
    pi = _check_policy(cmdp, policy)
    nt = cmdp.nonterminal
    pi_nt = pi[nt] / pi[nt].sum(axis=1, keepdims=True)
    P_pi = np.einsum("sa,sat->st", pi_nt, cmdp.P[nt][:, :, nt])
    xs = np.linalg.solve(np.eye(len(nt)) - P_pi.T, cmdp.mu0[nt])
    visits = np.zeros((cmdp.num_states, cmdp.num_actions))
    visits[nt] = np.clip(xs, 0.0, None)[:, None] * pi_nt
    return visits


def evaluate_policy(cmdp: TabularCMDP, policy: np.ndarray) -> tuple[float, np.ndarray]:
    """Exact expected undiscounted episode return and costs (K,) of a stochastic policy (S, A)."""
    visits = state_action_visits(cmdp, policy)
    return float((cmdp.R * visits).sum()), np.einsum("sa,sak->k", visits, cmdp.C)


# ----------------------------------------------------------------------------------------------
# Vectorised environment
# ----------------------------------------------------------------------------------------------

class TabularVecCMDP(VecCMDP):
    """N copies of a `TabularCMDP`, stepped together with numpy (no per-copy Python loop).

    Observations are state indices, int64 arrays of shape (N,) in Discrete(S); actions are indices in
    Discrete(A) (int or float arrays of N entries). Each step returns the expected reward R[s, a] and
    expected costs C[s, a, :] (deterministic), so the mean episode totals equal the exact values of
    `evaluate_policy` with less noise. A copy that enters a terminal state reports terminated=True,
    final_obs = that terminal state and obs = a fresh start state drawn from mu0; with
    `max_episode_steps` set, a copy whose episode reaches that many steps without terminating reports
    truncated=True instead. All randomness comes from one `np.random.Generator`, re-created by
    `reset(seed)` (a given seed always gives the same trajectories for the same actions).
    """

    def __init__(self, cmdp: TabularCMDP, num_envs: int = 1, max_episode_steps: int | None = None,
                 seed: int | None = None) -> None:
        if max_episode_steps is not None and (isinstance(max_episode_steps, bool)
                                              or not isinstance(max_episode_steps, (int, np.integer))
                                              or max_episode_steps < 1):
            raise ConfigError(f"max_episode_steps must be None or an integer >= 1, got {max_episode_steps!r}")
        super().__init__(cmdp.spec(None if max_episode_steps is None else int(max_episode_steps)), num_envs)
        self.cmdp = cmdp
        self.max_episode_steps = self.spec.max_episode_steps
        cum = np.cumsum(cmdp.P, axis=2)
        cum[:, :, -1] = 1.0  # guard against rounding: a uniform draw in [0, 1) always lands somewhere
        self._cum_P = cum
        cum0 = np.cumsum(cmdp.mu0)
        cum0[-1] = 1.0
        self._cum_mu0 = cum0
        self._rng = np.random.default_rng(seed)
        self._state = self._draw_start(num_envs)
        self._t = np.zeros(num_envs, dtype=np.int64)

    def _draw_start(self, count: int) -> np.ndarray:
        u = self._rng.random(count)
        return (self._cum_mu0[None, :] <= u[:, None]).sum(axis=1).astype(np.int64)

    def _reset(self, seed: int | None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._state = self._draw_start(self.num_envs)
        self._t[:] = 0
        return self._state.copy()

    def _reset_copies(self, idx: np.ndarray) -> np.ndarray:
        self._state[idx] = self._draw_start(len(idx))
        self._t[idx] = 0
        return self._state[idx].copy()

    def _step(self, actions: np.ndarray) -> StepResult:
        a = np.asarray(actions)
        if a.size != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got an array of shape {a.shape}")
        a = a.reshape(self.num_envs)
        if a.dtype.kind == "f":
            a = np.rint(a)
        a = a.astype(np.int64)
        if (a < 0).any() or (a >= self.cmdp.num_actions).any():
            raise ValueError(f"actions must lie in [0, {self.cmdp.num_actions}), got {a}")
        s = self._state
        reward = self.cmdp.R[s, a].copy()
        costs = self.cmdp.C[s, a].copy()
        u = self._rng.random(self.num_envs)
        nxt = (self._cum_P[s, a] <= u[:, None]).sum(axis=1).astype(np.int64)
        self._t += 1
        terminated = self.cmdp.terminal[nxt].copy()
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = ~terminated & (self._t >= self.max_episode_steps)
        done = terminated | truncated
        final_obs = nxt.copy()
        if done.any():
            idx = np.flatnonzero(done)
            nxt[idx] = self._draw_start(len(idx))
            self._t[idx] = 0
        self._state = nxt
        return StepResult(nxt.copy(), reward, costs, terminated, truncated, final_obs)


# ----------------------------------------------------------------------------------------------
# Instances
# ----------------------------------------------------------------------------------------------

def _expected(P: np.ndarray, per_transition: np.ndarray) -> np.ndarray:
    """Expected reward/cost of (s, a) from a per-transition table (S, A, S[, K]) and P (S, A, S)."""
    if per_transition.ndim == 3:
        return np.einsum("sat,sat->sa", P, per_transition)
    return np.einsum("sat,satk->sak", P, per_transition)


@functools.lru_cache(maxsize=None)
def build_chain() -> TabularCMDP:
    """ExactChain-v0: a corridor where the fast action pays but costs (a chain-shaped bandit).

    States 0..4 are positions in a corridor, state 5 is the exit (terminal); episodes start at 0.
    Action 0 "walk": reward 0.5, no cost, advances with probability 0.8 (else stays in place).
    Action 1 "sprint": reward 1.6, 1.8, 2.0, 2.2, 2.4 at positions 0..4, cost 1, always advances.
    One cost, "cost", limit 1.5: sprint at most 1.5 times per episode on average.

    LP optimum (undiscounted): constrained value 5.6875, cost 1.5 (binds; dual 1.575): walk at
    positions 0-2, sprint with probability 4/9 at position 3, sprint at 4; expected length 5.875.
    Unconstrained: value 10.0, cost 5.0 (sprint everywhere), length 5.0. Best zero-cost policy: 3.125.
    """
    n = 5
    sprint = np.array([1.6, 1.8, 2.0, 2.2, 2.4])
    walk_reward, walk_advance = 0.5, 0.8
    S, A = n + 1, 2
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    C = np.zeros((S, A, 1))
    for s in range(n):
        P[s, 0, s + 1] = walk_advance
        P[s, 0, s] = 1.0 - walk_advance
        P[s, 1, s + 1] = 1.0
        R[s, 0] = walk_reward
        R[s, 1] = sprint[s]
        C[s, 1, 0] = 1.0
    P[n, :, n] = 1.0
    mu0 = np.zeros(S)
    mu0[0] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[n] = True
    return TabularCMDP("ExactChain-v0", P, R, C, mu0, terminal, ("cost",), np.array([1.5]))


_GRID = ("....."
         "....."
         "..H.."
         "..H.."
         "S.H.G")


@functools.lru_cache(maxsize=None)
def build_grid(rows: int = 5, cols: int = 5, layout: str = _GRID, slip: float = 0.1, stop: float = 0.05,
               goal_reward: float = 10.0, step_penalty: float = 0.1, limit: float = 0.3) -> TabularCMDP:
    """ExactGrid-v0: a slippery gridworld with a short path through hazards and a long safe detour.

    `layout` is a row-major string: S start, G goal (terminal), H hazard, . free. States 0..rows*cols-1
    are the cells (index r*cols + c); the last state is "stopped" (terminal). Actions 0..3 move
    up/right/down/left; with probability `slip` the move goes to one of the two perpendicular
    directions instead (each equally likely); moves off the grid leave the agent in place. Every
    step, with probability `stop` the episode ends in the "stopped" state instead of moving (so every
    policy terminates and episodes stay short). Reward: -`step_penalty` per step, +`goal_reward` on
    entering the goal. Cost "hazard": 1 for every step that ends in a hazard cell. The returned
    tables hold the expectations over the next state.

    Default layout (5x5, start bottom-left, goal bottom-right, a wall of hazards in the middle column
    of the three bottom rows), slip 0.1, stop 0.05, goal reward 10, step penalty 0.1, limit 0.3.
    The short path (4 steps along the bottom row) crosses one hazard cell; the detour over the wall
    along row 1 takes 10 steps and risks slipping into the top of the wall.

    LP optimum (undiscounted): constrained value 5.5187, hazard cost 0.3 (binds; dual 2.945): at the
    start go right (short path) with probability 0.258 and up (detour along row 1) otherwise;
    expected length 7.47. Unconstrained: value 7.4574, cost 1.0041 (short path), length 4.24. Best
    zero-cost policy (detour along row 0): value 3.9577, length 10.07. Uniform random policy: value
    -0.32, cost 2.10, length 17.2.
    """
    if len(layout) != rows * cols:
        raise ValueError("layout must have rows * cols characters")
    n_cells = rows * cols
    S, A = n_cells + 1, 4
    stopped = n_cells
    moves = [(-1, 0), (0, 1), (1, 0), (0, -1)]
    perpendicular = {0: (1, 3), 1: (0, 2), 2: (1, 3), 3: (0, 2)}
    goal = layout.index("G")
    start = layout.index("S")
    hazard = np.array([ch == "H" for ch in layout] + [False])

    def target(cell: int, d: int) -> int:
        r, c = divmod(cell, cols)
        r2, c2 = r + moves[d][0], c + moves[d][1]
        return r2 * cols + c2 if 0 <= r2 < rows and 0 <= c2 < cols else cell

    P = np.zeros((S, A, S))
    for cell in range(n_cells):
        if cell == goal:
            P[cell, :, cell] = 1.0
            continue
        for a in range(A):
            P[cell, a, stopped] += stop
            P[cell, a, target(cell, a)] += (1 - stop) * (1 - slip)
            for d in perpendicular[a]:
                P[cell, a, target(cell, d)] += (1 - stop) * slip / 2
    P[stopped, :, stopped] = 1.0
    r3 = np.full((S, A, S), -step_penalty)
    r3[:, :, goal] += goal_reward
    c3 = np.zeros((S, A, S, 1))
    c3[:, :, hazard, 0] = 1.0
    R, C = _expected(P, r3), _expected(P, c3)
    terminal = np.zeros(S, dtype=bool)
    terminal[[goal, stopped]] = True
    R[terminal] = 0.0
    C[terminal] = 0.0
    mu0 = np.zeros(S)
    mu0[start] = 1.0
    return TabularCMDP("ExactGrid-v0", P, R, C, mu0, terminal, ("hazard",), np.array([limit]))


@functools.lru_cache(maxsize=None)
def build_two_cost() -> TabularCMDP:
    """ExactTwoCost-v0: a route of stages where shortcuts draw on one or both of two budgets.

    States 0..3 are the stages of a route, state 4 the destination (terminal); episodes start at 0.
    Action 0 "slow": reward 0.5, no cost, advances with probability 0.8 (else stays).
    Action 1 "toll": reward 1.4-1.6, cost_a 1; action 2 "loud": reward 1.2-1.5, cost_b 1;
    action 3 "both": reward 2.2-2.5, cost_a 1 and cost_b 1; actions 1-3 always advance.
    Limits: cost_a 1.5, cost_b 1.0.

    LP optimum (undiscounted): constrained value 4.8625, costs (1.5, 1.0), BOTH bind (duals 0.975
    and 0.9; relaxing either limit raises the optimum): slow at stages 0-1, toll with probability
    4/9 at stage 2 (slow otherwise), "both" at stage 3; expected length 4.625. Unconstrained: value
    9.4, costs (4, 4) ("both" everywhere), length 4.0. Best zero-cost policy: 2.5.
    """
    n = 4
    # per stage: reward of actions 0 "slow", 1 "toll" (cost_a), 2 "loud" (cost_b), 3 "both"
    rewards = np.array([[0.5, 1.4, 1.2, 2.2],
                        [0.5, 1.5, 1.4, 2.4],
                        [0.5, 1.6, 1.3, 2.3],
                        [0.5, 1.5, 1.5, 2.5]])
    slow_advance = 0.8
    S, A = n + 1, 4
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    C = np.zeros((S, A, 2))
    for s in range(n):
        P[s, 0, s + 1] = slow_advance
        P[s, 0, s] = 1 - slow_advance
        P[s, 1:, s + 1] = 1.0
        R[s] = rewards[s]
        C[s, 1, 0] = C[s, 3, 0] = 1.0
        C[s, 2, 1] = C[s, 3, 1] = 1.0
    P[n, :, n] = 1.0
    mu0 = np.zeros(S)
    mu0[0] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[n] = True
    return TabularCMDP("ExactTwoCost-v0", P, R, C, mu0, terminal, ("cost_a", "cost_b"), np.array([1.5, 1.0]))


EXACT_CMDPS: dict[str, Callable[[], TabularCMDP]] = {
    "ExactChain-v0": build_chain,
    "ExactGrid-v0": build_grid,
    "ExactTwoCost-v0": build_two_cost,
}

_DESCRIPTIONS = {
    "ExactChain-v0": "tabular corridor, sprinting pays but costs (exact LP optimum 5.6875 at cost 1.5)",
    "ExactGrid-v0": "slippery 5x5 gridworld, hazard shortcut vs safe detour (exact LP optimum 5.5187 at cost 0.3)",
    "ExactTwoCost-v0": "tabular route with two budgets that both bind (exact LP optimum 4.8625 at costs 1.5, 1.0)",
}

@dataclass
class ExactKwargs:
    """The `env_kwargs` an exact CMDP accepts."""

    max_episode_steps: int | None = None  # time limit (None: the instance's own horizon)
    seed: int | None = None  # seed of the copies' random streams

    def validate(self) -> None:
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ConfigError(f"env_kwargs.max_episode_steps must be >= 1, got {self.max_episode_steps}")
        check_seed("env_kwargs.seed", self.seed)


_FACTORY_KWARGS = tuple(f.name for f in dataclasses.fields(ExactKwargs))


def make_exact(name: str, num_envs: int = 1, max_episode_steps: int | None = None,
               seed: int | None = None) -> TabularVecCMDP:
    """A `TabularVecCMDP` of the exact instance `name` with `num_envs` copies."""
    if name not in EXACT_CMDPS:
        raise ConfigError(f"unknown exact CMDP '{name}'; known: {sorted(EXACT_CMDPS)}")
    return TabularVecCMDP(EXACT_CMDPS[name](), num_envs, max_episode_steps=max_episode_steps, seed=seed)


def _factory(name: str) -> Callable[..., TabularVecCMDP]:
    def factory(num_envs: int = 1, **kwargs: Any) -> TabularVecCMDP:
        unknown = sorted(set(kwargs) - set(_FACTORY_KWARGS))
        if unknown:
            raise ConfigError(f"env_kwargs: unknown key(s) {unknown} for {name}; it accepts {list(_FACTORY_KWARGS)}")
        return make_exact(name, num_envs, **kwargs)

    factory.__doc__ = f"Build {name}: `factory(num_envs=1, max_episode_steps=None, seed=None)`."
    return factory


for _name in EXACT_CMDPS:
    register_env(_name, VectorFamily(_factory(_name), ExactKwargs, EXACT_CMDPS[_name]().cost_names,
                                     copies_in_process=True),  # TabularVecCMDP: the copies are numpy rows
                 group="exact", description=_DESCRIPTIONS[_name])
