"""Safety-Gymnasium adapter: its single-agent tasks as `VecCMDP`s.

The tasks, by the group `cmdp list` shows them in (`task_groups`); every single-agent task safety-gymnasium 1.0.0
registers, except its `Debug` variants (keyboard control of the agent in a window, for humans, not for training)
and its `...Gymnasium-v*` aliases (the same tasks behind gymnasium's API, cost in `info`):

- navigation: `Safety{Point,Car,Doggo,Racecar,Ant}{Goal,Button,Push,Circle}{0,1,2}-v0` (fast backend by default);
- velocity: `Safety{Hopper,Ant,HalfCheetah,Walker2d,Swimmer,Humanoid}Velocity-v1`, and their older `-v0` (the fast
  backend, `envs/velocity_fast.py`, by default for Hopper, Walker2d, HalfCheetah and Swimmer);
- run-race-fading: `Safety{agent}Run0-v0`, `Safety{agent}{Race,FadingEasy,FadingHard}{0,1,2}-v0` (upstream only:
  the fast backend is built and tested for Goal, Button, Push and Circle). The Race tasks need the floor texture
  `village_floor.PNG`, which the safety-gymnasium 1.0.0 wheel does not contain (it ships none of the upper-case
  `.PNG` textures its `configs/assets.yaml` names): they are refused in one line until safety-gymnasium is
  installed from its source;
- navigation vision and run-race-fading vision: the `...Vision-v0` variant of each of those tasks (upstream only),
  whose observation adds the agent camera's image (`SafetyGymImageEnv`, `cmdp.vision`). They render offscreen:
  `envs/offscreen.py` chooses MuJoCo's GL backend on a machine without a display (EGL or OSMesa).

safety-gymnasium 1.0.0 registers no BuildingGoal, BuildingButton, BuildingPush or FormulaOne task (they came in
later versions), so there are none here.

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

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from cmdp.config import check_choice
from cmdp.control import ImageVectorFamily, VectorFamily
from cmdp.registry import register_env
from cmdp.spec import CMDPSpec, ConfigError, CostSpec
from cmdp.vec_env import CMDPEnv, SubprocVecCMDP, SyncVecCMDP, VecCMDP
from cmdp.vision import MIN_IMAGE_SIDE, ImageLayout
from cmdp.envs.offscreen import check_offscreen_rendering, configure_gl, has_display
from cmdp.envs.safety_gym_compat import import_patched

if TYPE_CHECKING:
    from cmdp.envs.sg_fast import FastSafetyGymEnv

#: OmniSafe's default cost limit for Safety-Gymnasium tasks (its on-policy configs, cost_limit: 25).
DEFAULT_COST_LIMIT = 25.0

NAV_AGENTS = ("Point", "Car", "Doggo", "Racecar", "Ant")
NAV_TASKS = ("Goal", "Button", "Push", "Circle")
VELOCITY_AGENTS = ("Hopper", "Ant", "HalfCheetah", "Walker2d", "Swimmer", "Humanoid")
#: the velocity agents the fast backend covers (`envs/velocity_fast.py`): the planar ones (module docstring there)
PLANAR_AGENTS = ("Hopper", "Walker2d", "HalfCheetah", "Swimmer")
#: the single-agent tasks besides navigation and velocity, each for every navigation agent
OTHER_TASKS = ("Run0",) + tuple(f"{task}{level}" for task in ("Race", "FadingEasy", "FadingHard") for level in range(3))
#: the side of the vision tasks' square camera image unless `env_kwargs.vision_size` says otherwise (see
#: `VisionTaskKwargs` for why it is not upstream's 256)
DEFAULT_VISION_SIZE = 64
#: upstream's task configuration key of the camera image's (width, height), which `vision_size` sets
VISION_SIZE_KEY = "vision_env_conf.vision_size"


def import_safety_gymnasium() -> Any:
    """Import safety_gymnasium on any supported Python, or fail with install instructions.

    First sets MuJoCo's GL backend for offscreen rendering when the user has not and there is no display
    (`cmdp.envs.offscreen.configure_gl`)."""
    configure_gl()
    try:
        return import_patched()
    except ImportError as exc:
        raise ConfigError(
            f"safety-gymnasium is not importable ({exc}). Install it with ./install.sh, or by hand: "
            "pip install --no-deps safety-gymnasium==1.0.0 && pip install 'cmdp-lab[safety-gym]'") from exc


@contextlib.contextmanager
def task_config_refusals(name: str, env_kwargs: dict[str, Any] | None) -> Iterator[None]:
    """Around making task `name` with `env_kwargs`: safety-gymnasium refuses a task configuration it cannot take
    (`env_kwargs.config`) with a bare AssertionError from inside the task ("Bad key foo", "agent not found"), which
    is one line here instead. Without a `config` such an AssertionError is left alone: it would be no user's doing."""
    try:
        yield
    except AssertionError as exc:
        if not (env_kwargs or {}).get("config"):
            raise
        raise ConfigError(f"env_kwargs.config: {name} refuses its task configuration ({exc}); its keys are the task's "
                          f"settings, e.g. agent_name, placements_conf.extents, floor_conf.type") from None


class SafetyGymEnv:
    """One Safety-Gymnasium environment behind the `CMDPEnv` protocol (one cost named 'cost')."""

    def __init__(self, name: str, env_kwargs: dict[str, Any] | None = None) -> None:
        sg = import_safety_gymnasium()
        with task_config_refusals(name, env_kwargs):
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

    def render(self) -> np.ndarray:
        """The current frame, (H, W, 3) uint8; the environment must have been made with render_mode 'rgb_array'
        (`make_video_env` does)."""
        return self.env.render()

    def close(self) -> None:
        from safety_gymnasium.builder import Builder  # imported by now: __init__ made the environment

        self.env.close()
        if isinstance(self.env.unwrapped, Builder):
            free_viewer(self.env.unwrapped.task)


def free_viewer(task: Any) -> None:
    """Free the OpenGL context of a navigation task's offscreen viewer now. Upstream's Builder has no `close` that
    does it, and a context left to the garbage collector at interpreter exit, after EGL's module is gone, prints
    an ignored-exception traceback (the context's `free` is idempotent)."""
    if task.viewer is not None:
        task.viewer.free()


class SafetyGymImageEnv(SafetyGymEnv):
    """A vision task on upstream safety-gymnasium: its Dict observation (vector sensors, and 'vision', the agent
    camera's (H, W, 3) uint8 image) flattened by `cmdp.vision.ImageLayout`; the spec keeps the Dict space.

    The image is `vision_size` pixels square (an env_kwarg, default DEFAULT_VISION_SIZE). `config` (an env_kwarg)
    updates the task's registered configuration here instead of replacing it as `safety_gymnasium.make` does: the
    registered one is what makes the task a vision task (observe_vision, no flattening) and names its agent.
    """

    def __init__(self, name: str, env_kwargs: dict[str, Any] | None = None) -> None:
        import gymnasium

        import_safety_gymnasium()  # registers the task ids gymnasium.spec looks up (in a subprocess too)
        kwargs = dict(env_kwargs or {})
        size = int(kwargs.pop("vision_size", DEFAULT_VISION_SIZE))
        config = {**(gymnasium.spec(name).kwargs.get("config") or {}), **(kwargs.pop("config", None) or {}),
                  VISION_SIZE_KEY: (size, size)}
        super().__init__(name, {**kwargs, "config": config})
        layout = ImageLayout.of(self.spec.observation_space)
        if layout is None:
            raise ConfigError(f"{name}: its observation has no camera image ({self.spec.observation_space}); "
                              "did env_kwargs.config turn observe_vision off?")
        self.layout = layout
        self.image = np.zeros(layout.image_shape, dtype=np.uint8)

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self._flatten(super().reset(seed))

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool, bool]:
        obs, reward, costs, terminated, truncated = super().step(action)
        return self._flatten(obs), reward, costs, terminated, truncated

    def _flatten(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self.image = obs[self.layout.image_key]
        return self.layout.flatten(obs)

    def render(self) -> np.ndarray:
        """The camera image of the latest observation (upstream renders a vision task only as its observation)."""
        return self.image


#: Backends of the navigation tasks (`env_kwargs.backend`).
BACKENDS = ("fast", "upstream")


def check_backend(backend: str) -> None:
    check_choice("env_kwargs.backend", backend, BACKENDS)


@dataclass
class VelocityTaskKwargs:
    """The `env_kwargs` a velocity task accepts: the rendering keys of gymnasium's MuJoCo environments and
    `backend` (see `SafetyGymKwargs`). No `config`: a velocity task is a gymnasium MuJoCo robot, not a Builder task,
    and its constructor would refuse one with a traceback."""

    render_mode: str | None = None  # 'rgb_array', 'depth_array' or 'human'
    width: int = 256  # rendered frame size
    height: int = 256
    camera_id: int | None = None
    camera_name: str | None = None
    backend: str = "fast"  # navigation and planar velocity tasks: 'fast' or 'upstream' (see SafetyGymKwargs)

    def validate(self) -> None:
        check_backend(self.backend)
        if self.render_mode not in (None, "rgb_array", "depth_array", "human"):
            raise ConfigError(f"env_kwargs.render_mode must be rgb_array, depth_array or human, got {self.render_mode!r}")
        if self.render_mode == "human" and not has_display():  # GLFW would abort the process at the first frame
            raise ConfigError("env_kwargs.render_mode human opens a window, and there is no display here (DISPLAY and "
                              "WAYLAND_DISPLAY are unset); for a video of a trained policy: cmdp eval RUN --video")
        if self.width < 1 or self.height < 1:
            raise ConfigError(f"env_kwargs.width and height must be >= 1, got {self.width} x {self.height}")


@dataclass
class SafetyGymKwargs(VelocityTaskKwargs):
    """The `env_kwargs` a Safety-Gymnasium Builder task accepts: those of `safety_gymnasium.make` (`config`, the
    rendering keys), and `backend`.

    `backend` (navigation tasks): `fast` (the default) is `cmdp.envs.sg_fast`: upstream's own task objects with
    the compiled model reused at reset and vectorised observations and costs, equal to upstream step by step
    (tests/test_safety_gym_fast.py); `upstream` is safety-gymnasium as it is. `render_mode` works with both: the
    fast backend renders through upstream's `Builder.render` on its reused model. Planar velocity tasks (Hopper,
    Walker2d, HalfCheetah, Swimmer): `fast` steps upstream's environment without its Python around MuJoCo, equal to
    it step by step (`cmdp.envs.velocity_fast`, tests/test_velocity_fast.py); Ant and Humanoid velocity tasks run on
    upstream's environment with either.
    """

    config: dict | None = None  # task configuration overrides, e.g. {agent_name: Point}


@dataclass
class UpstreamTaskKwargs(SafetyGymKwargs):
    """The `env_kwargs` of a task that runs on upstream safety-gymnasium only (Run, Race, Fading, and every vision
    task): those of `SafetyGymKwargs`, with `backend` 'upstream', the only one (the fast backend is built and
    tested for the Goal, Button, Push and Circle tasks)."""

    backend: str = "upstream"

    def validate(self) -> None:
        super().validate()
        check_upstream_only(self.backend)


@dataclass
class VisionTaskKwargs(UpstreamTaskKwargs):
    """The `env_kwargs` of a vision task: `UpstreamTaskKwargs`, and `vision_size`.

    `vision_size` is the side of the agent camera's square image. Ours defaults to 64 where upstream's is 256: the
    rollout holds pixels as float32 (`cmdp.vision`), so a 20,000-step epoch of 256x256 images would take 15.7 GB
    (64x64: 1 GB), and the encoder is sized for small frames. `vision_size: 256` gives upstream's.
    """

    vision_size: int = DEFAULT_VISION_SIZE

    def validate(self) -> None:
        super().validate()
        if self.vision_size < MIN_IMAGE_SIDE:
            raise ConfigError(f"env_kwargs.vision_size must be >= {MIN_IMAGE_SIDE} (the image encoder's smallest "
                              f"input), got {self.vision_size}")
        if VISION_SIZE_KEY in (self.config or {}):  # SafetyGymImageEnv sets it from vision_size, over the user's
            raise ConfigError(f"env_kwargs.config.{VISION_SIZE_KEY}: the camera image's size is env_kwargs.vision_size "
                              f"here (the side of a square image, default {DEFAULT_VISION_SIZE}); set that instead")


def check_upstream_only(backend: str) -> None:
    if backend != "upstream":
        raise ConfigError(f"env_kwargs.backend: this task runs on upstream safety-gymnasium only (the fast backend "
                          f"covers the Goal, Button, Push and Circle tasks), got {backend!r}")


def make_safety_gym(name: str, num_envs: int = 1, **env_kwargs: Any) -> VecCMDP:
    """N copies of a Safety-Gymnasium task: in this process for N = 1, one subprocess each for N > 1.

    Navigation tasks run on `env_kwargs['backend']` (default `fast`, see `SafetyGymKwargs`)."""
    backend = env_kwargs.pop("backend", "fast")
    check_backend(backend)
    return _copies(env_maker(name, backend), name, env_kwargs, num_envs)


def _copies(make_env: Callable[[str, dict[str, Any]], CMDPEnv], name: str, env_kwargs: dict[str, Any],
            num_envs: int) -> VecCMDP:
    """`num_envs` copies of `make_env(name, env_kwargs)`: in this process for one, one subprocess each for more."""
    fns = [functools.partial(make_env, name, env_kwargs) for _ in range(num_envs)]
    return SyncVecCMDP(fns) if num_envs == 1 else SubprocVecCMDP(fns)


def env_maker(name: str, backend: str) -> Callable[[str, dict[str, Any]], CMDPEnv]:
    """What makes one copy of `name` on `backend`: on `fast`, the fast backend of a navigation task or of a planar
    velocity task; else (and for Ant and Humanoid velocity tasks) upstream's environment."""
    if backend != "fast":
        return SafetyGymEnv
    if not is_velocity_task(name):
        return fast_navigation_env
    return fast_velocity_env if is_planar_velocity_task(name) else SafetyGymEnv


def is_velocity_task(name: str) -> bool:
    """Whether `name` is a velocity task (`Safety<robot>Velocity-v<n>`), a gymnasium MuJoCo robot rather than a
    Builder task."""
    return "Velocity-" in name


def velocity_agent(name: str) -> str:
    """The agent of a velocity task's name: 'Hopper' for SafetyHopperVelocity-v1."""
    return name.removeprefix("Safety").partition("Velocity-")[0]


def is_planar_velocity_task(name: str) -> bool:
    """Whether the fast velocity backend covers `name` (Hopper, Walker2d, HalfCheetah, Swimmer)."""
    return is_velocity_task(name) and velocity_agent(name) in PLANAR_AGENTS


def fast_velocity_env(name: str, env_kwargs: dict[str, Any] | None = None) -> CMDPEnv:
    """A planar velocity task on the fast backend (`cmdp.envs.velocity_fast.FastVelocityEnv`)."""
    from cmdp.envs.velocity_fast import FastVelocityEnv

    return FastVelocityEnv(name, env_kwargs)


def fast_navigation_env(name: str, env_kwargs: dict[str, Any] | None = None) -> CMDPEnv:
    """A navigation task on the fast backend (`cmdp.envs.sg_fast.FastSafetyGymEnv`)."""
    import_safety_gymnasium()  # first: the backend imports safety_gymnasium's modules as it loads
    from cmdp.envs.sg_fast import FastSafetyGymEnv

    return FastSafetyGymEnv(name, env_kwargs, DEFAULT_COST_LIMIT)


def is_vision_task(name: str) -> bool:
    return "Vision-" in name


def runs_upstream_only(name: str) -> bool:
    """Whether `name` is a Run, Race or Fading task or a vision task (`UpstreamTaskKwargs`)."""
    return is_vision_task(name) or name.removesuffix("-v0").endswith(OTHER_TASKS)


def check_task_assets(name: str) -> None:
    """ConfigError for a Race task when its floor texture is missing (the 1.0.0 wheel lacks it; module docstring)."""
    if "Race" not in name:
        return
    texture = Path(import_safety_gymnasium().__file__).parent / "assets" / "textures" / "village_floor.PNG"
    if not texture.is_file():
        raise ConfigError(f"{name} needs the floor texture {texture.name}, which the installed safety-gymnasium "
                          f"lacks ({texture.parent}; the 1.0.0 wheel ships no .PNG texture); install safety-gymnasium "
                          "from its source repository to use the Race tasks")


def make_upstream_task(name: str, num_envs: int = 1, **env_kwargs: Any) -> VecCMDP:
    """N copies of a task that runs on upstream safety-gymnasium only (`UpstreamTaskKwargs`): in this process for
    N = 1, one subprocess each for N > 1. A vision task checks here, in the parent process, that it can render."""
    check_upstream_only(env_kwargs.pop("backend", "upstream"))
    import_safety_gymnasium()
    check_task_assets(name)
    if is_vision_task(name):
        check_offscreen_rendering()  # a failure inside an environment subprocess would reach us as a traceback
    return _copies(SafetyGymImageEnv if is_vision_task(name) else SafetyGymEnv, name, env_kwargs, num_envs)


def make_video_env(name: str, env_kwargs: dict[str, Any]) -> SafetyGymEnv | FastSafetyGymEnv:
    """One copy of `name` on the backend its runs use, whose `render()` gives the frames of `cmdp eval --video`:
    navigation tasks seen from upstream's 'track' camera (above and behind the agent) unless `env_kwargs` name a
    camera, velocity tasks from gymnasium's default camera, vision tasks as their agent camera's image."""
    kwargs = dict(env_kwargs)
    backend = kwargs.pop("backend", "upstream" if runs_upstream_only(name) else "fast")
    import_safety_gymnasium()
    check_task_assets(name)
    check_offscreen_rendering()
    if is_vision_task(name):
        return SafetyGymImageEnv(name, kwargs)
    if not is_velocity_task(name) and kwargs.get("camera_id") is None and kwargs.get("camera_name") is None:
        kwargs["camera_name"] = "track"
    kwargs["render_mode"] = "rgb_array"
    # the backend `make_safety_gym` would choose, so that the video shows the episodes `cmdp eval` measures
    return env_maker(name, backend)(name, kwargs)


def task_names() -> list[str]:
    """The navigation and velocity (v1) tasks: the 66 Safety-Gymnasium tasks `make_safety_gym` serves (the fast
    backend's navigation tasks among them). `task_groups` lists every task cmdp-lab registers."""
    nav = [f"Safety{a}{t}{lvl}-v0" for t in NAV_TASKS for a in NAV_AGENTS for lvl in range(3)]
    vel = [f"Safety{a}Velocity-v1" for a in VELOCITY_AGENTS]
    return nav + vel


def task_groups() -> dict[str, list[str]]:
    """Every single-agent Safety-Gymnasium task cmdp-lab registers, by the group `cmdp list` shows it in."""
    nav = [name for name in task_names() if not is_velocity_task(name)]
    other = [f"Safety{a}{t}-v0" for t in OTHER_TASKS for a in NAV_AGENTS]
    return {"safety-gymnasium navigation": nav,
            "safety-gymnasium velocity": [f"Safety{a}Velocity-v{v}" for v in (1, 0) for a in VELOCITY_AGENTS],
            "safety-gymnasium run-race-fading": other,
            "safety-gymnasium navigation vision": [n.replace("-v0", "Vision-v0") for n in nav],
            "safety-gymnasium run-race-fading vision": [n.replace("-v0", "Vision-v0") for n in other]}


# The config defaults of every Safety-Gymnasium task, between an algorithm's defaults and the user's config.
# cost_window 50: OmniSafe 0.5.0's multipliers (and its CPO's constraint value) read the mean cost of its last 50
# finished episodes, whichever epochs they ended in (policy_gradient.py and off_policy/ddpg.py: register_key(
# 'Metrics/EpCost', window_length=50); its later development tree reads 100). docs/omnisafe-differences.md row 4.
SAFETY_GYM_DEFAULTS: dict[str, Any] = {"cost_window": 50}


def _family(name: str) -> VectorFamily:
    video_env = functools.partial(make_video_env, name)
    if is_vision_task(name):
        return ImageVectorFamily(functools.partial(make_upstream_task, name), VisionTaskKwargs, ["cost"], video_env,
                                 SAFETY_GYM_DEFAULTS)
    if runs_upstream_only(name):
        return VectorFamily(functools.partial(make_upstream_task, name), UpstreamTaskKwargs, ["cost"], video_env,
                            SAFETY_GYM_DEFAULTS)
    kwargs = VelocityTaskKwargs if is_velocity_task(name) else SafetyGymKwargs
    return VectorFamily(functools.partial(make_safety_gym, name), kwargs, ["cost"], video_env, SAFETY_GYM_DEFAULTS)


for _group, _names in task_groups().items():
    for _name in _names:
        register_env(_name, _family(_name), group=_group, description=_group.removeprefix("safety-gymnasium "))
