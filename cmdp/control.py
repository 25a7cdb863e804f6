"""The control family: vectorised environments (`VecCMDP`) with an MLP actor-critic (with a convolutional encoder in
front for image observations, `ImageVectorFamily` and `cmdp.vision`).

Safety-Gymnasium and the exact CMDPs register their environments with a `VectorFamily`, giving the factory that
makes N copies and the dataclass of `env_kwargs` the factory accepts (checked before anything is built). The
family builds the agent the solver declared (value critics for the PPO family), observation normalisation and
reward/cost scaling, and the vectorised collector. With a `transform` in the config the solver trains on that
transformation of the environment (`cmdp.transforms`), which the run holds as `transform`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import gymnasium
import numpy as np
import torch

from cmdp.config import build_config
from cmdp.evaluation import evaluate
from cmdp.family import Critics, EnvFamily, FamilyRun, Schedule, SolverNeeds, Transitions
from cmdp.networks import ActorCritic, flat_obs_dim
from cmdp.normalize import ObsNormalizer, PartialObsNormalizer, ReturnScaler
from cmdp.rollout import RolloutBatch, VecCollector, VecStepper
from cmdp.spec import ConfigError
from cmdp.transforms import KINDS, TransformedVecCMDP, make_transform
from cmdp.vec_env import VecCMDP
from cmdp.vision import ImageLayout
from cmdp.wording import mean_std_text


class VectorFamily(EnvFamily):
    """Environments made by `factory(num_envs=N, **env_kwargs) -> VecCMDP`.

    `env_kwargs` is a dataclass whose fields are the keys the factory accepts (None: it accepts none); a user's
    `env_kwargs` is checked against it (unknown keys, wrong types) when the config is resolved. `cost_names`, when
    given, lets `cost_limits` be checked then too. `video_env`, when given, makes one copy of the environment that
    also renders its frames, `video_env(env_kwargs)` -> a `cmdp.video.FrameEnv` (`cmdp eval --video`).
    `defaults`: config keys this family sets between an algorithm's defaults and the user's config (keys an
    algorithm lacks are skipped), e.g. Safety-Gymnasium's OmniSafe cost window. `copies_in_process`: the factory
    steps its N copies in the calling process (numpy rows, as the exact CMDPs do), so a run keeps one CPU busy
    whatever N (`cpus`); false: one subprocess per copy when N > 1, as Safety-Gymnasium's.
    """

    schedules = frozenset({Schedule.ON_POLICY, Schedule.OFF_POLICY})
    critics = frozenset({Critics.VALUE, Critics.ACTION_VALUE, Critics.NONE})
    transforms = KINDS

    def __init__(self, factory: Callable[..., VecCMDP], env_kwargs: type | None = None,
                 cost_names: Sequence[str] | None = None,
                 video_env: Callable[[dict[str, Any]], Any] | None = None,
                 defaults: Mapping[str, Any] | None = None, copies_in_process: bool = False) -> None:
        self.factory = factory
        self.copies_in_process = copies_in_process
        self.env_kwargs = env_kwargs
        self._cost_names = list(cost_names) if cost_names is not None else None
        self.video_env = video_env
        self.defaults = dict(defaults or {})

    def config_defaults(self) -> dict[str, Any]:
        return dict(self.defaults)

    def cost_names(self, cfg: Any) -> list[str] | None:
        return self._cost_names

    def validate(self, cfg: Any) -> None:
        if self.env_kwargs is None:
            super().validate(cfg)
            return
        build_config(self.env_kwargs, cfg.env_kwargs, source="env_kwargs", owner=f"environment '{cfg.env}'",
                     key_prefix="env_kwargs.")

    def cpus(self, cfg: Any) -> int:
        return 1 if self.copies_in_process else max(1, cfg.num_envs)  # else one subprocess per copy

    def build(self, cfg: Any, needs: SolverNeeds, training: bool = True) -> "ControlRun":
        return ControlRun(cfg, self.factory, needs)


class ImageVectorFamily(VectorFamily):
    """A `VectorFamily` whose observations include an image (`cmdp.vision`: a Dict space, flattened by the
    environment). On-policy solvers only: the off-policy agents are MLPs over vector observations. No Saute, nor
    Simmer (a Saute whose budget moves): they append the budget to a flat vector observation, which would put it
    behind the image's pixels."""

    schedules = frozenset({Schedule.ON_POLICY})
    critics = frozenset({Critics.VALUE, Critics.NONE})
    transforms = KINDS - {"saute", "simmer"}
    transforms_missing_because = ("Saute and Simmer append the budget to a flat vector observation, and this one "
                                  "holds an image")


class ControlRun(FamilyRun):
    """A vectorised environment, the MLP actor-critic, normalisers and the vectorised collector.

    `env` is the environment itself; `transform` the transformation of it the solver trains on (None: none), and
    `train_env` whichever of the two the collector steps.
    """

    def __init__(self, cfg: Any, factory: Callable[..., VecCMDP], needs: SolverNeeds) -> None:
        self.device = torch.device(cfg.device)
        self.env = factory(num_envs=cfg.num_envs, **cfg.env_kwargs)
        self.transform: TransformedVecCMDP | None = None
        try:
            self.spec = self.env.spec.with_limits(cfg.cost_limits)
            if cfg.transform:  # wrapped after the limits are applied: Saute's budget and the early cut use them
                self.transform = make_transform(cfg.transform, self.env, self.spec)
                self.spec = self.transform.spec
            self.train_env: VecCMDP = self.env if self.transform is None else self.transform
            torch.manual_seed(cfg.seed)
            self.stepper: VecStepper | None = None
            if needs.make_agent is not None:  # a solver with its own networks (off-policy): no collector state
                # its actors squash their actions into the bounds themselves (`BoxScale`): clipping is a no-op
                self.action_bounds = "clip"
                self.agent = needs.make_agent(self.spec, cfg).to(self.device)
                self.stepper = VecStepper(self.train_env, self.agent, self.device)
                self.obs_normalizer = self.reward_scaler = self.cost_scaler = None
                return
            self.action_bounds = cfg.action_bounds
            self.agent = ActorCritic(self.spec.observation_space, self.spec.action_space, self.spec.num_costs,
                                     cfg.actor_hidden, cfg.critic_hidden, cfg.activation, cfg.init_log_std,
                                     with_critic=needs.critics is not Critics.NONE,
                                     init=cfg.network_init).to(self.device)
            # one-hot encodings of Discrete observations need no normalising; of an image observation only the
            # vector sensors are normalised (the encoder scales the pixels)
            space = self.spec.observation_space
            layout = ImageLayout.of(space)
            self.obs_normalizer: ObsNormalizer | None = None
            if cfg.obs_normalize and isinstance(space, gymnasium.spaces.Box):
                self.obs_normalizer = ObsNormalizer((flat_obs_dim(space),), cfg.obs_clip)
            elif cfg.obs_normalize and layout is not None and layout.vector_dim:
                self.obs_normalizer = PartialObsNormalizer(layout.vector_dim, cfg.obs_clip)
            k = self.spec.num_costs
            self.reward_scaler = ReturnScaler(cfg.num_envs, 1, cfg.gamma) if cfg.reward_normalize else None
            self.cost_scaler = ReturnScaler(cfg.num_envs, k, cfg.cost_gamma) if cfg.cost_normalize else None
            self.collector = VecCollector(self.train_env, self.agent, np.array([cfg.gamma] + [cfg.cost_gamma] * k),
                                          np.array([cfg.lam] + [cfg.cost_lam] * k), self.obs_normalizer,
                                          self.reward_scaler, self.cost_scaler, self.device,
                                          old_distribution=needs.old_distribution, action_bounds=cfg.action_bounds)
        except Exception:
            (self.env if self.transform is None else self.transform).close()  # the transformation closes the env
            raise

    def collect(self, cfg: Any, rng: np.random.Generator, reset_seed: int,
                progress: Callable[[int], None] | None) -> RolloutBatch:
        if self.stepper is not None:
            raise ConfigError("this run's solver is off-policy: it collects transitions, not epochs")
        if self.transform is not None:
            self.transform.start_epoch()
        batch = self.collector.collect(cfg.steps_per_epoch // cfg.num_envs, rng, reset_seed, progress=progress)
        if self.transform is not None:
            self.transform.observe(batch.episodes)
            batch.info.update(self.transform.metrics())
        return batch

    def start_steps(self, cfg: Any, reset_seed: int) -> None:
        if self.transform is not None:
            self.transform.start_epoch()
        self._stepper().start(reset_seed)

    def steps(self, cfg: Any, num_steps: int, rng: np.random.Generator, random_actions: bool,
              last: bool) -> Transitions:
        chunk = self._stepper().steps(num_steps, rng, random_actions, last)
        if self.transform is not None:
            self.transform.observe(chunk.episodes)
        return chunk

    def _stepper(self) -> VecStepper:
        if self.stepper is None:
            raise ConfigError("this run's solver is not off-policy: it collects epochs, not transitions")
        return self.stepper

    def evaluate(self, episodes: int, seed: int, deterministic: bool) -> dict[str, Any]:
        # a transformation's policy is measured on the CMDP it observes; its episodes count the original reward
        env = self.env if self.transform is None or self.transform.evaluate_on_inner else self.transform
        result = evaluate(env, self.agent, self.obs_normalizer, episodes, seed, deterministic,
                          action_bounds=self.action_bounds).describe()
        result["cost_limits"] = dict(zip(self.spec.cost_names, self.spec.cost_limits.tolist()))
        return result

    def format_evaluation(self, result: dict[str, Any]) -> str:
        n = result["episodes"]
        lines = [f"return  {mean_std_text(result['return_mean'], result['return_std'], n)}"
                 + ("   (mean ± std over the episodes)" if n > 1 else "")]
        for name in self.spec.cost_names:
            lines.append(f"cost    {mean_std_text(result[f'cost_mean/{name}'], result[f'cost_std/{name}'], n)}"
                         f"  (limit {result['cost_limits'][name]:g})  [{name}]")
        lines.append(f"length  {result['len_mean']:.1f}")
        return "\n".join(lines)

    def notes(self, cfg: Any) -> list[str]:
        """An epoch shorter than an episode: every epoch starts new episodes (the collectors reset the copies), so an
        episode whose time limit is longer than an epoch's steps per copy never finishes: only episodes that end
        sooner (a fall, a terminal state) are measured, which biases the return and the cost, or none are."""
        per_copy, limit = cfg.steps_per_epoch // cfg.num_envs, self.spec.max_episode_steps
        if limit is None or per_copy >= limit:
            return []
        return [f"an epoch gives each environment copy {per_copy} steps (steps_per_epoch / num_envs), fewer than an "
                f"episode's {limit}: every epoch starts new episodes, so only episodes that end sooner are measured, "
                f"and the multipliers see only their costs (or none); set steps_per_epoch to at least "
                f"{limit * cfg.num_envs}"]

    def state_dict(self) -> dict[str, Any]:
        return {"obs_normalizer": self.obs_normalizer.state_dict() if self.obs_normalizer else None,
                "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
                "cost_scaler": self.cost_scaler.state_dict() if self.cost_scaler else None,
                "transform": self.transform.state_dict() if self.transform is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for part, saved in ((self.obs_normalizer, state["obs_normalizer"]),
                            (self.reward_scaler, state["reward_scaler"]), (self.cost_scaler, state["cost_scaler"])):
            if part is not None:
                part.load_state_dict(saved)
        if self.transform is not None:
            self.transform.load_state_dict(state["transform"])

    def close(self) -> None:
        self.train_env.close()
