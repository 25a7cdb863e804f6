"""The fast backend's environment: upstream's Builder around the fast task class, behind the CMDPEnv protocol."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
from gymnasium.envs.registration import spec as registered_spec
from safety_gymnasium import tasks
from safety_gymnasium.bases.base_task import BaseTask
from safety_gymnasium.builder import Builder
from safety_gymnasium.utils.task_utils import get_task_class_name

from cmdp.envs.safety_gym import DEFAULT_COST_LIMIT, free_viewer, task_config_refusals
from cmdp.envs.sg_fast.task import fast_task_class
from cmdp.spec import CMDPSpec, CostSpec


class FastBuilder(Builder):
    """Upstream's `Builder` (reset, step, rewards, costs' indicator, render) building the fast task class."""

    def _get_task(self) -> BaseTask:
        class_name = get_task_class_name(self.task_id)
        assert hasattr(tasks, class_name), f"Task={class_name} not implemented."
        task = fast_task_class(getattr(tasks, class_name))(config=self.config)
        task.build_observation_space()
        return task


class FastSafetyGymEnv:
    """One Safety-Gymnasium navigation task on the fast backend (one cost named 'cost').

    It does what `safety_gymnasium.make(name, **env_kwargs)` followed by `SafetyGymEnv` does: the registered
    task configuration updated by `env_kwargs` (as `make` updates it), and the time limit of `make`'s
    `SafeTimeLimit` wrapper: the registered `max_episode_steps`, or `max_episode_steps` when given (as
    `make(name, max_episode_steps=...)`). Rendering is upstream's `Builder.render`, on the reused model:
    `render_mode` in `env_kwargs`, then `env.builder.render()`.
    """

    def __init__(self, name: str, env_kwargs: dict[str, Any] | None = None, cost_limit: float = DEFAULT_COST_LIMIT,
                 max_episode_steps: int | None = None) -> None:
        registered = registered_spec(name)
        kwargs = copy.deepcopy(registered.kwargs)
        kwargs.update(env_kwargs or {})
        with task_config_refusals(name, env_kwargs):
            self.builder = FastBuilder(**kwargs)
        self.max_episode_steps = max_episode_steps if max_episode_steps is not None else registered.max_episode_steps
        self.spec = CMDPSpec(self.builder.observation_space, self.builder.action_space,
                             (CostSpec("cost", cost_limit),), self.max_episode_steps)
        self._elapsed = 0

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.builder.reset(seed=seed)
        self._elapsed = 0
        return obs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool, bool]:
        obs, reward, cost, terminated, truncated, _ = self.builder.step(action)
        self._elapsed += 1
        if self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps:
            truncated = True  # SafeTimeLimit
        return obs, float(reward), np.array([float(cost)]), bool(terminated), bool(truncated)

    def render(self) -> np.ndarray:
        """The current frame: upstream's `Builder.render` on the reused model (made with render_mode 'rgb_array',
        as `make_video_env` does)."""
        return self.builder.render()

    def close(self) -> None:
        self.builder.close()
        free_viewer(self.builder.task)
