"""Safety-Gymnasium adapter: its single-agent navigation and velocity tasks as `VecCMDP`s.

Two problems of safety-gymnasium 1.0.0 (the newest release) on Python 3.11, and what we do:

1. Its metadata pins pygame==2.1.0, which has no Python 3.11 wheel and does not build. Nothing in
   safety_gymnasium imports pygame, so `install.sh` installs it with `--no-deps` and cmdp-lab's own
   `[safety-gym]` extra lists its real run-time requirements (gymnasium 0.28.1, gymnasium-robotics
   1.2.2, mujoco 2.3.3, xmltodict, imageio, pyyaml).
2. Its asset dataclasses use numpy arrays as field defaults (e.g. `color: np.array = COLOR['goal']`).
   Python 3.11's dataclasses reject any unhashable default, so `import safety_gymnasium` raises
   ValueError. `import_safety_gymnasium` imports it while `dataclasses.dataclass` turns such
   defaults into `field(default_factory=...)` returning a copy of the array; the patch is undone
   straight after the import and touches no other module (`envs/safety_gym_compat.py`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from cmdp.control import VectorFamily
from cmdp.registry import register_env
from cmdp.spec import CMDPSpec, ConfigError, CostSpec
from cmdp.vec_env import SubprocVecCMDP, SyncVecCMDP, VecCMDP
from envs.safety_gym_compat import import_patched

#: OmniSafe's default cost limit for Safety-Gymnasium tasks (its on-policy configs, cost_limit: 25).
DEFAULT_COST_LIMIT = 25.0

NAV_AGENTS = ("Point", "Car", "Doggo", "Racecar", "Ant")
NAV_TASKS = ("Goal", "Button", "Push", "Circle")
VELOCITY_AGENTS = ("Hopper", "Ant", "HalfCheetah", "Walker2d", "Swimmer", "Humanoid")


def import_safety_gymnasium() -> Any:
    """Import safety_gymnasium on any supported Python, or fail with install instructions."""
    try:
        return import_patched()
    except ImportError as exc:
        raise ConfigError(
            f"safety-gymnasium is not importable ({exc}). Install it with ./install.sh, or by hand: "
            "pip install --no-deps safety-gymnasium==1.0.0 && pip install 'cmdp-lab[safety-gym]'") from exc


class SafetyGymEnv:
    """One Safety-Gymnasium environment behind the `CMDPEnv` protocol (one cost named 'cost')."""

    def __init__(self, name: str, env_kwargs: dict[str, Any] | None = None) -> None:
        sg = import_safety_gymnasium()
        self.env = sg.make(name, **(env_kwargs or {}))
        max_steps = getattr(self.env.spec, "max_episode_steps", None)
        self.spec = CMDPSpec(self.env.observation_space, self.env.action_space,
                             (CostSpec("cost", DEFAULT_COST_LIMIT),), max_steps)
        self._costs = np.zeros(1)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        return obs

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool, bool]:
        obs, reward, cost, terminated, truncated, _ = self.env.step(action)
        return obs, float(reward), np.array([float(cost)]), bool(terminated), bool(truncated)

    def close(self) -> None:
        self.env.close()


@dataclass
class SafetyGymKwargs:
    """The `env_kwargs` a Safety-Gymnasium task accepts: those of `safety_gymnasium.make` (its Builder)."""

    config: dict | None = None  # task configuration overrides, e.g. {agent_name: Point}
    render_mode: str | None = None  # 'rgb_array', 'depth_array' or 'human'
    width: int = 256  # rendered frame size
    height: int = 256
    camera_id: int | None = None
    camera_name: str | None = None

    def validate(self) -> None:
        if self.render_mode not in (None, "rgb_array", "depth_array", "human"):
            raise ConfigError(f"env_kwargs.render_mode must be rgb_array, depth_array or human, got {self.render_mode!r}")
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"env_kwargs.width and height must be >= 1, got {self.width} x {self.height}")


def make_safety_gym(name: str, num_envs: int = 1, **env_kwargs: Any) -> VecCMDP:
    """N copies of a Safety-Gymnasium task: in this process for N = 1, one subprocess each for N > 1."""
    fns = [functools.partial(SafetyGymEnv, name, env_kwargs) for _ in range(num_envs)]
    return SyncVecCMDP(fns) if num_envs == 1 else SubprocVecCMDP(fns)


def task_names() -> list[str]:
    """The single-agent Safety-Gymnasium tasks cmdp-lab registers."""
    nav = [f"Safety{a}{t}{lvl}-v0" for t in NAV_TASKS for a in NAV_AGENTS for lvl in range(3)]
    vel = [f"Safety{a}Velocity-v1" for a in VELOCITY_AGENTS]
    return nav + vel


for _name in task_names():
    register_env(_name, VectorFamily(functools.partial(make_safety_gym, _name), SafetyGymKwargs, ["cost"]),
                 group="safety-gymnasium", description="velocity" if "Velocity" in _name else "navigation")
