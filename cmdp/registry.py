"""Name -> solver and name -> environment registries (what `cmdp list` prints).

Everything registers the same way, built-ins included:

- installed packages declare Python entry points: group `cmdp.algorithms` (`name = module:SolverClass`) and group
  `cmdp.envs` (`name = module`, whose import registers its environments with `register_env`). cmdp-lab's own
  solvers and environments are entry points of its `setup.cfg`, so a researcher's pip-installed package shows
  its solvers in `cmdp list` exactly as ours do;
- code that is not installed registers with `@register_algorithm("name")` / `register_env(...)` and is loaded
  with `--plugin MODULE_OR_FILE.py` (or `plugins: [...]` in a config file).

This module imports no solver and no environment by name: the core package never depends on the packages
that use it. An entry point that fails to load leaves the registry as it was and is reported in one line.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from cmdp.spec import ConfigError

if TYPE_CHECKING:
    from cmdp.family import EnvFamily

ALGORITHM_GROUP = "cmdp.algorithms"
ENV_GROUP = "cmdp.envs"

_ALGORITHMS: dict[str, type] = {}
#: the registered names whose solver ignores the cost limits (the baselines a constrained solver is compared with)
_UNCONSTRAINED: set[str] = set()
_ENVS: dict[str, "EnvEntry"] = {}
_ENTRY_POINTS_LOADED = False
#: one line per entry point that failed to load (shown by `cmdp list`)
ENTRY_POINT_ERRORS: list[str] = []

T = TypeVar("T", bound=type)


class RegistrationError(ConfigError):
    """A name registered twice by different objects."""


@dataclass(frozen=True)
class EnvEntry:
    """A registered environment: its name, the family that builds runs of it, and how `cmdp list` groups it.

    `family` is an `cmdp.family.EnvFamily` instance: the only object the trainer, `cmdp eval` and the benchmark
    runner talk to (see docs/adding-an-environment.md). `group` is a label for listing (e.g. "safety-gymnasium").
    """

    name: str
    family: "EnvFamily"
    group: str
    description: str = ""


def _origin(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    file = module.__file__ if module is not None else None
    return f"{cls.__module__}.{cls.__qualname__}" + (f" ({file})" if file else "")


def register_algorithm(name: str, constrained: bool = True) -> Callable[[T], T]:
    """Class decorator: make a solver available as `--algo name`. `constrained=False` declares that this name
    ignores the cost limits (an unconstrained baseline such as `ppo`; demos and reports check that such runs
    break a binding limit). A property of the name, not of the class: `ppo_saute` subclasses `ppo` and is
    constrained."""

    def wrap(cls: T) -> T:
        registered = _ALGORITHMS.get(name)
        if registered is not None and registered is not cls:
            raise RegistrationError(f"algorithm '{name}' is already registered by {_origin(registered)}")
        if registered is cls:  # registered again by its entry point: its decorator's declaration stands
            return cls
        from cmdp.solver import solver_class_problem  # here: importing this module imports no torch

        problem = solver_class_problem(cls)
        if problem is not None:  # refused where it is registered, not as a traceback once a run has started
            raise RegistrationError(f"algorithm '{name}': {problem}")
        cls.name = name
        _ALGORITHMS[name] = cls
        if constrained:
            _UNCONSTRAINED.discard(name)
        else:
            _UNCONSTRAINED.add(name)
        return cls

    return wrap


def register_env(name: str, family: "EnvFamily", group: str, description: str = "") -> None:
    """Make an environment available as `--env name`; `family` builds its runs (see `cmdp.family`)."""
    registered = _ENVS.get(name)
    if registered is not None and registered.family is not family:
        raise RegistrationError(f"environment '{name}' is already registered (group {registered.group}, "
                                f"family {type(registered.family).__name__})")
    _ENVS[name] = EnvEntry(name, family, group, description)


@contextlib.contextmanager
def _all_or_nothing() -> Iterator[None]:
    """Run an import that registers things; if it fails, the registries are left exactly as they were."""
    algorithms, envs, unconstrained = dict(_ALGORITHMS), dict(_ENVS), set(_UNCONSTRAINED)
    try:
        yield
    except BaseException:
        _ALGORITHMS.clear(), _ALGORITHMS.update(algorithms)
        _ENVS.clear(), _ENVS.update(envs)
        _UNCONSTRAINED.clear(), _UNCONSTRAINED.update(unconstrained)
        raise


def _load_entry_points() -> None:
    """Register every installed entry point of the two groups, each all-or-nothing."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for group in (ALGORITHM_GROUP, ENV_GROUP):
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.value):
            try:
                with _all_or_nothing():
                    loaded = ep.load()
                    if group == ALGORITHM_GROUP:
                        if not isinstance(loaded, type):
                            raise RegistrationError(f"{ep.value} is not a solver class")
                        register_algorithm(ep.name)(loaded)
            except Exception as exc:  # a broken package must not take every other solver down with it
                dist = ep.dist.name if ep.dist is not None else "?"
                ENTRY_POINT_ERRORS.append(f"entry point '{ep.name} = {ep.value}' ({group}, package {dist}) "
                                          f"not loaded: {type(exc).__name__}: {exc}")


def load_plugins(modules: list[str]) -> None:
    """Import user code that registers its own algorithms or environments.

    Each entry is a module name (`my_pkg.my_solver`) or the path of a Python file (`my_solver.py`). The
    installed entry points load first, so a plugin that reuses a taken name is the one the error names.
    Any failure is a ConfigError naming the plugin (file and line where there is one).
    """
    _load_entry_points()
    for module in modules:
        if not isinstance(module, str):  # `plugins: [5]` in a config or a suite
            raise ConfigError(f"plugins: each must be a module name or a .py file, got {module!r}")
        if module.endswith(".py"):
            _load_file(module)
            continue
        if Path(module).is_file() or not all(part.isidentifier() for part in module.split(".")):
            raise ConfigError(f"plugins: {module} is neither a Python file (.py) nor a module name (my_pkg.my_solver)")
        try:
            with _all_or_nothing():  # as a plugin file: a failed module registers nothing
                importlib.import_module(module)
        except Exception as exc:
            # the plugin itself (or a package above it) is missing, not a module the plugin imports:
            # `mysolver_v2` that imports a missing `mysolver` is reported at its own import line
            if isinstance(exc, ModuleNotFoundError) and exc.name is not None and (
                    module == exc.name or module.startswith(exc.name + ".")):
                raise ConfigError(f"plugins: cannot import module '{module}': {exc}{_file_hint(module)}") from None
            raise ConfigError(f"plugins: module '{module}': {_where(exc, None)}") from None


def plugin_path(plugin: Any) -> Any:
    """A plugin as a run records it: a file by absolute path (the run resumes from any folder), a module name as it
    is."""
    return str(Path(plugin).resolve()) if isinstance(plugin, str) and plugin.endswith(".py") else plugin


def load_named_plugins(plugins: list[Any], named_in: str | None = None) -> list[Any]:
    """`load_plugins` for the plugins a config names; returns them as a run records them (`plugin_path`).
    `named_in` is the file (and field) that named them, for its errors, which then also say where a relative path
    that is not found was looked for."""
    if not isinstance(plugins, list):
        raise ConfigError(f"{named_in + ': ' if named_in else ''}plugins must be a list of module names or .py "
                          f"files, got {plugins!r}")
    paths = [plugin_path(p) for p in plugins]
    try:
        load_plugins(paths)
    except ConfigError as exc:
        if named_in is None:
            raise
        lost = any(isinstance(p, str) and p.endswith(".py") and not Path(p).is_absolute() and not Path(p).exists()
                   for p in plugins)
        where = f" (a relative path is taken from the current folder, {Path.cwd()})" if lost else ""
        raise ConfigError(f"{named_in}: {exc}{where}") from None
    return paths


def _file_hint(module: str) -> str:
    """Where a module that did not import is a file in the current folder (`cmdp` does not import from there): how
    to load it."""
    file = Path(*module.split(".")).with_suffix(".py")
    if not file.is_file():
        return ""
    return f" ({file} here is not on Python's module path: give the file, {file}, or put its folder on PYTHONPATH)"


def _where(exc: BaseException, file: Path | None) -> str:
    """'FILE line N: Type: message' for the innermost frame in `file` (or in any file outside cmdp)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename} line {exc.lineno}: SyntaxError: {exc.msg}"
    frames = traceback.extract_tb(exc.__traceback__)
    own = str(Path(__file__).resolve().parent)
    chosen = None
    for frame in frames:
        path = str(Path(frame.filename).resolve()) if frame.filename and not frame.filename.startswith("<") else ""
        if (file is not None and path == str(file)) or (file is None and path and not path.startswith(own)
                                                          and "importlib" not in path):
            chosen = frame
    detail = f"{type(exc).__name__}: {exc}"
    return f"{chosen.filename} line {chosen.lineno}: {detail}" if chosen is not None else detail


def _load_file(path: str) -> None:
    file = Path(path).resolve()
    if file.is_dir():  # not "file not found": it is there, but a folder
        raise ConfigError(f"plugins: {path} is a directory; give a Python file (or a module name)")
    if not file.is_file():
        raise ConfigError(f"plugins: file not found: {path}")
    # the module name comes from the whole path: two plugin files named alike in different folders both load
    digest = hashlib.sha1(str(file).encode()).hexdigest()[:10]
    name = f"cmdp_plugin_{file.stem}_{digest}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"plugins: {file} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _all_or_nothing():
            spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"plugin {_where(exc, file)}") from None


def _unknown(kind: str, name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `cmdp list` to see them all"
    return ConfigError(f"unknown {kind} '{name}'{hint}")


def get_algorithm(name: str) -> type:
    _load_entry_points()
    if name not in _ALGORITHMS:
        raise _unknown("algorithm", name, sorted(_ALGORITHMS))
    return _ALGORITHMS[name]


def is_constrained(name: str) -> bool:
    """Whether the registered algorithm `name` acts on the cost limits (False: it was registered with
    `constrained=False`, an unconstrained baseline). ConfigError for an unknown name."""
    get_algorithm(name)
    return name not in _UNCONSTRAINED


def get_env(name: str) -> EnvEntry:
    _load_entry_points()
    if name not in _ENVS:
        raise _unknown("environment", name, sorted(_ENVS))
    return _ENVS[name]


def algorithms() -> dict[str, type]:
    _load_entry_points()
    return dict(sorted(_ALGORITHMS.items()))


def envs() -> dict[str, EnvEntry]:
    _load_entry_points()
    return dict(sorted(_ENVS.items()))
