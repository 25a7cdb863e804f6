"""The fast backend of the planar velocity tasks: upstream's environment, stepped without its Python around MuJoCo.

`Safety{Hopper,Walker2d,HalfCheetah,Swimmer}Velocity-v{0,1}` are gymnasium's MuJoCo robots (v4) with
Safety-Gymnasium's velocity cost. A step of upstream's, behind `safety_gymnasium.make`'s four wrappers, costs about
65 us on a 2-core AMD EPYC for SafetyHopperVelocity-v1, of which MuJoCo's `mj_step` is about 36 us. The rest is
Python: the wrappers' checks, `is_healthy` computed twice through `state_vector()`, `np.clip` and copies in
`_get_obs`, the info dict. `FastVelocityEnv` keeps upstream's environment object (its model, data, seeding and
reset) and does its step itself, with the same MuJoCo calls and the same floating-point operations in the same
order, so that observations, rewards, costs, terminations and truncations are equal bit for bit
(tests/test_velocity_fast.py runs both side by side).

What the robots differ in is a `PlanarRobot` row: how many leading positions the observation leaves out, whether
it clips the velocities, and how the robot is healthy (Hopper: height, angle and every other state entry in
range; Walker2d: height and angle; HalfCheetah and Swimmer: always, and never terminated). The cost is 1 when the
forward velocity exceeds the task's threshold, except in SafetySwimmerVelocity-v0, where it is the planar speed
(`SPEED_COST_TASKS`). The 3-D robots (Ant, Humanoid) stay on upstream: their physics is most of their step (Ant:
142 of 164 us), and their steps read more of MuJoCo's data (the torso's centre of mass, Humanoid's contact forces).

With a `render_mode` (the frames of `cmdp eval --video`) the step is upstream's own, which also draws the
velocity marker: the episodes are the same, only slower.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import mujoco
import numpy as np

from cmdp.envs.safety_gym import SafetyGymEnv, velocity_agent

#: A robot's health from its positions and velocities, given the upstream environment (for its ranges).
Health = Callable[[Any, np.ndarray, np.ndarray], bool]


def hopper_healthy(env: Any, qpos: np.ndarray, qvel: np.ndarray) -> bool:
    """gymnasium's HopperEnv.is_healthy: height and angle in their ranges, and every state entry after the first
    two (`state_vector()[2:]`) strictly inside `healthy_state_range` (min/max compare as `all` does, NaN too)."""
    min_state, max_state = env._healthy_state_range
    min_z, max_z = env._healthy_z_range
    min_angle, max_angle = env._healthy_angle_range
    state = np.concatenate((qpos[2:], qvel))
    return bool(min_state < state.min() and state.max() < max_state and min_z < qpos[1] < max_z
                and min_angle < qpos[2] < max_angle)


def walker_healthy(env: Any, qpos: np.ndarray, qvel: np.ndarray) -> bool:
    """gymnasium's Walker2dEnv.is_healthy: height and angle in their ranges."""
    min_z, max_z = env._healthy_z_range
    min_angle, max_angle = env._healthy_angle_range
    return bool(min_z < qpos[1] < max_z and min_angle < qpos[2] < max_angle)


@dataclass(frozen=True)
class PlanarRobot:
    """What one planar robot's step does differently (gymnasium's `<robot>_v4.py`)."""

    skip: int  # leading qpos entries the observation leaves out (exclude_current_positions_from_observation)
    clip_velocity: bool  # the observation clips qvel to [-10, 10]
    healthy: Health | None  # None: always healthy, never terminated, no healthy reward


#: the tasks whose cost is on the planar speed sqrt(vx^2 + vy^2) instead of the forward velocity vx
SPEED_COST_TASKS = ("SafetySwimmerVelocity-v0",)

ROBOTS = {  # the keys are `cmdp.envs.safety_gym.PLANAR_AGENTS`
    "Hopper": PlanarRobot(1, True, hopper_healthy),
    "Walker2d": PlanarRobot(1, True, walker_healthy),
    "HalfCheetah": PlanarRobot(1, False, None),
    "Swimmer": PlanarRobot(2, False, None),
}


class FastVelocityEnv(SafetyGymEnv):
    """A planar velocity task (`ROBOTS`) on the fast backend: upstream's environment from `safety_gymnasium.make`,
    reset by it, stepped here (module docstring), with `make`'s time limit (`SafeTimeLimit`) counted here."""

    def __init__(self, name: str, env_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(name, env_kwargs)
        robot = velocity_agent(name)
        if robot not in ROBOTS:
            raise ValueError(f"{name} is not a planar velocity task ({', '.join(ROBOTS)})")
        self.robot = ROBOTS[robot]
        task = self.env.unwrapped
        self.task, self.model, self.data = task, task.model, task.data
        self.upstream_step = task.render_mode is not None  # rendering: upstream's step draws the velocity marker
        self.frame_skip, self.dt = task.frame_skip, task.dt
        self.skip = self.robot.skip if task._exclude_current_positions_from_observation else 0
        self.forward_weight, self.ctrl_weight = task._forward_reward_weight, task._ctrl_cost_weight
        self.threshold, self.speed_cost = task._velocity_threshold, name in SPEED_COST_TASKS
        if self.robot.healthy is not None:
            self.healthy_reward, self.terminate_unhealthy = task._healthy_reward, task._terminate_when_unhealthy
        self._elapsed = 0

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._elapsed = 0
        return super().reset(seed)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool, bool]:
        if self.upstream_step:
            return super().step(action)  # its wrappers count the time limit
        data = self.data
        xy_before = data.qpos[:2].copy()
        data.ctrl[:] = action  # MujocoEnv._step_mujoco_simulation
        mujoco.mj_step(self.model, data, nstep=self.frame_skip)
        mujoco.mj_rnePostConstraint(self.model, data)
        qpos, qvel = data.qpos, data.qvel
        x_velocity, y_velocity = (qpos[:2] - xy_before) / self.dt
        ctrl_cost = self.ctrl_weight * np.sum(np.square(action))
        forward_reward = self.forward_weight * x_velocity
        healthy = self.robot.healthy
        if healthy is None:
            reward, terminated = forward_reward - ctrl_cost, False
        else:
            ok = healthy(self.task, qpos, qvel)
            reward = forward_reward + float(ok or self.terminate_unhealthy) * self.healthy_reward - ctrl_cost
            terminated = not ok and self.terminate_unhealthy
        qvel_seen = np.minimum(np.maximum(qvel, -10.0), 10.0) if self.robot.clip_velocity else qvel
        obs = np.concatenate((qpos[self.skip:], qvel_seen))
        self._elapsed += 1
        truncated = self.spec.max_episode_steps is not None and self._elapsed >= self.spec.max_episode_steps
        velocity = np.sqrt(x_velocity**2 + y_velocity**2) if self.speed_cost else x_velocity
        cost = float(velocity > self.threshold)
        return obs, float(reward), np.array([cost]), bool(terminated), truncated
