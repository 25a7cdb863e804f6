"""Safety-Gymnasium environment throughput: upstream, our backend, and MuJoCo's physics alone.

    python -m cmdp.benchmarks.env_throughput [--steps N] [--tasks T ...] [--check-steps K] [--chunk C]
        [--clock cpu|wall] [--out FILE.csv]

(also `python -m benchmarks.env_throughput` from the repository root). For each task, in one process:

- check: upstream (`safety_gymnasium.make`) and ours start from `reset(seed=0)` and get the same K uniformly random
  actions; the largest absolute observation difference and whether rewards, costs, terminations and truncations
  were all identical are reported;
- upstream, ours: N random-action steps each, episodes reset as in training (1000 steps for these tasks, so a
  measurement includes its resets), steps per second of CPU time (`--clock wall`: of wall-clock time). Ours is
  what a run uses by default: the fast backend for navigation tasks and planar velocity tasks, our adapter
  (`SafetyGymEnv`, upstream's gymnasium MuJoCo environment) for the Ant and Humanoid velocity tasks;
- physics: `mj_step` on the task's own compiled model, as many per step as the task's frameskip, with random
  controls and no observation, reward or cost: the limit any implementation of the task approaches.

The three take turns of `--chunk` steps, so that a change of the machine's load during the run affects them alike.

Timings, not a test: run it on an idle machine and say how many cores it has.
"""
from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any, Callable

import mujoco
import numpy as np

from cmdp.envs.safety_gym import SafetyGymEnv, env_maker, import_safety_gymnasium

DEFAULT_TASKS = ["SafetyPointGoal1-v0", "SafetyCarGoal1-v0", "SafetyPointButton1-v0", "SafetyHopperVelocity-v1"]
#: `cpu`: this process's CPU time (single-threaded work: wall time on an idle machine, and much less noisy on a
#: shared one); `wall`: wall-clock time.
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
COLUMNS = ["task", "steps", "upstream_steps_per_s", "ours_steps_per_s", "physics_steps_per_s", "ours_over_upstream",
           "ours_over_physics", "check_steps", "max_obs_diff", "identical"]


def make_ours(name: str) -> Any:
    """Our environment for `name` as a run makes it by default (`env_maker(name, "fast")`)."""
    return env_maker(name, "fast")(name, None)


def physics_of(ours: Any) -> tuple[mujoco.MjModel, int]:
    """The compiled model our environment steps and how many mj_step calls make one environment step."""
    if isinstance(ours, SafetyGymEnv):
        return ours.env.unwrapped.model, ours.env.unwrapped.frame_skip
    task = ours.builder.task
    if task.sim_conf.frameskip_binom_p != 1.0:
        raise ValueError(f"{task.__class__.__name__}: a random frameskip has no fixed physics cost per step")
    return task.model, task.sim_conf.frameskip_binom_n


def check(upstream: Any, ours: Any, steps: int, rng: np.random.Generator) -> tuple[float, bool]:
    """Largest |observation difference| over `steps` steps from reset(seed=0), and whether all else was equal."""
    up_obs, _ = upstream.reset(seed=0)
    our_obs = ours.reset(seed=0)
    worst, identical = float(np.max(np.abs(up_obs - our_obs))), True
    for _ in range(steps):
        action = rng.uniform(upstream.action_space.low, upstream.action_space.high)
        up_obs, reward, cost, terminated, truncated, _ = upstream.step(action)
        our_obs, our_reward, our_costs, our_terminated, our_truncated = ours.step(action)
        worst = max(worst, float(np.max(np.abs(up_obs - our_obs))))
        identical &= (reward == our_reward and cost == our_costs[0] and terminated == our_terminated
                      and truncated == our_truncated)
        if terminated or truncated:
            upstream.reset()
            ours.reset()
    return worst, identical


class Stepper:
    """Random-action steps of one system, resumable in chunks; an episode that ends is reset at the next step."""

    def __init__(self, step: Callable[[np.ndarray], bool], reset: Callable[[], Any], actions: np.ndarray,
                 clock: Callable[[], float]) -> None:
        self.step, self.reset, self.actions, self.clock = step, reset, actions, clock
        self.done, self.next = True, 0
        self.seconds = 0.0

    def run(self, steps: int) -> None:
        start = self.clock()
        for action in self.actions[self.next:self.next + steps]:
            if self.done:
                self.reset()
            self.done = self.step(action)
        self.next += steps
        self.seconds += self.clock() - start


def rates(steppers: dict[str, Stepper], steps: int, chunk: int) -> dict[str, float]:
    """Steps per second of each system, `steps` each, measured in turns of `chunk` steps so that a change in the
    machine's load during the measurement falls on all of them alike."""
    for first in range(0, steps, chunk):
        for stepper in steppers.values():
            stepper.run(min(chunk, steps - first))
    return {name: steps / stepper.seconds for name, stepper in steppers.items()}


def measure(name: str, steps: int, check_steps: int, chunk: int, clock: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """One row of the table for task `name`."""
    sg = import_safety_gymnasium()
    upstream, ours = sg.make(name), make_ours(name)
    rng = np.random.default_rng(seed)
    max_diff, identical = check(upstream, ours, check_steps, rng)
    space = upstream.action_space

    def upstream_step(action: np.ndarray) -> bool:
        _, _, _, terminated, truncated, _ = upstream.step(action)
        return terminated or truncated

    def ours_step(action: np.ndarray) -> bool:
        _, _, _, terminated, truncated = ours.step(action)
        return terminated or truncated

    model, frameskip = physics_of(ours)
    data = mujoco.MjData(model)
    episode = ours.spec.max_episode_steps or 1000
    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    physics_steps = [0]

    def physics_step(action: np.ndarray) -> bool:
        data.ctrl[:] = np.clip(action, low, high)
        for _ in range(frameskip):
            mujoco.mj_step(model, data)
        physics_steps[0] += 1
        return physics_steps[0] % episode == 0

    def actions() -> np.ndarray:
        return rng.uniform(space.low, space.high, size=(steps, *space.shape))

    timer = CLOCKS[clock]
    measured = rates({"upstream": Stepper(upstream_step, upstream.reset, actions(), timer),
                      "ours": Stepper(ours_step, ours.reset, actions(), timer),
                      "physics": Stepper(physics_step, lambda: mujoco.mj_resetData(model, data), actions(), timer)},
                     steps, chunk)
    upstream.close()
    ours.close()
    return {"task": name, "steps": steps, "upstream_steps_per_s": measured["upstream"],
            "ours_steps_per_s": measured["ours"], "physics_steps_per_s": measured["physics"],
            "ours_over_upstream": measured["ours"] / measured["upstream"],
            "ours_over_physics": measured["ours"] / measured["physics"], "check_steps": check_steps,
            "max_obs_diff": max_diff, "identical": identical}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4000, help="random-action steps per measurement (default: four "
                   "1000-step episodes; the whole run takes about 2 minutes of one core)")
    p.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS)
    p.add_argument("--check-steps", type=int, default=500, help="steps of the ours-vs-upstream comparison")
    p.add_argument("--chunk", type=int, default=500, help="the systems take turns of this many steps")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="time measured: this process's CPU time "
                   "(default; the wall time of single-threaded work on an idle machine) or wall-clock time")
    p.add_argument("--out", help="also write the table as CSV here")
    args = p.parse_args(argv)
    rows = []
    print(f"{'task':<26} {'upstream':>10} {'ours':>10} {'physics':>10} {'ours/up':>8} {'ours/phys':>9} "
          f"{'max |obs diff|':>15}  identical   (steps/s of {args.clock} time; checked over {args.check_steps} steps)",
          flush=True)
    for name in args.tasks:
        row = measure(name, args.steps, args.check_steps, args.chunk, args.clock)
        rows.append(row)
        print(f"{name:<26} {row['upstream_steps_per_s']:10.0f} {row['ours_steps_per_s']:10.0f} "
              f"{row['physics_steps_per_s']:10.0f} {row['ours_over_upstream']:8.2f} {row['ours_over_physics']:9.2f} "
              f"{row['max_obs_diff']:15.3g}  {row['identical']}", flush=True)
    if args.out:
        with Path(args.out).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return rows


if __name__ == "__main__":
    main()
