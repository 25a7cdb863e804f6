"""Safety-Gymnasium's vision tasks and its other single-agent tasks: what `cmdp list` shows, the image layout and
encoder, the normaliser that leaves pixels alone, a vision task trained end to end and resumed, and the one-line
error when nothing can render."""
import csv
import re
import shutil

import gymnasium
import numpy as np
import pytest
import torch

from cmdp.cli import main
from cmdp.logger import TIMING_COLUMNS
from cmdp.networks import ActorCritic, flat_obs_dim
from cmdp.normalize import PartialObsNormalizer
from cmdp.spec import ConfigError
from cmdp.trainer import new_run, resolve_config
from cmdp.vision import IMAGE_FEATURES, MIN_IMAGE_SIDE, ImageEncoder, ImageLayout

VISION = "SafetyPointGoal1Vision-v0"
# 2 epochs of 128 steps; 4 update iterations keep the CNN updates to about a second an epoch
KEYS = {"env": VISION, "total_steps": 256, "steps_per_epoch": 128, "update_iters": 4, "seed": 5}
TRAIN = ["--env", VISION, "--total-steps", "256", "--set", "steps_per_epoch=128", "--no-progress"]


def hand_space(height: int = 40, width: int = 48) -> gymnasium.spaces.Dict:
    """A Dict observation like a vision task's: two vectors around an image (keys deliberately not sorted)."""
    return gymnasium.spaces.Dict({"speed": gymnasium.spaces.Box(-1, 1, (3,)),
                                  "vision": gymnasium.spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
                                  "lidar": gymnasium.spaces.Box(0, 1, (2, 1))}, seed=0)


def rows_without_timing(path):
    with (path / "progress.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


# --- cmdp list -------------------------------------------------------------------------------------------------

def listed_groups(stdout: str) -> dict[str, list[str]]:
    """`cmdp list`'s environment groups: name -> the environments under it."""
    groups: dict[str, list[str]] = {}
    current = None
    for line in stdout[stdout.index("environments:"):].splitlines()[1:]:
        header = re.fullmatch(r"  \[(.+)\] \((\d+)\)", line)
        if header:
            current = header.group(1)
            groups[current] = []
        elif current is not None and line.startswith("    "):
            groups[current] += line.split()
    return groups


def test_list_groups_every_single_agent_task_safety_gymnasium_registers(capsys):
    from cmdp.envs.safety_gym import import_safety_gymnasium, task_names

    assert main(["list"]) == 0
    groups = listed_groups(capsys.readouterr().out)
    sizes = {name: len(names) for name, names in groups.items() if name.startswith("safety-gymnasium")}
    assert sizes == {"safety-gymnasium navigation": 60, "safety-gymnasium navigation vision": 60,
                     "safety-gymnasium run-race-fading": 50, "safety-gymnasium run-race-fading vision": 50,
                     "safety-gymnasium velocity": 12}
    listed = {n for name, names in groups.items() if name.startswith("safety-gymnasium") for n in names}
    # exactly upstream's own registry, less its Debug variants and its gymnasium-API aliases
    import_safety_gymnasium()
    upstream = {n for n in gymnasium.registry if n.startswith("Safety") and "Debug" not in n and "Gymnasium" not in n}
    assert listed == upstream
    assert set(task_names()) <= listed  # the 66 names of before, unchanged
    assert all(n.endswith("Vision-v0") for n in groups["safety-gymnasium navigation vision"])
    assert "SafetyPointGoal1Vision-v0" in groups["safety-gymnasium navigation vision"]
    assert "SafetyHopperVelocity-v0" in groups["safety-gymnasium velocity"]
    assert {"SafetyPointRun0-v0", "SafetyCarRace2-v0", "SafetyAntFadingHard1-v0"} <= \
        set(groups["safety-gymnasium run-race-fading"])


# --- layout, encoder, normaliser -------------------------------------------------------------------------------

def test_layout_flattens_vectors_in_dict_order_then_raw_pixels():
    space = hand_space()
    layout = ImageLayout.of(space)
    assert layout is not None and layout.image_key == "vision" and layout.image_shape == (40, 48, 3)
    assert layout.vector_keys == tuple(k for k in space.spaces if k != "vision") and layout.vector_dim == 5
    obs = space.sample()
    flat = layout.flatten(obs)
    assert flat.shape == (layout.flat_dim,) == (5 + 40 * 48 * 3,) and flat_obs_dim(space) == layout.flat_dim
    expected = np.concatenate([obs[k].reshape(-1) for k in layout.vector_keys] + [obs["vision"].reshape(-1)])
    np.testing.assert_array_equal(flat, expected)
    assert ImageLayout.of(gymnasium.spaces.Box(-1, 1, (3,))) is None


def test_encoder_output_on_a_hand_batch():
    space = hand_space()
    layout = ImageLayout.of(space)
    torch.manual_seed(0)
    encoder = ImageEncoder(layout)
    assert encoder.out_dim == IMAGE_FEATURES + 5
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 40, 48, 3), dtype=np.uint8)
    vectors = rng.normal(size=(4, 5))
    batch = torch.as_tensor(np.concatenate([vectors, images.reshape(4, -1)], axis=1), dtype=torch.float32)
    seen = {}
    encoder.conv[0].register_forward_hook(lambda module, args, out: seen.update(pixels=args[0]))
    with torch.no_grad():
        out = encoder(batch)
    assert out.shape == (4, IMAGE_FEATURES + 5)
    # the convolutions see the image as (B, C, H, W) scaled to [0, 1]; the vector sensors come out as they went in
    np.testing.assert_allclose(seen["pixels"].numpy(), images.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    np.testing.assert_allclose(out[:, IMAGE_FEATURES:].numpy(), vectors, rtol=1e-6)
    assert (out[:, :IMAGE_FEATURES] >= 0).all()  # ReLU features
    with pytest.raises(ConfigError, match=f"at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"):
        ImageEncoder(ImageLayout.of(hand_space(32, 64)))


def test_actor_and_critics_have_their_own_encoders():
    space = hand_space()
    agent = ActorCritic(space, gymnasium.spaces.Box(-1, 1, (2,)), 1, [16], [16])
    actor_encoder, critic_encoder = agent.actor.mean[0], agent.critic[0]
    assert isinstance(actor_encoder, ImageEncoder) and isinstance(critic_encoder, ImageEncoder)
    assert actor_encoder is not critic_encoder
    batch = torch.as_tensor(np.stack([ImageLayout.of(space).flatten(space.sample()) for _ in range(3)]),
                            dtype=torch.float32)
    assert agent.critic(batch).shape == (3, 2)
    actions = agent.actor.numpy_sampler()(batch.numpy().astype(np.float64), np.random.default_rng(0), True)
    np.testing.assert_allclose(actions, agent.actor.mean(batch).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_only_the_vector_part_is_normalised():
    space = hand_space()
    layout = ImageLayout.of(space)
    rng = np.random.default_rng(1)
    raw = np.stack([layout.flatten(space.sample()) for _ in range(64)])
    raw[:, :layout.vector_dim] = rng.normal(3.0, 2.0, size=(64, layout.vector_dim))
    normalizer = PartialObsNormalizer(layout.vector_dim, clip=10.0)
    out = normalizer(raw, update=True)
    v = layout.vector_dim
    np.testing.assert_array_equal(out[:, v:], raw[:, v:])  # pixels: raw 0..255, untouched (the encoder scales them)
    np.testing.assert_allclose(out[:, :v].mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(out[:, :v].std(0), 1.0, atol=1e-6)
    assert normalizer.stats.mean.shape == (v,)
    assert not np.array_equal(out, raw) and raw[:, :v].mean() > 2.0  # the input rows were not normalised in place


# --- a vision task end to end ----------------------------------------------------------------------------------

def test_vision_task_trains_end_to_end_and_resumes_exactly(tmp_path):
    """ppo_lag on SafetyPointGoal1Vision-v0 (64x64 camera, rendered offscreen): 256 steps in two epochs; a copy of
    the run folder taken right after epoch 1's checkpoint, continued by `cmdp train --resume`, ends identical.

    The copy stands in for an interrupted run (tests/test_cli.py interrupts one) to save a third environment: every
    upstream reset recompiles the world and decodes its 3259x3259 skybox textures, ~3 s here. Measured on the
    shared 2-core machine: 34 s when it was quiet, 53 s while other jobs ran (steps 35-55/s with rendering)."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    cfg, _ = resolve_config(KEYS)
    trainer, run_dir = new_run(cfg, str(full))

    def copy_after_epoch_1(row: dict) -> None:
        if row["epoch"] == 1:
            shutil.copytree(full, cut)

    trainer.train(run_dir, progress=False, on_epoch=copy_after_epoch_1)
    rows = rows_without_timing(full)
    assert [int(r["env_steps"]) for r in rows] == [128, 256]
    assert all(np.isfinite(float(r["loss_pi"])) and np.isfinite(float(r["loss_v"])) for r in rows)
    state = torch.load(full / "checkpoints/last.pt", weights_only=True)
    assert state["agent"]["actor.mean.0.conv.0.weight"].shape == (32, 3, 8, 8)  # the actor's encoder
    assert state["agent"]["critic.0.conv.0.weight"].shape == (32, 3, 8, 8)  # the critics' own
    # PointGoal1's sensors: accelerometer, velocimeter, gyro, magnetometer (3 each) and 3 lidars of 16
    assert len(state["family"]["obs_normalizer"]["mean"]) == 4 * 3 + 3 * 16

    assert len(rows_without_timing(cut)) == 1 and not (cut / "summary.json").exists()
    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    assert rows_without_timing(cut) == rows
    resumed = torch.load(cut / "checkpoints/last.pt", weights_only=True)
    for key, value in state["agent"].items():
        assert torch.equal(value, resumed["agent"][key]), key
    assert resumed["family"] == state["family"]


def test_vision_task_in_subprocesses():
    """Each copy in its own process (num_envs > 1) builds the vision task with its Dict spec and camera size."""
    from cmdp.registry import get_env

    env = get_env(VISION).family.factory(num_envs=2, vision_size=48)
    try:
        layout = ImageLayout.of(env.spec.observation_space)
        assert env.num_envs == 2 and layout is not None and layout.image_shape == (48, 48, 3)
        assert layout.vector_dim == 4 * 3 + 3 * 16
    finally:
        env.close()


def test_off_policy_solvers_and_saute_are_refused_on_images(tmp_path, capsys):
    for extra, message in ((["--algo", "sac_lag"], "trains off-policy, which environment"),
                           # and says why, which the list of kinds it supports had left to guess
                           (["--set", "transform={kind: saute}"], "does not support the 'saute' transformation: "
                            "Saute and Simmer append the budget to a flat vector observation, and this one holds an "
                            "image (it supports: early_terminated)"),
                           # Simmer appends its budget as Saute does (its subclass), behind the image's pixels
                           (["--algo", "ppo_simmer_pid"], "does not support the 'simmer' transformation: Saute"),
                           (["--set", "env_kwargs={vision_size: 20}"], f"vision_size must be >= {MIN_IMAGE_SIDE}"),
                           (["--set", "env_kwargs={backend: fast}"], "runs on upstream safety-gymnasium only"),
                           # upstream's own key for the image size was overwritten by vision_size's 64 without a word
                           (["--set", "env_kwargs={config: {vision_env_conf.vision_size: [128, 128]}}"],
                            "the camera image's size is env_kwargs.vision_size here")):
        assert main(["train", *TRAIN, *extra, "--out", str(tmp_path / "refused")]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
        assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("backend", ["glfw", "glx"])
def test_no_offscreen_rendering_is_one_line(tmp_path, capsys, monkeypatch, backend):
    """MUJOCO_GL=glfw without a display (the usual headless failure) and glx (a value MuJoCo imports but
    gymnasium's offscreen viewer does not know): the vision task refuses at start, in one line, exit status 2."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("MUJOCO_GL", backend)
    assert main(["train", *TRAIN, "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"cmdp: error: cannot render MuJoCo offscreen (MUJOCO_GL={backend};"), lines[0]
    assert "libegl1" in lines[0]
    assert not (tmp_path / "run").exists()
