"""Write a newly sampled Safety-Gymnasium layout into the MuJoCo model compiled for an earlier layout.

Upstream rebuilds the whole model at every reset: it turns the layout into XML and compiles it
(`World.build`: `xmltodict.unparse` -> `MjModel.from_xml_string`, which also decodes the skybox PNGs, most
of its cost). Between two layouts of one task only poses change, so `LayoutWriter.write` sets them in the
existing model and recomputes what the compiler derives from them:

- body poses (`body_pos`, `body_quat`) of the agent and of every object, with the quaternion normalised the
  way the compiler normalises it (`mjuu_normvec`, the same floating-point operations in the same order);
- `qpos0` and `qpos_spring` of free joints (an object's free joint starts at its body's pose);
- the inertial frame of bodies without mass (the compiler copies the body frame into it) and of mocap
  bodies (a mocap's only geom carries its pose, and a body with one massive geom takes that geom's frame);
- the pose of the `track` camera, which upstream builds from the agent's rotation (`xyaxes`, turned into a
  quaternion as the compiler does, `mjCAlternative::Set` and `mjuu_frame2quat`);
- everything `mj_setConst` derives from the reference configuration (dof_M0, inverse weights, actuator_acc0,
  weld constraints' relative poses, camera and light offsets, model statistics), by calling it on the
  reset state as the compiler does.

The equivalence tests compare every numeric field of the model written here with the model upstream
compiles for the same seed, so a difference in any of these rules fails them.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import mujoco
import numpy as np

#: The compiler's threshold below which it leaves a vector unnormalised (`mjEPS` in user_util.h).
_COMPILER_EPS = 1e-14


def compiler_normalized(vec: Sequence[float]) -> list[float]:
    """`vec` normalised as MuJoCo's compiler does (`mjuu_normvec`), bit for bit."""
    total = 0.0
    for value in vec:
        total += value * value
    if total < _COMPILER_EPS:
        return [float(v) for v in vec]
    norm = math.sqrt(total)
    return [float(v) / norm for v in vec]


def _cross(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def _frame_to_quat(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> list[float]:
    """The compiler's rotation-frame-to-quaternion conversion (`mjuu_frame2quat`), bit for bit."""
    mat = (x, y, z)  # mat[column][row]
    if mat[0][0] + mat[1][1] + mat[2][2] > 0:
        q0 = 0.5 * math.sqrt(1 + mat[0][0] + mat[1][1] + mat[2][2])
        quat = [q0, 0.25 * (mat[1][2] - mat[2][1]) / q0, 0.25 * (mat[2][0] - mat[0][2]) / q0,
                0.25 * (mat[0][1] - mat[1][0]) / q0]
    elif mat[0][0] > mat[1][1] and mat[0][0] > mat[2][2]:
        q1 = 0.5 * math.sqrt(1 + mat[0][0] - mat[1][1] - mat[2][2])
        quat = [0.25 * (mat[1][2] - mat[2][1]) / q1, q1, 0.25 * (mat[1][0] + mat[0][1]) / q1,
                0.25 * (mat[2][0] + mat[0][2]) / q1]
    elif mat[1][1] > mat[2][2]:
        q2 = 0.5 * math.sqrt(1 - mat[0][0] + mat[1][1] - mat[2][2])
        quat = [0.25 * (mat[2][0] - mat[0][2]) / q2, 0.25 * (mat[1][0] + mat[0][1]) / q2, q2,
                0.25 * (mat[2][1] + mat[1][2]) / q2]
    else:
        q3 = 0.5 * math.sqrt(1 - mat[0][0] - mat[1][1] + mat[2][2])
        quat = [0.25 * (mat[0][1] - mat[1][0]) / q3, 0.25 * (mat[2][0] + mat[0][2]) / q3,
                0.25 * (mat[2][1] + mat[1][2]) / q3, q3]
    return compiler_normalized(quat)


def xyaxes_to_quat(xyaxes: Sequence[float]) -> list[float]:
    """The quaternion the compiler makes of an `xyaxes` attribute (`mjCAlternative::Set`), bit for bit."""
    x = compiler_normalized(xyaxes[:3])
    y = [float(v) for v in xyaxes[3:]]
    dot = x[0] * y[0] + x[1] * y[1] + x[2] * y[2]
    y = compiler_normalized([y[0] - x[0] * dot, y[1] - x[1] * dot, y[2] - x[2] * dot])
    z = compiler_normalized(_cross(x, y))
    return _frame_to_quat(x, y, z)


def rot_to_quat(rot: float) -> list[float]:
    """The body quaternion the compiler makes of upstream's rotation about z (`rot2quat`, then normalised)."""
    half = rot / 2
    # The same numpy calls as upstream's rot2quat: its XML carries these values exactly (shortest repr).
    return compiler_normalized([np.cos(half), 0.0, 0.0, np.sin(half)])


def track_camera_pose(agent_rot: float) -> tuple[list[float], list[float]]:
    """Position and quaternion of the `track` camera upstream's `World.build` adds for an agent rotation."""
    theta = agent_rot + np.pi
    # Upstream's expressions, term by term (its XML carries their exact values).
    pos = [0 * np.cos(theta) + (-2) * np.sin(theta), 0 * (-np.sin(theta)) + (-2) * np.cos(theta), 2.0]
    xyaxes = [np.cos(theta), -np.sin(theta), 0.0, np.sin(theta), np.cos(theta), 1.0]
    return [float(v) for v in pos], compiler_normalized(xyaxes_to_quat(xyaxes))


class LayoutWriter:
    """Writes upstream's world configuration (`Underlying._build_world_config`) into a compiled model."""

    def __init__(self, model: mujoco.MjModel, agent_z: float) -> None:
        self.agent_z = float(agent_z)
        self.agent_body = model.body("agent").id
        self.track_camera = model.camera("track").id
        # Bodies whose free joint starts at the body's pose: body id -> qpos address.
        self.free_qpos = {int(model.jnt_bodyid[j]): int(model.jnt_qposadr[j])
                          for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE}
        # A body without mass had no geom to take its inertial frame from: the compiler copied the body frame.
        self.massless = {b for b in range(1, model.nbody) if model.body_mass[b] == 0.0}
        self.welds = [i for i in range(model.neq) if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD]
        if model.ntendon:
            raise ValueError("LayoutWriter does not recompute tendon spring lengths (the model has tendons)")

    def write(self, model: mujoco.MjModel, data: mujoco.MjData, config: dict[str, Any]) -> None:
        """Make `model` what compiling upstream's XML for `config` gives, and `data` a fresh MjData of it."""
        agent_pos = [float(v) for v in config["agent_xy"]] + [self.agent_z]
        self._set_body(model, self.agent_body, agent_pos, rot_to_quat(config["agent_rot"]))
        for group in ("geoms", "free_geoms"):
            for name, obj in config[group].items():
                if obj["type"] == "mesh":
                    raise ValueError(f"mesh object {name!r}: the fast backend places primitive geoms only")
                self._set_body(model, model.body(name).id, [float(v) for v in obj["pos"]], rot_to_quat(obj["rot"]))
        for name, mocap in config["mocaps"].items():
            # A mocap body stays at the origin; its geom carries the pose, and so its inertial frame.
            geom, body = model.geom(name).id, model.body(name).id
            pos, quat = [float(v) for v in mocap["pos"]], rot_to_quat(mocap["rot"])
            model.geom_pos[geom], model.geom_quat[geom] = pos, quat
            model.body_ipos[body], model.body_iquat[body] = pos, quat
        cam_pos, cam_quat = track_camera_pose(config["agent_rot"])
        model.cam_pos[self.track_camera], model.cam_quat[self.track_camera] = cam_pos, cam_quat
        for eq in self.welds:  # an all-zero relative quaternion tells mj_setConst to recompute the relative pose
            model.eq_data[eq, 3:10] = 0.0
        mujoco.mj_resetData(model, data)  # mocap poses back to their bodies', as in the compiler's fresh data
        mujoco.mj_setConst(model, data)
        mujoco.mj_resetData(model, data)

    def _set_body(self, model: mujoco.MjModel, body: int, pos: list[float], quat: list[float]) -> None:
        model.body_pos[body], model.body_quat[body] = pos, quat
        if body in self.massless:
            model.body_ipos[body], model.body_iquat[body] = pos, quat
        if body in self.free_qpos:
            adr = self.free_qpos[body]
            model.qpos0[adr:adr + 7] = pos + quat
            model.qpos_spring[adr:adr + 7] = pos + quat
