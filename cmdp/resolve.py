"""From defaults, a config file and overrides to one validated config (what a run folder's config.yaml holds)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from cmdp.config import TrainConfig, build_config, field_names, load_yaml
from cmdp.family import SolverNeeds
from cmdp.presets import preset_values
from cmdp.registry import get_algorithm, get_env, load_named_plugins
from cmdp.spec import ConfigError, check_limits
from cmdp.transforms import resolve_transform


def resolve_config(overrides: dict[str, Any], config_file: str | None = None,
                   preset: str | None = None, source: str | None = None,
                   more_plugins: Sequence[str] = ()) -> tuple[Any, list[str]]:
    """Defaults < preset < config file < overrides -> the algorithm's config dataclass, plus notices for the user.

    `source` names where the values came from in an unknown-key message (default: the config file, else "config").
    `more_plugins` (`cmdp train --plugin`) load after, and are recorded beside, the plugins the values name.

    The algorithm (and its plugins) must be known before its config class can check the other keys.
    """
    values: dict[str, Any] = {**(load_yaml(config_file) if config_file else {}), **overrides}
    if preset:
        # below the file and the overrides; a per-algorithm preset takes the algorithm they chose
        values = {**preset_values(preset, values.get("algo")), **values}
    # the config file named the plugins unless the overrides did: its errors name that file
    named_in = config_file if config_file and "plugins" not in overrides else None
    named = load_named_plugins(values.get("plugins") or [], named_in)
    values["plugins"] = list(dict.fromkeys([*named, *load_named_plugins(list(more_plugins))]))
    algo = values.get("algo", TrainConfig.algo)
    if not isinstance(algo, str):
        raise ConfigError(f"algo must be a string, got {algo!r}")
    solver_cls = get_algorithm(algo)
    env = values.get("env", TrainConfig.env)
    if not isinstance(env, str):
        raise ConfigError(f"env must be a string, got {env!r}")
    family = get_env(env).family  # unknown environment -> ConfigError now, not after a folder exists
    if isinstance(values.get("transform"), str):  # `--set transform=saute`: the kind alone
        kind = values["transform"]
        raise ConfigError(f"transform must be a mapping, got {kind!r}; for that kind, write "
                          f"transform={{kind: {kind}}} (in a YAML file: `transform: {{kind: {kind}}}`)")
    known = set(field_names(solver_cls.Config))
    values = {**{k: v for k, v in family.config_defaults().items() if k in known}, **values}
    cfg = build_config(solver_cls.Config, values, source=source or config_file or "config",
                       owner=f"algorithm '{algo}'")
    # the kind's every key, defaults filled in, so config.yaml says what ran; refused first if the family lacks it
    default_kind = solver_cls.Config().transform.get("kind")
    cfg = replace(cfg, transform=resolve_transform(cfg.transform, cfg.env, family.transforms, default_kind,
                                                   family.transforms_missing_because))
    family.validate(cfg)
    check_limits(family.cost_names(cfg), cfg.cost_limits, family.signed_costs)
    family.check_solver(cfg, SolverNeeds.of(solver_cls))
    cfg, notes = plan_epochs(cfg)
    return cfg, [*notes, *cfg.notices(frozenset(values))]


def check_algorithm_fits(algo: str, env: str) -> None:
    """ConfigError in one line, before anything is built or read, when solver `algo` at its defaults cannot train on
    environment `env` at all: a transformation, schedule or critics that env's family lacks (`resolve_config`'s
    checks of those, for a command that builds much before it resolves a run's config, such as `cmdp text-demo`)."""
    solver_cls = get_algorithm(algo)
    family = get_env(env).family
    cfg = replace(solver_cls.Config(), algo=algo, env=env)
    resolve_transform(cfg.transform, env, family.transforms, cfg.transform.get("kind"),
                      family.transforms_missing_because)
    family.check_solver(cfg, SolverNeeds.of(solver_cls))


def plan_epochs(cfg: Any) -> tuple[Any, list[str]]:
    """Fit the step budget to whole epochs; say so when the numbers had to change."""
    notes = []
    if cfg.total_steps < cfg.steps_per_epoch:
        per_epoch = max(cfg.num_envs, cfg.total_steps - cfg.total_steps % cfg.num_envs)
        notes.append(f"steps_per_epoch lowered from {cfg.steps_per_epoch} to {per_epoch} to fit total_steps")
        cfg = replace(cfg, steps_per_epoch=per_epoch)
    epochs = max(1, cfg.total_steps // cfg.steps_per_epoch)
    if epochs * cfg.steps_per_epoch != cfg.total_steps:
        notes.append(f"total_steps rounded from {cfg.total_steps} to {epochs * cfg.steps_per_epoch} "
                     f"({epochs} epochs of {cfg.steps_per_epoch})")
        cfg = replace(cfg, total_steps=epochs * cfg.steps_per_epoch)
    return cfg, notes


