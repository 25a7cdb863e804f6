"""The replay buffer of off-policy solvers: transitions with the reward and K costs, stored as tensors.

`terminated` (a terminal state: no bootstrap) and `truncated` (a time limit or an epoch end: bootstrap from
`next_obs`) are kept apart. The buffer is circular; its state (contents, write position, size) is a dict of
tensors and ints, so a checkpoint holds it and `torch.load(weights_only=True)` reads it back.
"""
from __future__ import annotations

from dataclasses import dataclass
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


class ReplayBuffer:
    """A fixed-capacity circular store of transitions; `sample` draws uniformly with a torch Generator."""

    def __init__(self, capacity: int, obs_dim: int, action_shape: tuple[int, ...], num_costs: int,
                 discrete_actions: bool, device: torch.device | str = "cpu") -> None:
        self.capacity = int(capacity)
        self.device = torch.device(device)
        act_dtype = torch.int64 if discrete_actions else torch.float32
        self.data = {
            "obs": torch.zeros((self.capacity, obs_dim), dtype=torch.float32, device=self.device),
            "actions": torch.zeros((self.capacity, *action_shape), dtype=act_dtype, device=self.device),
            "rewards": torch.zeros(self.capacity, dtype=torch.float32, device=self.device),
            "costs": torch.zeros((self.capacity, num_costs), dtype=torch.float32, device=self.device),
            "next_obs": torch.zeros((self.capacity, obs_dim), dtype=torch.float32, device=self.device),
            "terminated": torch.zeros(self.capacity, dtype=torch.bool, device=self.device),
            "truncated": torch.zeros(self.capacity, dtype=torch.bool, device=self.device),
        }
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
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"saved replay buffer holds {size} transitions, more than the capacity {self.capacity}")
        for key, value in state["data"].items():
            self.data[key][:size] = value.to(self.device)
        self.position, self.size = int(state["position"]), size
