"""Upstream's layout sampling, with its distance checks in Python floats instead of numpy calls on 2-vectors.

`RandomGenerator.sample_layout` places the objects one after another by rejection sampling, and the layout as
a whole is redrawn when an object finds no place in 100 draws. On crowded tasks (the Button tasks) that is
hundreds of thousands of `np.sqrt(np.sum(np.square(xy - other_xy)))` calls per reset, about half a second.
`FastRandomGenerator` makes the same random draws in the same order (upstream's `draw_placement`, unchanged) and
the same accept/reject decisions: the distance is the same floating-point operations on the same numbers
(`x*x` is what `np.square` computes, and numpy sums two numbers as `a + b`).
"""
from __future__ import annotations

import math

from safety_gymnasium.utils.random_generator import RandomGenerator


class FastRandomGenerator(RandomGenerator):
    """Upstream's random generator (same seeding, same streams) with faster layout and goal sampling."""

    def _is_free(self, x: float, y: float, keepout: float, placed: list[tuple[float, float, float]]) -> bool:
        """upstream's placement check: no placed object closer than the sum of both keepouts and the margin."""
        margin = self.placements_margin
        for other_x, other_y, other_keepout in placed:
            dx, dy = x - other_x, y - other_y
            if math.sqrt(dx * dx + dy * dy) < other_keepout + margin + keepout:
                return False
        return True

    def sample_layout(self) -> bool:
        layout = {}
        placed: list[tuple[float, float, float]] = []
        for name, (placements, keepout) in self.placements.items():
            for _ in range(100):
                xy = self.draw_placement(placements, keepout)
                x, y = float(xy[0]), float(xy[1])
                if self._is_free(x, y, keepout, placed):
                    break
            else:
                return False
            layout[name] = xy
            placed.append((x, y, self.placements[name][1]))
        self.layout = layout
        return True

    def sample_goal_position(self) -> bool:
        placements, keepout = self.placements["goal"]
        goal_xy = self.draw_placement(placements, keepout)
        placed = [(float(xy[0]), float(xy[1]), self.placements[name][1]) for name, xy in self.layout.items()]
        if not self._is_free(float(goal_xy[0]), float(goal_xy[1]), keepout, placed):
            return False
        self.layout["goal"] = goal_xy
        return True
