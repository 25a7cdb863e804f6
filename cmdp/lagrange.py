"""Lagrange multipliers for K constraints, moved by projected gradient ascent on (J_c - limit).

The dual problem is min_{lambda >= 0} max_pi J_r(pi) - sum_k lambda_k (J_c,k(pi) - d_k); its
gradient in lambda_k is -(J_c,k - d_k), so lambda_k rises while the constraint is violated and
falls (never below 0) while it is satisfied. As in OmniSafe, the step is taken by Adam on the loss
-lambda * (J_c - d) with the result clipped at 0 (and optionally at an upper bound). Plain SGD
is available too. The state is plain numbers so it goes into a checkpoint unchanged.

`PIDMultiplier` sets the multipliers with a PID controller on the same error instead (PID
Lagrangian); it has the same interface, so a solver can hold either. `DelayedMultiplier` holds either
still for its first updates.

`LagrangeOptions` and `PIDOptions` are the config keys of the two kinds, shared by every solver that has
multipliers: a solver's config inherits one, and `cfg.multiplier(limits)` builds what the keys describe.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cmdp.spec import ConfigError


class Multiplier(Protocol):
    """What a solver holds: K multipliers, moved once per epoch by `update` from the mean episode costs, by
    `steps` applications of their rule on that estimate (1 for every solver but the off-policy family's
    `lagrangian_steps: update`, which takes one per gradient update of the epoch, as OmniSafe's do)."""

    value: np.ndarray

    def update(self, mean_episode_costs: np.ndarray, steps: int = 1) -> np.ndarray: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _check_steps(steps: int) -> None:
    if steps < 0:
        raise ValueError(f"a multiplier update takes steps >= 0, got {steps}")


def _check_upper_bound(upper_bound: float | None) -> None:
    # a negative bound would clip every multiplier below 0, and 1 + lambda = 0 divides the advantage by zero
    if upper_bound is not None and not upper_bound >= 0:
        raise ValueError(f"the multiplier upper bound must be >= 0 (or None: no bound), got {upper_bound}")


class LagrangeMultiplier:
    """K non-negative multipliers with their optimiser state.

    `update(mean_episode_costs)` takes one ascent step per constraint. A NaN cost (an epoch in which
    no episode finished, so there is no estimate) leaves that multiplier unchanged instead of
    poisoning it. With `log_space` the parameter is theta = log lambda (safe-rlhf's): the step is on
    theta with gradient -lambda (J_c - d), so lambda changes in proportion to itself, never reaches 0,
    and the upper bound caps theta at log(bound).
    """

    def __init__(self, limits: np.ndarray, init: float = 0.001, lr: float = 0.035,
                 optimizer: str = "adam", upper_bound: float | None = None,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, log_space: bool = False) -> None:
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"multiplier optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        if init < 0 or (log_space and not init > 0):
            raise ValueError(f"the initial multiplier must be {'> 0 with log_lambda' if log_space else '>= 0'}, "
                             f"got {init}")
        if log_space and upper_bound is not None and not upper_bound > 0:
            raise ValueError(f"with log_lambda the upper bound must be > 0 (or None), got {upper_bound}")
        if not lr > 0:
            raise ValueError(f"the multiplier learning rate must be > 0, got {lr}")
        _check_upper_bound(upper_bound)
        self.limits = np.asarray(limits, dtype=np.float64).reshape(-1)
        k = len(self.limits)
        self.value = np.full(k, float(init))
        self.log_space = log_space
        self.log_value = np.full(k, math.log(init)) if log_space else None  # the parameter in log space
        self.lr, self.optimizer, self.upper_bound = lr, optimizer, upper_bound
        self.betas, self.eps = betas, eps
        self._m = np.zeros(k)
        self._v = np.zeros(k)
        self._t = np.zeros(k, dtype=np.int64)

    def update(self, mean_episode_costs: np.ndarray, steps: int = 1) -> np.ndarray:
        """`steps` projected ascent steps on the same costs, each projected as it is taken (OmniSafe clamps after
        every step); returns the new multipliers (K,). 0 steps leave them unchanged."""
        costs = np.asarray(mean_episode_costs, dtype=np.float64).reshape(-1)
        if costs.shape != self.limits.shape:
            raise ValueError(f"expected {len(self.limits)} costs, got {costs.shape}")
        _check_steps(steps)
        seen = ~np.isnan(costs)
        grad = np.where(seen, -(costs - self.limits), 0.0)  # gradient of the loss -lambda*(Jc - d)
        for _ in range(steps):
            self._ascend(grad, seen)
        return self.value.copy()

    def _ascend(self, grad: np.ndarray, seen: np.ndarray) -> None:
        """One projected step on the loss's gradient `grad` for the multipliers whose cost was `seen`."""
        if self.log_space:
            grad = grad * self.value  # in theta = log lambda: d/dtheta [-e^theta (Jc - d)] = -lambda (Jc - d)
        if self.optimizer == "sgd":
            step = self.lr * grad
        else:
            b1, b2 = self.betas
            self._t = self._t + seen
            self._m = np.where(seen, b1 * self._m + (1 - b1) * grad, self._m)
            self._v = np.where(seen, b2 * self._v + (1 - b2) * grad * grad, self._v)
            t = np.maximum(self._t, 1)
            m_hat = self._m / (1 - b1 ** t)
            v_hat = self._v / (1 - b2 ** t)
            step = self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        if self.log_space:
            ceiling = math.inf if self.upper_bound is None else math.log(self.upper_bound)
            self.log_value = np.minimum(np.where(seen, self.log_value - step, self.log_value), ceiling)
            self.value = np.exp(self.log_value)
            return
        new = np.where(seen, self.value - step, self.value)
        self.value = np.clip(new, 0.0, math.inf if self.upper_bound is None else self.upper_bound)

    def state_dict(self) -> dict[str, Any]:
        state = {"value": self.value.tolist(), "m": self._m.tolist(), "v": self._v.tolist(), "t": self._t.tolist()}
        if self.log_value is not None:
            state["log_value"] = self.log_value.tolist()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = np.array(state["value"], dtype=np.float64)
        if self.log_space:
            self.log_value = np.array(state["log_value"], dtype=np.float64)
        self._m = np.array(state["m"], dtype=np.float64)
        self._v = np.array(state["v"], dtype=np.float64)
        self._t = np.array(state["t"], dtype=np.int64)


class PIDMultiplier:
    """K non-negative multipliers set by a PID controller on the constraint error (Stooke, Achiam and
    Abbeel 2020, "Responsive Safety in Reinforcement Learning by PID Lagrangian Methods").

    Plain gradient ascent is a pure integral controller: lambda integrates the error, so it lags the
    cost and overshoots, which makes the policy's cost oscillate. Adding a proportional term (react
    to the current violation) and a derivative term (react to the cost rising) damps that. Per cost
    k, with error e = J_c - d at each `update`:

        I      <- max(0, I + ki * e)                        integral, kept >= 0 (no negative wind-up)
        p      <- p_ema_alpha * p + (1 - p_ema_alpha) * e    smoothed error for the proportional term
        c      <- d_ema_alpha * c + (1 - d_ema_alpha) * J_c  smoothed cost for the derivative term
        D       = max(0, c - c from `d_delay` updates ago)  only a rising cost is penalised
        lambda  = clip(kp * p + I + kd * D, 0, upper_bound)

    The EMAs start at 0 and the history of c starts as [0] (the EMA's initial value), so during
    the first `d_delay` updates the derivative compares with that start. Defaults are OmniSafe's
    CPPOPID (omnisafe/configs/on-policy/CPPOPID.yaml): kp 0.1, ki 0.01, kd 0.01, delay 10, both
    EMA alphas 0.95, initial integral 0.001, no upper bound (OmniSafe's sum_norm=True, where the
    penalty is not capped). An alpha of 0 turns the corresponding EMA off.

    Same interface as `LagrangeMultiplier`: `value` (K,), `update(mean_episode_costs)` (a NaN cost,
    an epoch without a finished episode, leaves that cost's controller untouched), and
    `state_dict()` / `load_state_dict()` with plain numbers only.
    """

    def __init__(self, limits: np.ndarray, kp: float = 0.1, ki: float = 0.01, kd: float = 0.01,
                 d_delay: int = 10, p_ema_alpha: float = 0.95, d_ema_alpha: float = 0.95,
                 init: float = 0.001, upper_bound: float | None = None) -> None:
        if min(kp, ki, kd) < 0:
            raise ValueError(f"PID gains must be >= 0, got kp={kp}, ki={ki}, kd={kd}")
        if d_delay < 1:
            raise ValueError(f"d_delay must be >= 1, got {d_delay}")
        for name, alpha in (("p_ema_alpha", p_ema_alpha), ("d_ema_alpha", d_ema_alpha)):
            if not 0.0 <= alpha < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {alpha}")
        if init < 0:
            raise ValueError(f"the initial multiplier must be >= 0, got {init}")
        _check_upper_bound(upper_bound)
        self.limits = np.asarray(limits, dtype=np.float64).reshape(-1)
        k = len(self.limits)
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        self.d_delay = int(d_delay)
        self.p_ema_alpha, self.d_ema_alpha = float(p_ema_alpha), float(d_ema_alpha)
        self.upper_bound = upper_bound
        self.integral = np.full(k, float(init))
        self.error_ema = np.zeros(k)
        self.cost_ema = np.zeros(k)
        # per cost, the last `d_delay` values of cost_ema, oldest first: the derivative's reference
        self.cost_history: list[list[float]] = [[0.0] for _ in range(k)]
        self.value = self._clip(self.integral.copy())

    def _clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, math.inf if self.upper_bound is None else self.upper_bound)

    def update(self, mean_episode_costs: np.ndarray, steps: int = 1) -> np.ndarray:
        """`steps` controller steps per cost with a finite estimate, on the same cost; returns the new
        multipliers (K,)."""
        costs = np.asarray(mean_episode_costs, dtype=np.float64).reshape(-1)
        if costs.shape != self.limits.shape:
            raise ValueError(f"expected {len(self.limits)} costs, got {costs.shape}")
        _check_steps(steps)
        estimated = np.flatnonzero(~np.isnan(costs))
        for _ in range(steps):
            for k in estimated:
                cost = float(costs[k])
                error = cost - float(self.limits[k])
                self.integral[k] = max(0.0, self.integral[k] + self.ki * error)
                self.error_ema[k] = self.p_ema_alpha * self.error_ema[k] + (1 - self.p_ema_alpha) * error
                self.cost_ema[k] = self.d_ema_alpha * self.cost_ema[k] + (1 - self.d_ema_alpha) * cost
                history = self.cost_history[k]
                rise = max(0.0, self.cost_ema[k] - history[0])
                history.append(float(self.cost_ema[k]))
                del history[:-self.d_delay]
                self.value[k] = self.kp * self.error_ema[k] + self.integral[k] + self.kd * rise
        self.value = self._clip(self.value)
        return self.value.copy()

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value.tolist(), "integral": self.integral.tolist(),
                "error_ema": self.error_ema.tolist(), "cost_ema": self.cost_ema.tolist(),
                "cost_history": [list(h) for h in self.cost_history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = np.array(state["value"], dtype=np.float64)
        self.integral = np.array(state["integral"], dtype=np.float64)
        self.error_ema = np.array(state["error_ema"], dtype=np.float64)
        self.cost_ema = np.array(state["cost_ema"], dtype=np.float64)
        self.cost_history = [[float(x) for x in h] for h in state["cost_history"]]


class DelayedMultiplier:
    """A multiplier held at its initial value for its first `delay` updates (epochs), then moved as usual.

    OmniSafe's off-policy Lagrangian solvers wait `warmup_epochs` (100) before moving lambda: the critics are
    still fitting the random warm-up data, and a multiplier driven by those early costs would wind up for
    nothing. The costs seen while waiting are discarded.
    """

    def __init__(self, inner: Multiplier, delay: int) -> None:
        if delay < 0:
            raise ValueError(f"the multiplier delay must be >= 0, got {delay}")
        self.inner, self.delay = inner, int(delay)
        self.updates_seen = 0

    @property
    def value(self) -> np.ndarray:
        return self.inner.value

    def update(self, mean_episode_costs: np.ndarray, steps: int = 1) -> np.ndarray:
        self.updates_seen += 1  # epochs, whatever `steps` is
        if self.updates_seen <= self.delay:
            return self.inner.value.copy()
        return self.inner.update(mean_episode_costs, steps)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": self.inner.state_dict(), "updates_seen": self.updates_seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.updates_seen = int(state["updates_seen"])


def _delayed(multiplier: Multiplier, delay: int) -> Multiplier:
    # no wrapper without a delay: the checkpoints of undelayed solvers keep their plain layout
    return DelayedMultiplier(multiplier, delay) if delay else multiplier


@dataclass
class _MultiplierKeys:
    """The keys both kinds of multiplier have: the start, the cap and the delay."""

    lagrangian_init: float = 0.001  # the multipliers' start (PID: the integral term's)
    lagrangian_upper_bound: float | None = None  # null: no bound
    multiplier_delay: int = 0  # epochs during which the multipliers stay at lagrangian_init

    def validate(self) -> None:
        super().validate()  # type: ignore[misc]  # the solver config the mixin is combined with
        if self.lagrangian_init < 0:
            raise ConfigError(f"lagrangian_init must be >= 0, got {self.lagrangian_init}")
        if self.lagrangian_upper_bound is not None and not self.lagrangian_upper_bound >= 0:
            raise ConfigError(f"lagrangian_upper_bound must be >= 0 (or null: no bound), "
                              f"got {self.lagrangian_upper_bound}")
        if self.multiplier_delay < 0:
            raise ConfigError(f"multiplier_delay must be >= 0, got {self.multiplier_delay}")


@dataclass
class LagrangeOptions(_MultiplierKeys):
    """Config keys of multipliers moved by projected gradient ascent (`LagrangeMultiplier`).

    A mixin for a solver's config dataclass: list it before the solver's base config
    (`class MyConfig(LagrangeOptions, PolicyGradientConfig)`) so that `validate` runs both. Defaults are
    OmniSafe's on-policy PPOLag.yaml; a solver redeclares a key to change its default.
    """

    lagrangian_lr: float = 0.035
    lagrangian_optimizer: str = "adam"  # or "sgd"
    lagrangian_parameterization: str = "lambda"  # or "log_lambda" (safe-rlhf): ascent on log lambda

    def validate(self) -> None:
        super().validate()
        if self.lagrangian_optimizer not in ("adam", "sgd"):
            raise ConfigError(f"lagrangian_optimizer must be 'adam' or 'sgd', got {self.lagrangian_optimizer!r}")
        if not self.lagrangian_lr > 0:
            raise ConfigError(f"lagrangian_lr must be > 0, got {self.lagrangian_lr}")
        if self.lagrangian_parameterization not in ("lambda", "log_lambda"):
            raise ConfigError(f"lagrangian_parameterization must be 'lambda' or 'log_lambda', "
                              f"got {self.lagrangian_parameterization!r}")
        if self.lagrangian_parameterization == "log_lambda" and not self.lagrangian_init > 0:
            raise ConfigError(f"lagrangian_init must be > 0 with log_lambda (log 0 is -inf), got {self.lagrangian_init}")
        if (self.lagrangian_parameterization == "log_lambda" and self.lagrangian_upper_bound is not None
                and not self.lagrangian_upper_bound > 0):
            raise ConfigError(f"lagrangian_upper_bound must be > 0 with log_lambda, got {self.lagrangian_upper_bound}")

    def multiplier(self, limits: np.ndarray) -> Multiplier:
        """The multipliers these keys describe, for constraints with `limits` (K,)."""
        return _delayed(LagrangeMultiplier(limits, self.lagrangian_init, self.lagrangian_lr,
                                           self.lagrangian_optimizer, self.lagrangian_upper_bound,
                                           log_space=self.lagrangian_parameterization == "log_lambda"),
                        self.multiplier_delay)


@dataclass
class PIDOptions(_MultiplierKeys):
    """Config keys of PID-controlled multipliers (`PIDMultiplier`); a mixin like `LagrangeOptions`.

    Defaults are OmniSafe's on-policy CPPOPID.yaml (see `PIDMultiplier`).
    """

    pid_kp: float = 0.1
    pid_ki: float = 0.01
    pid_kd: float = 0.01
    pid_d_delay: int = 10  # epochs between the smoothed costs whose rise the derivative term penalises
    pid_delta_p_ema_alpha: float = 0.95  # EMA of the error for the proportional term (0: no smoothing)
    pid_delta_d_ema_alpha: float = 0.95  # EMA of the cost for the derivative term (0: no smoothing)

    def validate(self) -> None:
        super().validate()
        for name in ("pid_kp", "pid_ki", "pid_kd"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.pid_d_delay < 1:
            raise ConfigError(f"pid_d_delay must be >= 1, got {self.pid_d_delay}")
        for name in ("pid_delta_p_ema_alpha", "pid_delta_d_ema_alpha"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def multiplier(self, limits: np.ndarray) -> Multiplier:
        """The PID multipliers these keys describe, for constraints with `limits` (K,)."""
        return _delayed(PIDMultiplier(limits, self.pid_kp, self.pid_ki, self.pid_kd, self.pid_d_delay,
                                      self.pid_delta_p_ema_alpha, self.pid_delta_d_ema_alpha,
                                      self.lagrangian_init, self.lagrangian_upper_bound),
                        self.multiplier_delay)
