"""Upstream's flat observation vector, computed with a few numpy calls per step instead of per-object loops.

Upstream's `BaseTask.obs` builds a dict (agent sensors read by name, one pseudo-lidar per object group with a
Python loop over the group's objects, compasses), checks it against the Dict space and flattens it with
gymnasium. `FlatObservation` precomputes where every entry lands in the flat vector and fills it directly:

- sensors: one gather from `data.sensordata`; hinge angles as (sin, cos), ball quaternions as rotation
  matrices (`mju_quat2Mat`, as upstream's `quat2mat`), a free joint's position sensor from its third value on;
- pseudo-lidar: the positions of every lidar-observed object of every group in one array, the same
  elementwise arithmetic as upstream's `_obs_lidar_pseudo` applied to all of them at once, and each bin the
  maximum of what reaches it (taken over one row per object; a maximum does not depend on the order of its
  terms);
- natural lidar and compasses (not used by the registered tasks): upstream's own `_obs_lidar_natural` and
  `_obs_compass`, called per group and per object.

The arithmetic is upstream's, operation for operation (the equivalence tests compare the vectors for equality).
"""
from __future__ import annotations

from typing import Any

import gymnasium
import mujoco
import numpy as np

from cmdp.envs.sg_fast.objects import lidar_positions


class FlatObservation:
    """The flat observation of one upstream navigation task, built once its world model is compiled."""

    def __init__(self, task: Any) -> None:
        model = task.model
        spaces = task.obs_info.obs_space_dict.spaces
        self.size = int(gymnasium.spaces.flatdim(task.obs_info.obs_space_dict))
        offsets: dict[str, int] = {}
        start = 0
        for key, space in spaces.items():
            offsets[key] = start
            start += int(gymnasium.spaces.flatdim(space))

        agent, sensor_info = task.agent, task.agent.sensor_info
        angle_components = agent.sensor_conf.sensors_angle_components

        def sensor_slice(name: str, first: int = 0) -> np.ndarray:
            sensor = model.sensor(name)
            adr = model.sensor_adr[sensor.id]
            return np.arange(adr + first, adr + model.sensor_dim[sensor.id])

        # Sensors read as they are: (destination indices in the vector, source indices in sensordata).
        direct = list(agent.sensor_conf.sensors) + sensor_info.hinge_vel_names + sensor_info.ballangvel_names
        if sensor_info.freejoint_qvel_name:
            direct.append(sensor_info.freejoint_qvel_name)
        if not angle_components:
            direct += sensor_info.hinge_pos_names + sensor_info.ballquat_names
        dst, src = [], []
        for name in direct:
            rows = sensor_slice(name)
            dst.append(offsets[name] + np.arange(len(rows)))
            src.append(rows)
        if sensor_info.freejoint_pos_name:  # upstream observes the height only: get_sensor(...)[2:]
            rows = sensor_slice(sensor_info.freejoint_pos_name, first=2)
            dst.append(offsets[sensor_info.freejoint_pos_name] + np.arange(len(rows)))
            src.append(rows)
        self.direct_dst = np.concatenate(dst).astype(np.intp)
        self.direct_src = np.concatenate(src).astype(np.intp)

        hinges = sensor_info.hinge_pos_names if angle_components else []
        self.hinge_src = np.array([sensor_slice(n)[0] for n in hinges], dtype=np.intp)
        self.hinge_sin_dst = np.array([offsets[n] for n in hinges], dtype=np.intp)
        self.hinge_cos_dst = self.hinge_sin_dst + 1
        balls = sensor_info.ballquat_names if angle_components else []
        self.balls = [(slice(offsets[n], offsets[n] + 9), sensor_slice(n)) for n in balls]

        lidar = task.lidar_conf
        self.lidar_type = lidar.type
        if lidar.type not in ("pseudo", "natural"):
            raise ValueError(f"Invalid lidar_type {lidar.type}")
        self.num_bins, self.max_dist, self.exp_gain = lidar.num_bins, lidar.max_dist, lidar.exp_gain
        self.alias = lidar.alias
        self.bin_size = (np.pi * 2) / lidar.num_bins
        # a bin, and the next and previous bins its alias reaches
        self._bin_triples = (np.arange(lidar.num_bins)[:, None] + np.array([0, 1, -1])) % lidar.num_bins

        # Pseudo-lidar: one row per observed object (constant rows, the circle's centre, are filled once); the
        # groups' bins side by side in a local vector, `lidar_dst` says where each lands in the observation.
        lidar_groups = [o for o in task._obstacles if o.is_lidar_observed]
        self.natural_groups = [(o.name, o.group, offsets[o.name + "_lidar"]) for o in lidar_groups]
        bins = lidar.num_bins
        self.group_slots = {o.name: slice(g * bins, (g + 1) * bins) for g, o in enumerate(lidar_groups)}
        self.lidar_dst = np.array([offsets[o.name + "_lidar"] + b for o in lidar_groups for b in range(lidar.num_bins)],
                                  dtype=np.intp)
        rows_body, body_ids, const_rows, const_pos, row_base = [], [], [], [], []
        for g, obstacle in enumerate(lidar_groups):
            bodies, constants = lidar_positions(obstacle, model)
            for body in bodies:
                rows_body.append(len(row_base))
                body_ids.append(body)
                row_base.append(g * lidar.num_bins)
            for pos in constants:
                const_rows.append(len(row_base))
                const_pos.append(pos)
                row_base.append(g * lidar.num_bins)
        self.positions = np.zeros((len(row_base), 3))
        if const_rows:
            self.positions[const_rows] = const_pos
        self.all_rows_are_bodies = not const_rows
        self.position_rows = np.array(rows_body, dtype=np.intp)
        self.position_bodies = np.array(body_ids, dtype=np.intp)
        self.row_base = np.array(row_base, dtype=np.intp)[:, None]
        self.row_index = np.arange(len(row_base))[:, None]
        self.local_size = len(lidar_groups) * lidar.num_bins
        # upstream's own test: only some object classes have `is_comp_observed`
        self.compasses = [(o, offsets[o.name + "_comp"]) for o in task._obstacles
                          if hasattr(o, "is_comp_observed") and o.is_comp_observed]
        self.agent_body = model.body("agent").id

    def compute(self, task: Any, data: mujoco.MjData, zeroed_lidar: tuple[str, ...] = ()) -> np.ndarray:
        """The flat observation of the current state (upstream's obs() after its mj_forward)."""
        out = np.zeros(self.size)
        sensordata = data.sensordata
        out[self.direct_dst] = sensordata[self.direct_src]
        if len(self.hinge_src):
            theta = sensordata[self.hinge_src]
            out[self.hinge_sin_dst] = np.sin(theta)
            out[self.hinge_cos_dst] = np.cos(theta)
        for dst, src in self.balls:
            mat = np.zeros(9)
            mujoco.mju_quat2Mat(mat, sensordata[src])
            out[dst] = mat
        if self.lidar_type == "pseudo":
            if len(self.row_base):
                lidar = self._pseudo_lidar(data)
                for name in zeroed_lidar:
                    lidar[self.group_slots[name]] = 0.0
                out[self.lidar_dst] = lidar
        else:
            for name, group, offset in self.natural_groups:
                if name not in zeroed_lidar:
                    out[offset:offset + self.num_bins] = task._obs_lidar_natural(group)
        for obstacle, offset in self.compasses:
            compass = task._obs_compass(obstacle.pos)
            out[offset:offset + len(compass)] = compass
        return out

    def _pseudo_lidar(self, data: mujoco.MjData) -> np.ndarray:
        """Every group's pseudo-lidar bins (upstream's `_obs_lidar_pseudo` of its objects), side by side."""
        xpos = data.xpos
        if self.all_rows_are_bodies:
            positions = xpos[self.position_bodies]
        else:
            positions = self.positions
            positions[self.position_rows] = xpos[self.position_bodies]
        agent_pos = xpos[self.agent_body]
        # upstream _ego_xy: np.matmul([x, y, 0] - agent_pos, agent_mat)[:2], one object at a time. A stacked
        # matmul gives the same numbers; a (n, 3) @ (3, 3) product would not (BLAS sums in another order).
        world = positions - agent_pos
        world[:, 2] = 0.0 - agent_pos[2]
        ego = np.matmul(world[:, None, :], data.xmat[self.agent_body].reshape(3, 3))
        x, y = ego[:, 0, 0], ego[:, 0, 1]
        # upstream: z = complex(x, y); dist = np.abs(z); angle = np.angle(z) % (2 pi) (an arctan2). The modulus of
        # a complex array, not np.hypot: on CPUs with AVX-512 NumPy's float hypot loop and its complex modulus round
        # differently (1 ulp in about a third of cases, measured on an AMD EPYC, 2026-12-02), elsewhere both are libm's.
        z = np.empty(len(x), dtype=np.complex128)
        z.real, z.imag = x, y
        dist = np.abs(z)
        angle = np.arctan2(y, x) % (np.pi * 2)
        bins = (angle / self.bin_size).astype(np.intp)
        if self.max_dist is None:
            sensor = np.exp(-self.exp_gain * dist)
        else:  # max(0, max_dist - dist) / max_dist
            sensor = self.max_dist - dist
            np.maximum(sensor, 0.0, out=sensor)
            sensor /= self.max_dist
        # Each object reaches its bin with `sensor`, and with aliasing the next bin with alias * sensor and the
        # previous with (1 - alias) * sensor; a bin reads the largest of what reaches it. Each object's values go
        # into a row of its own, and the maximum over the rows is taken at once (bins of one row are distinct).
        if not self.alias:
            index, weights = self.row_base + bins[:, None], sensor[:, None]
        else:
            weights = np.empty((len(bins), 3))
            weights[:, 0] = 1.0
            alias = weights[:, 1]
            np.divide(angle - self.bin_size * bins, self.bin_size, out=alias)
            np.subtract(1, alias, out=weights[:, 2])
            weights *= sensor[:, None]
            index = self.row_base + self._bin_triples[bins]
        if self.num_bins < 3:  # a bin and its neighbours coincide: rows would overwrite themselves
            lidar = np.zeros(self.local_size)
            np.maximum.at(lidar, index.ravel(), weights.ravel())
            return lidar
        rows = np.zeros((len(bins), self.local_size))
        rows[self.row_index, index] = weights
        return rows.max(axis=0)
