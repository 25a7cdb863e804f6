"""The replay buffer of off-policy solvers: transitions with the reward and K costs, stored as tensors.

`terminated` (a terminal state: no bootstrap) and `truncated` (a time limit or an epoch end: bootstrap from
`next_obs`) are kept apart. The buffer is circular; its state (contents, write position, size) is a dict of
tensors and ints, so a checkpoint holds it and `torch.load(weights_only=True)` reads it back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cmdp.family import Transitions


@dataclass
class ReplaySample:
    """A minibatch drawn from the buffer; (B, ...) tensors."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor  # (B,)
    costs: torch.Tensor  # (B, K)
    next_obs: torch.Tensor
    terminated: torch.Tensor  # (B,) float 0/1: 1 where the value after the step is 0 (no bootstrap)


def row_layout(obs_dim: int, action_shape: tuple[int, ...], num_costs: int,
               discrete_actions: bool) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The shape (after the row index) and dtype of each field of one stored transition."""
    return {"obs": ((obs_dim,), torch.float32),
            "actions": (tuple(action_shape), torch.int64 if discrete_actions else torch.float32),
            "rewards": ((), torch.float32), "costs": ((num_costs,), torch.float32),
            "next_obs": ((obs_dim,), torch.float32), "terminated": ((), torch.bool), "truncated": ((), torch.bool)}


def row_bytes(layout: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> int:
    """Bytes one transition of `layout` takes in the buffer."""
    return sum(math.prod(shape) * torch.empty((), dtype=dtype).element_size() for shape, dtype in layout.values())


def available_memory(meminfo: str | Path = "/proc/meminfo", cgroup: str | Path = "/sys/fs/cgroup") -> int | None:
    """Bytes of memory this process can still take without swapping or being killed: the system's MemAvailable
    (`meminfo`), or less where a container's memory limit leaves less (`cgroup`: the cgroup v2 files `memory.max`
    and `memory.current`, or v1's `memory/memory.limit_in_bytes` and `memory/memory.usage_in_bytes`); None where
    neither is known."""
    known = [room for room in (_mem_available(Path(meminfo)), _cgroup_room(Path(cgroup))) if room is not None]
    return min(known) if known else None


def _mem_available(meminfo: Path) -> int | None:
    try:
        with open(meminfo, encoding="ascii") as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


#: a cgroup v1 limit at or above this is "no limit" (the kernel writes the largest page-aligned 64-bit number)
_NO_V1_LIMIT = 2 ** 62


def _cgroup_room(root: Path) -> int | None:
    """The memory limit of this process's container minus what it uses now; None without a limit."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (root / limit_file).read_text().strip()
            usage = int((root / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= _NO_V1_LIMIT:
            return None
        return max(0, int(limit) - usage)
    return None


class ReplayBuffer:
    """A fixed-capacity circular store of transitions; `sample` draws uniformly with a torch Generator.

    Every row is allocated and zeroed here, at once: a buffer larger than the machine's memory ends in an allocator's
    traceback or the system's out-of-memory killer, so `cmdp.schedules.OffPolicyLoop` checks its size first."""

    def __init__(self, capacity: int, obs_dim: int, action_shape: tuple[int, ...], num_costs: int,
                 discrete_actions: bool, device: torch.device | str = "cpu") -> None:
        self.capacity = int(capacity)
        self.device = torch.device(device)
        layout = row_layout(obs_dim, action_shape, num_costs, discrete_actions)
        self.data = {key: torch.zeros((self.capacity, *shape), dtype=dtype, device=self.device)
                     for key, (shape, dtype) in layout.items()}
        self.position = 0  # next row to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, transitions: Transitions) -> None:
        """Append B transitions, overwriting the oldest once full."""
        rows = {"obs": transitions.obs, "actions": transitions.actions, "rewards": transitions.rewards,
                "costs": transitions.costs, "next_obs": transitions.next_obs,
                "terminated": transitions.terminated, "truncated": transitions.truncated}
        count = int(transitions.rewards.shape[0])
        index = (self.position + torch.arange(count)) % self.capacity
        for key, value in rows.items():
            self.data[key][index.to(self.device)] = value.to(self.device, self.data[key].dtype)
        self.position = (self.position + count) % self.capacity
        self.size = min(self.capacity, self.size + count)

    def sample(self, batch_size: int, generator: torch.Generator) -> ReplaySample:
        """`batch_size` transitions drawn uniformly (with replacement) from what is stored."""
        if self.size == 0:
            raise RuntimeError("cannot sample an empty replay buffer")
        idx = torch.randint(self.size, (batch_size,), generator=generator).to(self.device)
        d = self.data
        return ReplaySample(d["obs"][idx], d["actions"][idx], d["rewards"][idx], d["costs"][idx],
                            d["next_obs"][idx], d["terminated"][idx].float())

    def state_dict(self) -> dict[str, Any]:
        """The stored rows only (not the unused capacity), with the write position."""
        return {"position": self.position, "size": self.size,
                "data": {k: v[:self.size].cpu().clone() for k, v in self.data.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`'s rows and write position, into a buffer of the same capacity or a larger one (a run
        trained longer: its capacity, the smaller of replay_size and total_steps, grows with total_steps)."""
        size, position = int(state["size"]), int(state["position"])
        if size > self.capacity:
            raise ValueError(f"saved replay buffer holds {size} transitions, more than the capacity {self.capacity}")
        data = state["data"]
        if position < size < self.capacity:
            # it had wrapped round, full at a capacity of `size` with its oldest row at `position`: here its rows go
            # oldest first and the next one after them, where otherwise the next would overwrite the oldest while
            # rows never written, zeros, were counted as stored and sampled
            data = {key: torch.roll(value, -position, dims=0) for key, value in data.items()}
            position = size
        for key, value in data.items():
            self.data[key][:size] = value.to(self.device)
        self.position, self.size = position % self.capacity, size
