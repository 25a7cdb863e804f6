"""Trust-region machinery shared by the TRPO-style solvers (TRPO, NPG, CPO, PCPO and the Lagrangian ones).

- `TrustRegionSolver`: the base those solvers subclass (TRPO itself, with hooks; see its docstring);
- flat views of a module's parameters (`flat_params`, `set_flat_params`; `flat_grad` is `cmdp.fisher`'s);
- `conjugate_gradient`: solves H x = b given only products H v;
- the Fisher-vector products and `mean_kl` are `cmdp.fisher`'s (the Jacobian product for plain MLP actors, the
  double backward for the others, `fisher_product`);
- `solve_cpo_subproblem`: CPO's trust-region step (Achiam et al. 2017, Appendix 10.2) as a pure
  function of plain tensors and floats, so it is testable on a hand-made quadratic;
- `project_to_linear_constraint`: PCPO's projection of a step onto the half-space where the
  linearised cost meets its limit, in the KL (H) or the L2 norm (Yang et al. 2020);
- `backtracking_line_search`: shrink a step until a caller-supplied test accepts it;
- `TrustRegionConfig`: the hyperparameters these solvers share (OmniSafe's TRPO/CPO defaults).

Sign convention: everything here is in the *maximisation* form used by the CPO paper's main text,
g is the gradient of the reward surrogate (to increase), b the gradient of the cost surrogate and
r = g^T H^-1 b. (OpenAI's and the paper appendix's code work in the minimisation form, where g
and hence r have the opposite sign; the formulas below are that form rewritten, not copied.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from cmdp.config import ConfigError, check_choice
from cmdp.fisher import FISHER_PRODUCTS, KL_REDUCTIONS, fisher_product, flat_grad, mean_kl
from cmdp.optim import trainable_parameters
from cmdp.rollout import RolloutBatch
from cmdp.solver import PolicyGradientConfig, PolicyGradientSolver, check_finite


@dataclass
class TrustRegionConfig(PolicyGradientConfig):
    """Hyperparameters of the trust-region solvers; defaults from OmniSafe's TRPO-family configs
    (omnisafe/configs/on-policy/CPO.yaml, TRPOLag.yaml). `actor_lr`, `clip` and `max_grad_norm` (for
    the actor) are not used: the actor moves by the trust-region step alone.

    Critic minibatches of 128, OmniSafe's (every one of its TRPO-family configs). Until 2026-12-03 they were the
    base's 1000, chosen on 5 epochs of cpo (returns 119 vs 123, a third of the update time). At full length that
    choice was not better (SafetyHopperVelocity-v1, 1e6 steps, seeds 0-2; docs/omnisafe-differences.md row 9):
    with 128 trpo_lag came within the limit sooner on every seed (epochs 33, 44, 34 against 37, never, 36) and ended
    within it on all three at returns of 118-140, where 1000 ended above it on one; cpo oscillates around its limit
    with either, 128 within it on 9 of the last 30 epochs against 5, at 5% less return (1,393 against 1,470).
    `batch_size=1000` gives the earlier default.
    """

    critic_lr: float = 1e-3
    batch_size: int = 128  # critic regression minibatches (the actor takes one trust-region step per epoch)
    update_iters: int = 10  # passes of critic regression per epoch
    target_kl: float = 0.01  # the trust region: mean KL(old || new) <= target_kl
    cg_iters: int = 15
    cg_damping: float = 0.1
    line_search_steps: int = 15
    line_search_decay: float = 0.8
    fvp_sample_freq: int = 1  # Fisher-vector products on every n-th sample of the batch
    # The KL of the trust region (Fisher matrix and line search) per state: "sum" over action dimensions, the KL of
    # the joint action distribution, so that target_kl bounds the same divergence of the policy whatever the
    # robot's number of joints (TRPO's definition); "mean" over them, OmniSafe's (NaturalPG._fvp,
    # TRPO._search_step_size), whose trust region is act_dim times larger. docs/omnisafe-differences.md row 21.
    kl_reduction: str = "sum"
    # How H v is computed (cmdp/fisher.py): "jacobian", J^T M J from one forward pass of a plain MLP actor (1.7x
    # faster a product than the double backward, the same matrix to rounding; other actors take the double backward);
    # "double_backward", OmniSafe's and ours until 2026-12-04, which repeats the numbers published before then.
    fisher_product: str = "jacobian"

    def validate(self) -> None:
        super().validate()
        if self.target_kl <= 0:
            raise ConfigError(f"target_kl must be > 0 for a trust-region solver (it is the trust region), "
                              f"got {self.target_kl}")
        for name in ("cg_iters", "line_search_steps", "fvp_sample_freq"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cg_damping < 0:
            raise ConfigError(f"cg_damping must be >= 0, got {self.cg_damping}")
        check_choice("kl_reduction", self.kl_reduction, KL_REDUCTIONS)
        check_choice("fisher_product", self.fisher_product, FISHER_PRODUCTS)
        if not 0.0 < self.line_search_decay < 1.0:
            raise ConfigError(f"line_search_decay must be in (0, 1), got {self.line_search_decay}")
        if self.entropy_coef:
            raise ConfigError("the trust-region solvers have no entropy bonus; entropy_coef must be 0")


# --------------------------------------------------------------------------------------------
# Flat parameters and gradients
# --------------------------------------------------------------------------------------------

def flat_params(module: nn.Module) -> torch.Tensor:
    """The trainable parameters of `module` concatenated into one detached 1-D tensor (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in trainable_parameters(module)]).clone()


def set_flat_params(module: nn.Module, flat: torch.Tensor) -> None:
    """Write a 1-D tensor laid out as `flat_params(module)` back into the parameters, in place."""
    offset = 0
    with torch.no_grad():
        for p in trainable_parameters(module):
            n = p.numel()
            p.copy_(flat[offset:offset + n].view_as(p))
            offset += n
    if offset != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} entries, the module {offset} parameters")


# --------------------------------------------------------------------------------------------
# Conjugate gradient
# --------------------------------------------------------------------------------------------

def conjugate_gradient(Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 15,
                       residual_tol: float = 1e-10) -> torch.Tensor:
    """Approximate solution of A x = b for a symmetric positive-definite A known through `Avp(v) = A v`.

    Starts from x = 0 and stops after `iters` iterations or once the squared residual norm falls
    below `residual_tol` (exact in at most dim(b) iterations, in exact arithmetic).
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if rr <= residual_tol:
            break
        Ap = Avp(p)
        alpha = rr / torch.dot(p, Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


# --------------------------------------------------------------------------------------------
# CPO's subproblem
# --------------------------------------------------------------------------------------------

#: CPO's cases (Achiam et al. 2017, Appendix; numbering as in OpenAI's and OmniSafe's code).
CASE_INFEASIBLE = 0  # x = 0 infeasible and the trust region misses the feasible half-space: recover
CASE_INFEASIBLE_INTERSECTS = 1  # x = 0 infeasible, part of the trust region is feasible: dual solution
CASE_FEASIBLE_INTERSECTS = 2  # x = 0 feasible, the constraint plane cuts the trust region: dual solution
CASE_FEASIBLE_INSIDE = 3  # the whole trust region is feasible: natural-gradient step
CASE_NO_COST_GRADIENT = 4  # feasible and the cost surrogate has no gradient: natural-gradient step


@dataclass(frozen=True)
class CPOStep:
    """Solution of CPO's subproblem: `direction` x and the numbers behind it (floats, for logging).

    lam, nu: the dual variables of the trust-region and cost constraints (lam = inf and nu = 0 are
    not used: in the recovery case lam = 0 and nu is the step length along -H^-1 b).
    A = q - r^2 / s and B = 2 delta - c^2 / s as in the paper (0 when not computed).
    """

    direction: torch.Tensor
    case: int
    lam: float
    nu: float
    q: float
    r: float
    s: float
    c: float
    A: float
    B: float


def solve_cpo_subproblem(hinv_g: torch.Tensor, hinv_b: torch.Tensor, q: float, r: float, s: float, c: float,
                         delta: float, s_tol: float = 1e-8, eps: float = 1e-8) -> CPOStep:
    """Maximise g^T x subject to b^T x + c <= 0 and x^T H x / 2 <= delta.

    Inputs: hinv_g = H^-1 g, hinv_b = H^-1 b, q = g^T H^-1 g, r = g^T H^-1 b, s = b^T H^-1 b,
    c = the constraint's current value (J_c - d, in the units of b^T x), delta = the trust region.

    Cases (B = 2 delta - c^2 / s; B < 0 <=> the plane b^T x + c = 0 misses the trust region):

    - 4 (c < 0, s <= s_tol: no cost gradient) and 3 (c < 0, B < 0: the whole trust region is
      feasible): the natural-gradient step x = sqrt(2 delta / q) H^-1 g;
    - 2 (c < 0, B >= 0) and 1 (c >= 0, B >= 0): the dual solution. With A = q - r^2 / s, the dual
      max_{lam, nu >= 0} -(q - 2 r nu + s nu^2) / (2 lam) + nu c - lam delta gives
      nu*(lam) = max(0, lam c + r) / s and, on the two pieces of lam >= 0,
        f_a(lam) = -(A / lam + B lam) / 2 + r c / s   where lam c + r > 0 (the cost constraint binds),
        f_b(lam) = -(q / lam + 2 delta lam) / 2       where lam c + r <= 0 (it does not);
      each piece's maximiser sqrt(A / B), resp. sqrt(q / (2 delta)), is projected onto its interval
      and the better piece wins. Then x = (H^-1 g - nu* H^-1 b) / lam*;
    - 0 (c >= 0, B < 0: no feasible point in the trust region): the recovery step
      x = -sqrt(2 delta / s) H^-1 b, which decreases the cost as fast as the trust region allows.
    """
    q, r, s, c, delta = float(q), float(r), float(s), float(c), float(delta)
    s_safe = max(s, eps)
    if c < 0 and s <= s_tol:
        return _natural_step(hinv_g, CASE_NO_COST_GRADIENT, q, r, s, c, delta, 0.0, 0.0, eps)
    A = max(q - r * r / s_safe, 0.0)  # >= 0 by Cauchy-Schwarz for SPD H; clip rounding
    B = 2.0 * delta - c * c / s_safe
    if c < 0 and B < 0:
        return _natural_step(hinv_g, CASE_FEASIBLE_INSIDE, q, r, s, c, delta, A, B, eps)
    if c >= 0 and B < 0:
        nu = math.sqrt(2.0 * delta / s_safe)
        return CPOStep(-nu * hinv_b, CASE_INFEASIBLE, 0.0, nu, q, r, s, c, A, B)
    case = CASE_FEASIBLE_INTERSECTS if c < 0 else CASE_INFEASIBLE_INTERSECTS

    # Intervals of lam >= 0 where the cost constraint binds (a: lam c + r > 0) or not (b).
    inf = math.inf
    if c > 0:
        a_lo, a_hi = max(0.0, -r / c), inf
        b_lo, b_hi = (0.0, -r / c) if r <= 0 else (None, None)
    elif c < 0:
        a_lo, a_hi = (0.0, r / -c) if r > 0 else (None, None)
        b_lo, b_hi = max(0.0, r / -c), inf
    else:  # c == 0: the sign of r alone decides
        a_lo, a_hi = (0.0, inf) if r > 0 else (None, None)
        b_lo, b_hi = (0.0, inf) if r <= 0 else (None, None)

    def f_a(lam: float) -> float:
        lam = max(lam, eps)
        return -0.5 * (A / lam + B * lam) + r * c / s_safe

    def f_b(lam: float) -> float:
        lam = max(lam, eps)
        return -0.5 * (q / lam + 2.0 * delta * lam)

    big = 1e12  # stands in for lam -> inf (B = 0: the plane touches the trust region at one point)
    candidates: list[tuple[float, float, bool]] = []  # (dual value, lam, constraint binds)
    if a_lo is not None:
        lam_a = math.sqrt(A / B) if B > 0 else big
        lam_a = min(max(lam_a, a_lo), min(a_hi, big))
        candidates.append((f_a(lam_a), lam_a, True))
    if b_lo is not None:
        lam_b = math.sqrt(q / (2.0 * delta))
        lam_b = min(max(lam_b, b_lo), min(b_hi, big))
        candidates.append((f_b(lam_b), lam_b, False))
    _, lam, binds = max(candidates, key=lambda t: t[0])
    lam_safe = max(lam, eps)
    if binds:
        nu = max(0.0, lam * c + r) / s_safe
        # x = (H^-1 g - nu H^-1 b) / lam, written so that lam -> 0 and lam -> inf stay finite:
        # nu / lam = r / (lam s) + c / s.
        direction = (hinv_g - (r / s_safe) * hinv_b) / lam_safe - (c / s_safe) * hinv_b
    else:
        nu = 0.0
        direction = hinv_g / lam_safe
    return CPOStep(direction, case, lam, nu, q, r, s, c, A, B)


def _natural_step(hinv_g: torch.Tensor, case: int, q: float, r: float, s: float, c: float, delta: float,
                  A: float, B: float, eps: float) -> CPOStep:
    """The trust region's natural-gradient step x = sqrt(2 delta / q) H^-1 g (lam = sqrt(q / 2 delta))."""
    lam = math.sqrt(q / (2.0 * delta))
    return CPOStep(hinv_g / max(lam, eps), case, lam, 0.0, q, r, s, c, A, B)


# --------------------------------------------------------------------------------------------
# PCPO's projection
# --------------------------------------------------------------------------------------------

def project_to_linear_constraint(x: torch.Tensor, b: torch.Tensor, c: float, metric_inv_b: torch.Tensor,
                                 eps: float = 1e-8) -> tuple[torch.Tensor, float]:
    """The point of {y : b^T y + c <= 0} closest to `x` in the norm ||y||_L = sqrt(y^T L y), and its multiplier.

    `metric_inv_b` is L^-1 b: H^-1 b for PCPO's KL projection (L = H, the Fisher matrix), b itself for
    its L2 projection (L = I). Minimising (y - x)^T L (y - x) / 2 subject to b^T y + c <= 0 gives
    (the closed form of Yang et al. 2020, their a and b being our b and c)

        y = x - nu L^-1 b,   nu = max(0, (b^T x + c) / (b^T L^-1 b)),

    so y = x when x already satisfies the constraint, and b^T y + c = 0 when it did not. When
    b^T L^-1 b <= eps the cost has no gradient to move along and `x` is returned unchanged (nu = 0).
    Returns (y, nu).
    """
    denom = float(torch.dot(b, metric_inv_b))
    excess = float(torch.dot(b, x)) + float(c)  # the linearised constraint's value at x
    if denom <= eps or excess <= 0.0:
        return x, 0.0
    nu = excess / denom
    return x - nu * metric_inv_b, nu


# --------------------------------------------------------------------------------------------
# Line search
# --------------------------------------------------------------------------------------------

def backtracking_line_search(module: nn.Module, theta_old: torch.Tensor, direction: torch.Tensor,
                             accept: Callable[[], bool], steps: int = 15, decay: float = 0.8
                             ) -> tuple[float, int]:
    """Try theta_old + f * direction for f = 1, decay, decay^2, ... (`steps` tries).

    Before each try the parameters of `module` are set to the candidate; `accept()` then judges the
    module as it stands. Returns (accepted fraction f, number of the try, from 1) and leaves the
    accepted parameters in place, or restores `theta_old` and returns (0.0, 0) if no try passes.
    """
    frac = 1.0
    for i in range(steps):
        set_flat_params(module, theta_old + frac * direction)
        if accept():
            return frac, i + 1
        frac *= decay
    set_flat_params(module, theta_old)
    return 0.0, 0


# --------------------------------------------------------------------------------------------
# The solver base
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineSearchResult:
    """What `TrustRegionSolver.line_search` did. When no try passed, the old parameters were kept and
    frac = kl = 0, tries = 0 and every `measured` value is 0."""

    frac: float  # the fraction of `direction` taken
    tries: int  # the number of the accepted try, from 1
    kl: float  # mean KL(old || new) at the accepted parameters
    measured: dict[str, float]  # what the solver's `accept` measured there
    direction: torch.Tensor  # the direction searched along (zeros if the one given was not finite)

    def metrics(self) -> dict[str, float]:
        """The metrics every trust-region solver logs about its step."""
        return {"kl": self.kl, "step_frac": self.frac, "line_search_tries": float(self.tries)}

    def predicted_change(self, grad: torch.Tensor) -> float:
        """The first-order change of a surrogate with gradient `grad` over the step taken."""
        return self.frac * torch.dot(grad, self.direction).item()


class TrustRegionSolver(PolicyGradientSolver):
    """TRPO (Schulman et al. 2015) with the hooks its constrained variants override.

    Each epoch, `update` runs `update_multipliers` (none here), then `policy_step`, which moves the
    actor's parameters itself, then `fit_critics_and_finish` (the critics' regression by the shared
    minibatch loop, `optimize(batch, None)`, then the lr schedule's step). The default `policy_step`
    is TRPO's: the natural gradient H^-1 g of the surrogate E[rho A], A = `policy_advantage(batch)`,
    scaled to x^T H x / 2 = target_kl, then a backtracking line search that accepts the first
    fraction with mean KL(old || new) <= target_kl and a surrogate that did not decrease.

    The pieces, for a `policy_step` of one's own: `natural_step(batch, adv)` (TRPO's direction before
    the line search), `old_surrogates(batch, *advs)` (one shared ratio, with graph, at the behaviour policy,
    where a non-finite one stops the run; `surrogates` for a try), `gradients(*surrogates)`
    (flat), `fisher(batch)` (the Fisher-vector product), `natural_direction(fvp, g)` (H^-1 g by
    conjugate gradient), `scale_to_trust_region(fvp, x)`, and
    `line_search(batch, direction, accept)`, where `accept()` judges the actor as it stands (under
    no_grad) and returns (passes, {name: value measured}); the KL test, the finiteness of everything
    measured and the restore on failure are the base's. The old policy is `batch.old_dist`
    (`needs_old_distribution`); `trust_region = True` tells the family that the actor is stepped
    directly (second-order gradients, no DeepSpeed).

    Variants: a Lagrangian one adds only a multiplier (`update_multipliers`, `combine_advantages`),
    e.g. `class TRPOLag(TrustRegionSolver, PPOLag)`; an unconstrained TRPO is this class registered
    under a name (`algorithms/trpo.py`); one with a different step overrides `policy_step`: NPG
    (`algorithms/npg.py`) takes `natural_step`'s direction without a line search, CPO solves its
    subproblem, and PCPO (Yang et al. 2020, `algorithms/pcpo.py`, a subclass of CPO for its constraint
    value) projects the reward step:

        def policy_step(self, batch, mean_episode_costs):
            adv_r, adv_c, c, violation = self.cost_streams(batch, mean_episode_costs)  # CPO's
            surr_r, surr_c = self.old_surrogates(batch, adv_r, adv_c)
            g, b = self.gradients(surr_r, surr_c)
            fvp = self.fisher(batch)
            x = self.scale_to_trust_region(fvp, self.natural_direction(fvp, g))  # TRPO's reward step
            metric_inv_b = self.natural_direction(fvp, b) if kl_projection else b  # H^-1 b or b
            x, nu = project_to_linear_constraint(x, b, c, metric_inv_b)
            ls = self.line_search(batch, x, accept)  # KL <= target_kl, cost surrogate within the slack
    """

    Config = TrustRegionConfig
    trust_region = True
    needs_old_distribution = True

    def update(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """Multipliers, one trust-region step of the actor (`policy_step`), then the critics."""
        if batch.old_dist is None:
            raise ValueError(f"{self.name} needs the behaviour policy's distribution in the batch "
                             "(needs_old_distribution); the collector was built without it")
        self.update_multipliers(mean_episode_costs)
        return self.fit_critics_and_finish(batch, self.policy_step(batch, mean_episode_costs))

    def policy_step(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """TRPO's step on `policy_advantage(batch)`; returns the metrics to log (loss_pi, kl, ...)."""
        adv = self.policy_advantage(batch)
        surr_old, g, direction = self.natural_step(batch, adv)

        def accept() -> tuple[bool, dict[str, float]]:
            d = self.surrogates(batch, adv)[0].item() - surr_old
            return d >= 0, {"surr_change": d}

        ls = self.line_search(batch, direction, accept)
        return {"loss_pi": -(surr_old + ls.measured["surr_change"]), **ls.metrics(), **ls.measured,
                "pred_surr_change": ls.predicted_change(g)}

    # --- the pieces ---------------------------------------------------------------------------
    def natural_step(self, batch: RolloutBatch, adv: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """The surrogate E[rho A] at the old policy, its gradient g, and the natural-gradient step
        H^-1 g scaled to the trust region's boundary (x^T H x / 2 = target_kl): TRPO's and NPG's direction."""
        (surr,) = self.old_surrogates(batch, adv)
        (g,) = self.gradients(surr)
        fvp = self.fisher(batch)
        return surr.item(), g, self.scale_to_trust_region(fvp, self.natural_direction(fvp, g))

    def old_surrogates(self, batch: RolloutBatch, *advs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`surrogates` at the behaviour policy, where a step starts; a non-finite one stops the run
        (`check_finite`): every try of the line search would be refused, and the run would go on without learning."""
        surrogates = self.surrogates(batch, *advs)
        for surrogate, adv in zip(surrogates, advs):
            check_finite(surrogate, "actor surrogate", batch, adv)
        return surrogates

    def surrogates(self, batch: RolloutBatch, *advs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """E[rho A] for each (B,) advantage A, rho = pi(a|s) / pi_old(a|s) computed once, with graph
        (unless called under no_grad)."""
        ratio = torch.exp(self.agent.actor.log_prob(batch.obs, batch.actions) - batch.logp_old)
        return tuple((ratio * adv).mean() for adv in advs)

    def gradients(self, *surrogates: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The flat gradient of each surrogate in the actor's parameters (the graph is kept until the last)."""
        params = trainable_parameters(self.agent.actor)
        last = len(surrogates) - 1
        return tuple(flat_grad(s, params, retain_graph=True if i < last else None)
                     for i, s in enumerate(surrogates))

    def fisher(self, batch: RolloutBatch) -> Callable[[torch.Tensor], torch.Tensor]:
        """`fvp(v) = (H + cg_damping I) v` at the current parameters, on every `fvp_sample_freq`-th sample, by
        `fisher_product`'s method."""
        every = slice(None, None, self.cfg.fvp_sample_freq)
        return fisher_product(self.agent.actor, batch.obs[every], self.cfg.cg_damping, batch.old_dist[every],
                              self.cfg.kl_reduction, self.cfg.fisher_product)

    def natural_direction(self, fvp: Callable[[torch.Tensor], torch.Tensor], grad: torch.Tensor) -> torch.Tensor:
        """H^-1 grad by `cg_iters` iterations of conjugate gradient."""
        return conjugate_gradient(fvp, grad, self.cfg.cg_iters)

    def scale_to_trust_region(self, fvp: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """`x` scaled so that x^T H x / 2 = target_kl (the trust region's boundary)."""
        xhx = torch.dot(x, fvp(x)).item()
        return math.sqrt(2.0 * self.cfg.target_kl / (xhx + 1e-8)) * x

    def line_search(self, batch: RolloutBatch, direction: torch.Tensor,
                    accept: Callable[[], tuple[bool, dict[str, float]]]) -> LineSearchResult:
        """Backtracking from the current parameters along `direction` (zeros if it is not finite):
        a try passes when `accept()` does, its mean KL(old || new) <= target_kl and the KL and every
        value `accept` measured are finite. Leaves the accepted parameters, or the old ones, in place."""
        cfg, actor = self.cfg, self.agent.actor
        direction = direction.detach()
        if not torch.isfinite(direction).all():
            direction = torch.zeros_like(direction)
        old = batch.old_dist[:]
        seen: dict[str, Any] = {}

        def passes() -> bool:
            with torch.no_grad():
                kl = mean_kl(old, actor.distribution(batch.obs), cfg.kl_reduction).item()
                ok, measured = accept()
            seen.update(kl=kl, measured=measured)
            finite = all(math.isfinite(v) for v in (kl, *measured.values()))
            return finite and ok and kl <= cfg.target_kl

        frac, tries = backtracking_line_search(actor, flat_params(actor), direction, passes, cfg.line_search_steps,
                                               cfg.line_search_decay)
        if tries == 0:
            return LineSearchResult(0.0, 0, 0.0, dict.fromkeys(seen["measured"], 0.0), direction)
        return LineSearchResult(frac, tries, seen["kl"], seen["measured"], direction)

    def fit_critics_and_finish(self, batch: RolloutBatch, metrics: dict[str, float]) -> dict[str, float]:
        """The critics' regression (`optimize(batch, None)`), the step's `metrics` and the lr, then the
        end of the epoch for the updater."""
        out = self.optimize(batch, None)
        out.update(metrics)
        out["lr"] = self.updater.critic_lr
        out.update(self.updater.end_epoch())
        return out
