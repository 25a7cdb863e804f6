"""The interface of an environment family: the one object the trainer, `cmdp eval` and the benchmark runner
talk to, whatever the environments are (vectorised control tasks, text generation, ...).

A family turns a resolved config into a `FamilyRun`, which holds the spec, the agent (policy and critics) and
whatever the family needs to collect experience with it. The trainer asks the run for batches in the shape the
solver's schedule needs, and never asks which family it holds. Families today: `cmdp.control.VectorFamily`
(Safety-Gymnasium, the exact CMDPs) and `cmdp.envs.text_registration.TextFamily` (Safe RLHF). Writing a new one:
docs/adding-an-environment.md.

A family is registered with each of its environments: `register_env(name, family, group, description)`.
"""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from cmdp.optim import TorchUpdater, Updater
from cmdp.rollout import RolloutBatch
from cmdp.spec import CMDPSpec, ConfigError


class Schedule(str, enum.Enum):
    """How a solver trains; a solver declares one (`Solver.schedule`) and the trainer runs it."""

    ON_POLICY = "on-policy"  # collect an epoch with the current policy, update on it, discard it
    OFF_POLICY = "off-policy"  # collect a few steps into a replay buffer, update several times from samples
    GROUP = "group"  # several responses per prompt (episodes per start), advantages from the group's baseline


class Critics(str, enum.Enum):
    """Which critics a solver needs the family to build (`Solver.critics`)."""

    VALUE = "value"  # V(s) for the reward and for each cost
    ACTION_VALUE = "action-value"  # Q(s, a) for the reward and for each cost (off-policy solvers)
    NONE = "none"  # critic-free (group baselines)


@dataclass(frozen=True)
class SolverNeeds:
    """What a solver class declared, as the family sees it when it builds a run."""

    schedule: Schedule
    critics: Critics
    old_distribution: bool  # the batch carries the behaviour policy's distribution (`RolloutBatch.old_dist`)
    trust_region: bool  # the solver steps the actor's parameters itself (second-order, no partitioned optimiser)
    # the solver's own networks, `make_agent(spec, cfg)` (off-policy solvers); None: the family builds its agent
    make_agent: Callable[[CMDPSpec, Any], torch.nn.Module] | None = None

    @staticmethod
    def of(solver_cls: type) -> "SolverNeeds":
        return SolverNeeds(solver_cls.schedule, solver_cls.critics, solver_cls.needs_old_distribution,
                           solver_cls.trust_region, solver_cls.make_agent)


@dataclass
class Transitions:
    """Steps collected for a replay buffer (off-policy schedules): T steps of N copies, flattened to B = T * N.

    `next_obs` is the observation after the action (the true last observation when the episode ended there);
    `terminated` rows are not bootstrapped, `truncated` rows (time limits, epoch ends) are.
    """

    obs: torch.Tensor  # (B, obs_dim)
    actions: torch.Tensor  # (B, act_dim) or (B,)
    rewards: torch.Tensor  # (B,)
    costs: torch.Tensor  # (B, K)
    next_obs: torch.Tensor  # (B, obs_dim)
    terminated: torch.Tensor  # (B,) bool
    truncated: torch.Tensor  # (B,) bool
    episodes: Any  # EpisodeStats of the episodes that finished among these steps


class FamilyRun(ABC):
    """One run's environment side: spec, agent, collection, evaluation, saved state.

    Subclasses set `spec` (limits applied) and `agent` (a module with `.actor` and `.critic`, None for a
    critic-free agent) in their constructor.
    """

    spec: CMDPSpec
    agent: torch.nn.Module
    #: whether this process writes the run folder (one of several data-parallel processes does)
    is_main: bool = True
    #: what `evaluate`'s `episodes` counts, as `cmdp eval` names it (a text run answers prompts)
    evaluation_unit: str = "episodes"

    def make_updater(self, cfg: Any, num_epochs: int) -> Updater:
        """The object that turns the solver's losses into parameter updates (default: Adam, see cmdp.optim)."""
        return TorchUpdater(self.agent.actor, self.agent.critic, cfg, num_epochs)

    @abstractmethod
    def collect(self, cfg: Any, rng: np.random.Generator, reset_seed: int,
                progress: Callable[[int], None] | None) -> RolloutBatch:
        """One epoch of experience with the current policy (on-policy and group schedules)."""

    def start_steps(self, cfg: Any, reset_seed: int) -> None:
        """Off-policy schedules: reset the environments at an epoch's start."""
        raise ConfigError(f"{type(self).__name__} cannot collect transitions for an off-policy solver")

    def steps(self, cfg: Any, num_steps: int, rng: np.random.Generator, random_actions: bool,
              last: bool) -> Transitions:
        """Off-policy schedules: `num_steps` steps of every copy with the current policy (or uniformly random
        actions while warming up); `last` marks the epoch's final call, whose running episodes are cut."""
        raise ConfigError(f"{type(self).__name__} cannot collect transitions for an off-policy solver")

    @abstractmethod
    def evaluate(self, episodes: int, seed: int, deterministic: bool) -> dict[str, Any]:
        """Measure the current policy on fresh episodes (or prompts); a JSON-able dict."""

    @abstractmethod
    def format_evaluation(self, result: dict[str, Any]) -> str:
        """`evaluate`'s result as the lines `cmdp eval` prints."""

    def notes(self, cfg: Any) -> list[str]:
        """What a user should know before the run trains on this environment at config `cfg` (`cmdp train` prints
        them at the start): a setting that will make the run measure little or nothing. None by default."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """What the run learns besides the agent's weights (e.g. observation normalisers), for checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        """Release environments (subprocesses, simulators) and models."""


class EnvFamily(ABC):
    """How runs of one kind of environment are built. Instances are registered with their environments."""

    #: schedules this family can collect for
    schedules: frozenset[Schedule] = frozenset({Schedule.ON_POLICY})
    #: critic kinds this family can build
    critics: frozenset[Critics] = frozenset({Critics.VALUE})
    #: transformations of the CMDP (config key `transform`, cmdp.transforms) this family can train on
    transforms: frozenset[str] = frozenset()
    #: why the kinds of transformation missing from `transforms` are, where a reason helps the user (their refusal)
    transforms_missing_because: str = ""
    #: the costs are scores that may be negative, and so may their limits (`cmdp.spec.CostSpec.signed`)
    signed_costs: bool = False

    def config_defaults(self) -> dict[str, Any]:
        """Keys between an algorithm's defaults and the user's config for this family (unknown keys skipped)."""
        return {}

    def validate(self, cfg: Any) -> None:
        """Check the family's part of a resolved config (env_kwargs above all) without loading anything."""
        if cfg.env_kwargs:
            raise ConfigError(f"env_kwargs: environment '{cfg.env}' takes none, got {sorted(cfg.env_kwargs)}")

    def cost_names(self, cfg: Any) -> list[str] | None:
        """The environment's cost names if known without building it (so `cost_limits` is checked at config
        time, a benchmark's --dry-run included); None: only the limits' shape and values are checked then."""
        return None

    def check_solver(self, cfg: Any, needs: SolverNeeds) -> None:
        """Refuse, before anything is built, a solver whose schedule or critics this family cannot provide; then an
        off-policy run whose warm-up is not shorter than its budget (`OffPolicyConfig.check_warm_up_fits`)."""
        if needs.schedule not in self.schedules:
            raise ConfigError(f"algorithm '{cfg.algo}' trains {needs.schedule.value}, which environment "
                              f"'{cfg.env}' does not support (it supports: "
                              f"{', '.join(s.value for s in sorted(self.schedules))})")
        if needs.critics not in self.critics:
            raise ConfigError(f"algorithm '{cfg.algo}' needs {needs.critics.value} critics, which environment "
                              f"'{cfg.env}' does not build")
        if needs.schedule is Schedule.OFF_POLICY:  # a budget the warm-up fills (`OffPolicyConfig`), said last
            cfg.check_warm_up_fits()

    def cpus(self, cfg: Any) -> int:
        """CPU processes a run of this config keeps busy (benchmark planning)."""
        return 1

    @abstractmethod
    def build(self, cfg: Any, needs: SolverNeeds, training: bool = True) -> FamilyRun:
        """Everything a run needs. `training=False`: only to evaluate a saved policy (no distributed setup)."""
