"""The fast backend of the planar velocity tasks (cmdp.envs.velocity_fast) against upstream, live.

Each case steps upstream (`safety_gymnasium.make` with its wrappers, `SafetyGymEnv`) and the fast backend from the
same seed with the same actions, resetting both when an episode ends, and requires equal observations, rewards,
costs, terminations and truncations at every step: exact equality, since the backend makes the same MuJoCo calls
and the same floating-point operations. Each case also checks that its run met what it is there to exercise
(a cost of 1 and of 0; falls for the robots that can fall, the time limit for those that cannot), so it cannot pass
by missing them.
"""
from __future__ import annotations

import numpy as np
import pytest

from cmdp.envs.safety_gym import PLANAR_AGENTS, SafetyGymEnv, import_safety_gymnasium, make_video_env

import_safety_gymnasium()

from gymnasium.envs.mujoco.half_cheetah_v4 import HalfCheetahEnv  # noqa: E402

from cmdp.envs.velocity_fast import ROBOTS, FastVelocityEnv  # noqa: E402

FALLS = {"Hopper", "Walker2d"}  # the robots with a health check


def test_the_robot_table_is_the_planar_agents() -> None:
    assert tuple(ROBOTS) == PLANAR_AGENTS


def push(env: SafetyGymEnv) -> None:
    """Start a HalfCheetah's episode moving forward 8 m/s faster: random torques do not take it past its velocity
    limit, and the cost must be seen at 1 too (the other robots pass theirs, or fall, on their own)."""
    task = env.env.unwrapped
    if not isinstance(env.env.unwrapped, HalfCheetahEnv):
        return
    qvel = task.data.qvel.copy()
    qvel[0] += 8.0
    task.set_state(task.data.qpos.copy(), qvel)


@pytest.mark.parametrize("version", ["v1", "v0"])
@pytest.mark.parametrize("robot", PLANAR_AGENTS)
def test_fast_velocity_task_equals_upstream_step_by_step(robot: str, version: str) -> None:
    name = f"Safety{robot}Velocity-{version}"
    upstream, fast = SafetyGymEnv(name), FastVelocityEnv(name)
    rng = np.random.default_rng(7)
    assert np.array_equal(upstream.reset(seed=11), fast.reset(seed=11))
    push(upstream), push(fast)
    seen_costs, terminations, truncations = set(), 0, 0
    steps = 1100 if robot in FALLS else 2100  # past the time limit of 1000 for the robots that cannot fall
    shape = upstream.spec.action_space.shape
    for t in range(steps):
        # forward-biased torques: fast enough to exceed the velocity limit at times, and to fall
        action = np.clip(rng.normal(0.3, 0.8, shape), -1.0, 1.0).astype(np.float32)
        want, got = upstream.step(action), fast.step(action)
        assert np.array_equal(want[0], got[0]), (t, want[0], got[0])
        assert want[1] == got[1] and np.array_equal(want[2], got[2]) and want[3:] == got[3:], (t, want[1:], got[1:])
        seen_costs.add(float(got[2][0]))
        if got[3] or got[4]:
            terminations += got[3]
            truncations += got[4]
            assert np.array_equal(upstream.reset(), fast.reset())
            push(upstream), push(fast)
    assert seen_costs == {0.0, 1.0}
    if robot in FALLS:
        assert terminations >= 3
    else:
        assert truncations == 2 and terminations == 0


def test_a_rendering_copy_steps_as_upstream_does(tmp_path) -> None:
    """With a render_mode the step is upstream's own (it draws the velocity marker), still the same episode."""
    from cmdp.envs.offscreen import check_offscreen_rendering

    try:
        check_offscreen_rendering()
    except Exception as error:  # a machine without EGL or OSMesa: rendering is tested where it exists
        pytest.skip(f"no offscreen rendering here: {error}")
    video = make_video_env("SafetyHopperVelocity-v1", {})
    plain = FastVelocityEnv("SafetyHopperVelocity-v1")
    assert isinstance(video, FastVelocityEnv) and video.upstream_step and not plain.upstream_step
    assert np.array_equal(video.reset(seed=3), plain.reset(seed=3))
    for _ in range(20):
        want, got = video.step(np.full(3, 0.5)), plain.step(np.full(3, 0.5))
        assert np.array_equal(want[0], got[0]) and want[1:2] == got[1:2]
    assert video.render().shape[-1] == 3
    video.close()
    plain.close()


def test_not_a_planar_task_is_refused() -> None:
    with pytest.raises(ValueError, match="not a planar velocity task"):
        FastVelocityEnv("SafetyAntVelocity-v1")


def test_a_velocity_task_refuses_a_builder_config_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    """`config` belongs to the Builder (navigation) tasks; a velocity task's constructor raised a TypeError
    traceback on it, with either backend, until the velocity tasks got their own env_kwargs."""
    from cmdp.cli import main

    for backend in ("fast", "upstream"):
        out = tmp_path / backend
        assert main(["train", "--env", "SafetyHopperVelocity-v1", "--set",
                     f"env_kwargs={{config: {{a: 1}}, backend: {backend}}}", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "env_kwargs: unknown key 'config' for environment 'SafetyHopperVelocity-v1'" in err[0]
        assert not out.exists()
