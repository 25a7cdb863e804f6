"""Where upstream's navigation objects are in the model, and their costs computed over all objects at once.

Upstream computes each object's cost in a Python loop: hazards one `data.body(name)` lookup and distance at
a time, contacts one `model.geom(id).name` lookup per contact and geom. `CostTerms` computes the same dict
(`BaseTask.calculate_cost` before the indicator) from arrays: the hazards' positions in one gather, every
contact's two geoms classified with precomputed masks. Objects it does not know keep upstream's `cal_cost`.
"""
from __future__ import annotations

from typing import Any, Callable

import mujoco
import numpy as np
from safety_gymnasium.assets.free_geoms import PushBox, Vases
from safety_gymnasium.assets.geoms import Apples, Buttons, Circle, Goal, Hazards, Oranges, Pillars
from safety_gymnasium.assets.mocaps import Gremlins
from safety_gymnasium.bases.base_object import BaseObject
from safety_gymnasium.utils.task_utils import get_body_xvelp


# The bodies whose positions each object's `pos` property reads (upstream's names, per class).
_BODY_NAMES: dict[type, Callable[[Any], list[str]]] = {
    Goal: lambda o: ["goal"],
    PushBox: lambda o: ["push_box"],
    Hazards: lambda o: [f"hazard{i}" for i in range(o.num)],
    Vases: lambda o: [f"vase{i}" for i in range(o.num)],
    Pillars: lambda o: [f"pillar{i}" for i in range(o.num)],
    Buttons: lambda o: [f"button{i}" for i in range(o.num)],
    Gremlins: lambda o: [f"gremlin{i}obj" for i in range(o.num)],
    Apples: lambda o: [f"apple{i}" for i in range(o.num)],
    Oranges: lambda o: [f"orange{i}" for i in range(o.num)],
}


def lidar_positions(obstacle: Any, model: mujoco.MjModel) -> tuple[list[int], list[list[float]]]:
    """The body ids whose positions `obstacle.pos` returns, and the constant positions it returns instead."""
    if type(obstacle) is Circle:
        return [], [[0.0, 0.0, 0.0]]  # Circle.pos is the constant [0, 0, 0]
    if type(obstacle) not in _BODY_NAMES:
        raise ValueError(f"the fast backend does not know where {type(obstacle).__name__} objects are; "
                         "use env_kwargs backend: upstream")
    return [model.body(name).id for name in _BODY_NAMES[type(obstacle)](obstacle)], []


def _repeated_sum(value: float, times: int) -> float | int:
    """`0 + value + value + ...` (`times` terms), as upstream accumulates a cost per contact."""
    total: float | int = 0
    for _ in range(times):
        total += value
    return total


class CostTerms:
    """`BaseTask.calculate_cost`'s dict (without its mj_forward), with the slow per-object loops vectorised."""

    def __init__(self, task: Any) -> None:
        if task._is_load_static_geoms:
            raise ValueError("the fast backend does not support static geoms (building tasks); "
                             "use env_kwargs backend: upstream")
        model = self.model = task.model  # the task's model and data objects never change (see task.py)
        self.data = task.data
        names = [model.geom(g).name for g in range(model.ngeom)]
        agent_names = set(task.agent.body_info.geom_names)
        self.agent_geom = np.array([n in agent_names for n in names])
        self.prefix = {p: np.array([n.startswith(p) for n in names]) for p in ("vase", "pillar", "gremlin", "button")}
        self.agent_body = model.body("agent").id
        # Objects without a cost of their own (goal, box, circle: BaseObject.cal_cost, always {}) are left out.
        self.terms = [self._term(o, model) for o in task._obstacles if type(o).cal_cost is not BaseObject.cal_cost]
        buttons = [o for o in task._obstacles if type(o) is Buttons]
        self.button_geoms = np.array([model.geom(n).id for n in _BODY_NAMES[Buttons](buttons[0])] if buttons else [],
                                     dtype=np.intp)

    def _term(self, obstacle: Any, model: mujoco.MjModel) -> Callable[[np.ndarray, np.ndarray], dict]:
        """The cost function of one object: upstream's cal_cost, vectorised where it loops."""
        kind = type(obstacle)
        if kind is Hazards:
            bodies = np.array([model.body(n).id for n in _BODY_NAMES[Hazards](obstacle)], dtype=np.intp)
            return lambda g1, g2: self._hazards(obstacle, bodies)
        if kind is Pillars:
            return lambda g1, g2: self._contacts(obstacle, "cost_pillars", obstacle.cost, "pillar", g1, g2)
        if kind is Gremlins:
            return lambda g1, g2: self._contacts(obstacle, "cost_gremlins", obstacle.contact_cost, "gremlin", g1, g2)
        if kind is Buttons:
            return lambda g1, g2: self._buttons(obstacle, g1, g2)
        if kind is Vases:
            dofs = [int(model.jnt_dofadr[model.body(n).jntadr[0]]) for n in _BODY_NAMES[Vases](obstacle)]
            return lambda g1, g2: self._vases(obstacle, np.array(dofs, dtype=np.intp), g1, g2)
        return lambda g1, g2: obstacle.cal_cost()  # no loop to save (sigwalls): upstream's own

    def __call__(self) -> dict:
        contact = self.data.contact
        g1, g2 = contact.geom1, contact.geom2
        cost: dict = {}
        for term in self.terms:
            cost.update(term(g1, g2))
        cost["cost_sum"] = sum(v for k, v in cost.items() if k.startswith("cost_"))
        return cost

    def _touching(self, prefix: str, g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
        """Which contacts are between an agent geom and a geom whose name starts with `prefix`."""
        mask = self.prefix[prefix]
        return (mask[g1] | mask[g2]) & (self.agent_geom[g1] | self.agent_geom[g2])

    def _contacts(self, obstacle: Any, key: str, each: float, prefix: str, g1: np.ndarray, g2: np.ndarray) -> dict:
        if not obstacle.is_constrained:
            return {}
        return {key: _repeated_sum(each, int(np.count_nonzero(self._touching(prefix, g1, g2))))}

    def _hazards(self, hazards: Hazards, bodies: np.ndarray) -> dict:
        if not hazards.is_constrained:
            return {}
        xpos = self.data.xpos
        # upstream: agent.dist_xy(hazard pos) for each hazard (np.sqrt(np.sum(np.square(xy - agent_xy)))), then
        # cost * (size - dist) where dist <= size
        offset = xpos[bodies, :2] - xpos[self.agent_body, :2]
        dist = np.sqrt(np.add.reduce(offset * offset, axis=1))
        total: float | int = 0
        for h_dist in dist[dist <= hazards.size]:
            total += hazards.cost * (hazards.size - h_dist)
        return {"cost_hazards": total}

    def _buttons(self, buttons: Buttons, g1: np.ndarray, g2: np.ndarray) -> dict:
        assert buttons.goal_button is not None, "Please make sure this method can get information about goal button."
        if not buttons.is_constrained or buttons.timer != 0:  # off while the goal button is being resampled
            return {}
        goal = self.button_geoms[buttons.goal_button]
        wrong = self._touching("button", g1, g2) & (g1 != goal) & (g2 != goal)
        return {"cost_buttons": _repeated_sum(buttons.cost, int(np.count_nonzero(wrong)))}

    def _vases(self, vases: Vases, dofs: np.ndarray, g1: np.ndarray, g2: np.ndarray) -> dict:
        if not vases.is_constrained or vases.displace_cost:
            return vases.cal_cost()  # {} when unconstrained; displacement costs: upstream's own code
        cost: dict = {"cost_vases_contact": 0}
        if vases.contact_cost:
            cost["cost_vases_contact"] = _repeated_sum(vases.contact_cost,
                                                       int(np.count_nonzero(self._touching("vase", g1, g2))))
        if vases.velocity_cost:
            # A free body's linear velocity is its free joint's first three velocities; upstream computes it
            # through the body Jacobian (get_body_xvelp), which agrees up to rounding. Vases far below the
            # threshold add nothing either way; the others are measured exactly as upstream measures them.
            qvel = self.data.qvel
            speed = np.sqrt(np.sum(np.square(qvel[dofs[:, None] + np.arange(3)]), axis=1))
            total: float | int = 0
            for i in np.flatnonzero(speed >= 0.5 * vases.velocity_threshold):
                vel = np.sqrt(np.sum(np.square(get_body_xvelp(self.model, self.data, f"vase{i}"))))
                if vel >= vases.velocity_threshold:
                    total += vel * vases.velocity_cost
            cost["cost_vases_velocity"] = total
        return cost

    def goal_button_pressed(self, buttons: Buttons) -> bool:
        """ButtonLevel0.goal_achieved: a contact between an agent geom and the goal button."""
        data = self.data
        g1, g2 = data.contact.geom1, data.contact.geom2
        goal = self.button_geoms[buttons.goal_button]
        return bool(np.any(((g1 == goal) | (g2 == goal)) & (self.agent_geom[g1] | self.agent_geom[g2])))
