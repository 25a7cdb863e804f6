"""Typed run configuration: one flat dataclass per algorithm, filled from defaults < YAML < CLI.

Every key a user can set is a dataclass field, so an unknown key, a value of the wrong type or an
out-of-range number is rejected before anything runs, with a message that names the field.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Mapping

import yaml

from cmdp.spec import ConfigError

MAX_SEED = 2**32 - 1  # the largest seed a run accepts (see TrainConfig.validate)
#: the device names a run accepts: cpu, cuda or cuda:N (torch.device refuses others with a traceback)
DEVICE_PATTERN = re.compile(r"cpu|cuda(:[0-9]+)?")


@dataclass
class TrainConfig:
    """Keys every run has, whatever the algorithm."""

    algo: str = "ppo_lag"
    env: str = "SafetyPointGoal1-v0"
    seed: int = 0
    total_steps: int = 40_000
    num_envs: int = 1
    steps_per_epoch: int = 20_000
    # None: each cost keeps its environment's limit (25 for Safety-Gymnasium, as in OmniSafe);
    # a number sets every cost; a list sets them in order; a mapping sets them by cost name.
    cost_limits: Any = None
    env_kwargs: dict = field(default_factory=dict)
    device: str = "cpu"
    torch_threads: int = 1
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch is always saved)
    plugins: list[str] = field(default_factory=list)
    # the episode cost a solver sees each epoch (its multipliers, CPO's J_c): 0, the mean over the epoch's finished
    # episodes; N, the mean over the last N finished episodes, across epochs (safe-rlhf: 128; OmniSafe: 10-100)
    cost_window: int = 0
    # the transformation of the CMDP the solver trains on (cmdp.transforms, docs/cmdp-transforms.md): {} none;
    # {kind: saute, ...}, {kind: simmer, ...} or {kind: early_terminated}; resolved to every key of its kind
    transform: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Range checks that types alone cannot express; raise ConfigError naming the field."""
        for name in ("total_steps", "num_envs", "steps_per_epoch", "torch_threads", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cost_window < 0:
            raise ConfigError(f"cost_window must be >= 0 (0: the epoch's episodes), got {self.cost_window}")
        if self.steps_per_epoch % self.num_envs:
            raise ConfigError(f"steps_per_epoch ({self.steps_per_epoch}) must be a multiple of num_envs "
                              f"({self.num_envs})")
        check_device_name("device", self.device)
        # numpy's default_rng takes any integer >= 0 and torch's manual_seed any in [-2**63, 2**64 - 1] (a negative
        # one wraps around, so -1 and 2**64 - 1 would be the same run); the unsigned 32-bit range is the one every
        # common seeder takes (numpy's legacy RandomState / np.random.seed, which plugins and libraries call, stops
        # at 2**32 - 1), so a run's seed can be handed to any of them.
        check_seed("seed", self.seed)

    def notices(self, given: frozenset[str]) -> list[str]:
        """Lines to show the user about values that are valid but probably not what they meant, `given` being the
        keys the user (a config file, `--set`, a preset, the environment's family) set rather than left at their
        defaults. A config class that has such a case extends this, calling `super().notices(given)`."""
        return []


def check_device_name(key: str, device: str) -> None:
    """ConfigError naming `key` unless `device` is a device name a run accepts (DEVICE_PATTERN: cpu, cuda or
    cuda:N), so that a bad one is refused before anything is built, not by torch.device in a traceback. The one check
    of a run's `device` (TrainConfig.validate) and of text-demo's --device."""
    if not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f"{key} must be cpu, cuda or cuda:N, got {device!r}")


def check_device_available(key: str, device: str) -> None:
    """ConfigError naming `key` when `device` (a name torch.device takes) is a CUDA device and this machine has no
    GPU torch can use: caught before data or models are loaded, not as torch's error at the first model.to(). The
    one check of a run's `device` (Trainer), text-demo's --device and envs.text.score_model.resolve_device's."""
    import torch  # here: a config is read and checked without torch

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key} is {device!r}, but CUDA is not available on this machine; use cpu")


def check_seed(key: str, seed: int | None) -> None:
    """ConfigError naming `key` unless `seed` is None or in a run seed's range, [0, MAX_SEED] (TrainConfig.validate
    says why; an environment's `env_kwargs.seed` too, which numpy's generators would refuse only once the
    environment is built, with a traceback). The one seed-range check: a run's, an environment's, an evaluation's
    (cmdp.loading.LoadedPolicy.evaluate, `cmdp eval --seed`) and the arena's --seed."""
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{key} must be an integer in [0, {MAX_SEED}] (2**32 - 1), got {seed}")


def check_choice(key: str, value: Any, choices: Collection[str]) -> None:
    """ConfigError naming `key` unless `value` is one of `choices` (a key whose value picks a mode)."""
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp`, converting only where no information is lost."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, str):
            value = _number(key, value, "an integer")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, str):
            value = _number(key, value, "a number")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", v, args[0]) if args else v for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"unsupported config annotation {tp!r} for {key}")


def _number(key: str, text: str, what: str) -> float:
    try:
        return float(text)  # YAML 1.1 reads "1e6" as a string; accept it as a number
    except ValueError:
        raise ConfigError(f"{key} must be {what}, got {text!r}") from None


def build_config(cls: type, values: Mapping[str, Any], source: str = "config", owner: str | None = None,
                 key_prefix: str = "") -> Any:
    """Make a `cls` instance from defaults overridden by `values`; reject unknown keys and bad values.

    `owner` names whose keys these are in the unknown-key message (default: the algorithm); `key_prefix` goes
    before a key's name in the other messages (e.g. "env_kwargs." for a nested mapping)."""
    hints = typing.get_type_hints(cls)
    known = field_names(cls)
    unknown = [k for k in values if k not in hints]
    if unknown:
        import difflib
        # str(): YAML reads `1: 2` as an int key, which difflib cannot compare with the names
        close = difflib.get_close_matches(str(unknown[0]), known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        owner = owner or f"algorithm '{values.get('algo', cls.__name__)}'"
        raise ConfigError(f"{source}: unknown key '{unknown[0]}'{hint} for {owner}; known keys: {', '.join(known)}")
    cfg = cls(**{k: _coerce(f"{key_prefix}{k}", v, hints[k]) for k, v in values.items()})
    try:
        cfg.validate()
    except ConfigError:
        raise
    except ValueError as exc:  # a plugin's validate() that refuses a value the usual Python way: still bad input
        raise ConfigError(str(exc)) from None
    return cfg


#: what to do about a file of a run folder (written by cmdp, not by the user) that is damaged
RESTORE_RUN_FILE = "restore it from a copy, or train the run again"


def read_text_file(path: str | Path, what: str = "file", fix: str = "save it with UTF-8 encoding") -> str:
    """The UTF-8 text of a file the user named; ConfigError (naming `what` and the path) if it is missing, not a
    regular file, unreadable or not UTF-8 (then the message ends with `fix`)."""
    p = Path(path)
    try:
        if not p.exists():
            raise ConfigError(f"{what} not found: {p}")
        if not p.is_file():
            kind = "a directory" if p.is_dir() else "not a regular file"
            raise ConfigError(f"{what} {p} is {kind}; give a file")
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {p} is not UTF-8 text (byte {exc.start}: {exc.reason}); {fix}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror or exc}") from None


def file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` (or `path` itself) when it is not a folder: the file that stops
    `path` from being created as a folder. None when the nearest existing one is a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def check_output_folder(path: Path, what: str = "output folder") -> None:
    """ConfigError in one line when a file stops `path` from being a folder (it, or one of its parents, is a
    file), so that a command can refuse before it prints or writes anything."""
    blocker = file_in_the_way(path)
    if blocker == path:
        raise ConfigError(f"{what} {path} exists and is not a folder; choose another --out")
    if blocker is not None:
        raise ConfigError(f"cannot create the {what} {path}: {blocker} is a file, not a folder")


def make_output_folder(path: Path, what: str = "output folder") -> None:
    """Create the folder `path` that the user named (with its missing parents; an existing folder is fine).
    ConfigError in one line, naming the path and the reason, when a file is in the way or the OS refuses."""
    check_output_folder(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != path else ""
        raise ConfigError(f"cannot create the {what} {path}: {exc.strerror or exc}{where}") from None


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a mapping naming one key twice is an error: PyYAML keeps the last value
    without a word, so `seed: 1` above a forgotten `seed: 2` would train seed 2."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}  # key -> the line it first appears on
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` merges, it is no key of its own
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                seen = key in first
            except TypeError:  # an unhashable key: the safe loader's own error says so below
                continue
            if seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {first[key]})", key_node.start_mark)
            first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, UniqueKeyLoader.construct_yaml_map)


def load_yaml(path: str | Path, what: str = "config file", keys: str = "keys to values") -> dict[str, Any]:
    """Read a YAML file the user named (safe YAML, a mapping at the top level; empty: {}). `what` and `keys` name
    the file's kind and its expected keys in the one-line errors."""
    p = Path(path)
    text = read_text_file(p, what)
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # safe: UniqueKeyLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {p} is not valid YAML: {yaml_error_line(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {p} must hold a mapping of {keys}, got {type(data).__name__}")
    return data


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """A YAML parser's error as one line: where (line and column, from 1) and what, with the construct it was
    reading when the file says where that began. PyYAML's own text spans several lines, quotes the source with a
    caret and names the input "<unicode string>"."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            start = exc.context_mark
            return f"{where} ({exc.context} that began at line {start.line + 1}, column {start.column + 1})"
        return f"{where} ({exc.context})" if exc.context else where
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        return f"character {exc.position + 1} is #x{exc.character:04x}: {exc.reason}"
    return " ".join(str(exc).split())


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set key=value` items -> dict; each value is read as YAML (numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
