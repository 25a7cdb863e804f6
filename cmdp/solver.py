"""The base every solver builds on, and the shared PPO-style update loop.

A solver is constructed by the trainer as `SolverClass(cfg, spec, agent, updater, generator)`: its config, the
CMDP spec (cost names and limits), the agent (`agent.actor`, `agent.critic`), the updater that applies its losses
(`updater.step(actor_loss=..., critic_loss=...)`, see cmdp.optim) and a torch Generator for minibatch order. It
never builds an optimiser, an environment or a model itself.

What a solver needs is declared as class attributes, which the trainer and the family read before anything is
built: `schedule` (on-policy epochs, off-policy replay, groups), `critics` (value, action-value or none),
`needs_old_distribution` (the batch then carries the behaviour policy's distribution, `Minibatch.old_dist`),
`trust_region` (the solver steps the actor's parameters itself) and `max_costs`.

A solver of the PPO family differs from another in a few places only, and those are the methods to override:

- `update_multipliers(mean_episode_costs)`: move the multiplier(s) once per epoch (before the policy
  update, as OmniSafe does);
- `combine_advantages(adv)`: turn the (B, 1 + K) reward/cost advantages into the (B,) advantage the
  policy maximises (Lagrangian: (A_r - lambda A_c) / (1 + lambda));
- `actor_loss(mb)` for solvers whose policy objective is not PPO's clipped surrogate: `mb` is a `Minibatch`
  (obs, actions, logp_old, adv, old_dist, ...); return `(loss, info)`, where `info` holds any scalars to log
  (means over the epoch's minibatches; an empty dict is fine);
- `update(batch, mean_episode_costs)` for solvers with a different update altogether (e.g. trust-region steps).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, is_dataclass
from typing import Any, Mapping

import numpy as np
import torch

from cmdp.config import ConfigError, TrainConfig, check_choice
from cmdp.errors import DIVERGED_ADVICE, TrainingDiverged  # re-exported: cmdp.solver.TrainingDiverged
from cmdp.family import Critics, Schedule
from cmdp.losses import (COST_ADVANTAGE_MODES, approx_kl, distribution_kl, ppo_clip_loss, standardize_streams,
                         value_loss)
from cmdp.networks import ACTION_BOUNDS, NETWORK_INITS
from cmdp.optim import CRITIC_CLIPS, Updater
from cmdp.rollout import Minibatch, RolloutBatch
from cmdp.spec import CMDPSpec


#: The states whose mean policy entropy `optimize` logs: the batch's first ones, at most this many (every state of
#: a small batch; a contiguous stretch of a large one, which keeps a language model's extra forward pass short).
ENTROPY_STATES = 1024

#: How the PPO family's early stop measures KL(old || new) (`early_stop_kl`).
EARLY_STOP_KL = ("exact", "sample")


@dataclass
class PolicyGradientConfig(TrainConfig):
    """Hyperparameters of the PPO family. Defaults follow OmniSafe's on-policy Safety-Gymnasium settings
    (omnisafe/configs/on-policy/PPOLag.yaml) unless a comment says otherwise."""

    gamma: float = 0.99
    cost_gamma: float = 0.99
    lam: float = 0.95  # GAE lambda for the reward
    cost_lam: float = 0.95  # GAE lambda for the costs
    actor_hidden: list[int] = field(default_factory=lambda: [64, 64])
    critic_hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    # the actor's and critics' linear layers: "pytorch" (torch.nn.Linear's own, OmniSafe's; the default since
    # 2026-12-04) or "orthogonal" (the PPO implementation choice, ours before: faster early learning, but not better
    # within the limit at 1e6 steps); cmdp/networks.py NETWORK_INITS, docs/omnisafe-differences.md row 14
    network_init: str = "pytorch"
    init_log_std: float = 0.0  # std 1.0 at the start, as OmniSafe's GaussianLearningActor
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    lr_decay: bool = True  # the actor's learning rate decays linearly to 0 over the run
    # the critics' too (with lr_decay); OmniSafe keeps the critics' rate constant (docs/omnisafe-differences.md row 5)
    critic_lr_decay: bool = False
    update_iters: int = 40
    # OmniSafe's 64 (the default since 2026-12-03; 1000 before). 1000 makes a pass over a 20k-step epoch about 3x
    # cheaper (`python -m cmdp.benchmarks.update_speed`) and gives the same returns over the first epochs, but not
    # the same learning: on SafetyHopperVelocity-v1 at 1e6 steps the policy moves about half as far per epoch, and
    # ppo_lag never found the full-length episodes that 64 found on 2 of 3 seeds (docs/omnisafe-differences.md row 9).
    batch_size: int = 64
    clip: float = 0.2
    target_kl: float = 0.02  # stop the epoch's updates once KL(old || new) exceeds it; <= 0 disables
    # How that KL is measured after each pass: "exact" (OmniSafe's PolicyGradient._update: the closed-form KL between
    # the behaviour policy's and the current action distributions at the batch's states, summed over action
    # dimensions, averaged over states) or "sample" (mean of (rho - 1) - log rho over the batch's own actions,
    # unbiased for the same KL; no copy of the old distributions, which for a language model are vocabulary-sized:
    # the text family's default). docs/omnisafe-differences.md row 8.
    early_stop_kl: str = "exact"
    max_grad_norm: float = 40.0
    # the critics' gradients, with their L2 term, clipped to max_grad_norm "per_critic" (OmniSafe's) or "joint"ly
    # (`cmdp.optim.CRITIC_CLIPS`, docs/omnisafe-differences.md row 7)
    critic_clip: str = "per_critic"
    # clip each value prediction to within value_clip of its estimate at collection (safe-rlhf: 5); null: off
    value_clip: float | None = None
    critic_l2: float = 0.001  # L2 penalty on critic weights (coefficient of sum w^2)
    entropy_coef: float = 0.0
    standardize_advantages: bool = True  # per stream over the epoch; false: raw GAE advantages in every stream
    # With standardize_advantages on, what the cost streams get: "center" (mean 0 only, so lambda weighs cost units:
    # OmniSafe's buffer, docs/omnisafe-differences.md row 1) or "standardize" (mean 0, std 1, like the reward's).
    cost_advantage: str = "center"
    obs_normalize: bool = True
    obs_clip: float = 5.0  # normalised observations are clipped to [-obs_clip, obs_clip] (OmniSafe: 5)
    # Box actions: the Gaussian sample "scale"d onto the bounds from [-1, 1] and not clipped (OmniSafe's
    # ActionScale, the default since 2026-12-03), or "clip"ped to them (docs/omnisafe-differences.md row 15;
    # `cmdp.networks.BoxActions`)
    action_bounds: str = "scale"
    reward_normalize: bool = False
    cost_normalize: bool = False
    # Compile each minibatch step (losses, gradients, clipping, Adam) into one function with torch.compile
    # (cmdp/fused.py): a pass at 64 about 2.2x faster on a 2-core CPU, for about 20 s of compilation per process the
    # first time and a C++ compiler at run time; not bit-identical to the eager step. Off by default: tests and
    # short runs do not pay the compilation, and published numbers stay repeatable (benchmarks/README.md, "Update
    # speed").
    compile_update: bool = False

    def validate(self) -> None:
        super().validate()
        for name in ("update_iters", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gamma", "cost_gamma", "lam", "cost_lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("actor_lr", "critic_lr", "clip", "max_grad_norm", "obs_clip"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        check_choice("early_stop_kl", self.early_stop_kl, EARLY_STOP_KL)
        check_choice("cost_advantage", self.cost_advantage, COST_ADVANTAGE_MODES)
        check_choice("network_init", self.network_init, NETWORK_INITS)
        check_choice("action_bounds", self.action_bounds, ACTION_BOUNDS)
        check_choice("critic_clip", self.critic_clip, CRITIC_CLIPS)
        if self.activation not in ("tanh", "relu"):
            raise ConfigError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")
        if self.value_clip is not None and not self.value_clip > 0:
            raise ConfigError(f"value_clip must be > 0 (or null: no clipping), got {self.value_clip}")
        for name in ("actor_hidden", "critic_hidden"):
            sizes = getattr(self, name)
            if any(size < 1 for size in sizes):  # an empty list is fine: a linear actor or critic
                raise ConfigError(f"{name} must list layer sizes >= 1, got {sizes}")
        for name in ("critic_l2", "entropy_coef"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        # the initial standard deviation exp(init_log_std) must be a positive float32 (|x| < 87: no 0, no inf)
        if not abs(self.init_log_std) < 80:
            raise ConfigError(f"init_log_std must be in (-80, 80), got {self.init_log_std}")


def check_finite(loss: torch.Tensor | float, part: str, batch: RolloutBatch, adv: torch.Tensor | None = None) -> None:
    """Stop with a message that says what went wrong, before a non-finite loss turns every weight into NaN."""
    value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
    if math.isfinite(value):
        return
    facts = [f"{part} loss is {value}", f"batch advantages finite: {bool(torch.isfinite(batch.advantages).all())}",
             f"returns finite: {bool(torch.isfinite(batch.returns).all())}"]
    if adv is not None:
        facts.append(f"minibatch policy advantage range [{adv.min().item():.3g}, {adv.max().item():.3g}]")
    raise TrainingDiverged("training diverged: " + "; ".join(facts) + ". " + DIVERGED_ADVICE)


def loss_and_info(result: Any, solver: Any) -> tuple[torch.Tensor, Mapping[str, Any]]:
    """`solver.actor_loss`'s result, refused in one line (`ConfigError`, naming the class) unless it is what the
    loop needs: (a scalar tensor, a mapping of scalars to log). A plugin's bare tensor had ended in "iteration over a
    0-d tensor", a traceback from inside the loop."""
    if (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.Tensor)
            and result[0].dim() == 0 and isinstance(result[1], Mapping)):
        return result
    if isinstance(result, torch.Tensor):
        got = f"a tensor of shape {tuple(result.shape)}"
    elif isinstance(result, tuple):
        got = "(" + ", ".join(type(x).__name__ if not isinstance(x, torch.Tensor) else f"tensor of shape "
                              f"{tuple(x.shape)}" for x in result) + ")"
    else:
        got = type(result).__name__
    # a plugin file's module has a made-up name (cmdp.registry): its file says where the class is
    where = f"{type(solver).__qualname__}.actor_loss ({inspect.getfile(type(solver))})"
    raise ConfigError(f"{where} must return (loss, info): a scalar tensor and a dict of scalars to log "
                      f"({{}} for none), got {got}")


class Solver:
    """Interface the trainer drives. `Config` is the solver's config dataclass; the class attributes below
    declare what it needs (see the module docstring)."""

    name: str = "solver"
    Config: type = PolicyGradientConfig
    schedule: Schedule = Schedule.ON_POLICY
    critics: Critics = Critics.VALUE
    needs_old_distribution: bool = False
    trust_region: bool = False
    max_costs: int | None = None  # solvers that handle only one constraint set 1
    # what the solver calls its per-cost multipliers where a person reads them (progress bar, end-of-run summary,
    # replay.png); progress.csv and TensorBoard log them as lambda/<cost> for every solver, so runs compare column
    # for column
    multiplier_name: str = "lambda"
    # a classmethod (spec, cfg) -> agent for solvers that bring their own networks (off-policy); None: the
    # family builds the agent (policy plus the declared critics)
    make_agent: Any = None

    def __init__(self, cfg: Any, spec: CMDPSpec, agent: torch.nn.Module, updater: Updater,
                 generator: torch.Generator) -> None:
        check_cost_count(type(self), cfg, spec)
        self.cfg, self.spec, self.agent = cfg, spec, agent
        self.updater = updater
        self.generator = generator

    def update(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """One epoch's update from its batch (schedules ON_POLICY and GROUP); returns scalars to log."""
        raise NotImplementedError

    def update_step(self, sample: Any) -> dict[str, float]:
        """One gradient step from a replay sample (schedule OFF_POLICY, `cmdp.off_policy`); scalars to log."""
        raise NotImplementedError

    def end_epoch(self, mean_episode_costs: np.ndarray, updates: int) -> dict[str, float]:
        """Once per epoch after its `updates` gradient steps (schedule OFF_POLICY); scalars to log."""
        raise NotImplementedError

    def multipliers(self) -> dict[str, float]:
        """Current multiplier per cost name, for logging (empty for solvers without one)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"updater": self.updater.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updater.load_state_dict(state["updater"])


#: the methods of `Solver` each schedule calls, which a solver of that schedule must implement
SCHEDULE_METHODS = {Schedule.ON_POLICY: ("update",), Schedule.GROUP: ("update",),
                    Schedule.OFF_POLICY: ("update_step", "end_epoch")}


def solver_class_problem(cls: Any) -> str | None:
    """Why the trainer could not build and drive `cls` as a solver, in one sentence (None: it can): it must subclass
    `Solver`, its `Config` must be a dataclass of `TrainConfig`'s keys, and it must implement the methods its
    `schedule` calls. `register_algorithm` asks, so a wrong class is refused where it is registered."""
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        return (f"{getattr(cls, '__qualname__', repr(cls))} is not a solver class: subclass cmdp.solver.Solver "
                f"or a solver built on it (PolicyGradientSolver, TrustRegionSolver, OffPolicySolver, a shipped solver)")
    config = cls.Config
    if not (isinstance(config, type) and is_dataclass(config) and issubclass(config, TrainConfig)):
        return (f"{cls.__qualname__}.Config must be a dataclass subclassing cmdp.config.TrainConfig "
                f"(e.g. PolicyGradientConfig), got {config!r}")
    needed = SCHEDULE_METHODS.get(cls.schedule) if isinstance(cls.schedule, Schedule) else None
    if needed is None:
        return f"{cls.__qualname__}.schedule must be a cmdp.family.Schedule, got {cls.schedule!r}"
    missing = [name for name in needed if getattr(cls, name) is getattr(Solver, name)]
    if missing:
        return (f"{cls.__qualname__} does not implement {' and '.join(f'{m}()' for m in missing)}, which its schedule "
                f"({cls.schedule.value}) calls")
    return None


def check_cost_count(solver_cls: type, cfg: Any, spec: CMDPSpec) -> None:
    """ConfigError when the environment has more costs than the solver handles (`max_costs`)."""
    if solver_cls.max_costs is not None and spec.num_costs > solver_cls.max_costs:
        raise ConfigError(f"algorithm '{solver_cls.name}' supports at most {solver_cls.max_costs} cost(s); "
                          f"environment '{cfg.env}' has {spec.num_costs}: {spec.cost_names}")


def _as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


class PolicyGradientSolver(Solver):
    """PPO-clip on a combined advantage, with reward and cost critics fitted on the same minibatches."""

    def __init__(self, cfg: Any, spec: CMDPSpec, agent: torch.nn.Module, updater: Updater,
                 generator: torch.Generator) -> None:
        super().__init__(cfg, spec, agent, updater, generator)
        # `minibatch_losses` and the updater's step compiled together (`compile_update`); None: the eager step
        self.fused_step = updater.fused(self.minibatch_losses) if cfg.compile_update else None

    # --- the parts solvers change -------------------------------------------------------------
    def update_multipliers(self, mean_episode_costs: np.ndarray) -> None:
        """Called once per epoch before the policy update. The base (unconstrained) has none."""

    def combine_advantages(self, adv: torch.Tensor) -> torch.Tensor:
        """(B, 1 + K) standardised advantages -> (B,) the actor maximises. Base: reward only."""
        return adv[:, 0]

    def actor_loss(self, mb: Minibatch) -> tuple[torch.Tensor, Mapping[str, Any]]:
        """Loss on one minibatch and scalars to log: PPO's clipped surrogate of `mb.adv` minus an optional
        entropy bonus (`clipped_surrogate` at the actor's current log-probabilities)."""
        return self.clipped_surrogate(mb, self.agent.actor.log_prob(mb.obs, mb.actions))

    def clipped_surrogate(self, mb: Minibatch, logp: torch.Tensor) -> tuple[torch.Tensor, Mapping[str, Any]]:
        """PPO's clipped surrogate of `mb.adv` at the log-probabilities `logp` of `mb.actions`, minus the entropy
        bonus; a variant that adds a term of the same log-probabilities extends this (one forward pass)."""
        loss, info = ppo_clip_loss(logp, mb.logp_old, mb.adv, self.cfg.clip)
        if self.cfg.entropy_coef:
            loss = loss - self.cfg.entropy_coef * self.agent.actor.entropy(mb.obs).mean()
        return loss, {"clip_frac": info["clip_frac"]}

    def minibatch_losses(self, mb: Minibatch) -> tuple[torch.Tensor | None, torch.Tensor | None, Mapping[str, Any]]:
        """One minibatch's losses: the actor's (`actor_loss`, with its scalars to log) when the minibatch carries a
        policy advantage, else None; the critics' squared error (`cmdp.losses.value_loss`) when the agent has
        critics, else None. What `optimize` steps on, eagerly or compiled (`compile_update`)."""
        critic = self.agent.critic
        loss_v = None if critic is None else value_loss(critic(mb.obs), mb.returns, mb.values, self.cfg.value_clip)
        if mb.adv is None:
            return None, loss_v, {}
        loss_pi, info = loss_and_info(self.actor_loss(mb), self)
        return loss_pi, loss_v, info

    def stream_advantages(self, batch: RolloutBatch) -> torch.Tensor:
        """(B, 1 + K) advantages per stream as the actor sees them: standardised per `standardize_advantages`
        and `cost_advantage` (`cmdp.losses.standardize_streams`), else the raw GAE advantages."""
        if not self.cfg.standardize_advantages:
            return batch.advantages
        return standardize_streams(batch.advantages, self.cfg.cost_advantage)

    def policy_advantage(self, batch: RolloutBatch) -> torch.Tensor:
        """(B,) advantage for the actor: `stream_advantages`, then `combine_advantages`."""
        return self.combine_advantages(self.stream_advantages(batch))

    # --- the shared loop ------------------------------------------------------------------------
    def update(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """One epoch's update: multipliers, then PPO on the combined advantage with the critics alongside."""
        self.update_multipliers(mean_episode_costs)
        metrics = self.optimize(batch, self.policy_advantage(batch))
        metrics["lr"] = self.updater.actor_lr
        metrics.update(self.updater.end_epoch())
        return metrics

    def optimize(self, batch: RolloutBatch, policy_adv: torch.Tensor | None,
                 update_iters: int | None = None) -> dict[str, float]:
        """Minibatch epochs over `batch`: the actor loss (skipped when `policy_adv` is None) plus the
        critics' squared error (when the agent has critics), one backward and one optimiser step per
        minibatch. With an actor loss, stops early once KL(old || new) on the whole batch, measured as
        `early_stop_kl` says, exceeds `target_kl`.
        Logged: the mean of `loss_pi`, `loss_v` and of every key `actor_loss` returned, each over the minibatches
        that reported it (a key returned only sometimes is not diluted by the others); `kl` after the last pass; and
        `entropy`, the updated policy's (summed over action dimensions) averaged over the batch's first
        `ENTROPY_STATES` states."""
        cfg = self.cfg
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        iters_done, kl = 0, 0.0
        old = None  # the behaviour policy's distributions at the batch's states, for the exact KL
        if policy_adv is not None and cfg.early_stop_kl == "exact":
            with torch.no_grad():
                old = self.agent.actor.distribution(batch.obs)

        def add(key: str, value: Any) -> None:
            sums[key] = sums.get(key, 0.0) + _as_float(value)
            counts[key] = counts.get(key, 0) + 1

        for _ in range(update_iters or cfg.update_iters):
            for mb in batch.minibatch_pass(cfg.batch_size, self.generator, policy_adv):
                if self.fused_step is not None:
                    logged = self.fused_step(mb)  # nothing moved if a loss is non-finite: reported here
                    for key, part in (("loss_v", "critic"), ("loss_pi", "actor")):
                        if key in logged:
                            check_finite(logged[key], part, batch, mb.adv if part == "actor" else None)
                    for key, value in logged.items():
                        add(key, value)
                    continue
                loss_pi, loss_v, info = self.minibatch_losses(mb)
                if loss_v is not None:
                    check_finite(loss_v, "critic", batch)
                    add("loss_v", loss_v.item())
                if loss_pi is not None:
                    check_finite(loss_pi, "actor", batch, mb.adv)
                    add("loss_pi", loss_pi.item())
                    for key, value in info.items():
                        add(key, value)
                self.updater.step(actor_loss=loss_pi, critic_loss=loss_v)
            iters_done += 1
            if policy_adv is None:
                continue
            with torch.no_grad():
                actor = self.agent.actor
                new_kl = (distribution_kl(old, actor.distribution(batch.obs)).mean() if old is not None
                          else approx_kl(batch.logp_old, actor.log_prob(batch.obs, batch.actions)))
                kl = batch.global_mean(new_kl.item())
            if cfg.target_kl > 0 and kl > cfg.target_kl:
                break
        with torch.no_grad():  # a bounded forward pass: a text policy's distributions are vocabulary-sized
            entropy = self.agent.actor.entropy(batch.obs[:ENTROPY_STATES]).mean()
        metrics = {k: v / counts[k] for k, v in sums.items()}
        metrics.update({"kl": kl, "update_iters": float(iters_done), "entropy": batch.global_mean(entropy.item())})
        return metrics
