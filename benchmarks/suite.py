"""The suite file: its schema (`Suite`, `SUITE_KEYS`), reading it and checking its fields (`load_suite`).

This module's one job is to turn a suite file into a validated `Suite`, or to refuse it with one ConfigError
that names the file and the field. It checks the keys, the algorithm and environment names, the seeds, the
budget and that every override key exists for the algorithms it reaches; value types and ranges (including
an environment's `cost_limits`) are checked per cell when the cells are planned (`cmdp.benchmarks.cells`).

A suite file (YAML) names the grid, the step budget and config overrides::

    name: smoke                               # default output folder: runs/benchmark-<name>
    description: what the suite is for       # optional
    algorithms: [ppo, ppo_lag]
    environments: [ExactChain-v0, SafetyHopperVelocity-v1]
    seeds: [0, 1]                             # or a count: 3 means [0, 1, 2]
    total_steps: 4000
    preset: omnisafe                          # optional: `cmdp train --preset` for every cell
    config: {steps_per_epoch: 1000}           # every cell
    env_config: {ExactChain-v0: {...}}        # the cells of one environment
    algo_config: {ppo_lag: {...}}             # the cells of one algorithm

Each cell's config is, in increasing precedence: the algorithm's defaults, the `preset`'s keys (for the cell's
algorithm, `cmdp.presets`), `torch_threads: 1` and the suite's `total_steps`, `config`, `env_config[env]`,
`algo_config[algo]`; `algo`, `env` and `seed` come
from the grid. Every cell's config is resolved with `cmdp.resolve.resolve_config` before anything runs,
so one bad key stops the suite with one message (exit status 2) and no folder is written.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmdp.config import MAX_SEED, field_names, load_yaml
from cmdp.spec import ConfigError

#: Top-level keys of a suite file and what each means.
SUITE_KEYS: dict[str, str] = {
    "name": "suite name (letters, digits, '.', '_', '-'); default: the file name",
    "description": "free text",
    "algorithms": "list of algorithm names (`cmdp list`)",
    "environments": "list of environment names (`cmdp list`)",
    "seeds": "list of seeds, or a count N meaning 0..N-1",
    "total_steps": "environment steps per cell",
    "preset": "a preset of `cmdp train --preset` (omnisafe, safe-rlhf) applied to every cell, below the overrides",
    "config": "config keys for every cell",
    "env_config": "mapping environment -> config keys for that environment's cells",
    "algo_config": "mapping algorithm -> config keys for that algorithm's cells",
}
REQUIRED_KEYS = ("algorithms", "environments", "seeds", "total_steps")
#: Keys set by the grid itself; overrides may not set them.
GRID_KEYS = ("algo", "env", "seed")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Suite:
    """A validated suite file: the grid and its overrides."""

    name: str
    path: Path
    algorithms: tuple[str, ...]
    environments: tuple[str, ...]
    seeds: tuple[int, ...]
    total_steps: int
    config: dict[str, Any] = field(default_factory=dict)
    env_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    algo_config: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    preset: str | None = None  # `cmdp.presets` name, below the overrides in every cell

    def to_dict(self) -> dict[str, Any]:
        """The suite as a plain mapping (what `DIR/suite.yaml` holds)."""
        return {"name": self.name, "description": self.description, "source": str(self.path),
                "algorithms": list(self.algorithms), "environments": list(self.environments),
                "seeds": list(self.seeds), "total_steps": self.total_steps, "config": self.config,
                "env_config": self.env_config, "algo_config": self.algo_config, "preset": self.preset}


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file; ConfigError naming the file and the field on any problem.

    Checks the keys, the names of algorithms and environments (after loading `config.plugins`), the
    seeds and the budget, and that every override key exists in the config of each algorithm it applies
    to. Value types and ranges are checked per cell by `plan_cells`.
    """
    from cmdp.presets import preset_values
    from cmdp.registry import get_algorithm, get_env, load_named_plugins

    p = Path(path)
    where = f"suite {p}"
    data = load_yaml(p, "suite file", f"suite keys ({', '.join(SUITE_KEYS)})")
    for key in data:
        if key not in SUITE_KEYS:
            close = difflib.get_close_matches(str(key), list(SUITE_KEYS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}; known keys: {', '.join(SUITE_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise ConfigError(f"{where}: missing key '{key}' ({SUITE_KEYS[key]})")

    name = data.get("name", p.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{where}: name must be letters, digits, '.', '_' or '-' (it names a folder), got {name!r}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be text, got {description!r}")

    config = _mapping(data.get("config"), f"{where}: config")
    _no_grid_keys(config, f"{where}: config")
    if "total_steps" in config:
        raise ConfigError(f"{where}: config: set total_steps at the top level of the suite "
                          f"(or per environment/algorithm in env_config/algo_config)")
    load_named_plugins(config.get("plugins") or [], f"{where}: config")

    algorithms = _names(data["algorithms"], f"{where}: algorithms")
    environments = _names(data["environments"], f"{where}: environments")
    for a in algorithms:
        try:
            get_algorithm(a)
        except ConfigError as exc:
            raise ConfigError(f"{where}: algorithms: {exc}") from None
    for e in environments:
        try:
            get_env(e)
        except ConfigError as exc:
            raise ConfigError(f"{where}: environments: {exc}") from None
    seeds = _seeds(data["seeds"], f"{where}: seeds")
    preset = data.get("preset")
    if preset is not None:
        if not isinstance(preset, str):
            raise ConfigError(f"{where}: preset must be a preset's name, got {preset!r}")
        for a in algorithms:  # a per-algorithm preset must cover every algorithm of the grid
            try:
                preset_values(preset, a)
            except ConfigError as exc:
                raise ConfigError(f"{where}: preset: {exc}") from None
    total_steps = _positive_int(data["total_steps"], f"{where}: total_steps")

    env_config = _per_name(data.get("env_config"), environments, "environment", f"{where}: env_config")
    algo_config = _per_name(data.get("algo_config"), algorithms, "algorithm", f"{where}: algo_config")

    # every override key must exist for every algorithm it reaches (the message says which section)
    known = {a: set(field_names(get_algorithm(a).Config)) for a in algorithms}
    sections: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [("config", config, algorithms)]
    sections += [(f"env_config: {e}", cfg, algorithms) for e, cfg in env_config.items()]
    sections += [(f"algo_config: {a}", cfg, (a,)) for a, cfg in algo_config.items()]
    for section, values, algos in sections:
        for key in values:
            for a in algos:
                if key not in known[a]:
                    if section != f"algo_config: {a}" and any(key in known[b] for b in algorithms):
                        # another algorithm's key, not a misspelling: no close match to suggest
                        hint = (f"; a key that only some algorithms have goes under algo_config: "
                                f"{{{_algos_with(key, known)}}}")
                    else:
                        close = difflib.get_close_matches(str(key), sorted(known[a]), n=1)
                        hint = f" (did you mean '{close[0]}'?)" if close else ""
                    raise ConfigError(f"{where}: {section}: unknown key '{key}' for algorithm '{a}'{hint}")
    return Suite(name=name, path=p, algorithms=algorithms, environments=environments, seeds=seeds,
                 total_steps=total_steps, config=config, env_config=env_config, algo_config=algo_config,
                 description=description, preset=preset)


def _algos_with(key: str, known: dict[str, set[str]]) -> str:
    """The algorithms whose config has `key`, as algo_config's entries (for error hints): `a: ..., b: ...`."""
    return ", ".join(f"{a}: ..." for a, keys in known.items() if key in keys)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of config keys to values, got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: keys must be config names, got {key!r}")
    return dict(value)


def _no_grid_keys(values: dict[str, Any], where: str) -> None:
    for key in GRID_KEYS:
        if key in values:
            grid = {"algo": "algorithms", "env": "environments", "seed": "seeds"}[key]
            raise ConfigError(f"{where}: '{key}' is set by the grid; list it under '{grid}' instead")


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a non-empty list of names, got {value!r}")
    dup = [v for i, v in enumerate(value) if v in value[:i]]
    if dup:
        raise ConfigError(f"{where}: '{dup[0]}' is listed twice")
    return tuple(value)


def seed_count(count: int, what: str) -> tuple[int, ...]:
    """Seeds 0..count-1; ConfigError naming `what` (the flag or key that gave the count) unless 1 <= count <= 2**32,
    checked before the seeds are listed (10**11 of them ended in a MemoryError)."""
    if count < 1:
        raise ConfigError(f"{what} must be at least 1, got {count}")
    if count > MAX_SEED + 1:
        raise ConfigError(f"{what} must be at most {MAX_SEED + 1} (2**32: seeds are in [0, 2**32 - 1]), got {count}")
    return tuple(range(count))


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return seed_count(value, f"{where}: a count of seeds")
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of integers or a count, got {value!r}")
    for s in value:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ConfigError(f"{where}: seeds must be integers >= 0, got {s!r}")
    dup = [s for i, s in enumerate(value) if s in value[:i]]
    if dup:
        raise ConfigError(f"{where}: seed {dup[0]} is listed twice")
    return tuple(value)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, str):  # YAML 1.1 reads 1e7 as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where} must be an integer >= 1, got {value!r}")
    return value


def _per_name(value: Any, names: tuple[str, ...], kind: str, where: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, cfg in _mapping(value, where).items():
        if name not in names:
            close = difflib.get_close_matches(name, list(names), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: '{name}' is not one of the suite's {kind}s{hint}: {', '.join(names)}")
        out[name] = _mapping(cfg, f"{where}: {name}")
        _no_grid_keys(out[name], f"{where}: {name}")
    return out


__all__ = ["Suite", "load_suite", "SUITE_KEYS", "REQUIRED_KEYS", "GRID_KEYS"]
