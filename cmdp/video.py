"""Video of a saved policy, `cmdp eval RUN --video`: its evaluation episodes rendered offscreen, the cumulative cost
drawn on every frame, written to RUN/videos/eval-<time>.mp4 (H.264 through imageio-ffmpeg; a GIF without it).

The video replays what `cmdp eval` measures. One copy of the environment that renders (the family's `video_env`,
on the backend the run uses), inside the run's Saute or Simmer transformation when it trained on one, is reset with
the evaluation's seed; actions come from `cmdp.evaluation.policy_actions` with a generator seeded alike; later
episodes start unseeded, as the evaluation's vectorised environment starts them. Its N episodes are therefore the
evaluation's first N (copy 0's, when the evaluation runs several copies). Frame t shows the state the policy acts
on at step t: an episode of length T gives T frames.

Environments that can be filmed: those registered with a `VectorFamily` given a `video_env` (every
Safety-Gymnasium task). Others are refused in one line before anything is evaluated.
"""
from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from cmdp.control import ControlRun, VectorFamily
from cmdp.evaluation import policy_actions
from cmdp.loading import LoadedPolicy
from cmdp.networks import action_map
from cmdp.registry import get_env
from cmdp.spec import CMDPSpec, ConfigError
from cmdp.transforms import make_transform
from cmdp.vec_env import SyncVecCMDP, VecCMDP

#: frames are enlarged (nearest pixel) by an integer factor until their shorter side is at least this, so that a
#: vision task's 64x64 camera image is watchable and the overlay legible
MIN_FRAME_SIDE = 256
FPS = 30
#: H.264 in yuv420p wants even sides, and imageio-ffmpeg resizes (with a warning) to multiples of 16: frames are
#: padded to a multiple of this instead
MACRO_BLOCK = 16


class FrameEnv(Protocol):
    """One copy of an environment (`cmdp.vec_env.CMDPEnv`) that also renders its current state."""

    spec: CMDPSpec

    def reset(self, seed: int | None = None) -> np.ndarray: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, bool, bool]: ...

    def render(self) -> np.ndarray:
        """The current frame, (H, W, 3) uint8."""
        ...

    def close(self) -> None: ...


def cost_overlay(frame: np.ndarray, cost: float, step: int, episode: int) -> np.ndarray:
    """`frame` (H, W, 3) uint8 with 'episode e  step t  cost c' (c: the cost summed over the episode before step t,
    every cost together) in white on a black box in its top-left corner. The input is not modified."""
    from PIL import Image, ImageDraw, ImageFont  # Pillow comes with imageio, a safety-gym requirement

    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, min(image.size) // 20))
    text = f"episode {episode}  step {step}  cost {cost:.1f}"
    left, top, right, bottom = draw.textbbox((4, 4), text, font=font)
    draw.rectangle((left - 3, top - 3, right + 3, bottom + 3), fill=(0, 0, 0))
    draw.text((4, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def enlarge(frame: np.ndarray) -> np.ndarray:
    """`frame` enlarged by the smallest integer factor giving a shorter side >= MIN_FRAME_SIDE, then padded with
    black to sides that are multiples of MACRO_BLOCK."""
    factor = max(1, math.ceil(MIN_FRAME_SIDE / min(frame.shape[:2])))
    frame = np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)
    pad = [(0, -n % MACRO_BLOCK) for n in frame.shape[:2]] + [(0, 0)]
    return np.pad(frame, pad)


def video_env_maker(policy: LoadedPolicy) -> Callable[[dict[str, Any]], FrameEnv]:
    """How to make a rendering copy of the run's environment; ConfigError (one line) when it cannot be filmed."""
    family = get_env(policy.cfg.env).family
    if not (isinstance(family, VectorFamily) and family.video_env is not None and isinstance(policy.run, ControlRun)):
        raise ConfigError(f"--video: environment '{policy.cfg.env}' cannot be rendered (videos are made of the "
                          "Safety-Gymnasium tasks)")
    return family.video_env


def mp4_available() -> bool:
    """Whether imageio can write MP4 here (imageio-ffmpeg, which brings its own ffmpeg binary, is installed)."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def open_writer(stem: Path, fps: int, mp4: bool) -> tuple[Any, Path]:
    """An imageio writer for `stem`.mp4 (H.264), or for `stem`.gif when not `mp4`; and the file's path."""
    import imageio.v2 as imageio

    if mp4:
        path = stem.with_suffix(".mp4")
        return imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                  pixelformat="yuv420p", macro_block_size=MACRO_BLOCK), path
    path = stem.with_suffix(".gif")
    return imageio.get_writer(path, mode="I", duration=1000 / fps, loop=0), path


def one_copy(run: ControlRun, cfg: Any, env: FrameEnv) -> VecCMDP:
    """`env` as the single copy of a VecCMDP, which restarts it when an episode ends, as the evaluation's does; for
    `run` (of config `cfg`) on Saute or Simmer, inside that transformation (its policy observes the remaining budget
    too), in the state the checkpoint left it (Simmer's budget). Not to be closed: closing `env` is the caller's."""
    steps: VecCMDP = SyncVecCMDP([lambda: env])
    if run.transform is None or run.transform.evaluate_on_inner:
        return steps
    transformed = make_transform(cfg.transform, steps, steps.spec.with_limits(cfg.cost_limits))
    transformed.load_state_dict(run.transform.state_dict())
    return transformed


def record_episodes(steps: VecCMDP, render: Callable[[], np.ndarray],
                    act: Callable[[np.ndarray, np.random.Generator], np.ndarray], episodes: int, seed: int,
                    write: Callable[[np.ndarray], None]) -> list[int]:
    """Run `episodes` episodes of `steps` (one copy, `one_copy`), handing each step's frame (`render()`, enlarged,
    cost drawn) to `write`; their lengths.

    `act(obs (1, ...), rng)` -> actions (1, ...): the policy; `rng` is seeded with `seed`, as the evaluation's."""
    rng = np.random.default_rng(seed)
    obs = steps.reset(seed)
    lengths: list[int] = []
    for episode in range(1, episodes + 1):
        cost, step, done = 0.0, 0, False
        while not done:
            write(cost_overlay(enlarge(render()), cost, step, episode))
            result = steps.step(act(obs, rng))  # an episode that ends restarts at once, unseeded, as in evaluation
            obs = result.obs
            cost += float(np.sum(result.costs))
            step += 1
            done = bool(result.terminated[0] or result.truncated[0])
        lengths.append(step)
    return lengths


def record_video(policy: LoadedPolicy, episodes: int = 1, seed: int = 12345, deterministic: bool = False,
                 fps: int = FPS) -> tuple[Path, list[int]]:
    """Film the first `episodes` evaluation episodes of `policy` (see the module docstring) into
    RUN/videos/eval-<time>.mp4; return the file's path and the episodes' lengths (= frames)."""
    make_env = video_env_maker(policy)
    run = policy.run
    assert isinstance(run, ControlRun)  # checked by video_env_maker
    sample = run.agent.actor.numpy_sampler()
    env = make_env(policy.cfg.env_kwargs)  # first: it refuses when nothing can render, before a file is made
    try:
        folder = policy.run_dir / "videos"
        folder.mkdir(exist_ok=True)
        stem = folder / f"eval-{time.strftime('%Y%m%d-%H%M%S')}"
        while any(stem.with_suffix(s).exists() for s in (".mp4", ".gif")):
            stem = stem.with_name(stem.name + "-1")

        steps = one_copy(run, policy.cfg, env)
        to_env = action_map(steps.spec.action_space, run.action_bounds)

        def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            return policy_actions(steps.spec, sample, run.obs_normalizer, obs, rng, deterministic, to_env)

        writer, path = open_writer(stem, fps, mp4_available())
        with writer:
            lengths = record_episodes(steps, env.render, act, episodes, seed, writer.append_data)
    finally:
        env.close()
    return path, lengths


def latest_video(run_dir: Path) -> Path | None:
    """The newest video `cmdp eval --video` wrote into a run folder (None: none)."""
    videos = sorted((run_dir / "videos").glob("eval-*.*"), key=lambda p: p.stat().st_mtime)
    videos = [p for p in videos if p.suffix in (".mp4", ".gif")]
    return videos[-1] if videos else None


def frame_strip(video: Path, out: Path, frames: int = 6, height: int = 128) -> Path:
    """Write to `out` (PNG) `frames` frames spread evenly over `video`, first to last, side by side, each scaled to
    `height` pixels high (for reports: `cmdp report` shows one per run that has a video)."""
    import imageio.v2 as imageio
    from PIL import Image

    with imageio.get_reader(video) as reader:
        total = sum(1 for _ in reader)
    if total == 0:
        raise ConfigError(f"{video} holds no frames")
    wanted = sorted({round(i * (total - 1) / max(frames - 1, 1)) for i in range(frames)})
    picked = []
    with imageio.get_reader(video) as reader:
        for index, frame in enumerate(reader):
            if index in wanted:
                image = Image.fromarray(np.asarray(frame)[..., :3])
                picked.append(image.resize((max(1, round(image.width * height / image.height)), height)))
    strip = Image.new("RGB", (sum(p.width for p in picked) + 4 * (len(picked) - 1), height), (255, 255, 255))
    x = 0
    for image in picked:
        strip.paste(image, (x, 0))
        x += image.width + 4
    strip.save(out)
    return out
