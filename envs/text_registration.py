"""Registers `--env text` without importing transformers: the builder and the checks load the text code lazily."""
from __future__ import annotations

from typing import Any

from cmdp.registry import register_env


def _build(cfg: Any) -> Any:
    from envs.text.run import build_text_run

    return build_text_run(cfg)


def _defaults() -> dict[str, Any]:
    from envs.text.run import text_config_defaults

    return text_config_defaults()


def _validate(cfg: Any) -> None:
    from envs.text.env import check_text_paths, text_env_config

    check_text_paths(text_env_config(cfg.env_kwargs))


register_env("text", None, family="text",
             description="language-model policy scored by reward and cost models (Safe RLHF); env_kwargs: "
                         "policy, reward_model, cost_models, prompts",
             builder=_build, config_defaults=_defaults, validate=_validate)
