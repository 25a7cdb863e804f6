"""Name -> algorithm and name -> environment registries (what `cmdp list` prints).

Algorithms register with `@register_algorithm("name")`; environments with `register_env`.
Code outside this package (a researcher's own solver) registers the same way and is loaded with
`--plugin MODULE` (or `plugins: [MODULE]` in a config file), so nothing in the package is edited.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from cmdp.spec import ConfigError

_ALGORITHMS: dict[str, type] = {}
_ENVS: dict[str, "EnvEntry"] = {}
_BUILTINS_LOADED = False

T = TypeVar("T", bound=type)


@dataclass(frozen=True)
class EnvEntry:
    """A registered environment.

    Control environments give `factory(num_envs=..., **env_kwargs)` -> `VecCMDP`, and the trainer builds the
    MLP agent and vectorised collector around it. A family with its own models (text) gives `builder(cfg)`
    -> an object with `spec`, `agent`, `collect(cfg, rng, reset_seed, progress)` and `close()`.
    `config_defaults()` are keys that sit between an algorithm's defaults and the user's config for this
    environment; `validate(cfg)` checks the environment's part of a resolved config without loading anything.
    """

    name: str
    factory: Callable[..., Any] | None
    family: str
    description: str = ""
    builder: Callable[[Any], Any] | None = None
    config_defaults: Callable[[], dict[str, Any]] | None = None
    validate: Callable[[Any], None] | None = None


def register_algorithm(name: str) -> Callable[[T], T]:
    """Class decorator: make a solver available as `--algo name`."""

    def wrap(cls: T) -> T:
        if name in _ALGORITHMS and _ALGORITHMS[name] is not cls:
            raise ValueError(f"algorithm '{name}' is already registered by {_ALGORITHMS[name]!r}")
        cls.name = name
        _ALGORITHMS[name] = cls
        return cls

    return wrap


def register_env(name: str, factory: Callable[..., Any] | None, family: str, description: str = "", *,
                 builder: Callable[[Any], Any] | None = None,
                 config_defaults: Callable[[], dict[str, Any]] | None = None,
                 validate: Callable[[Any], None] | None = None) -> None:
    """Make an environment available as `--env name` (see `EnvEntry` for the arguments)."""
    if (factory is None) == (builder is None):
        raise ValueError(f"environment '{name}': give exactly one of factory and builder")
    _ENVS[name] = EnvEntry(name, factory, family, description, builder, config_defaults, validate)


def load_builtins() -> None:
    """Import the packages whose modules register the built-in algorithms and environments."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        importlib.import_module("algorithms")
        importlib.import_module("envs")


def load_plugins(modules: list[str]) -> None:
    """Import user code that registers its own algorithms or environments.

    Each entry is a module name (`my_pkg.my_solver`) or the path of a Python file (`my_solver.py`).
    """
    for module in modules:
        if module.endswith(".py"):
            _load_file(module)
            continue
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"plugins: cannot import module '{module}': {exc}") from exc


def _load_file(path: str) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    file = Path(path).resolve()
    if not file.is_file():
        raise ConfigError(f"plugins: file not found: {path}")
    name = f"cmdp_plugin_{file.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise


def _unknown(kind: str, name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `cmdp list` to see them all"
    return ConfigError(f"unknown {kind} '{name}'{hint}")


def get_algorithm(name: str) -> type:
    load_builtins()
    if name not in _ALGORITHMS:
        raise _unknown("algorithm", name, sorted(_ALGORITHMS))
    return _ALGORITHMS[name]


def get_env(name: str) -> EnvEntry:
    load_builtins()
    if name not in _ENVS:
        raise _unknown("environment", name, sorted(_ENVS))
    return _ENVS[name]


def algorithms() -> dict[str, type]:
    load_builtins()
    return dict(sorted(_ALGORITHMS.items()))


def envs() -> dict[str, EnvEntry]:
    load_builtins()
    return dict(sorted(_ENVS.items()))
