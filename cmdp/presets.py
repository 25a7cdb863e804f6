"""Shipped presets: named sets of config keys that reproduce another library's semantics.

    cmdp train --preset safe-rlhf --set 'env_kwargs={policy: ..., reward_model: ..., cost_models: ..., prompts: ...}'
    cmdp train --preset omnisafe --algo cpo --env SafetyHopperVelocity-v1

Precedence: the algorithm's and the environment family's defaults < the preset < `--config` < flags < `--set`.
docs/safe-rlhf-preset.md lists each of safe-rlhf's choices beside the preset's and our defaults;
docs/omnisafe-differences.md ("The omnisafe preset") says what `omnisafe` sets and what it cannot.
"""
from __future__ import annotations

from typing import Any

from cmdp.config import TrainConfig
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

# the minibatches, 64 (the PPO family) and 128 (the trust-region critics), are OmniSafe's and our defaults since
# 2026-12-03 (PolicyGradientConfig, TrustRegionConfig), and so is torch.nn.Linear's initialisation
# (`network_init: pytorch`) since 2026-12-04: the PPO family's solvers differ from OmniSafe's in no keyed row
_OMNISAFE_PPO: dict[str, Any] = {}
_OMNISAFE_TRUST_REGION: dict[str, Any] = {"kl_reduction": "mean"}

#: OmniSafe 0.5.0's on-policy solvers, per solver: every deliberate difference of docs/omnisafe-differences.md that
#: has a key, set to OmniSafe's behaviour. The other rows follow OmniSafe at our defaults on Safety-Gymnasium, so
#: the preset leaves them alone; `tests/test_omnisafe_differences.py` checks these against each solver's
#: "Closest today" line there.
OMNISAFE: dict[str, dict[str, Any]] = {
    "ppo": _OMNISAFE_PPO,
    "ppo_lag": _OMNISAFE_PPO,
    "pid_lag": _OMNISAFE_PPO,  # OmniSafe's CPPOPID
    # CUP's projection centres its cost advantages and stops on KL(improved || current), OmniSafe's, at our defaults
    # too (`cost_advantage: center` since 2026-12-04; the authors' code standardises them)
    "cup": _OMNISAFE_PPO,
    "cpo": {**_OMNISAFE_TRUST_REGION, "cpo_constraint_units": "episode"},
    "trpo_lag": _OMNISAFE_TRUST_REGION,
}

#: presets with one set of keys for any algorithm (safe-rlhf's names its own algorithm)
PRESETS: dict[str, dict[str, Any]] = {"safe-rlhf": SAFE_RLHF}
#: presets with one set of keys for each algorithm they cover
ALGORITHM_PRESETS: dict[str, dict[str, dict[str, Any]]] = {"omnisafe": OMNISAFE}


def preset_values(name: str, algo: str | None = None) -> dict[str, Any]:
    """The config keys of preset `name` for algorithm `algo` (None: the default algorithm); a one-line
    ConfigError for an unknown name or for an algorithm that a per-algorithm preset does not cover."""
    if name in PRESETS:
        return dict(PRESETS[name])
    if name not in ALGORITHM_PRESETS:
        raise ConfigError(f"unknown preset '{name}'; presets: {', '.join(sorted({**PRESETS, **ALGORITHM_PRESETS}))}")
    algo = TrainConfig.algo if algo is None else algo
    if not isinstance(algo, str):
        raise ConfigError(f"algo must be a string, got {algo!r}")
    covered = ALGORITHM_PRESETS[name]
    if algo not in covered:
        raise ConfigError(f"preset '{name}' covers {', '.join(covered)}; it has no keys for '{algo}'")
    return dict(covered[algo])
