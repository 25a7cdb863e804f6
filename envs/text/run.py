"""`--env text`: a text run (models, spec, collector, evaluation) for the shared trainer.

`TextFamily` (envs/text_registration.py) builds it lazily, so `cmdp list` and the control side never import
transformers. Defaults that suit language models (undiscounted GAE, small learning rates, no observation
normalisation, minibatches of sequences) are the text family's config defaults (`TEXT_CONFIG_DEFAULTS`):
they sit between the algorithm's defaults and the user's config file.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import torch

from cmdp.family import Critics, FamilyRun, Schedule, SolverNeeds
from cmdp.group import GroupBaseline
from cmdp.optim import Updater
from cmdp.rollout import RolloutBatch
from cmdp.spec import ConfigError
from cmdp.envs.text.generation import GENERATION_BACKENDS

# Between the algorithm's defaults and the user's config for `--env text`; keys an algorithm lacks are skipped.
# Sources: safe-rlhf's PPO-Lag scripts (gamma 1, GAE lambda 0.95, clip 0.2, multiplier init 1, lr 0.1,
# max 5, threshold 0) and its actor/critic learning rates scaled up for small models.
TEXT_CONFIG_DEFAULTS: dict[str, Any] = {
    "total_steps": 512,  # responses
    "steps_per_epoch": 64,  # responses per epoch
    "num_envs": 16,  # responses generated together
    "gamma": 1.0, "cost_gamma": 1.0, "lam": 0.95, "cost_lam": 0.95,
    "obs_normalize": False, "reward_normalize": False, "cost_normalize": False,
    "actor_lr": 1e-5, "critic_lr": 5e-6, "lr_decay": False,
    "update_iters": 1, "batch_size": 8,  # minibatches of 8 sequences
    "clip": 0.2, "max_grad_norm": 1.0, "critic_l2": 0.0,  # target_kl: each algorithm's own
    # the value models' gradients clipped together, as the text family always has (its demo was measured so);
    # "per_critic" clips each value model on its own (not measured on the text tasks; refused under DeepSpeed)
    "critic_clip": "joint",
    # the exact KL would keep the old policy's vocabulary-sized distribution for every token of the epoch
    "early_stop_kl": "sample",
    "lagrangian_init": 1.0, "lagrangian_lr": 0.1, "lagrangian_optimizer": "sgd", "lagrangian_upper_bound": 5.0,
    "checkpoint_every": 1,
}


def text_config_defaults() -> dict[str, Any]:
    """The text family's defaults, plus the machine-dependent ones (GPU when there is one; CPU threads)."""
    values = dict(TEXT_CONFIG_DEFAULTS)
    values["device"] = "cuda" if torch.cuda.is_available() else "cpu"
    values["torch_threads"] = max(1, min(8, os.cpu_count() or 1))
    return values


class TextRun(FamilyRun):
    """What the trainer needs from a text run: spec, agent, collector, and the frozen models behind them.

    `training=False` (evaluating a saved policy) loads plain modules, whatever DeepSpeed setup the run trained with.
    """

    evaluation_unit = "prompts"

    def __init__(self, cfg: Any, needs: SolverNeeds, training: bool = True) -> None:
        from cmdp.envs.text.data import load_prompts
        from cmdp.envs.text.env import TextCollector, load_text_models, text_env_config, text_spec
        from cmdp.envs.text.score_model import resolve_device

        self.tcfg = text_env_config(cfg.env_kwargs)
        if not training:
            self.tcfg = replace(self.tcfg, deepspeed=None)
        # several processes (a launcher set WORLD_SIZE): data parallel through DeepSpeed, one rank writes files
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world_size > 1:
            if not self.tcfg.deepspeed:
                raise ConfigError(f"{self.world_size} processes (WORLD_SIZE) need env_kwargs.deepspeed, e.g. {{stage: 2}}")
            from cmdp.envs.text.deepspeed_updater import init_single_process

            init_single_process()
            if cfg.device.startswith("cuda"):
                local = int(os.environ.get("LOCAL_RANK", "0"))
                torch.cuda.set_device(local)
                cfg = replace(cfg, device=f"cuda:{local}")
        self.is_main = self.rank == 0
        if cfg.obs_normalize or cfg.reward_normalize or cfg.cost_normalize:
            raise ConfigError("obs_normalize, reward_normalize and cost_normalize do not apply to --env text; "
                              "set them to false")
        if cfg.compile_update:
            raise ConfigError("compile_update=true compiles the control family's minibatch step; a language model's "
                              "step runs eager (set compile_update=false)")
        self.device = resolve_device(cfg.device)
        if self.tcfg.deepspeed and needs.trust_region:
            raise ConfigError(f"{cfg.algo} steps the actor's parameters directly (a trust-region step), which "
                              "DeepSpeed's partitioned optimiser does not see; drop env_kwargs.deepspeed")
        if self.tcfg.deepspeed and needs.critics is not Critics.NONE and cfg.critic_clip == "per_critic":
            # one engine holds every value model and clips their gradients together
            raise ConfigError("critic_clip=per_critic is not available with env_kwargs.deepspeed (one engine clips "
                              "all value models together); set critic_clip=joint")
        self.prompts = load_prompts(self.tcfg.prompts)
        if not self.prompts:
            raise ConfigError(f"env_kwargs.prompts: {self.tcfg.prompts} has no prompt")
        torch.manual_seed(cfg.seed)  # LoRA adapters are initialised at random
        self.models = load_text_models(self.tcfg, self.device, second_order=needs.trust_region,
                                       with_critics=needs.critics is not Critics.NONE)
        self.spec = text_spec(self.tcfg, len(self.models.tokenizer)).with_limits(cfg.cost_limits)
        self.agent = self.models.agent
        k = self.spec.num_costs
        self.collector = TextCollector(self.models, self.tcfg, self.prompts, self.spec,
                                       np.array([cfg.gamma] + [cfg.cost_gamma] * k),
                                       np.array([cfg.lam] + [cfg.cost_lam] * k), cfg.num_envs, self.device,
                                       GENERATION_BACKENDS[self.tcfg.generation_backend](
                                           self.agent.actor.model, self.models.tokenizer, self.tcfg, self.device,
                                           self.agent.actor.autocast),
                                       old_distribution=needs.old_distribution,
                                       group=GroupBaseline.of(cfg) if needs.schedule is Schedule.GROUP else None)

    def make_updater(self, cfg: Any, num_epochs: int) -> Updater:
        """DeepSpeed engines when `env_kwargs.deepspeed` is set, else the default Adam updater."""
        if not self.tcfg.deepspeed:
            return super().make_updater(cfg, num_epochs)
        from cmdp.envs.text.deepspeed_updater import DeepSpeedUpdater

        bf16 = bool(self.tcfg.bf16)  # DeepSpeed's bf16 mode (fp32 master weights) only when asked for
        return DeepSpeedUpdater(self.agent, cfg, num_epochs, self.tcfg.deepspeed, bf16)

    def collect(self, cfg: Any, rng: np.random.Generator, reset_seed: int,
                progress: Callable[[int], None] | None) -> RolloutBatch:
        return self.collector.collect(cfg.steps_per_epoch, rng, reset_seed, progress)

    def evaluate(self, episodes: int, seed: int, deterministic: bool) -> dict[str, Any]:
        """The trained policy against its initial one on `episodes` prompts (see envs/text/evaluation.py)."""
        from cmdp.envs.text.evaluation import evaluate_text_run

        result = evaluate_text_run(self, episodes, seed, greedy=deterministic)
        result["cost_limits"] = dict(zip(self.spec.cost_names, self.spec.cost_limits.tolist()))
        return result

    def format_evaluation(self, result: dict[str, Any]) -> str:
        from cmdp.envs.text.evaluation import format_text_eval

        return format_text_eval(result, self.spec.cost_names, result["cost_limits"])
