"""Fisher-vector products of the trust-region solvers: F v for the actor's Fisher matrix F, without forming F.

F is the Hessian, in the actor's parameters theta, of the mean KL(pi_old || pi_theta) at theta = theta_old. Two
ways to multiply by it (`fisher_product`):

- `double_backward` (`fisher_vector_product`): the KL's gradient is built once with its graph, and each product
  differentiates (grad . v) again. It works for any actor (image encoders, language models) and is how OmniSafe
  (`NaturalPG._fvp`) and cmdp-lab until 2026-12-04 computed it.
- `jacobian` (`mlp_fisher_product`): F = J^T M J, J the Jacobian of the distribution's parameters (a Gaussian's
  mean and log-std, a softmax's logits) in theta, M the Hessian of the KL in those parameters. At theta_old the KL's
  gradient in the distribution's parameters is zero, so the Hessian's other term vanishes and this is the same
  matrix, not an approximation. When a plain MLP makes the parameters (`networks.DistributionMLP`), J v is one
  forward pass of tangents through the layers and J^T u one backward pass, both on the activations of a single
  forward pass kept for all products: no autograd graph is built or walked. M u is a double backward through the
  KL alone, element-wise over (batch, parameters), whatever the distribution. For `cpo`'s [64, 64] tanh Gaussian
  actor on 20,000 SafetyHopperVelocity-v1 observations a product takes 14.3 ms instead of 24.3 ms, and the whole
  policy step 0.50 s instead of 0.97 s, on a 2-core AMD EPYC (`python -m cmdp.benchmarks.fisher_speed`).

The two agree to rounding (tests/test_fisher.py: to a relative 1e-5 in float32; tests/test_cpo.py: both equal the
KL's Hessian formed explicitly, to 1e-8 in float64), so a run with one follows another sample path from the same
seed than with the other; `fisher_product=double_backward` repeats the numbers published before 2026-12-04 bit for
bit. Actors that are not a plain MLP use the double backward either way.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from cmdp.config import check_choice
from cmdp.losses import distribution_kl
from cmdp.networks import DistributionMLP
from cmdp.optim import trainable_parameters

#: How the trust-region solvers multiply by the Fisher matrix (`TrustRegionConfig.fisher_product`, module docstring).
FISHER_PRODUCTS = ("jacobian", "double_backward")
#: How the trust region's KL treats the action dimensions (`kl_reduction`): "sum", the KL of the joint action
#: distribution; "mean", its average over the dimensions (OmniSafe's `kl_divergence(p, q).mean()`), 1 / act_dim of it.
KL_REDUCTIONS = ("sum", "mean")

FVP = Callable[[torch.Tensor], torch.Tensor]


def mean_kl(old: torch.distributions.Distribution, new: torch.distributions.Distribution,
            reduction: str = "sum") -> torch.Tensor:
    """Mean over the batch of the analytic KL(old || new), summed over action dimensions (`sum`) or averaged over
    them (`mean`; the same for a distribution with one dimension, e.g. a Categorical)."""
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")
    if reduction == "sum":
        return distribution_kl(old, new).mean()
    return torch.distributions.kl_divergence(old, new).mean()


def flat_grad(output: torch.Tensor, params: list[torch.Tensor], retain_graph: bool | None = None,
              create_graph: bool = False) -> torch.Tensor:
    """d output / d params as one 1-D tensor (zeros for parameters `output` does not depend on).

    As in `torch.autograd.grad`, the graph is kept when `create_graph` is set unless told otherwise."""
    grads = torch.autograd.grad(output, params, retain_graph=retain_graph, create_graph=create_graph,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)])


def fisher_product(actor: nn.Module, obs: Any, damping: float, old: torch.distributions.Distribution | None,
                   reduction: str, method: str) -> FVP:
    """`fvp(v) = (F + damping I) v` by `method` (`FISHER_PRODUCTS`): `jacobian` when the actor's distribution
    comes from a plain MLP (`actor.distribution_mlp()` is not None), else the double backward."""
    check_choice("fisher_product", method, FISHER_PRODUCTS)
    head = actor.distribution_mlp() if method == "jacobian" else None
    if head is None:
        return fisher_vector_product(actor, obs, damping, old, reduction)
    return mlp_fisher_product(actor, head, obs, damping, old, reduction)


def fisher_vector_product(actor: nn.Module, obs: Any, damping: float = 0.1,
                          old: torch.distributions.Distribution | None = None,
                          reduction: str = "sum") -> FVP:
    """`fvp(v) = (H + damping I) v`, H the Hessian of mean KL(pi_current || pi_theta) at theta = current
    (the KL reduced over action dimensions as `mean_kl`'s `reduction` says), by double backward.

    H is the Fisher information matrix of the actor averaged over `obs`. `old` is pi_current on `obs`
    if the caller already has it (a solver at the start of its update: `batch.old_dist`, which saves a
    forward pass); else it is computed here. The gradient of the KL is built once with
    `create_graph=True`; each call differentiates (grad . v) again (double backward), so a product
    costs about two backward passes and no matrix is ever formed. The returned closure is valid
    while the actor's parameters are unchanged.
    """
    params = trainable_parameters(actor)
    if old is None:
        with torch.no_grad():
            old = actor.distribution(obs)
    kl = mean_kl(old, actor.distribution(obs), reduction)
    grad_kl = flat_grad(kl, params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        hv = flat_grad(torch.dot(grad_kl, v.detach()), params, retain_graph=True)
        return hv + damping * v

    return fvp


def mlp_fisher_product(actor: nn.Module, head: DistributionMLP, obs: torch.Tensor, damping: float = 0.1,
                       old: torch.distributions.Distribution | None = None, reduction: str = "sum") -> FVP:
    """`fvp(v) = (J^T M J + damping I) v` for an actor whose distribution parameters `head` makes (module
    docstring): the same matrix as `fisher_vector_product`'s, to rounding. `old` as there. The closure is valid
    while the actor's parameters are unchanged."""
    layers = list(head.net)
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    slots = _slots(actor, head, linears)
    with torch.no_grad():
        inputs, slopes = [], []  # each Linear's input; each activation's derivative at its input
        x = obs
        for m in layers:
            if isinstance(m, nn.Linear):
                inputs.append(x)
                x = m(x)
            else:
                x, slope = _activation(m, x)
                slopes.append(slope)
        if len(slopes) != len(linears) - 1 or not isinstance(layers[-1], nn.Linear):
            raise TypeError("distribution_mlp: the net must alternate Linear layers and activations, Linear last")
        at = x if head.log_std is None else torch.cat([x, head.log_std.expand_as(x)], dim=-1)
    at = at.detach().requires_grad_()
    if old is None:
        old = actor.distribution_from_params(at.detach())
    # M u is the KL's Hessian in the distribution's parameters times u: a double backward through the KL alone
    kl_grad = torch.autograd.grad(mean_kl(old, actor.distribution_from_params(at), reduction), at,
                                  create_graph=True)[0]
    out_dim = linears[-1].out_features
    sizes = [p.numel() for p in trainable_parameters(actor)]

    def fvp(v: torch.Tensor) -> torch.Tensor:
        v = v.detach()
        tangent = dict(zip(slots, v.split(sizes)))
        with torch.no_grad():
            t = None  # J v through the layers, each layer's tangent in one fresh buffer (fused adds, in place)
            for i, m in enumerate(linears):
                vw, vb = tangent.get(("weight", i)), tangent.get(("bias", i))
                rows = (inputs[i].shape[0], m.out_features)
                if vw is not None and vb is not None:
                    out = torch.addmm(vb, inputs[i], vw.view_as(m.weight).T)
                elif vw is not None:
                    out = inputs[i] @ vw.view_as(m.weight).T
                else:
                    out = torch.zeros(rows, dtype=v.dtype) if vb is None else vb.expand(rows).clone()
                if t is not None:
                    out.addmm_(t, m.weight.T)
                t = out.mul_(slopes[i]) if i < len(slopes) else out
            if head.log_std is not None:
                v_log = tangent.get(("log_std", 0))
                t = torch.cat([t, (torch.zeros_like(t) if v_log is None else v_log.expand_as(t))], dim=-1)
        u = torch.autograd.grad(kl_grad, at, grad_outputs=t, retain_graph=True)[0]
        with torch.no_grad():
            grads: dict[tuple[str, int], torch.Tensor] = {}
            if head.log_std is not None:
                grads[("log_std", 0)] = u[:, out_dim:].sum(0)
            g = u[:, :out_dim]  # J^T u back through the layers
            for i in reversed(range(len(linears))):
                m = linears[i]
                grads[("weight", i)] = g.T @ inputs[i]
                grads[("bias", i)] = g.sum(0)
                if i > 0:
                    g = (g @ m.weight).mul_(slopes[i - 1])
            return torch.cat([grads[slot].reshape(-1) for slot in slots]) + damping * v

    return fvp


def _slots(actor: nn.Module, head: DistributionMLP, linears: list[nn.Linear]) -> list[tuple[str, int]]:
    """Where each trainable parameter of the actor sits in `head`, in `trainable_parameters` order."""
    where = {id(m.weight): ("weight", i) for i, m in enumerate(linears)}
    where.update({id(m.bias): ("bias", i) for i, m in enumerate(linears) if m.bias is not None})
    if head.log_std is not None:
        where[id(head.log_std)] = ("log_std", 0)
    slots = []
    for p in trainable_parameters(actor):
        if id(p) not in where:
            raise TypeError(f"distribution_mlp: a trainable parameter of shape {tuple(p.shape)} is not in the MLP")
        slots.append(where[id(p)])
    return slots


def _activation(m: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An activation's output at `x` and its derivative there."""
    if isinstance(m, nn.Tanh):
        y = torch.tanh(x)
        return y, 1.0 - y * y
    if isinstance(m, nn.ReLU):
        return torch.relu(x), (x > 0).to(x.dtype)
    raise TypeError(f"distribution_mlp: no Jacobian for {type(m).__name__} (Tanh and ReLU have one)")
