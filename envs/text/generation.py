"""Generation backends: how a text run samples its answers.

Generation is where RLHF spends most of its time (OpenRLHF reports about 80% of a PPO step), and it is the part a
faster engine replaces first. Whatever samples answers calls a backend's `generate(prompts, seed)`: the training
collector, and `answer_and_score` (`cmdp eval`, `cmdp arena`, `cmdp text-demo`). At the start of every collection
the collector calls `sync()`, where a backend that holds its own copy of the policy's weights (an inference
engine) would load the updated ones. `env_kwargs.generation_backend` names the backend:

- `hf` (default): Hugging Face `generate` on the policy model itself, batched, with the KV cache (`env.generate`).
  It reads the live weights, so `sync` has nothing to do.

A vLLM backend needs a GPU and is not built yet; a backend ships only once a test or a benchmark has run it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch


class GenerationBackend(ABC):
    """Samples one response per prompt with the current policy; the same seed and weights give the same answers."""

    def sync(self) -> None:
        """Called before each collection: take up the policy's current weights (no-op for in-place backends)."""

    @abstractmethod
    def generate(self, prompts: list[str], seed: int, greedy: bool = False) -> Any:
        """The `Responses` (cmdp.envs.text.env) to `prompts`, sampled (or greedy) with `seed`."""


class HFGenerate(GenerationBackend):
    """Hugging Face `generate` on the policy model itself (the live weights: nothing to sync)."""

    def __init__(self, model: Any, tokenizer: Any, tcfg: Any, device: torch.device,
                 autocast: torch.dtype | None = None) -> None:
        self.model, self.tokenizer, self.tcfg, self.device, self.autocast = model, tokenizer, tcfg, device, autocast

    def generate(self, prompts: list[str], seed: int, greedy: bool = False) -> Any:
        from cmdp.envs.text.env import generate

        return generate(self.model, self.tokenizer, prompts, self.tcfg, self.device, seed=seed, greedy=greedy,
                        autocast=self.autocast)


#: env_kwargs.generation_backend -> the class; each is built as cls(model, tokenizer, tcfg, device, autocast)
GENERATION_BACKENDS: dict[str, Callable[..., GenerationBackend]] = {"hf": HFGenerate}
