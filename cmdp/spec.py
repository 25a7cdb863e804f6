"""The description of a constrained MDP: its spaces and its named costs, each with a limit."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import gymnasium
import numpy as np

from cmdp.errors import ConfigError  # re-exported: cmdp.spec.ConfigError is what most modules import


@dataclass(frozen=True)
class CostSpec:
    """One constraint: a cost signal named `name` whose expected episode total must stay <= `limit`.

    `signed`: the cost is a score that may be negative (a cost model's output, as in Safe RLHF, where a score <= 0
    is judged safe), so its limit may be negative too; otherwise the cost counts something and its limit is >= 0.
    """

    name: str
    limit: float
    signed: bool = False


@dataclass(frozen=True)
class CMDPSpec:
    """What a solver needs to know about an environment before it sees any data.

    `costs` has K >= 1 entries; every step of the environment returns K cost values in this order.
    `max_episode_steps` is the time limit after which an episode is truncated (None: no limit).
    """

    observation_space: gymnasium.Space
    action_space: gymnasium.Space
    costs: tuple[CostSpec, ...]
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        if len(self.costs) < 1:
            raise ConfigError("a CMDP needs at least one cost")
        names = [c.name for c in self.costs]
        if len(set(names)) != len(names):
            raise ConfigError(f"cost names must be unique, got {names}")

    @property
    def num_costs(self) -> int:
        return len(self.costs)

    @property
    def cost_names(self) -> list[str]:
        return [c.name for c in self.costs]

    @property
    def cost_limits(self) -> np.ndarray:
        return np.array([c.limit for c in self.costs], dtype=np.float64)

    def with_limits(self, limits: float | Sequence[float] | Mapping[str, float] | None) -> "CMDPSpec":
        """Return a copy whose limits are replaced.

        `limits` may be None (keep the environment's own), one number (every cost), a list with one
        number per cost, or a mapping from cost name to number (the others keep their default).
        Every limit must be a finite number, non-negative unless its cost is `signed`.
        """
        if limits is None:
            return self
        return replace(self, costs=resolve_limits(self.costs, limits))


def resolve_limits(costs: Sequence[CostSpec],
                   limits: float | Sequence[float] | Mapping[str, float]) -> tuple[CostSpec, ...]:
    """`costs` with `limits` applied (see `CMDPSpec.with_limits`); ConfigError naming the bad entry."""
    names = [c.name for c in costs]
    if isinstance(limits, Mapping):
        unknown = sorted(set(limits) - set(names), key=str)
        if unknown:
            raise ConfigError(f"cost_limits: unknown cost name(s) {unknown}; this environment has {names}")
        values = [limits.get(c.name, c.limit) for c in costs]
    elif isinstance(limits, (list, tuple)):
        if len(limits) != len(names):
            raise ConfigError(
                f"cost_limits: got {len(limits)} value(s) but this environment has {len(names)} cost(s) {names}")
        values = list(limits)
    else:
        values = [limits] * len(names)
    checked = [_check_limit(c.name, value, c.signed) for c, value in zip(costs, values)]
    return tuple(replace(c, limit=v) for c, v in zip(costs, checked))


def check_limits(cost_names: Sequence[str] | None, limits: object, signed: bool = False) -> None:
    """Validate a config's `cost_limits` before any environment exists: against the cost names when the family
    knows them without building anything, else its shape and values only. `signed`: the family's costs are
    scores that may be negative (`CostSpec.signed`)."""
    if limits is None:
        return
    if cost_names is not None:
        resolve_limits([CostSpec(n, 0.0, signed) for n in cost_names], limits)  # type: ignore[arg-type]
        return
    values = list(limits.values()) if isinstance(limits, Mapping) else \
        list(limits) if isinstance(limits, (list, tuple)) else [limits]
    for i, value in enumerate(values):
        _check_limit(str(i), value, signed)


def _check_limit(name: str, value: object, signed: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
            (value < 0 and not signed):
        kind = "a finite number" if signed else "a non-negative number"
        raise ConfigError(f"cost_limits: the limit of cost '{name}' must be {kind}, got {value!r}")
    return float(value)
