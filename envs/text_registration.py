"""Registers `--env text` (the text family) without importing transformers: its runs and checks load lazily."""
from __future__ import annotations

from typing import Any

from cmdp.family import Critics, EnvFamily, FamilyRun, Schedule, SolverNeeds
from cmdp.registry import register_env


class TextFamily(EnvFamily):
    """A language-model policy answering prompts, scored by a reward model and cost models (Safe RLHF)."""

    schedules = frozenset({Schedule.ON_POLICY, Schedule.GROUP})
    critics = frozenset({Critics.VALUE, Critics.NONE})
    # cost-model scores: <= 0 is judged safe, and a limit may sit below 0 (safe-rlhf's threshold is any number)
    signed_costs = True

    def config_defaults(self) -> dict[str, Any]:
        from cmdp.envs.text.run import text_config_defaults

        return text_config_defaults()

    def validate(self, cfg: Any) -> None:
        from cmdp.envs.text.env import check_text_paths, text_env_config

        check_text_paths(text_env_config(cfg.env_kwargs))

    def cost_names(self, cfg: Any) -> list[str] | None:
        from cmdp.envs.text.env import text_env_config

        return list(text_env_config(cfg.env_kwargs).cost_paths())

    def build(self, cfg: Any, needs: SolverNeeds, training: bool = True) -> FamilyRun:
        from cmdp.envs.text.run import TextRun

        return TextRun(cfg, needs, training)


register_env("text", TextFamily(), group="text",
             description="language-model policy scored by reward and cost models (Safe RLHF); env_kwargs: "
                         "policy, reward_model, cost_models, prompts")
