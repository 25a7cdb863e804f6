"""Upstream's navigation task classes, subclassed so that a reset reuses the compiled model and the per-step
observations and costs run without per-object Python loops.

Why subclasses: the layout must be written into the model at the point where upstream's `Underlying._build`
rebuilds the world, and upstream's own methods (`update_world`, `build_goal_position`, `update_layout`, the
rewards) keep reading the task's `world_info`, which `_build` sets. Only a method of the task can do that
without setting attributes on an upstream object from outside, so `fast_task_class` derives, from the
upstream class a task id names (e.g. `GoalLevel1`), a class with these mixins in front of it:

- `ReusedModelTask` (every task): `_build`, `simulation_forward`, `calculate_cost`, `obs`, `dist_goal`, and
  `_build_agent` to give the task `sampling.FastRandomGenerator`;
- `FastButtonTask` (Button tasks): `goal_achieved` and the emptied button lidar while the goal is resampled;
- `FastPushTask` (Push tasks): `dist_box`, `dist_box_goal`.

Everything else (seeding, layout and goal sampling, rewards, termination, the Builder's reset and step) is
upstream's code, unchanged. Each override does what the upstream method does, with the same MuJoCo calls in
the same order (every `mj_forward` updates the solver's warm start and normalises the quaternions in qpos, so
their number matters) and the same floating-point operations; the equivalence tests check it against upstream
step by step.
"""
from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
from safety_gymnasium.assets.mocaps import Gremlins
from safety_gymnasium.tasks.safe_navigation.button.button_level0 import ButtonLevel0
from safety_gymnasium.tasks.safe_navigation.push.push_level0 import PushLevel0
from safety_gymnasium.world import World

from cmdp.envs.sg_fast.layout import LayoutWriter
from cmdp.envs.sg_fast.objects import CostTerms
from cmdp.envs.sg_fast.observation import FlatObservation
from cmdp.envs.sg_fast.sampling import FastRandomGenerator


class ReusedModelTask:
    """Mixin in front of an upstream task class: the model compiled at the first reset serves every later one."""

    def _build_agent(self, agent_name: str) -> None:
        """Upstream's, after giving the task the faster random generator (same seeding and streams).

        `Underlying.__init__` makes the task's RandomGenerator just before it builds the agent, which keeps a
        reference to it (Ant.reset draws from it): replacing it here is the one point where task and agent
        still get the same generator.
        """
        self.random_generator = FastRandomGenerator()
        super()._build_agent(agent_name)

    def _build(self) -> None:
        """Upstream's `Underlying._build`: sample a layout, then build the world; after the first build, the
        layout goes into the compiled model instead of a new one."""
        if self.placements_conf.placements is None:
            self._build_placements_dict()
            self.random_generator.set_placements_info(self.placements_conf.placements,
                                                      self.placements_conf.extents, self.placements_conf.margin)
        self.world_info.layout = self.random_generator.build_layout()
        config = self._build_world_config(self.world_info.layout)
        self.world_info.world_config_dict = config
        if self.world is None:
            self.world = World(self.agent, self._obstacles, config)
            # Upstream compiles the XML twice here (World.reset(), then World.build()) and keeps the second
            # result, a model and data identical to the first: once is enough.
            self.world.build()
            self._prepare()
            return
        # Instead of World.rebuild(config, state=False): the same model and fresh data, without the XML.
        self.world.parse(config)
        self._layout_writer.write(self._model, self._data, config)
        mujoco.mj_forward(self._model, self._data)  # World.build's, on its new MjData
        mujoco.mj_forward(self._model, self._data)  # World.rebuild's

    def _prepare(self) -> None:
        """Once the model exists: what the fast paths precompute from it."""
        model = self._model = self.model  # the same model and data objects from now on
        self._data = self.data
        self._layout_writer = LayoutWriter(model, self.agent.z_height)
        self._cost_terms = CostTerms(self)
        flat = self.observation_flatten and not self.observe_vision
        self._flat_obs = FlatObservation(self) if flat else None  # other observations: upstream's obs()
        self._gremlin_mocaps = [
            (g, np.array([model.body_mocapid[model.body(f"gremlin{i}mocap").id] for i in range(g.num)]))
            for g in self._mocaps.values() if type(g) is Gremlins]
        self._other_mocaps = [m for m in self._mocaps.values() if type(m) is not Gremlins]
        self._ctrl_low = model.actuator_ctrlrange[:, 0].copy()
        self._ctrl_high = model.actuator_ctrlrange[:, 1].copy()
        self._agent_body = model.body("agent").id
        self._goal_body = model.body("goal").id if "goal" in self._geoms else -1
        self._box_body = model.body("push_box").id if "push_box" in self._free_geoms else -1

    def simulation_forward(self, action: np.ndarray) -> bool:
        """Upstream's, with the gremlins' mocap targets set in one assignment per physics step.

        Upstream catches its own MujocoException around mj_step; nothing raises it (MuJoCo's bindings raise
        their own errors), so this never reports an exception either.
        """
        model, data = self._model, self._data
        if self.debug or self.action_noise:
            if self.debug:
                self.agent.debug()
            else:
                noise = self.action_noise * self.random_generator.randn(self.agent.body_info.nu)
                self.agent.apply_action(action, noise)
        else:  # BaseAgent.apply_action: np.clip to the control range, without np.clip's Python-level checks
            data.ctrl[:] = np.minimum(np.maximum(action, self._ctrl_low), self._ctrl_high)
        steps = self.random_generator.binomial(self.sim_conf.frameskip_binom_n, self.sim_conf.frameskip_binom_p)
        if self._mocaps:
            for _ in range(steps):
                self._move_mocaps(data)
                mujoco.mj_step(model, data)
        elif steps:
            mujoco.mj_step(model, data, steps)  # the same as `steps` calls
        mujoco.mj_forward(model, data)  # upstream: needed to get sensor readings correct
        return False

    def _move_mocaps(self, data: mujoco.MjData) -> None:
        for gremlins, mocap_ids in self._gremlin_mocaps:
            # Gremlins.move: every gremlin's mocap target at the same point of a circle around its origin
            phase = float(data.time)
            data.mocap_pos[mocap_ids] = (np.sin(phase) * gremlins.travel, np.cos(phase) * gremlins.travel,
                                         gremlins.size)
        for mocap in self._other_mocaps:
            mocap.move()

    def calculate_cost(self) -> dict:
        # Each of upstream's mj_forward calls is kept: every call runs the constraint solver from the last
        # solution (its warm start) and normalises quaternions in qpos, so skipping one changes what follows.
        mujoco.mj_forward(self._model, self._data)
        return self._cost_terms()

    def obs(self) -> Any:
        if self._flat_obs is None:
            return super().obs()
        mujoco.mj_forward(self._model, self._data)  # upstream: needed to get sensor's data correct
        obs = self._flat_obs.compute(self, self._data, self._zeroed_lidar())
        if np.isnan(obs).any():  # what upstream's check against the observation space catches
            raise AssertionError(f"Bad obs {obs}")
        return obs

    def _zeroed_lidar(self) -> tuple[str, ...]:
        """Lidar groups observed as all zeros now (none, except for buttons, see FastButtonTask)."""
        return ()

    def dist_goal(self) -> float:
        """BaseTask.dist_goal (agent.dist_xy(goal.pos)), reading positions by body id instead of by name."""
        assert self._goal_body >= 0, "Please make sure you have added goal into env."
        xpos = self._data.xpos
        # np.sqrt(np.sum(np.square(goal_xy - agent_xy))) in scalars: the same operations, without numpy's overhead
        dx, dy = (xpos[self._goal_body, :2] - xpos[self._agent_body, :2]).tolist()
        return math.sqrt(dx * dx + dy * dy)


class FastButtonTask:
    """Mixin for Button tasks: the goal button's contact found without a Python loop over contacts."""

    @property
    def goal_achieved(self) -> bool:
        return self._cost_terms.goal_button_pressed(self.buttons)

    def _zeroed_lidar(self) -> tuple[str, ...]:
        return ("buttons",) if self.buttons.timer != 0 else ()  # ButtonLevel0.obs


class FastPushTask:
    """Mixin for Push tasks: distances to the box read by body id (PushLevel0's formulas)."""

    def dist_box(self) -> float:
        return self._distance(self._box_body, self._agent_body)

    def dist_box_goal(self) -> float:
        return self._distance(self._box_body, self._goal_body)

    def _distance(self, body: int, other: int) -> float:
        """np.sqrt(np.sum(np.square(pos - other_pos))) of two bodies' 3D positions, in scalars."""
        dx, dy, dz = (self._data.xpos[body] - self._data.xpos[other]).tolist()
        return math.sqrt(dx * dx + dy * dy + dz * dz)


def fast_task_class(task_class: type) -> type:
    """`task_class` (an upstream navigation task) with the mixins that reuse its model and vectorise it."""
    mixins: tuple[type, ...] = ()
    if issubclass(task_class, ButtonLevel0):
        mixins = (FastButtonTask,)
    elif issubclass(task_class, PushLevel0):
        mixins = (FastPushTask,)
    return type(f"Fast{task_class.__name__}", (*mixins, ReusedModelTask, task_class), {})
