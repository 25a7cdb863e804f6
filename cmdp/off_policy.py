"""The base of off-policy solvers: their config, action-value critics with Polyak-averaged targets, and the
update every one of DDPG, TD3 and SAC (and their constrained versions) shares.

An off-policy solver declares `schedule = Schedule.OFF_POLICY` and `critics = Critics.ACTION_VALUE`, builds its
own agent (`make_agent(spec, cfg)`: actor, critics and their targets) and implements two methods the trainer's
replay loop calls:

- `update_step(sample)`: one gradient step from a `ReplaySample`; returns scalars to log (averaged per epoch);
- `end_epoch(mean_episode_costs, updates)`: once per epoch, after its `updates` gradient updates (the
  multipliers move here); returns scalars to log.

The loop (`cmdp.schedules.OffPolicyLoop`): each epoch resets the environments, then repeatedly collects
`update_every` steps per copy into the replay buffer and, once `update_after` steps were collected, takes
`updates_per_step` gradient steps per collected step. Actions are uniformly random for the first
`random_steps` steps.

`OffPolicySolver.update_step` is the shared step. The critics are one `EnsembleCritic` on (s, a) with R
reward heads (R = 1 for DDPG, 2 for TD3 and SAC: clipped double Q) and one head per cost. With a' and the
bonus b' from `next_action` (SAC: b' = -alpha log pi(a'|s'); else 0):

    y_r   = r   + gamma   (1 - terminated) [min_i Q'_r,i(s', a') + b']
    y_c,k = c_k + gamma_c (1 - terminated) Q'_c,k(s', a')

and every `policy_delay` steps the actor descends, with a and b from `policy_action` and lambda the
multipliers (zero for the unconstrained bases),

    [-(Q_r(s, a) + b) + sum_k lambda_k Q_c,k(s, a)] / (1 + sum_k lambda_k)

after which the targets move by Polyak averaging. A solver's own file is the few hooks by which it differs.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import gymnasium
import numpy as np
import torch
from torch import nn

from cmdp.config import ConfigError, TrainConfig, check_choice
from cmdp.family import Critics, Schedule
from cmdp.lagrange import LagrangeOptions, Multiplier, PIDOptions
from cmdp.losses import value_loss
from cmdp.networks import NETWORK_INITS, EnsembleCritic, flat_obs_dim
from cmdp.optim import CRITIC_CLIPS
from cmdp.replay import ReplaySample
from cmdp.solver import DIVERGED_ADVICE, Solver, TrainingDiverged, loss_and_info
from cmdp.spec import CMDPSpec


@dataclass
class OffPolicyConfig(TrainConfig):
    """Hyperparameters every off-policy solver has. Defaults are OmniSafe's off-policy configs for Safety-Gymnasium
    (omnisafe/configs/off-policy/SAC.yaml and its siblings): 2,000-step epochs, Adam 3e-4, batch 256, Polyak
    0.005, replay 1e6, [256, 256] ReLU, gamma 0.99, gradient norm clip 40, one update per step, updates from
    and random actions until step 10,000 (their start_learning_steps); each solver changes what its own
    OmniSafe config changes."""

    steps_per_epoch: int = 2000
    # a checkpoint every 20,000 steps, as an on-policy run's every epoch: each holds the replay buffer, whose 1e6
    # rows of SafetyHumanoidVelocity-v1 take 2.9 GB and 8.6 s to write, at every 2,000-step epoch a quarter of the
    # epoch's 32 s of sac_lag training (62 steps/s; 2-core AMD EPYC VM, 2026-12-05). The last epoch is always saved
    checkpoint_every: int = 10
    gamma: float = 0.99
    cost_gamma: float = 0.99
    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])
    activation: str = "relu"
    # how the actor's and the critics' linear layers start (`cmdp.networks.NETWORK_INITS`): torch's own, which is
    # OmniSafe's kaiming_uniform (its off-policy configs' weight_initialization_mode); "orthogonal" until 2026-12-05
    network_init: str = "pytorch"
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    lr_decay: bool = False  # the actor's learning rate decays linearly to 0 over the run
    critic_lr_decay: bool = False  # the critics' too (with lr_decay)
    critic_l2: float = 0.0
    max_grad_norm: float = 40.0
    # "per_critic": the reward heads (twin Q) clipped together and each cost's head apart, as OmniSafe does
    # (`stream_critics`); "joint": every Q head's gradient clipped together, the default until 2026-12-05
    # (`cmdp.optim.CRITIC_CLIPS`; docs/off-policy.md, after its deliberate differences)
    critic_clip: str = "per_critic"
    batch_size: int = 256
    replay_size: int = 1_000_000
    update_after: int = 10_000  # env steps (all copies together) before the first update
    random_steps: int = 10_000  # env steps (all copies together) of uniformly random actions at the start
    update_every: int = 1  # env steps per copy between rounds of updates
    updates_per_step: float = 1.0  # gradient steps per collected env step (all copies together)
    polyak: float = 0.005  # target <- (1 - polyak) target + polyak online
    policy_delay: int = 1  # critic steps per actor step (and target update)
    save_replay: bool = True  # checkpoint the replay buffer (exact resume); false: resume refills it
    obs_normalize: bool = False  # stored observations would go stale as running statistics move; refused
    # the costs stored for the critics standardised step by step, centred and scaled by the running statistics of
    # every cost seen, clipped to +-5 (`cmdp.normalize.StepStandardizer`): OmniSafe's cost_normalize, on in its
    # velocity configs; off here (docs/off-policy.md, "Deliberate differences"). The multipliers see raw costs.
    cost_standardize: bool = False

    def validate(self) -> None:
        super().validate()
        for name in ("batch_size", "replay_size", "update_every", "policy_delay"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("update_after", "random_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("gamma", "cost_gamma", "polyak"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("actor_lr", "critic_lr", "max_grad_norm", "updates_per_step"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.critic_l2 < 0:
            raise ConfigError(f"critic_l2 must be >= 0, got {self.critic_l2}")
        check_choice("critic_clip", self.critic_clip, CRITIC_CLIPS)
        check_choice("network_init", self.network_init, NETWORK_INITS)
        if any(h < 1 for h in [*self.actor_hidden, *self.critic_hidden]):
            raise ConfigError(f"hidden layer sizes must be >= 1, got actor_hidden={self.actor_hidden}, "
                              f"critic_hidden={self.critic_hidden}")
        if self.activation not in ("tanh", "relu"):
            raise ConfigError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")
        if self.obs_normalize:
            raise ConfigError("obs_normalize is not available to off-policy solvers (stored observations would "
                              "be normalised with stale statistics); set obs_normalize=false")
        if self.steps_per_epoch % (self.num_envs * self.update_every):
            raise ConfigError(f"steps_per_epoch ({self.steps_per_epoch}) must be a multiple of num_envs x "
                              f"update_every ({self.num_envs} x {self.update_every})")
        if self.batch_size > self.replay_size:  # every minibatch would repeat the buffer's transitions
            raise ConfigError(f"batch_size ({self.batch_size:,}) must be at most replay_size ({self.replay_size:,}): "
                              f"the buffer never holds a whole minibatch of distinct transitions")

    def check_warm_up_fits(self) -> None:
        """ConfigError in one line when `update_after` or `random_steps` is not below `total_steps`: the run would
        take no gradient step (its policy the initial one), or act at random to its end (its return and cost a
        random policy's), and still print a summary as if it had trained. Called by `EnvFamily.check_solver`, after
        the refusals of a solver the environment cannot train at all, which are said first."""
        late = [name for name in ("update_after", "random_steps") if getattr(self, name) >= self.total_steps]
        if not late:
            return
        what = {"update_after": "the run would end before its first gradient update",
                "random_steps": "every action would be uniformly random"}
        values = " and ".join(f"{name} ({getattr(self, name):,})" for name in late)
        raise ConfigError(f"{values} must be below total_steps ({self.total_steps:,}): "
                          f"{' and '.join(what[name] for name in late)}; lower {' and '.join(late)} (env steps, all "
                          f"copies together) or raise total_steps")

    def multiplier(self, limits: np.ndarray) -> Multiplier | None:
        """No multipliers: the unconstrained bases. A constrained solver's config lists `LagrangeOptions` or
        `PIDOptions` first, whose `multiplier` builds them."""
        return None

    def multiplier_steps(self, updates: int) -> int:
        """How many times the multipliers' rule runs at the end of an epoch that took `updates` gradient updates:
        once (the PID variants; `OffPolicyLagrangeOptions` redeclares it)."""
        return 1


#: When the off-policy Lagrange multipliers move (`lagrangian_steps`): "update", one Adam step of
#: `lagrangian_lr` after every gradient update of the epoch, on the epoch's cost estimate (OmniSafe's); "epoch",
#: one step per epoch, as every other solver of ours.
LAGRANGIAN_STEPS = ("update", "epoch")


@dataclass
class OffPolicyLagrangeOptions(LagrangeOptions):
    """The multiplier keys of ddpg_lag, td3_lag and sac_lag: OmniSafe's DDPGLag/TD3Lag/SACLag.yaml.

    OmniSafe steps lambda by Adam (lr 1e-5) after every gradient update, on the mean cost of its last 50
    episodes (0.5.0's logger window; our `cost_window` 50 on Safety-Gymnasium), once 100 epochs have passed
    (warmup_epochs). `lagrangian_steps: update` does the same within each epoch: as many steps as the epoch took
    gradient updates (2,000 at the defaults), each of `lagrangian_lr`, on the epoch's estimate, which ours
    refreshes once per epoch and OmniSafe's as each episode ends (docs/off-policy.md, "Deliberate differences").
    `lagrangian_steps: epoch` takes one step per epoch instead (lr 0.02 for the same full step): not the same rule at
    another scale, since Adam's moments average over about 10 (m) and 1,000 (v) of its steps, 10 and 1,000
    epochs there. After 20 epochs at cost 980 (limit 25), 10 epochs at cost 0 raise lambda by a further 6 full
    steps (of 0.02) with one step per epoch, on the momentum of the violations, and lower it by 7 with a step per
    update (tests/test_off_policy_continuous.py; docs/off-policy.md, "Deliberate differences"). init 0.001 and
    the 100-epoch delay are theirs.
    """

    lagrangian_lr: float = 1e-5
    lagrangian_steps: str = "update"
    multiplier_delay: int = 100

    def validate(self) -> None:
        super().validate()
        check_choice("lagrangian_steps", self.lagrangian_steps, LAGRANGIAN_STEPS)

    def multiplier_steps(self, updates: int) -> int:
        """Ascent steps for an epoch that took `updates` gradient updates (`lagrangian_steps`)."""
        return updates if self.lagrangian_steps == "update" else 1

    def notices(self, given: frozenset[str]) -> list[str]:
        notes = super().notices(given)  # type: ignore[misc]  # the solver config the mixin is combined with
        if self.lagrangian_steps == "epoch" and "lagrangian_lr" not in given:
            # the default rate is sized for a step per update (2,000 an epoch): once per epoch it barely moves
            notes.append(f"lagrangian_steps=epoch moves the multipliers once per epoch, at lagrangian_lr "
                         f"{self.lagrangian_lr:g}, the rate of a step per update: they would hardly move; the "
                         f"epoch rule's rate is 0.02 (--set lagrangian_lr=0.02; docs/off-policy.md)")
        return notes


@dataclass
class OffPolicyPIDOptions(PIDOptions):
    """The PID keys of ddpg_pid, td3_pid and sac_pid: OmniSafe's DDPGPID/TD3PID/SACPID.yaml, run once per epoch.

    OmniSafe runs the controller after every update with kp 1e-6, ki 1e-7, kd 1e-7 and penalty_max 100, after
    100 warm-up epochs. Per epoch (2,000 updates) the integral gains 2,000 x ki: our `pid_ki` is 2e-4. The
    proportional and derivative terms do not accumulate, so kp and kd keep their values (both are so small
    that OmniSafe's off-policy PID is, in effect, a slow integral controller). `pid_d_delay` counts epochs.
    """

    pid_kp: float = 1e-6
    pid_ki: float = 2e-4
    pid_kd: float = 1e-7
    lagrangian_upper_bound: float | None = 100.0
    multiplier_delay: int = 100


@torch.no_grad()
def polyak_update(target: torch.nn.Module, online: torch.nn.Module, polyak: float) -> None:
    """target <- (1 - polyak) * target + polyak * online, parameter by parameter."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(1.0 - polyak).add_(o, alpha=polyak)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """A context in which `module`'s parameters take no gradient (gradients still flow through it to its inputs):
    the actor's loss differentiates Q(s, pi(s)) in the action only."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def stream_critics(reward_heads: int, num_costs: int) -> tuple[int, ...]:
    """The critic each Q head is part of, for clipping per critic: the reward heads (twin Q) are one critic, each
    cost's head another, as OmniSafe's `reward_critic` and `cost_critic` (its DDPG._update_reward_critic and
    _update_cost_critic clip each one's parameters on their own)."""
    return (0,) * reward_heads + tuple(range(1, num_costs + 1))


class ActorQAgent(nn.Module):
    """An actor, Q(s, a) critics [reward 1..R, cost 1..K] as one ensemble, and their Polyak-averaged targets.

    `target_actor` is a copy of the actor for solvers whose targets use it (DDPG, TD3); None for SAC.
    """

    def __init__(self, actor: nn.Module, obs_dim: int, act_dim: int, reward_heads: int, num_costs: int,
                 critic_hidden: list[int], activation: str, target_actor: bool, init: str = "orthogonal") -> None:
        super().__init__()
        self.actor = actor
        self.critic = EnsembleCritic(obs_dim + act_dim, critic_hidden, reward_heads + num_costs, activation,
                                     init=init, critic_of_head=stream_critics(reward_heads, num_costs))
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_actor = copy.deepcopy(actor).requires_grad_(False) if target_actor else None

    def q(self, obs: torch.Tensor, actions: torch.Tensor, target: bool = False) -> torch.Tensor:
        """(B, R + K): every head's Q(s, a)."""
        return (self.target_critic if target else self.critic)(torch.cat([obs, actions], dim=-1))


def box_dims(spec: CMDPSpec, algo: str, env: str) -> tuple[int, int]:
    """(obs_dim, act_dim) of a Box-action CMDP; one clear line for any other action space."""
    if not isinstance(spec.action_space, gymnasium.spaces.Box):
        raise ConfigError(f"{algo} needs Box (continuous) actions; environment '{env}' has {spec.action_space}")
    return flat_obs_dim(spec.observation_space), int(np.prod(spec.action_space.shape))


def finite_loss(loss: torch.Tensor, part: str) -> float:
    """The loss's value; `TrainingDiverged`, saying which loss, before a non-finite one reaches the weights."""
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDiverged(f"training diverged: {part} loss is {value} in an off-policy update. {DIVERGED_ADVICE}")
    return value


class OffPolicySolver(Solver):
    """Base of replay-based solvers (see the module docstring). Subclasses set `reward_heads` and implement
    `make_agent`, `next_action` and `policy_action`. The multipliers are what `cfg.multiplier(limits)` builds:
    none for the unconstrained bases, gradient ascent or PID for configs with `cmdp.lagrange.LagrangeOptions`
    or `PIDOptions`, so a constrained solver is its base with another config."""

    Config = OffPolicyConfig
    schedule = Schedule.OFF_POLICY
    critics = Critics.ACTION_VALUE
    reward_heads = 1  # reward Q-heads: 1, or 2 for clipped double Q (their minimum is the target's value)

    @classmethod
    def make_agent(cls, spec: CMDPSpec, cfg: Any) -> nn.Module:
        """The solver's networks for `spec`: a module with `actor` (with `numpy_sampler()`) and `critic`."""
        raise NotImplementedError

    def __init__(self, cfg: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.multiplier: Multiplier | None = cfg.multiplier(self.spec.cost_limits)
        self.critic_steps = 0

    def lambdas(self) -> torch.Tensor:
        """(K,) current multipliers as a tensor on the training device (zeros without a multiplier)."""
        if self.multiplier is None:
            return torch.zeros(self.spec.num_costs, device=self.cfg.device)
        return torch.as_tensor(self.multiplier.value, dtype=torch.float32, device=self.cfg.device)

    def next_action(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """The action whose value the critics' targets bootstrap from, and the bonus added to its reward value."""
        raise NotImplementedError

    def policy_action(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """The current policy's action (differentiable in the actor) and the bonus added to its reward value."""
        raise NotImplementedError

    def actor_reward_q(self, q: torch.Tensor) -> torch.Tensor:
        """The reward value the actor ascends, from the (B, R + K) heads: the first head (DDPG, TD3)."""
        return q[:, 0]

    def critic_targets(self, sample: ReplaySample) -> torch.Tensor:
        """(B, R + K) regression targets: every reward head shares y_r (clipped double Q)."""
        cfg, agent, r = self.cfg, self.agent, self.reward_heads
        with torch.no_grad():
            action, bonus = self.next_action(sample.next_obs)
            q_next = agent.q(sample.next_obs, action, target=True)
            live = 1.0 - sample.terminated
            y_r = sample.rewards + cfg.gamma * live * (q_next[:, :r].min(dim=1).values + bonus)
            y_c = sample.costs + cfg.cost_gamma * live[:, None] * q_next[:, r:]
            return torch.cat([y_r[:, None].expand(-1, r), y_c], dim=1)

    def q_taken(self, sample: ReplaySample) -> torch.Tensor:
        """(B, R + K) the critics' values of the stored actions."""
        return self.agent.q(sample.obs, sample.actions)

    def actor_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The Lagrangian actor loss of the module docstring, with the critics frozen."""
        lam = self.lambdas()
        action, bonus = self.policy_action(obs)
        with frozen(self.agent.critic):
            q = self.agent.q(obs, action)
        objective = self.actor_reward_q(q) + bonus - (q[:, self.reward_heads:] * lam).sum(-1)
        return -objective.mean() / (1.0 + float(lam.sum())), {}

    def update_target_networks(self) -> None:
        polyak_update(self.agent.target_critic, self.agent.critic, self.cfg.polyak)
        if self.agent.target_actor is not None:
            polyak_update(self.agent.target_actor, self.agent.actor, self.cfg.polyak)

    def update_step(self, sample: ReplaySample) -> dict[str, float]:
        """One critic step; every `policy_delay` critic steps, one actor step and the targets' update."""
        targets = self.critic_targets(sample)
        q = self.q_taken(sample)
        loss_q = value_loss(q, targets)
        info = {"loss_q": finite_loss(loss_q, "critic"), "q_reward": float(q[:, 0].mean().detach())}
        self.updater.step(critic_loss=loss_q)
        self.critic_steps += 1
        if self.critic_steps % self.cfg.policy_delay == 0:
            info.update(self.update_actor(sample.obs))
            self.update_target_networks()
        return info

    def update_actor(self, obs: torch.Tensor) -> dict[str, float]:
        """One actor step on `actor_loss`; returns what to log."""
        loss_pi, info = loss_and_info(self.actor_loss(obs), self)
        value = finite_loss(loss_pi, "actor")
        self.updater.step(actor_loss=loss_pi)
        return {**info, "loss_pi": value}

    def end_epoch(self, mean_episode_costs: np.ndarray, updates: int) -> dict[str, float]:
        if self.multiplier is not None:
            self.multiplier.update(mean_episode_costs, self.cfg.multiplier_steps(updates))
        clipped = self.updater.end_epoch()
        return {"lr": self.updater.actor_lr, **clipped}

    def multipliers(self) -> dict[str, float]:
        if self.multiplier is None:
            return {}
        return dict(zip(self.spec.cost_names, self.multiplier.value.tolist()))

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "critic_steps": self.critic_steps}
        if self.multiplier is not None:
            state["multiplier"] = self.multiplier.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.critic_steps = int(state["critic_steps"])
        if self.multiplier is not None:
            self.multiplier.load_state_dict(state["multiplier"])
