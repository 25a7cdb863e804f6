"""One minibatch step compiled as one function: the losses, their gradients, the clipping and Adam (`compile_update`).

At OmniSafe's minibatch of 64 samples an eager step of the PPO family is bound by per-kernel overhead, not by
arithmetic: some 40 autograd nodes of small kernels, then the updater's clip and Adam (about 0.74 ms on a 2-core
AMD EPYC for ppo_lag on SafetyHopperVelocity-v1, of which the matrix products are about 0.15 ms). `FusedStep`
writes the whole step as a pure function of the flat parameter buffers of `cmdp.optim.FlatPart` and the minibatch
(gradients from `torch.func.grad_and_value` through `torch.func.functional_call`, so no autograd engine runs), and
hands it to `torch.compile`, which fuses the element-wise work into a few C++ loops around the matrix products.

What it computes is `TorchUpdater.step` on the solver's losses: the actor clipped as one vector, the critics as
`critic_clip` says (with the L2 term inside the clipped gradient per critic, as Adam's weight decay jointly), Adam
with bias correction at each part's learning rate. It is not bit-identical to the eager step (the compiler fuses and
reorders floating-point work; tests/test_fused.py bounds the difference), but it is deterministic: a run, and a run
resumed from its checkpoint, repeat exactly.

What it costs: torch.compile needs a C++ compiler at run time and compiles once per process and minibatch shape (a
pass at 64 over 20,000 samples has two: 64 and the last 32), 19 s for those two on a 2-core AMD EPYC the first time
(benchmarks/README.md, "Update speed"); inductor's cache on disk makes later processes faster. The solver's losses
must trace as one graph (no Python branch on a tensor's value, no Python number that changes between steps): every
on-policy control solver's do, CUP's projection too (tests/test_fused.py); others are refused in one line.
Measured and tested on CPU only; on a GPU torch.compile would generate Triton kernels instead, untested here.
"""
from __future__ import annotations

import math
import types
from typing import Any, Callable, Mapping

import torch
import torch._dynamo.exc
import torch._inductor.exc
from torch import nn

from cmdp.config import ConfigError
from cmdp.errors import DIVERGED_ADVICE, TrainingDiverged
from cmdp.optim import TorchUpdater, clip_coefficients
from cmdp.rollout import Minibatch

#: A solver's losses on one minibatch: (actor loss or None, critics' loss or None, scalars to log with the actor's).
LossFn = Callable[[Minibatch], tuple[torch.Tensor | None, torch.Tensor | None, Mapping[str, Any]]]

#: Each part and the key its loss is logged under (a part is stepped when its loss is present).
PART_LOSSES = (("actor", "loss_pi"), ("critic", "loss_v"))
BETAS = (0.9, 0.999)  # torch.optim.Adam's, as `FlatPart.adam_`
EPS = 1e-8


class _Losses(nn.Module):
    """The root `functional_call` swaps parameters under: the actor and the critic the losses read."""

    def __init__(self, actor: nn.Module, critic: nn.Module | None, losses: LossFn) -> None:
        super().__init__()
        self.actor, self.critic = actor, critic
        self.losses = losses

    def forward(self, mb: Minibatch) -> tuple[torch.Tensor | None, torch.Tensor | None, Mapping[str, Any]]:
        return self.losses(mb)


def _adam(flat: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
          lr: torch.Tensor, step: torch.Tensor, ok: torch.Tensor) -> None:
    """`FlatPart.adam_` (torch's Adam) with the learning rate and the step number as tensors, so that they change
    without a recompilation; nothing moves unless `ok` (every loss and gradient norm finite)."""
    beta1, beta2 = BETAS
    new_avg = exp_avg.lerp(grad, 1 - beta1)
    new_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
    denom = new_avg_sq.sqrt() / torch.sqrt(1 - beta2 ** step) + EPS
    new_flat = flat - (lr / (1 - beta1 ** step)) * new_avg / denom
    flat.copy_(torch.where(ok, new_flat, flat))
    exp_avg.copy_(torch.where(ok, new_avg, exp_avg))
    exp_avg_sq.copy_(torch.where(ok, new_avg_sq, exp_avg_sq))


def check_compiler() -> None:
    """ConfigError, before anything runs, when torch.compile finds no C++ compiler to build the step with."""
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()  # inductor's own search: $CXX, else g++
    except torch._inductor.exc.InvalidCxxCompiler as error:
        reason = str(error).strip().splitlines()[0]
        raise ConfigError(f"compile_update=true needs a C++ compiler at run time ({reason}); install one (g++) "
                          "or set compile_update=false") from None


def _own_code(method: Any) -> Any:
    """`method` bound to a copy of its function with a code object of its own. Dynamo keeps its compiled graphs per
    code object, at most 8 (`torch._dynamo.config.recompile_limit`): every `FusedStep` guards on its own solver and
    networks, so the trainers of one process (a local benchmark grid, a test session) would otherwise share one
    code object and stop compiling at the ninth. With its own, a step's graphs also go when the step does."""
    fn = method.__func__
    own = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    return types.MethodType(own, method.__self__)


class FusedStep:
    """`TorchUpdater.step` on `losses(mb)`, compiled as one function (see the module docstring).

    Built by `TorchUpdater.fused`; the updater's parts, their Adam moments and step counts, its learning-rate
    schedules and clip counts are the ones it moves, so the eager and the fused step can take turns and a
    checkpoint holds the same state. Calling it returns the minibatch's `loss_pi` (when the actor has a loss),
    `loss_v` (when the critics have one) and the actor's logged scalars, as floats, after one sync.

    A non-finite gradient norm raises `TrainingDiverged`, as the eager step does; a non-finite loss leaves every
    parameter where it was and is returned, for the caller to report with its context (`cmdp.solver.check_finite`)."""

    def __init__(self, updater: TorchUpdater, actor: nn.Module, critic: nn.Module | None, losses: LossFn) -> None:
        check_compiler()
        self.updater = updater
        self.root = _Losses(actor, critic, losses)
        # each trainable parameter's name under the root and its place in its part's flat buffer (FlatPart's order)
        self.layout: dict[str, list[tuple[str, int, torch.Size]]] = {}
        for part, module in (("actor", actor), ("critic", critic)):
            entries, start = [], 0
            for name, p in ([] if module is None else module.named_parameters()):
                if p.requires_grad:
                    entries.append((f"{part}.{name}", start, p.shape))
                    start += p.numel()
            self.layout[part] = entries
        # per part with several clip segments (critics clipped per critic): the segment of each flat element
        self.segment: dict[str, torch.Tensor] = {}
        for name, part in updater.parts.items():
            if part.runs is not None:
                lengths, segments = part.runs
                self.segment[name] = torch.repeat_interleave(segments, lengths)
        flat = updater.parts["actor"].flat
        # per part: the learning rate and the step number Adam takes (float64, as the eager step's Python floats)
        self.scalars = torch.zeros(2, 2, dtype=torch.float64, device=flat.device)
        # cpp_wrapper: the compiled graph calls its kernels from C++, not one Python call each (about 15% of a step)
        self.compiled = torch.compile(_own_code(self._step), dynamic=False, fullgraph=True,
                                      options={"cpp_wrapper": True})

    def _parameters(self, flats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: flats[part][start:start + math.prod(shape)].view(shape)
                for part, entries in self.layout.items() for name, start, shape in entries}

    def _norms(self, part: str, grad: torch.Tensor) -> torch.Tensor:
        """`FlatPart.norms`, as a scatter of the squared gradient onto its segments (which compiles into one loop)."""
        if part not in self.segment:
            return torch.linalg.vector_norm(grad).reshape(1)
        index = self.segment[part]
        return torch.zeros(self.updater.parts[part].num_segments, dtype=grad.dtype,
                           device=grad.device).index_add(0, index, grad * grad).sqrt()

    def _step(self, actor_flat: torch.Tensor, critic_flat: torch.Tensor, scalars: torch.Tensor,
              mb: Minibatch) -> tuple[torch.Tensor, tuple[str, ...]]:
        up = self.updater

        def total(a: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            loss_pi, loss_v, info = torch.func.functional_call(self.root, self._parameters({"actor": a, "critic": c}),
                                                               (mb,))
            losses = [loss for loss in (loss_pi, loss_v) if loss is not None]
            # what is logged, as tensors (the transform's auxiliary outputs must be): the losses present, then info
            logged = {key: torch.as_tensor(value).detach().to(losses[0].dtype).reshape(())
                      for key, value in {"loss_pi": loss_pi, "loss_v": loss_v, **info}.items() if value is not None}
            return (losses[0] if len(losses) == 1 else losses[0] + losses[1]), logged

        grads, (_, logged) = torch.func.grad_and_value(total, argnums=(0, 1), has_aux=True)(actor_flat, critic_flat)
        names = [name for name, key in PART_LOSSES if key in logged]
        flats = {"actor": actor_flat, "critic": critic_flat}
        grads = {name: grad for name, grad in zip(("actor", "critic"), grads) if name in names}
        if "critic" in grads and up.per_critic:  # the L2 term inside the clipped gradient (jointly: Adam's decay)
            grads["critic"] = grads["critic"] + 2 * up.critic_l2 * critic_flat
        norms = {name: self._norms(name, grad) for name, grad in grads.items()}
        losses = torch.stack([logged[key] for _, key in PART_LOSSES if key in logged])
        ok = torch.isfinite(torch.cat([losses, *norms.values()])).all()
        flags = [ok]
        for name in names:
            part, grad = up.parts[name], grads[name]
            clipped = (norms[name] > up.max_grad_norm).any()
            flags.append(clipped)
            coef = clip_coefficients(norms[name], up.max_grad_norm)  # applied always: 1 where it does not bind
            grad = grad * (coef if name not in self.segment else coef[self.segment[name]])
            if part.weight_decay:
                grad = grad + part.weight_decay * flats[name]
            row = 0 if name == "actor" else 1
            _adam(flats[name], grad, part.exp_avg, part.exp_avg_sq, scalars[row, 0], scalars[row, 1], ok)
        keys = tuple(logged)
        return torch.stack([flag.to(losses.dtype) for flag in flags] + [logged[key] for key in keys]), keys

    def __call__(self, mb: Minibatch) -> dict[str, float]:
        up = self.updater
        for part in up.parts.values():
            part.check_in_place()
        for row, name in enumerate(("actor", "critic")):
            self.scalars[row, 0] = up.lr(name)
            self.scalars[row, 1] = up.parts[name].steps + 1
        try:
            out, keys = self.compiled(up.parts["actor"].flat, up.parts["critic"].flat, self.scalars, mb)
        except torch._dynamo.exc.Unsupported as error:  # a loss that does not trace as one graph
            reason = str(error).strip().splitlines()[0]
            raise ConfigError(f"compile_update: this solver's losses do not compile as one graph ({reason}); "
                              "set compile_update=false") from None
        except (torch._dynamo.exc.BackendCompilerFailed, torch._inductor.exc.InductorError) as error:
            reason = str(error).strip().splitlines()[0]
            raise ConfigError(f"compile_update: torch.compile could not build this step ({reason}); "
                              "set compile_update=false") from None
        except torch._dynamo.exc.FailOnRecompileLimitHit:  # e.g. a Python number read by the losses changes
            raise ConfigError("compile_update: this solver's losses needed a new graph more than "
                              f"{torch._dynamo.config.recompile_limit} times (a Python number they read changes "
                              "between steps? pass it as a tensor); set compile_update=false") from None
        row = out.tolist()
        names = [name for name, key in PART_LOSSES if key in keys]
        flags, values = row[:1 + len(names)], row[1 + len(names):]
        logged = dict(zip(keys, values))
        if not flags[0]:
            if all(math.isfinite(logged[key]) for _, key in PART_LOSSES if key in logged):
                raise TrainingDiverged(f"training diverged: a gradient norm is not finite, so the step cannot be "
                                       f"clipped. {DIVERGED_ADVICE}")
            return logged  # a non-finite loss: nothing moved; the caller reports it
        for name, clipped in zip(names, flags[1:]):
            up.parts[name].steps += 1
            up.count_step(name, bool(clipped))
        return logged
