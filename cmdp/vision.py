"""Image observations in the control family: one flat float vector per observation, and a convolutional encoder.

Safety-Gymnasium's vision tasks observe a `gymnasium.spaces.Dict`: vector sensors (accelerometer, velocimeter,
gyro, magnetometer, lidars, ...) and 'vision', the agent camera's (H, W, 3) uint8 image.

How such an observation travels. The environment adapter flattens each one with `ImageLayout.flatten`: the vector
sensors first, in the Dict's key order, then the image's pixels in (H, W, C) order as raw 0..255 values, all in one
float array. From there on it is handled exactly as a Box observation is: `VecCMDP` stacks it, subprocesses pipe
it, the rollout stores it in its (T, N, obs_dim) float32 buffer, `encode_obs` passes it through, evaluation reads
it. The spec keeps the Dict space, so whoever needs the structure (the networks, the observation normaliser)
reads this layout from it (`ImageLayout.of`) and unflattens. The alternative, a dict-of-arrays batch type, would
have touched every collector, buffer and solver minibatch of every family; the flat layout touches none, and the
other families' data path is unchanged. Its price is memory: pixels are held as float32 in the rollout, 4 bytes
per pixel instead of 1; an epoch of 20,000 steps of 64x64x3 images is about 1 GB, and twice that during
each minibatch pass of an on-policy update (`RolloutBatch.minibatch_pass` permutes a copy).

Normalisation. The running observation normaliser applies to the vector part only
(`cmdp.normalize.PartialObsNormalizer`); the pixels are scaled to [0, 1] by the encoder, never normalised.

The encoder (`ImageEncoder`): the convolutional torso of Mnih et al. 2015 (Nature DQN: 32 8x8 filters stride 4,
64 4x4 stride 2, 64 3x3 stride 1, ReLU), a linear layer to 256 features with ReLU, then the vector sensors
concatenated to those features. The actor and the critics each have their own encoder (`cmdp.networks.ActorCritic`:
one in front of the policy's MLP, one shared by the reward and cost critics), so the policy's and the critics'
gradients never mix. Images need at least `MIN_IMAGE_SIDE` pixels a side (the torso's receptive field).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import gymnasium
import numpy as np
import torch
from torch import nn

from cmdp.spec import ConfigError

#: the smallest image side the encoder's convolutions accept: (36 - 8) / 4 + 1 = 8, (8 - 4) / 2 + 1 = 3, 3 - 3 + 1 = 1
MIN_IMAGE_SIDE = 36
#: the encoder's image features, before the vector sensors are appended (Nature DQN: 512 for 84x84 Atari frames;
#: 256 for the smaller images here)
IMAGE_FEATURES = 256


def _is_image(space: gymnasium.Space) -> bool:
    return isinstance(space, gymnasium.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


@dataclass(frozen=True)
class ImageLayout:
    """How an observation of a Dict space with one image is laid out as one flat float vector (module docstring)."""

    vector_keys: tuple[str, ...]  # in the Dict's order
    vector_sizes: tuple[int, ...]  # flattened size of each
    image_key: str
    image_shape: tuple[int, int, int]  # (H, W, C)

    @staticmethod
    def of(space: gymnasium.Space) -> "ImageLayout | None":
        """The layout of `space` when it is a Dict of exactly one image (a uint8 Box of shape (H, W, C)) and Box
        vectors; None for any other space."""
        if not isinstance(space, gymnasium.spaces.Dict):
            return None
        images = [key for key, sub in space.spaces.items() if _is_image(sub)]
        vectors = [key for key, sub in space.spaces.items() if not _is_image(sub)]
        if len(images) != 1 or not all(isinstance(space.spaces[k], gymnasium.spaces.Box) for k in vectors):
            return None
        image_shape = tuple(int(n) for n in space.spaces[images[0]].shape)
        return ImageLayout(tuple(vectors), tuple(int(np.prod(space.spaces[k].shape)) for k in vectors), images[0],
                           image_shape)  # type: ignore[arg-type]

    @property
    def vector_dim(self) -> int:
        return sum(self.vector_sizes)

    @property
    def image_size(self) -> int:
        return math.prod(self.image_shape)

    @property
    def flat_dim(self) -> int:
        return self.vector_dim + self.image_size

    def flatten(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One Dict observation -> its (flat_dim,) float64 vector: vector sensors, then raw 0..255 pixels."""
        parts = [np.asarray(obs[key], dtype=np.float64).reshape(-1) for key in self.vector_keys]
        parts.append(np.asarray(obs[self.image_key], dtype=np.float64).reshape(-1))
        return np.concatenate(parts)


def conv_output_side(side: int) -> int:
    """The side of the encoder's last feature map for an input side (no padding)."""
    for kernel, stride in ((8, 4), (4, 2), (3, 1)):
        side = (side - kernel) // stride + 1
    return side


class ImageEncoder(nn.Module):
    """(B, flat_dim) flat observations -> (B, IMAGE_FEATURES + vector_dim): CNN features of the image (pixels
    scaled to [0, 1]) followed by the vector sensors as given (normalised by the collector, not here)."""

    def __init__(self, layout: ImageLayout) -> None:
        super().__init__()
        height, width, channels = layout.image_shape
        if min(height, width) < MIN_IMAGE_SIDE:
            raise ConfigError(f"image observations need at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels for the "
                              f"convolutional encoder, got {height}x{width}")
        self.layout = layout
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten())
        conv_out = 64 * conv_output_side(height) * conv_output_side(width)
        self.fc = nn.Sequential(nn.Linear(conv_out, IMAGE_FEATURES), nn.ReLU())
        for module in (*self.conv, *self.fc):
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(module.weight, gain=math.sqrt(2))
                nn.init.zeros_(module.bias)
        self.out_dim = IMAGE_FEATURES + layout.vector_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        v = self.layout.vector_dim
        height, width, channels = self.layout.image_shape
        pixels = obs[:, v:].reshape(-1, height, width, channels).permute(0, 3, 1, 2) / 255.0
        return torch.cat([self.fc(self.conv(pixels)), obs[:, :v]], dim=-1)
