"""How a solver's losses become parameter updates: one object, two implementations.

Solvers call `updater.step(actor_loss=..., critic_loss=...)` once per minibatch and
`updater.end_epoch()` once per epoch; they never hold an optimiser themselves. That is what lets the
same solver code train an MLP policy with a plain torch optimiser and a language model under DeepSpeed.

- `TorchUpdater`: one fused Adam over actor and critics (one backward per minibatch), gradient clipping of the
  actor and of each critic on its own (`critic_clip`), linear learning-rate decay. Actor and critics share no
  parameters, so a single optimiser and backward equals separate ones at half the per-step overhead, and every
  part's gradient norm is checked for finiteness in one sync (`clip_groups`).
- `DeepSpeedUpdater` (envs/text/deepspeed_updater.py): one DeepSpeed engine per part, each with its own
  backward and step, as ZeRO needs.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any, ContextManager, Protocol, cast

import torch

#: How the critics' gradients are clipped to `max_grad_norm` (docs/omnisafe-differences.md row 7):
#: "per_critic": each critic on its own, its L2 term included in the gradient that is clipped (OmniSafe's
#: PolicyGradient._update_reward_critic and _update_cost_critic);
#: "joint": all critics together as one vector, the L2 term added by Adam after the clipping (the only behaviour until
#: 2026-12-02; still the text and off-policy families' default).
CRITIC_CLIPS = ("per_critic", "joint")

#: Parameters clipped together: a list of tensors and how many critics are stacked along their first dimension
#: (1: the tensors are one critic's, or a part several critics share; E: an `EnsembleCritic`'s E heads).
ClipGroup = tuple[list[torch.nn.Parameter], int]


class PerCriticClipping(Protocol):
    """A critic module that can be clipped per critic: it names its clip groups (`critic_clip: per_critic`)."""

    def clip_groups(self) -> list[ClipGroup]: ...


def clip_groups(groups: list[ClipGroup], max_norm: float) -> list[torch.Tensor]:
    """Clip each group's gradient (each head's, for stacked critics) to `max_norm` on its own, in place, with
    clip_grad_norm_'s coefficient max_norm / (norm + 1e-6) capped at 1. Returns the norms before clipping, one
    (heads,) tensor per group: for one critic (heads 1) torch's clip_grad_norm_'s (the norm of the per-tensor norms),
    for E stacked heads each head's norm over its slice of every tensor; empty for a group without gradients.

    One device sync for all groups together: raises RuntimeError on a non-finite norm, as
    `clip_grad_norm_(error_if_nonfinite=True)` does, before any gradient is scaled."""
    grads = [[p.grad for p in params if p.grad is not None] for params, _ in groups]
    norms = []
    for (params, heads), group in zip(groups, grads):
        if not group:
            norms.append(torch.zeros(0, device=params[0].device if params else None))
        elif heads == 1:
            norms.append(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(group)), 2).reshape(1))
        else:  # one (heads, n) matrix of every tensor's slices: two kernels, whatever the number of tensors
            norms.append(torch.linalg.vector_norm(torch.cat([g.reshape(heads, -1) for g in group], 1), 2, dim=1))
    every = torch.cat(norms)
    if not bool(torch.isfinite(every).all()):
        raise RuntimeError(f"a gradient norm is non-finite ({every.tolist()}), so it cannot be clipped")
    for (_, heads), group, group_norm in zip(groups, grads, norms):
        if not group:
            continue
        coef = (max_norm / (group_norm + 1e-6)).clamp(max=1.0)
        if heads == 1:
            torch._foreach_mul_(group, coef[0])
        else:
            torch._foreach_mul_(group, [coef.reshape(heads, *([1] * (g.dim() - 1))) for g in group])
    return norms


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

    def end_epoch(self) -> dict[str, float]:
        """Advance the learning-rate schedules; returns scalars to log for the epoch (possibly none)."""
        ...

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
    """Adam on the actor (`actor_lr`) and critics (`critic_lr`, L2 penalty `critic_l2`), each clipped to
    `max_grad_norm`: the actor as one vector, the critics as `critic_clip` says (`CRITIC_CLIPS`).

    With `critic_clip` "per_critic" the critic module must name its clip groups (`PerCriticClipping`).

    A step is built for small minibatches (OmniSafe's 64 samples), where the time goes to per-kernel overhead,
    not to arithmetic: one backward, the actor's and the critics' norms checked for finiteness in one sync,
    and torch's fused Adam (one kernel per parameter group where the for-each Adam launches about ten)."""

    def __init__(self, actor: torch.nn.Module, critic: torch.nn.Module | None, cfg: Any, num_epochs: int) -> None:
        self.actor_params = trainable_parameters(actor)
        self.critic_params = trainable_parameters(critic) if critic is not None else []  # critic-free agents
        self.max_grad_norm = cfg.max_grad_norm
        self.critic_l2 = cfg.critic_l2
        self.per_critic = critic is not None and cfg.critic_clip == "per_critic"
        # the parameters clipped together, per part: the actor as one vector; the critics jointly, or per critic
        self.actor_groups: list[ClipGroup] = [(self.actor_params, 1)]
        self.critic_groups: list[ClipGroup] = (cast(PerCriticClipping, critic).clip_groups() if self.per_critic
                                               else [(self.critic_params, 1)])
        # The L2 term critic_l2 * sum(w^2) has the gradient 2 * critic_l2 * w. Per critic it is added before the
        # clipping, as OmniSafe's loss term is; jointly it is Adam's coupled weight decay, added after.
        critic_decay = 0.0 if self.per_critic else 2 * cfg.critic_l2
        self.optimizer = torch.optim.Adam([
            {"params": self.actor_params, "lr": cfg.actor_lr, "weight_decay": 0.0},
            {"params": self.critic_params, "lr": cfg.critic_lr, "weight_decay": critic_decay},
        ], fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [
            linear_decay(num_epochs, cfg.lr_decay), linear_decay(num_epochs, cfg.lr_decay and cfg.critic_lr_decay)])
        # per part this epoch: [steps, steps whose gradient norm exceeded max_grad_norm] (a tensor: no sync per step)
        self.clip_counts: dict[str, list[Any]] = {}

    def step(self, actor_loss: torch.Tensor | None = None, critic_loss: torch.Tensor | None = None) -> None:
        """One optimiser step on the given losses; a part whose loss is None keeps its parameters.

        Raises RuntimeError on a non-finite gradient, before any parameter moves (instead of silently turning
        every weight into NaN)."""
        losses = [loss for loss in (actor_loss, critic_loss) if loss is not None]
        if not losses:
            return
        self.optimizer.zero_grad(set_to_none=True)
        (losses[0] if len(losses) == 1 else losses[0] + losses[1]).backward()
        parts: list[tuple[str, list[ClipGroup]]] = []
        if actor_loss is not None:
            parts.append(("actor", self.actor_groups))
        if critic_loss is not None:
            if self.per_critic and self.critic_l2 > 0:
                stepped = [p for p in self.critic_params if p.grad is not None]
                if stepped:
                    torch._foreach_add_([p.grad for p in stepped], [p.detach() for p in stepped],
                                        alpha=2 * self.critic_l2)
            parts.append(("critic", self.critic_groups))
        norms = clip_groups([group for _, groups in parts for group in groups], self.max_grad_norm)
        start = 0
        for part, groups in parts:
            self._count(part, torch.cat(norms[start:start + len(groups)]))
            start += len(groups)
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

    def _count(self, part: str, norms: torch.Tensor) -> None:
        """One step of `part`, whose gradient norms (one, or one per critic) were `norms` before clipping."""
        counts = self.clip_counts.setdefault(part, [0, 0])
        counts[0] += 1
        counts[1] = counts[1] + (norms > self.max_grad_norm).any()

    def end_epoch(self) -> dict[str, float]:
        """Advance the learning-rate schedule by one epoch. Returns, for each part stepped this epoch,
        `grad_clip_actor` / `grad_clip_critic`: the share of its steps on which the clip bound (the gradient's
        norm, or with `critic_clip: per_critic` any critic's, exceeded `max_grad_norm`)."""
        with warnings.catch_warnings():
            # the schedule counts epochs, including an off-policy solver's warm-up epochs without any step,
            # after which torch warns that the scheduler stepped before the optimiser
            warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
            self.scheduler.step()
        shares = {f"grad_clip_{part}": float(clipped) / steps for part, (steps, clipped) in self.clip_counts.items()}
        self.clip_counts = {}
        return shares

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

