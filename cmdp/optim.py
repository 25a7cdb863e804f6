"""How a solver's losses become parameter updates: one object, two implementations.

Solvers call `updater.step(actor_loss=..., critic_loss=...)` once per minibatch and
`updater.end_epoch()` once per epoch; they never hold an optimiser themselves. That is what lets the
same solver code train an MLP policy with a plain torch optimiser and a language model under DeepSpeed.

- `TorchUpdater`: one Adam over actor and critics (one backward per minibatch), gradient clipping per
  part, linear learning-rate decay. Actor and critics share no parameters, so a single optimiser and
  backward equals separate ones at half the per-step overhead.
- `DeepSpeedUpdater` (envs/text/deepspeed_updater.py): one DeepSpeed engine per part, each with its own
  backward and step, as ZeRO needs.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any, ContextManager, Protocol

import torch


def trainable_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters an update moves: those that require gradients (LoRA: the adapters only)."""
    return [p for p in module.parameters() if p.requires_grad]


class Updater(Protocol):
    """What a solver calls to change parameters. The trainer builds one (through the family) and passes it in."""

    def step(self, actor_loss: torch.Tensor | None = None, critic_loss: torch.Tensor | None = None) -> None: ...

    @property
    def actor_lr(self) -> float: ...

    @property
    def critic_lr(self) -> float: ...

    def end_epoch(self) -> None: ...

    def gathered(self, module: torch.nn.Module, write: bool = False) -> ContextManager[None]:
        """A context in which `module`'s full weights are present (ZeRO-3 partitions them; else a no-op)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def linear_decay(num_epochs: int, enabled: bool) -> Any:
    """The learning-rate factor per epoch: 1 -> 0 linearly over the run, or constant 1."""
    if not enabled:
        return lambda epoch: 1.0
    return lambda epoch: max(0.0, 1.0 - epoch / num_epochs)


class TorchUpdater:
    """Adam on the actor (`actor_lr`) and critics (`critic_lr`, coupled L2 `critic_l2`), clipped per part."""

    def __init__(self, actor: torch.nn.Module, critic: torch.nn.Module | None, cfg: Any, num_epochs: int) -> None:
        self.actor_params = trainable_parameters(actor)
        self.critic_params = trainable_parameters(critic) if critic is not None else []  # critic-free agents
        self.max_grad_norm = cfg.max_grad_norm
        # Coupled weight decay on the critics equals OmniSafe's loss term critic_l2 * sum(w^2) (gradient 2 * critic_l2 * w).
        self.optimizer = torch.optim.Adam([
            {"params": self.actor_params, "lr": cfg.actor_lr, "weight_decay": 0.0},
            {"params": self.critic_params, "lr": cfg.critic_lr, "weight_decay": 2 * cfg.critic_l2},
        ], foreach=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [
            linear_decay(num_epochs, cfg.lr_decay), linear_decay(num_epochs, cfg.lr_decay and cfg.critic_lr_decay)])

    def step(self, actor_loss: torch.Tensor | None = None, critic_loss: torch.Tensor | None = None) -> None:
        """One optimiser step on the given losses; a part whose loss is None keeps its parameters."""
        losses = [loss for loss in (actor_loss, critic_loss) if loss is not None]
        if not losses:
            return
        self.optimizer.zero_grad(set_to_none=True)
        (losses[0] if len(losses) == 1 else losses[0] + losses[1]).backward()
        # a non-finite gradient raises here instead of silently turning every weight into NaN
        if actor_loss is not None:
            torch.nn.utils.clip_grad_norm_(self.actor_params, self.max_grad_norm, foreach=True, error_if_nonfinite=True)
        if critic_loss is not None:
            torch.nn.utils.clip_grad_norm_(self.critic_params, self.max_grad_norm, foreach=True, error_if_nonfinite=True)
        self.optimizer.step()  # a part without gradients (None) is left alone by Adam, weight decay included

    @property
    def actor_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def critic_lr(self) -> float:
        return float(self.optimizer.param_groups[1]["lr"])

    def gathered(self, module: torch.nn.Module, write: bool = False) -> ContextManager[None]:
        return contextlib.nullcontext()

    @property
    def epochs_done(self) -> int:
        return int(self.scheduler.last_epoch)

    def end_epoch(self) -> None:
        """Advance the learning-rate schedule by one epoch."""
        with warnings.catch_warnings():
            # the schedule counts epochs, including an off-policy solver's warm-up epochs without any step,
            # after which torch warns that the scheduler stepped before the optimiser
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

