"""Shipped presets: named sets of config keys that reproduce another library's semantics.

    cmdp train --preset safe-rlhf --set 'env_kwargs={policy: ..., reward_model: ..., cost_models: ..., prompts: ...}'

Precedence: the algorithm's and the environment family's defaults < the preset < `--config` < flags < `--set`.
docs/safe-rlhf-preset.md lists each of safe-rlhf's choices beside the preset's and our defaults.
"""
from __future__ import annotations

from typing import Any

from cmdp.spec import ConfigError

#: safe-rlhf's PPO-Lagrangian (PKU-Alignment/safe-rlhf, scripts/ppo-lag.sh and the defaults of its trainer):
#: every key whose semantics we can reproduce. Its KL coefficient 0.01 in both streams and score clip 50 are the
#: text family's own defaults (env_kwargs.kl_coeff, env_kwargs.score_clip), so the preset leaves env_kwargs to you.
SAFE_RLHF: dict[str, Any] = {
    "algo": "ppo_lag",
    "env": "text",
    "cost_limits": 0.0,  # threshold: a cost score <= 0 is safe
    "gamma": 1.0, "cost_gamma": 1.0, "lam": 0.95, "cost_lam": 0.95,  # GAE per stream
    "clip": 0.2,  # clip_range_ratio
    "value_clip": 5.0,  # clip_range_value
    "standardize_advantages": False,  # (A_r - lambda A_c) / (1 + lambda) on the raw GAE advantages
    "update_iters": 1,  # one PPO pass over each batch of rollouts
    "lagrangian_parameterization": "log_lambda",  # SGD on log lambda
    "lagrangian_optimizer": "sgd",
    "lagrangian_init": 1.0,  # lambda_init
    "lagrangian_lr": 0.1,  # lambda_lr
    "lagrangian_upper_bound": 5.0,  # lambda_max
    "cost_window": 128,  # episode_cost_window_size
    "multiplier_delay": 0,  # lambda_update_delay_steps
}

PRESETS: dict[str, dict[str, Any]] = {"safe-rlhf": SAFE_RLHF}


def preset_values(name: str) -> dict[str, Any]:
    """The config keys of preset `name`; a one-line ConfigError for an unknown name."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset '{name}'; presets: {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])
