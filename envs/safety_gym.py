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
from cmdp.vec_env import CMDPEnv, SubprocVecCMDP, SyncVecCMDP, VecCMDP
from cmdp.envs.safety_gym_compat import import_patched

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


#: Backends of the navigation tasks (`env_kwargs.backend`).
BACKENDS = ("fast", "upstream")


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"env_kwargs.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


@dataclass
class SafetyGymKwargs:
    """The `env_kwargs` a Safety-Gymnasium task accepts: those of `safety_gymnasium.make` (its Builder), and `backend`.

    `backend` (navigation tasks): `fast` (the default) is `cmdp.envs.sg_fast`: upstream's own task objects with
    the compiled model reused at reset and vectorised observations and costs, equal to upstream step by step
    (tests/test_safety_gym_fast.py); `upstream` is safety-gymnasium as it is. `render_mode` works with both: the
    fast backend renders through upstream's `Builder.render` on its reused model. Velocity tasks have one backend,
    upstream's gymnasium MuJoCo environment; `fast` is accepted there and means the same.
    """

    config: dict | None = None  # task configuration overrides, e.g. {agent_name: Point}
    render_mode: str | None = None  # 'rgb_array', 'depth_array' or 'human'
    width: int = 256  # rendered frame size
    height: int = 256
    camera_id: int | None = None
    camera_name: str | None = None
    backend: str = "fast"  # navigation tasks: 'fast' or 'upstream' (see above)

    def validate(self) -> None:
        check_backend(self.backend)
        if self.render_mode not in (None, "rgb_array", "depth_array", "human"):
            raise ConfigError(f"env_kwargs.render_mode must be rgb_array, depth_array or human, got {self.render_mode!r}")
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"env_kwargs.width and height must be >= 1, got {self.width} x {self.height}")


def make_safety_gym(name: str, num_envs: int = 1, **env_kwargs: Any) -> VecCMDP:
    """N copies of a Safety-Gymnasium task: in this process for N = 1, one subprocess each for N > 1.

    Navigation tasks run on `env_kwargs['backend']` (default `fast`, see `SafetyGymKwargs`)."""
    backend = env_kwargs.pop("backend", "fast")
    check_backend(backend)
    env_class = fast_navigation_env if backend == "fast" and "Velocity" not in name else SafetyGymEnv
    fns = [functools.partial(env_class, name, env_kwargs) for _ in range(num_envs)]
    return SyncVecCMDP(fns) if num_envs == 1 else SubprocVecCMDP(fns)


def fast_navigation_env(name: str, env_kwargs: dict[str, Any] | None = None) -> CMDPEnv:
    """A navigation task on the fast backend (`cmdp.envs.sg_fast.FastSafetyGymEnv`)."""
    import_safety_gymnasium()  # first: the backend imports safety_gymnasium's modules as it loads
    from cmdp.envs.sg_fast import FastSafetyGymEnv

    return FastSafetyGymEnv(name, env_kwargs, DEFAULT_COST_LIMIT)


def task_names() -> list[str]:
    """The single-agent Safety-Gymnasium tasks cmdp-lab registers."""
    nav = [f"Safety{a}{t}{lvl}-v0" for t in NAV_TASKS for a in NAV_AGENTS for lvl in range(3)]
    vel = [f"Safety{a}Velocity-v1" for a in VELOCITY_AGENTS]
    return nav + vel


for _name in task_names():
    register_env(_name, VectorFamily(functools.partial(make_safety_gym, _name), SafetyGymKwargs, ["cost"]),
                 group="safety-gymnasium", description="velocity" if "Velocity" in _name else "navigation")
