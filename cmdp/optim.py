"""How a solver's losses become parameter updates: one object, two implementations.

Solvers call `updater.step(actor_loss=..., critic_loss=...)` once per minibatch and
`updater.end_epoch()` once per epoch; they never hold an optimiser themselves. That is what lets the
same solver code train an MLP policy with a plain torch optimiser and a language model under DeepSpeed.

- `TorchUpdater`: Adam over actor and critics (one backward per minibatch), gradient clipping of the actor and
  of each critic on its own (`critic_clip`), linear learning-rate decay. Actor and critics share no parameters, so
  a single backward equals separate ones at half the per-step overhead. Each part's parameters live in one flat
  buffer (`FlatPart`), so clipping and Adam take a handful of kernels per part whatever its number of tensors,
  and every part's gradient norm is read in one sync.
- `DeepSpeedUpdater` (envs/text/deepspeed_updater.py): one DeepSpeed engine per part, each with its own
  backward and step, as ZeRO needs.
"""
from __future__ import annotations

import contextlib
import itertools
import math
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Protocol, cast

import torch

from cmdp.errors import DIVERGED_ADVICE, TrainingDiverged

if TYPE_CHECKING:
    from cmdp.fused import LossFn
    from cmdp.rollout import Minibatch

#: How the critics' gradients are clipped to `max_grad_norm` (docs/omnisafe-differences.md row 7):
#: "per_critic": each critic on its own, its L2 term included in the gradient that is clipped (OmniSafe's
#: PolicyGradient._update_reward_critic and _update_cost_critic; an off-policy agent's twin reward Q heads are one
#: critic, as in its DDPG._update_reward_critic);
#: "joint": all critics together as one vector, the L2 term added by Adam after the clipping (the only behaviour until
#: 2026-12-02; still the text family's default, and the off-policy family's until 2026-12-05).
CRITIC_CLIPS = ("per_critic", "joint")

#: Parameters clipped together: a list of tensors and, for each head stacked along their first dimension, the clip
#: segment it belongs to, numbered from 0 within the group. `(0,)`: the tensors are not stacked (one critic's, or a
#: part several critics share); `(0, 1, 2)`: an `EnsembleCritic`'s three heads, each clipped on its own; `(0, 0, 1)`:
#: its first two heads clipped together (an off-policy agent's twin reward Q heads), the third on its own.
ClipGroup = tuple[list[torch.nn.Parameter], tuple[int, ...]]


class PerCriticClipping(Protocol):
    """A critic module that can be clipped per critic: it names its clip groups (`critic_clip: per_critic`)."""

    def clip_groups(self) -> list[ClipGroup]: ...


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

    def fused(self, losses: "LossFn") -> Callable[["Minibatch"], dict[str, float]]:
        """`step` on `losses(mb)` as one compiled function per minibatch (`compile_update`, `cmdp.fused.FusedStep`);
        ConfigError where the updater has none."""
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


def flatten_parameters(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """Moves `params` into one new 1-D tensor, each becoming a view of its own slice (values unchanged), and returns
    that tensor, so an optimiser can move them all with a few kernels (the flat buffers of apex's and DeepSpeed's
    optimisers). In-place writes to a parameter (`load_state_dict`, `copy_`) keep it in the buffer; giving it new
    storage (`module.to`, `torch.nn.utils.vector_to_parameters`) takes it out, which `FlatPart.check_in_place`
    detects. The parameters must share one dtype and device."""
    if not params:
        return torch.zeros(0)
    kinds = {(p.dtype, p.device) for p in params}
    if len(kinds) > 1:
        raise ValueError(f"parameters updated together must share one dtype and device, got {sorted(map(str, kinds))}")
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    offset = 0
    for p in params:
        p.data = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


def clip_runs(params: list[torch.nn.Parameter], groups: list[ClipGroup]) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip segments of `params` flattened in order (`flatten_parameters`), as runs of consecutive elements:
    (lengths (R,), segment of each run (R,)). The segments are numbered group by group, each group's from where the
    previous one's end; a tensor of a group with H stacked heads is H runs, head h's in the segment the group gives
    it. Each of `params` must be in exactly one group; a group's tensors that are not among `params` (frozen ones)
    are skipped."""
    owner: dict[int, tuple[int, tuple[int, ...]]] = {}
    first = 0
    for members, heads in groups:
        if not heads or sorted(set(heads)) != list(range(max(heads) + 1)):
            raise ValueError(f"a clip group's head segments must number 0, 1, ... with none skipped, got {heads}")
        for p in members:
            if id(p) in owner:
                raise ValueError(f"a parameter of shape {tuple(p.shape)} is in two clip groups")
            owner[id(p)] = (first, heads)
        first += max(heads) + 1
    lengths, segments = [], []
    for p in params:
        if id(p) not in owner:
            raise ValueError(f"a parameter of shape {tuple(p.shape)} is in no clip group")
        start, heads = owner[id(p)]
        lengths += [p.numel() // len(heads)] * len(heads)
        segments += [start + h for h in heads]
    return torch.tensor(lengths), torch.tensor(segments)


def clip_coefficients(norms: torch.Tensor, max_norm: float) -> torch.Tensor:
    """torch's `clip_grad_norm_` factor for each gradient norm: max_norm / (norm + 1e-6), capped at 1 (exactly 1
    where the clip does not bind)."""
    return (max_norm / (norms + 1e-6)).clamp(max=1.0)


class FlatPart:
    """One part of a `TorchUpdater` (the actor, or the critics): its parameters in one flat buffer
    (`flatten_parameters`), its gradients in another, Adam's moments beside them, and its clip segments (`clip_runs`).

    Adam is torch.optim.Adam's (bias-corrected, coupled `weight_decay`, no amsgrad) on the whole buffer at once.
    Clipping is torch's `clip_grad_norm_` on each segment: the coefficient max_norm / (norm + 1e-6), capped at 1.
    A parameter the loss did not reach counts as having a zero gradient, as in DeepSpeed's flat optimisers (torch's
    Adam would skip it); none of our networks has a parameter its part's loss does not reach."""

    def __init__(self, params: list[torch.nn.Parameter], groups: list[ClipGroup], lr: float,
                 weight_decay: float) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.flat = flatten_parameters(params)
        self.storage = [p.data_ptr() for p in params]
        # the gradients live in one flat buffer too: each .grad is a view of its slice, which backward adds into
        self.grad = torch.zeros_like(self.flat)
        self.grad_views = [self.grad[start:start + p.numel()].view_as(p)
                           for p, start in zip(params, [0, *itertools.accumulate(p.numel() for p in params)])]
        for p, view in zip(params, self.grad_views):
            p.grad = view
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.steps = 0
        # one segment (the whole part): the norm of the flat gradient; several: a sum per run, then per segment
        several = len(groups) > 1 or max(groups[0][1]) > 0
        runs = clip_runs(params, groups) if several else None
        self.runs = None if runs is None else (runs[0].to(self.flat.device), runs[1].to(self.flat.device))
        self.num_segments = 1 if runs is None else int(runs[1].max()) + 1

    def check_in_place(self) -> None:
        """RuntimeError if a parameter was given new storage since the buffer was made (its steps would be lost)."""
        if [p.data_ptr() for p in self.params] != self.storage:
            raise RuntimeError("a parameter left its updater's flat buffer (module.to() or a new .data after the "
                               "updater was built); build the updater once the model is on its device and dtype")

    def zero_grad(self) -> None:
        self.grad.zero_()

    def gradient(self) -> torch.Tensor:
        """The flat gradient after a backward. A parameter whose .grad is no longer its view (`zero_grad` of a
        module sets it to None, or someone assigned one) gets it back, with that gradient copied in."""
        for p, view in zip(self.params, self.grad_views):
            if p.grad is None or p.grad.data_ptr() != view.data_ptr():
                if p.grad is not None:
                    view.copy_(p.grad)
                p.grad = view
        return self.grad

    def norms(self, grad: torch.Tensor) -> torch.Tensor:
        """(segments,) the L2 norm of the flat gradient `grad` over each clip segment."""
        if self.runs is None:
            return torch.linalg.vector_norm(grad).reshape(1)
        lengths, segment = self.runs
        per_run = torch.segment_reduce(grad * grad, "sum", lengths=lengths)
        return torch.zeros(self.num_segments, dtype=grad.dtype, device=grad.device).index_add_(
            0, segment, per_run).sqrt_()

    def clip_(self, grad: torch.Tensor, norms: torch.Tensor, max_norm: float) -> None:
        """Scales each segment of `grad` in place by its clip coefficient (`norms` from `norms`)."""
        coef = clip_coefficients(norms, max_norm)
        if self.runs is None:
            grad.mul_(coef)
        else:
            lengths, segment = self.runs
            grad.mul_(torch.repeat_interleave(coef[segment], lengths, output_size=grad.numel()))

    def adam_(self, grad: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
              eps: float = 1e-8) -> None:
        """One Adam step of the buffer along the flat gradient `grad` (which it may change: weight decay is added
        to it in place)."""
        self.steps += 1
        beta1, beta2 = betas
        if self.weight_decay:
            grad.add_(self.flat, alpha=self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = self.exp_avg_sq.sqrt().div_(math.sqrt(1 - beta2 ** self.steps)).add_(eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-lr / (1 - beta1 ** self.steps))

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["exp_avg"].shape != self.flat.shape:
            raise ValueError(f"optimiser state for {state['exp_avg'].numel()} parameters, "
                             f"this part has {self.flat.numel()}")
        self.steps = int(state["steps"])
        self.exp_avg.copy_(state["exp_avg"])
        self.exp_avg_sq.copy_(state["exp_avg_sq"])


def from_torch_adam(state: dict[str, Any], parts: dict[str, FlatPart]) -> dict[str, Any]:
    """A state of the `TorchUpdater` of version 0.1 (torch's Adam over the parts' parameters in order, one
    param_group per part, with a LambdaLR) in today's form, so its checkpoints resume (not bit-exactly: the flat
    Adam rounds differently)."""
    adam = state["optimizer"]["state"]
    index, converted = 0, {}
    for name, part in parts.items():
        moments: dict[str, list[torch.Tensor]] = {"exp_avg": [], "exp_avg_sq": []}
        steps = 0
        for p in part.params:
            saved = adam.get(index, {})
            index += 1
            for key, values in moments.items():
                values.append(saved[key].reshape(-1) if key in saved else torch.zeros_like(p).reshape(-1))
            steps = max(steps, int(saved.get("step", 0)))
        converted[name] = {"steps": steps, **{key: torch.cat(values) if values else torch.zeros(0)
                                              for key, values in moments.items()}}
    return {**converted, "epochs_done": int(state["scheduler"]["last_epoch"])}


class TorchUpdater:
    """Adam on the actor (`actor_lr`) and critics (`critic_lr`, L2 penalty `critic_l2`), each clipped to
    `max_grad_norm`: the actor as one vector, the critics as `critic_clip` says (`CRITIC_CLIPS`).

    With `critic_clip` "per_critic" the critic module must name its clip groups (`PerCriticClipping`).

    A step is built for small minibatches (OmniSafe's 64 samples), where the time goes to per-kernel overhead,
    not to arithmetic. Each part's parameters live in one flat buffer (`FlatPart`), so after the one backward a
    part's gradient is gathered, clipped and stepped by Adam in a handful of kernels whatever its number of tensors,
    and every part's norms are read in one sync, then checked for finiteness (and counted for the clip log) in
    Python. Build it once the model has its final device and dtype: it re-homes the parameters
    (`flatten_parameters`)."""

    def __init__(self, actor: torch.nn.Module, critic: torch.nn.Module | None, cfg: Any, num_epochs: int) -> None:
        self.actor, self.critic = actor, critic
        actor_params = trainable_parameters(actor)
        critic_params = trainable_parameters(critic) if critic is not None else []  # critic-free agents
        self.max_grad_norm = cfg.max_grad_norm
        self.critic_l2 = cfg.critic_l2
        self.per_critic = critic is not None and cfg.critic_clip == "per_critic"
        # the parameters clipped together, per part: the actor as one vector; the critics jointly, or per critic
        self.critic_groups: list[ClipGroup] = (cast(PerCriticClipping, critic).clip_groups() if self.per_critic
                                               else [(critic_params, (0,))])
        # The L2 term critic_l2 * sum(w^2) has the gradient 2 * critic_l2 * w. Per critic it is added before the
        # clipping, as OmniSafe's loss term is; jointly it is Adam's coupled weight decay, added after.
        critic_decay = 0.0 if self.per_critic else 2 * cfg.critic_l2
        self.parts = {"actor": FlatPart(actor_params, [(actor_params, (0,))], cfg.actor_lr, 0.0),
                      "critic": FlatPart(critic_params, self.critic_groups, cfg.critic_lr, critic_decay)}
        self.schedules = {"actor": linear_decay(num_epochs, cfg.lr_decay),
                          "critic": linear_decay(num_epochs, cfg.lr_decay and cfg.critic_lr_decay)}
        # max_grad_norm as the parameters' dtype holds it: a tensor compares with a Python float after rounding it to
        # its own dtype, so the norms (read as Python floats) are compared with this to decide as the tensors would
        self.clip_limit = torch.tensor(cfg.max_grad_norm, dtype=self.parts["actor"].flat.dtype).item()
        self.epochs_done = 0
        # per part this epoch: [steps, steps on which the clip bound]
        self.clip_counts: dict[str, list[int]] = {}

    def lr(self, part: str) -> float:
        """The learning rate of `part` ("actor" or "critic") this epoch."""
        return self.parts[part].lr * self.schedules[part](self.epochs_done)

    def step(self, actor_loss: torch.Tensor | None = None, critic_loss: torch.Tensor | None = None) -> None:
        """One optimiser step on the given losses; a part whose loss is None keeps its parameters.

        Raises `TrainingDiverged` on a non-finite gradient, before any parameter moves (instead of silently turning
        every weight into NaN)."""
        names = [name for name, loss in (("actor", actor_loss), ("critic", critic_loss)) if loss is not None]
        if not names:
            return
        parts = [self.parts[name] for name in names]
        for part in parts:
            part.check_in_place()
        for part in self.parts.values():  # every gradient, as a fresh backward would find them
            part.zero_grad()
        losses = [loss for loss in (actor_loss, critic_loss) if loss is not None]
        (losses[0] if len(losses) == 1 else losses[0] + losses[1]).backward()
        grads = [part.gradient() for part in parts]
        if names[-1] == "critic" and self.per_critic and self.critic_l2 > 0:
            grads[-1].add_(self.parts["critic"].flat, alpha=2 * self.critic_l2)
        norms = [part.norms(grad) for part, grad in zip(parts, grads)]
        # one sync, the norms themselves: whether each is finite and whether a part's clip binds are then decided in
        # Python, which costs less than the ten small operators that decide them on tensors (3% of a step at 64)
        every = torch.cat(norms).tolist()
        sizes = [norm.numel() for norm in norms]
        per_part = [every[end - size:end] for size, end in zip(sizes, itertools.accumulate(sizes))]
        if not all(map(math.isfinite, every)):
            bad = ", ".join(f"the {name}'s {values}" for name, values in zip(names, per_part)
                            if not all(map(math.isfinite, values)))
            raise TrainingDiverged(f"training diverged: a gradient norm is not finite ({bad}), so the step cannot be "
                                   f"clipped. {DIVERGED_ADVICE}")
        binds = [max(values) > self.clip_limit for values in per_part]
        for name, part, grad, norm, clipped in zip(names, parts, grads, norms, binds):
            if clipped:  # else every coefficient is 1
                part.clip_(grad, norm, self.max_grad_norm)
            part.adam_(grad, self.lr(name))
            self.count_step(name, clipped)

    def count_step(self, part: str, clipped: bool) -> None:
        """Count one step of `part` for this epoch's `grad_clip_*` share, and whether its clip bound."""
        counts = self.clip_counts.setdefault(part, [0, 0])
        counts[0] += 1
        counts[1] += int(clipped)

    @property
    def actor_lr(self) -> float:
        return self.lr("actor")

    @property
    def critic_lr(self) -> float:
        return self.lr("critic")

    def gathered(self, module: torch.nn.Module, write: bool = False) -> ContextManager[None]:
        return contextlib.nullcontext()

    def fused(self, losses: "LossFn") -> Callable[["Minibatch"], dict[str, float]]:
        from cmdp.fused import FusedStep  # torch.compile's machinery loads only for runs that ask for it

        return FusedStep(self, self.actor, self.critic, losses)

    def end_epoch(self) -> dict[str, float]:
        """Advance the learning-rate schedules by one epoch. Returns, for each part stepped this epoch,
        `grad_clip_actor` / `grad_clip_critic`: the share of its steps on which the clip bound (the gradient's
        norm, or with `critic_clip: per_critic` any critic's, exceeded `max_grad_norm`)."""
        self.epochs_done += 1
        shares = {f"grad_clip_{part}": clipped / steps for part, (steps, clipped) in self.clip_counts.items()}
        self.clip_counts = {}
        return shares

    def state_dict(self) -> dict[str, Any]:
        return {**{name: part.state_dict() for name, part in self.parts.items()}, "epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "optimizer" in state:  # torch's Adam, saved by version 0.1 (`from_torch_adam`)
            state = from_torch_adam(state, self.parts)
        for name, part in self.parts.items():
            part.load_state_dict(state[name])
        self.epochs_done = int(state["epochs_done"])
