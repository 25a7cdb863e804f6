"""Running normalisers for observations and rewards/costs, saved and restored with checkpoints.

Statistics are float64 numpy arrays updated with the parallel (Chan et al.) mean/variance formula,
so the result does not depend on how the data was split into batches beyond rounding.
"""
from __future__ import annotations

from typing import Any

import numpy as np


class RunningMeanStd:
    """Mean and variance of everything seen so far, per feature."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = 0.0

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch (B, *shape) into the statistics."""
        batch = np.asarray(batch, dtype=np.float64)
        n = batch.shape[0]
        if n == 0:
            return
        if n == 1 and self.count:
            self._update_one(batch[0])
            return
        # sum-based moments: ndarray.mean/var cost ~10 us of Python each, and this runs every env step
        b_mean = batch.sum(0) / n
        centered = batch - b_mean
        b_var = (centered * centered).sum(0) / n
        if self.count == 0:
            self.mean, self.var, self.count = b_mean, b_var, float(n)
            return
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + b_var * n + delta * delta * self.count * n / total
        self.var = m2 / total
        self.count = total

    def _update_one(self, x: np.ndarray) -> None:
        """`update` of one row (an environment step of one copy): the same arithmetic with the batch's mean x and
        variance 0 folded in (`b_var * n` is +0, `* n` is 1), bit for bit for finite rows, in 8 array
        operations instead of 14."""
        total = self.count + 1
        delta = x - self.mean
        self.mean = self.mean + delta / total
        self.var = (self.var * self.count + delta * delta * self.count / total) / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = np.array(state["mean"], dtype=np.float64)
        self.var = np.array(state["var"], dtype=np.float64)
        self.count = float(state["count"])


class ObsNormalizer:
    """(obs - mean) / max(std, min_std) clipped to [-clip, clip]; `update=True` first folds the batch in.

    Defaults are OmniSafe's (omnisafe/common/normalizer.py, via its ObsNormalize wrapper): clip 5, std floored
    at 1e-2, so a feature that has barely varied (an absent object's lidar) is not blown up to +-clip."""

    def __init__(self, shape: tuple[int, ...], clip: float = 5.0, min_std: float = 1e-2) -> None:
        self.stats = RunningMeanStd(shape)
        self.clip, self.min_std = clip, min_std

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        if update:
            self.stats.update(obs)
        if self.stats.count == 0:
            return np.asarray(obs, dtype=np.float64)
        x = (obs - self.stats.mean) / np.maximum(self.stats.std, self.min_std)
        return np.minimum(np.maximum(x, -self.clip), self.clip)  # np.clip is ~4x slower on small arrays

    def state_dict(self) -> dict[str, Any]:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state)


class PartialObsNormalizer(ObsNormalizer):
    """`ObsNormalizer` over the first `size` features of each observation; the rest passes through unchanged.

    Image observations (`cmdp.vision`) lay out the vector sensors first and the pixels after them: the sensors are
    normalised here, the pixels are only scaled to [0, 1], by the encoder."""

    def __init__(self, size: int, clip: float = 5.0, min_std: float = 1e-2) -> None:
        super().__init__((size,), clip, min_std)
        self.size = size

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        out = np.array(obs, dtype=np.float64)  # a copy: the caller's rows stay raw
        out[:, :self.size] = super().__call__(out[:, :self.size], update)
        return out


class StepStandardizer:
    """OmniSafe's per-step normaliser (omnisafe/common/normalizer.py, as its CostNormalize wrapper uses it): each
    batch (N, *shape), one environment step of N copies, first joins the running mean and sample variance
    (n - 1) of everything seen, then comes out as (x - mean) / max(std, min_std), clipped to [-clip, clip].
    While a single value has been seen it passes through unchanged.

    Centred as well as scaled: a binary cost that the policy incurs on a share p of its steps is stored as
    (1 - p) / s on those steps and -p / s on the others, s = sqrt(p (1 - p)), so the gap between a costly step
    and a free one is 1 / s, several times 1 when p is near 0 or 1 (clipped at `clip` either side)."""

    def __init__(self, shape: tuple[int, ...], clip: float = 5.0, min_std: float = 1e-2) -> None:
        self.stats = RunningMeanStd(shape)  # the same parallel update as OmniSafe's _push; population variance
        self.clip, self.min_std = clip, min_std

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float64)
        self.stats.update(batch)
        count = self.stats.count
        if count <= 1:
            return batch
        std = np.maximum(np.sqrt(self.stats.var * count / (count - 1)), self.min_std)  # the sample std (n - 1)
        return np.minimum(np.maximum((batch - self.stats.mean) / std, -self.clip), self.clip)

    def state_dict(self) -> dict[str, Any]:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state)


class ReturnScaler:
    """Scales per-step signals (reward or one cost each, shape (N, E)) by the std of their discounted return.

    This is the usual PPO reward normalisation: it keeps the value targets of order one without
    shifting the signal (a shift would change the optimal policy). The multiplier never sees scaled
    costs: it works on the raw episode costs the environment reports.
    """

    def __init__(self, num_envs: int, num_streams: int, gamma: float, eps: float = 1e-8) -> None:
        self.stats = RunningMeanStd((num_streams,))
        self.returns = np.zeros((num_envs, num_streams))
        self.gamma, self.eps = gamma, eps

    def __call__(self, signal: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + signal
        self.stats.update(self.returns)
        self.returns[done] = 0.0
        return signal / (self.stats.std + self.eps)

    def state_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.state_dict(), "returns": self.returns.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state["stats"])
        self.returns = np.array(state["returns"], dtype=np.float64)
