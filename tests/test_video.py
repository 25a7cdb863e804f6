"""`cmdp eval RUN --video`: a readable video of the evaluated episode, one frame per step, the cumulative cost drawn
on the frames; the refusal for environments that cannot be rendered."""
import json

import imageio.v2 as imageio
import numpy as np
import pytest

from cmdp.cli import main
from cmdp.video import cost_overlay, enlarge, open_writer

HOPPER = "SafetyHopperVelocity-v1"  # its episodes end when it falls: a few dozen steps for a barely trained policy


def read_frames(path) -> list[np.ndarray]:
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return [frame for frame in reader]


def train(tmp_path, env: str, *extra: str):
    run = tmp_path / "run"
    assert main(["train", "--env", env, "--total-steps", "200", "--set", "steps_per_epoch=100", "--set",
                 "update_iters=2", "--out", str(run), "--no-progress", *extra]) == 0
    return run


def test_eval_video_has_one_frame_per_step_and_the_cost_overlay(tmp_path, capsys):
    from cmdp.envs.safety_gym import make_video_env

    run = train(tmp_path, HOPPER)
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--video", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    path = run / "videos" / result["video"].rsplit("/", 1)[-1]
    assert path.is_file() and path.suffix == ".mp4" and str(path) == result["video"]
    frames = read_frames(path)
    length = int(result["len_mean"])
    assert len(frames) == length < 1000  # the evaluated episode, ended by the fall, one frame per step
    assert frames[0].shape == (480, 480, 3)  # gymnasium's MuJoCo frame size

    # the first frame against the same state rendered without the overlay: different where the text box is drawn,
    # the same (up to the video's lossy compression) elsewhere
    env = make_video_env(HOPPER, {})
    env.reset(12345)  # cmdp eval's default seed
    plain = env.render().astype(float)
    env.close()
    first = frames[0].astype(float)
    box = (slice(0, 20), slice(0, 200))
    rest = np.ones(plain.shape[:2], dtype=bool)
    rest[:40, :320] = False
    in_box, elsewhere = np.abs(first[box] - plain[box]).mean(), np.abs(first[rest] - plain[rest]).mean()
    assert in_box > 30 and elsewhere < 6 and in_box > 10 * elsewhere, (in_box, elsewhere)  # measured: 53 and 2.1

    # `cmdp report` shows a strip of six frames spread over the video
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    strip_name = f"frames_{HOPPER}_ppo_lag_seed0.png"
    assert "## Videos" in report and f"]({strip_name})" in report and path.name in report
    strip = imageio.imread(tmp_path / "report" / strip_name)
    shown = min(6, length)
    assert strip.shape == (128, shown * 128 + (shown - 1) * 4, 3)


def test_cost_overlay_draws_the_cost_in_the_top_left_corner_only():
    frame = np.full((64, 64, 3), 120, dtype=np.uint8)
    big = enlarge(frame)
    assert big.shape == (256, 256, 3) and (big == 120).all()  # 64 -> 4x, already a multiple of 16
    a, b = cost_overlay(big, 0.0, 3, 1), cost_overlay(big, 17.0, 3, 1)
    assert (big == 120).all()  # the input is left alone
    changed = np.argwhere((a != big).any(axis=-1))
    assert len(changed) and changed[:, 0].max() < 40 and changed[:, 1].max() < 256
    assert (a != b).any()  # the number drawn is the cost
    assert enlarge(np.zeros((36, 50, 3), dtype=np.uint8)).shape == (288, 400, 3)  # 8x: 288 x 400
    assert enlarge(np.zeros((300, 260, 3), dtype=np.uint8)).shape == (304, 272, 3)  # 1x, padded to 16s


@pytest.mark.parametrize("mp4", [True, False])
def test_writer_round_trip(tmp_path, mp4):
    """MP4 through imageio-ffmpeg, and the GIF written when it is missing: the frames come back, in order."""
    frames = [np.full((32, 48, 3), 40 * i, dtype=np.uint8) for i in range(5)]
    writer, path = open_writer(tmp_path / "clip", 30, mp4)
    with writer:
        for frame in frames:
            writer.append_data(frame)
    assert path.suffix == (".mp4" if mp4 else ".gif")
    with imageio.get_reader(path) as reader:
        back = [np.asarray(f)[..., :3] for f in reader]
    assert len(back) == 5 and back[0].shape == (32, 48, 3)
    assert [round(float(f.mean()) / 40) for f in back] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("algo, extra", [("ppo_saute", []), ("ppo_simmer_pid", ["--set", "transform={kp: 0.05}"])])
def test_a_saute_or_simmer_policy_is_filmed_in_its_transformation(tmp_path, capsys, algo, extra):
    """The video of a run on Saute or Simmer steps the environment inside that transformation, whose budget the policy
    observes (Simmer's as the checkpoint left it): its episodes are the evaluated ones. `--video` had refused such a
    run ("whose policy observes more than the environment shows; no video of it"), though the README says videos
    work for every Safety-Gymnasium task."""
    from cmdp import load_policy
    from cmdp.evaluation import evaluate
    from cmdp.video import record_video

    run = train(tmp_path, HOPPER, "--algo", algo, *extra)
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2", "--video", "--video-episodes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(read_frames(result["video"])) == 2 * result["len_mean"]  # one frame per step of the two episodes
    with load_policy(run) as policy:
        measured = evaluate(policy.run.transform, policy.run.agent, policy.run.obs_normalizer, 2, 12345,
                            deterministic=False, action_bounds=policy.run.action_bounds)
        _, lengths = record_video(policy, 2, 12345)
    assert lengths == measured.lengths.tolist()


@pytest.mark.parametrize("args, message", [
    (["--video"], "environment 'ExactChain-v0' cannot be rendered"),
    (["--video-episodes", "2"], "--video-episodes needs --video"),
    # the video had filmed 3 episodes beside a result measured on 2: one it showed was never measured
    (["--video", "--video-episodes", "3", "--episodes", "2"], "--video-episodes (3) must be at most --episodes (2)"),
])
def test_video_refused_in_one_line(tmp_path, capsys, args, message):
    run = tmp_path / "run"
    assert main(["train", "--env", "ExactChain-v0", "--total-steps", "400", "--set", "steps_per_epoch=200",
                 "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), *args]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert captured.out == ""  # refused before evaluating
    assert not (run / "videos").exists()


def test_navigation_frames_come_from_the_track_camera_on_the_runs_backend():
    from cmdp.envs.safety_gym import SafetyGymEnv, make_video_env
    from cmdp.envs.sg_fast import FastSafetyGymEnv

    nav = make_video_env("SafetyPointGoal0-v0", {})  # the fast backend, as the run's own environment
    assert isinstance(nav, FastSafetyGymEnv)
    nav.reset(0)
    frame = nav.render()
    nav.close()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8 and frame.std() > 10
    upstream = make_video_env("SafetyPointGoal0-v0", {"backend": "upstream"})  # a run on upstream: upstream
    assert isinstance(upstream, SafetyGymEnv)
    upstream.close()


@pytest.mark.slow
def test_navigation_video_of_a_whole_episode(tmp_path, capsys):
    """SafetyPointGoal1-v0 (fast backend): the 1000-step episode gives 1000 frames. Slow: Mesa's software renderer
    reads back a 256x256 frame in 0.05-0.1 s on the shared 2-core machine (measured: 84 s for the test)."""
    run = train(tmp_path, "SafetyPointGoal1-v0")
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--video", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(read_frames(result["video"])) == int(result["len_mean"]) == 1000


@pytest.mark.slow
def test_vision_video_shows_the_agent_camera(tmp_path, capsys):
    """A vision task's video is its agent camera's 64x64 image, enlarged 4x; one frame per step of the 1000-step
    episode. Slow: 35-55 steps/s with rendering; evaluation and video each run the episode (measured: 72 s)."""
    run = train(tmp_path, "SafetyPointGoal1Vision-v0")
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--video", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    frames = read_frames(result["video"])
    assert len(frames) == int(result["len_mean"]) == 1000
    assert frames[0].shape == (256, 256, 3)
