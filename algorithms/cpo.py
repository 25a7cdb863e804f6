"""CPO (Achiam, Held, Tamar and Abbeel 2017, "Constrained Policy Optimization").

Each epoch takes one trust-region step on the actor: with g and b the gradients of the reward and
cost surrogates E[rho A_r], E[rho A_c] at the old policy and H the Fisher matrix (the Hessian of
the mean KL), it solves

    max_x g^T x   subject to   c + b^T x <= 0   and   x^T H x / 2 <= target_kl,

c being the current constraint value J_c - d, analytically through its dual (`solve_cpo_subproblem`);
when no point of the trust region is predicted feasible it steps to decrease the cost only. A
backtracking line search then accepts the first step fraction whose new policy has mean
KL <= target_kl, does not lower the reward surrogate (not required when the current policy is
infeasible, cases 0 and 1), and raises the cost surrogate by at most max(-c, 0); if none passes the
old policy is kept. The critics are then fitted by the shared minibatch loop.

Units of c (`cpo_constraint_units`). J_c - d is an episode total; the surrogate is a per-sample mean. By default
(`per_step`), as in OpenAI's safety-starter-agents, c is divided by the mean episode length, so that c + b^T x
predicts (J_c(new) - d) / length. When the cost advantages are standardised (`cost_advantage: standardize`), the
cost surrogate is in units of their standard deviation, so c is divided by that too (this leaves the subproblem's
solution and the line search unchanged: b and c scale together); centred (`center`) they stay in cost units, and
so does c. `episode` takes c = J_c - d as it is, OmniSafe 0.5.0's (CPO._update and PCPO._update); c^2 / s then
dwarfs the trust region, so the subproblem almost never mixes the two objectives: a reward-only step while the
cost is under the limit, a cost-only step above it (docs/omnisafe-differences.md, row 23). `cost_normalize`
would rescale the cost advantages by a running factor the solver does not see, so it is refused.

Defaults follow OmniSafe's CPO (omnisafe/configs/on-policy/CPO.yaml): target KL 0.01, conjugate
gradient 15 iterations with damping 0.1, critic lr 1e-3 with 10 passes per epoch, a line search shrinking by
0.8 and critic minibatches of 128 (`cmdp.trust_region.TrustRegionConfig`), of 20 tries (OmniSafe's
CPO._update_actor passes 20 to its search; TRPO's is 15). One cost only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cmdp.config import ConfigError, check_choice
from cmdp.registry import register_algorithm
from cmdp.rollout import RolloutBatch
from cmdp.trust_region import CASE_FEASIBLE_INTERSECTS, TrustRegionConfig, TrustRegionSolver, solve_cpo_subproblem


#: The units of CPO's constraint value c (`cpo_constraint_units`).
CONSTRAINT_UNITS = ("per_step", "episode")


@dataclass
class CPOConfig(TrustRegionConfig):
    """CPO's hyperparameters: the shared trust-region ones (OmniSafe's CPO defaults)."""

    line_search_steps: int = 20  # OmniSafe's CPO searches 20 tries, its TRPO 15
    # c = J_c - d per step of an episode, in the cost surrogate's units ("per_step": OpenAI's, the paper's
    # subproblem), or the episode total as it is ("episode": OmniSafe 0.5.0's). See the module docstring.
    cpo_constraint_units: str = "per_step"

    def validate(self) -> None:
        super().validate()
        check_choice("cpo_constraint_units", self.cpo_constraint_units, CONSTRAINT_UNITS)
        if self.cost_normalize:
            raise ConfigError("cpo compares the cost surrogate with the raw episode cost, so it cannot use "
                              "cost_normalize (the costs would be rescaled by a factor it does not see); "
                              "set cost_normalize=false")


@register_algorithm("cpo")
class CPO(TrustRegionSolver):
    """Constrained Policy Optimization: trust-region steps that keep the linearised cost under its limit.

    What it changes in `TrustRegionSolver`: `policy_step` (two surrogates and gradients, the
    subproblem, its own acceptance test) and the constraint value it keeps between epochs."""

    Config = CPOConfig
    max_costs = 1

    def __init__(self, cfg: CPOConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        # Last constraint value seen (per step or per episode, as `cpo_constraint_units` says), for epochs
        # without a finished episode; None until the first one.
        self.last_c: float | None = None

    def constraint_value(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> tuple[float, float]:
        """c from this epoch's finished episodes, and J_c - d itself: (J_c - d) / their mean length
        (`per_step`) or J_c - d (`episode`).

        Without a finished episode the last estimate is reused; before any, 0.0 (on the boundary:
        the step may then not raise the linearised cost).
        """
        cost = float(np.asarray(mean_episode_costs, dtype=np.float64).reshape(-1)[0])
        lengths = batch.episodes.lengths
        if len(lengths) and math.isfinite(cost):
            violation = cost - float(self.spec.cost_limits[0])
            per_step = self.cfg.cpo_constraint_units == "per_step"
            self.last_c = violation / max(float(np.mean(lengths)), 1.0) if per_step else violation
            return self.last_c, violation
        return (self.last_c if self.last_c is not None else 0.0), float("nan")

    def cost_streams(self, batch: RolloutBatch, mean_episode_costs: np.ndarray
                     ) -> tuple[torch.Tensor, torch.Tensor, float, float]:
        """(A_r, A_c, c, J_c - d): the advantages the surrogates use (`stream_advantages`) and the constraint
        value c in the cost surrogate's units (see the module docstring). Shared with PCPO (`algorithms/pcpo.py`)."""
        c, violation = self.constraint_value(batch, mean_episode_costs)
        if self.cfg.cpo_constraint_units == "per_step" and self.cfg.standardize_advantages \
                and self.cfg.cost_advantage == "standardize":
            c = c / (float(batch.advantages[:, 1].std()) + 1e-8)  # same scale as the standardised A_c
        adv = self.stream_advantages(batch)
        return adv[:, 0], adv[:, 1], c, violation

    def policy_step(self, batch: RolloutBatch, mean_episode_costs: np.ndarray) -> dict[str, float]:
        """One trust-region step of the actor: CPO's subproblem, then the line search."""
        cfg = self.cfg
        adv_r, adv_c, c, violation = self.cost_streams(batch, mean_episode_costs)

        surr_r, surr_c = self.old_surrogates(batch, adv_r, adv_c)
        g, b = self.gradients(surr_r, surr_c)
        surr_r_old, surr_c_old = surr_r.item(), surr_c.item()
        fvp = self.fisher(batch)
        hinv_g, hinv_b = self.natural_direction(fvp, g), self.natural_direction(fvp, b)
        h_hinv_g, h_hinv_b = fvp(hinv_g), fvp(hinv_b)
        # quadratic forms of the vectors actually stepped along (exact CG: q = g^T H^-1 g, etc.)
        q = torch.dot(hinv_g, h_hinv_g).item()
        r = torch.dot(hinv_g, h_hinv_b).item()
        s = torch.dot(hinv_b, h_hinv_b).item()
        step = solve_cpo_subproblem(hinv_g, hinv_b, q, r, s, c, cfg.target_kl)

        def accept() -> tuple[bool, dict[str, float]]:
            new_r, new_c = self.surrogates(batch, adv_r, adv_c)
            d_r, d_c = new_r.item() - surr_r_old, new_c.item() - surr_c_old
            keeps_reward = step.case < CASE_FEASIBLE_INTERSECTS or d_r >= 0  # required when feasible
            within_slack = d_c <= max(-c, 0.0)  # the cost may use up the slack, or must not grow when infeasible
            return keeps_reward and within_slack, {"surr_r_change": d_r, "surr_c_change": d_c}

        ls = self.line_search(batch, step.direction, accept)
        return {
            "loss_pi": -(surr_r_old + ls.measured["surr_r_change"]),
            **ls.metrics(),
            "cpo_case": float(step.case),
            **ls.measured,
            "pred_r_change": ls.predicted_change(g),
            "pred_c_change": ls.predicted_change(b),
            "cpo_c": c,
            "cpo_ep_cost_minus_limit": violation,
            "cpo_lam": step.lam,
            "cpo_nu": step.nu,
            "cpo_q": q, "cpo_r": r, "cpo_s": s,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_c": self.last_c}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last_c = state.get("last_c", state.get("last_c_per_step"))  # the key's name before 2026-12-02
