"""Policy-gradient losses and divergences shared by every solver (control and text alike)."""
from __future__ import annotations

import numpy as np
import torch


def ppo_clip_loss(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip: float,
                  mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, returned as a loss to minimise: -E[min(rho A, clip(rho, 1-e, 1+e) A)].

    `mask` (same shape, 0/1) restricts the mean to valid entries (e.g. response tokens).
    Also returns the fraction of clipped ratios (`clip_frac`), without a gradient, for logging.
    """
    ratio = torch.exp(logp - logp_old)
    unclipped = ratio * adv
    # The clipped term only ever passes a zero gradient back: where it is the smaller term, its ratio lies outside
    # [1 - e, 1 + e]. So it is computed without autograd, and `where` picks the minimum. The values are
    # torch.minimum's, and so are the gradients, bit for bit: at a tie minimum sends half the gradient down each
    # term, and inside the range the halves add up to the whole. (The one exception, a tie outside the range,
    # needs rho A and clip(rho) A to round to the same float with rho != clip(rho) and A != 0: vanishingly rare,
    # and either gradient is a valid subgradient there.) Autograd then records two nodes instead of minimum's,
    # clamp's and a product's: about 6% of a PPO pass at 64 samples (benchmarks/README.md, "14 operators fewer").
    with torch.no_grad():
        bounded = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv
        outside = (ratio - 1.0).abs() > clip  # the clipped ratios, for the log only
    surrogate = torch.where(unclipped <= bounded, unclipped, bounded)
    if mask is None:
        return -surrogate.mean(), {"clip_frac": outside.sum() / outside.numel()}
    total = mask.sum().clamp_min(1.0)
    return -(surrogate * mask).sum() / total, {"clip_frac": (outside * mask).sum() / total}


def value_loss(pred: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor | None = None,
               clip: float | None = None) -> torch.Tensor:
    """The critics' loss: squared error per stream, mean over samples, summed over streams.

    With `clip` (safe-rlhf's clip_range_value, PPO's value clipping in OpenAI baselines), each sample's error is
    the larger of the prediction's and of the prediction moved at most `clip` away from `old_values` (the
    critic's estimate at collection time), so one epoch cannot move a value far from where it started.
    """
    err = (pred - returns) ** 2
    if clip is not None:
        if old_values is None:
            raise ValueError("value clipping needs the values at collection time")
        clipped = old_values + (pred - old_values).clamp(-clip, clip)
        err = torch.maximum(err, (clipped - returns) ** 2)
    return err.mean(0).sum()


def sampled_kl(logp_p: torch.Tensor, logp_q: torch.Tensor) -> torch.Tensor:
    """Per-sample estimate of KL(p || q) from the log-probabilities under p and q of actions drawn from p
    (Schulman's "k3", GRPO's): (rho - 1) - log rho with rho = q / p. Non-negative for every sample and unbiased;
    as a loss in logp_p its gradient is 1 - q / p, which pulls each probability of p towards q's."""
    log_ratio = logp_q - logp_p
    return torch.exp(log_ratio) - 1.0 - log_ratio


def approx_kl(logp_old: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """Estimate of KL(old || new) from samples of the old policy: the batch mean of `sampled_kl` (always >= 0)."""
    return sampled_kl(logp_old, logp).mean()


def normalize_advantages(adv: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance along the first axis (per stream when adv has a trailing axis)."""
    return (adv - adv.mean(0)) / (adv.std(0) + eps)


#: How the cost columns of the advantages are treated before the actor sees them (`cost_advantage`).
COST_ADVANTAGE_MODES = ("standardize", "center")


def standardize_streams(adv: torch.Tensor, cost_advantage: str = "standardize", eps: float = 1e-8) -> torch.Tensor:
    """(B, 1 + K) advantages (column 0: reward) -> the reward column standardised, and each cost column
    standardised too (`standardize`) or only centred (`center`: OmniSafe's buffer, which keeps cost advantages in
    cost units, so a multiplier lambda weighs lambda units of cost against one std of reward advantage)."""
    if cost_advantage not in COST_ADVANTAGE_MODES:
        raise ValueError(f"cost_advantage must be one of {COST_ADVANTAGE_MODES}, got {cost_advantage!r}")
    if cost_advantage == "standardize":
        return normalize_advantages(adv, eps)
    scale = torch.ones_like(adv[0])
    scale[0] = adv[:, 0].std() + eps
    return (adv - adv.mean(0)) / scale


def penalised_advantage(adv: torch.Tensor, penalties: "torch.Tensor | np.ndarray") -> torch.Tensor:
    """A_r - sum_k w_k A_c,k from (B, 1 + K) advantages (column 0: reward) and K penalties w. With raw GAE
    streams this is exactly the advantage of the penalised reward r - w . c (GAE is linear)."""
    w = torch.as_tensor(penalties, dtype=adv.dtype, device=adv.device)
    return adv[:, 0] - adv[:, 1:] @ w


def lagrangian_advantage(adv: torch.Tensor, multipliers: "torch.Tensor | np.ndarray") -> torch.Tensor:
    """(A_r - sum_k lambda_k A_c,k) / (1 + sum_k lambda_k) from (B, 1 + K) advantages (column 0: reward).

    Dividing by 1 + sum lambda keeps the advantage's scale (and so the effective step size) from
    growing with the multipliers.
    """
    lam = torch.as_tensor(multipliers, dtype=adv.dtype, device=adv.device)
    return penalised_advantage(adv, lam) / (1.0 + lam.sum())


def distribution_kl(p: torch.distributions.Distribution, q: torch.distributions.Distribution) -> torch.Tensor:
    """Exact per-sample KL(p || q) between two action distributions of one family, shape (B,).

    Works for every actor's `distribution(obs)`: per-dimension terms (a diagonal Gaussian's batch
    shape is (B, act_dim)) are summed, so the result is the KL of the joint action distribution.
    """
    kl = torch.distributions.kl_divergence(p, q)
    return kl.reshape(kl.shape[0], -1).sum(-1)


def policy_gradient_loss(logp: torch.Tensor, logp_old: torch.Tensor,
                         adv: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The unclipped importance-sampled surrogate as a loss to minimise: -E[rho A], rho = exp(logp - logp_old).

    Its gradient at rho = 1 is the vanilla policy gradient -E[grad log pi(a|s) A]; nothing keeps later passes
    near the behaviour policy except the caller's KL early stop. Also returns the mean ratio, detached.
    """
    ratio = torch.exp(logp - logp_old)
    return -(ratio * adv).mean(), {"ratio": ratio.mean().detach()}


def ipo_barrier_weight(mean_episode_costs: np.ndarray, limits: np.ndarray, kappa: float,
                       penalty_max: float) -> np.ndarray:
    """IPO's weight on each cost advantage: the gradient of the log barrier kappa * log(d_k - J_c,k) in J_c,k.

    d/dJ [kappa log(d - J)] = -kappa / (d - J), so the barrier adds the cost advantage with weight
    w_k = kappa / (d_k - J_c,k), which grows without bound as J_c,k approaches d_k from below. As in OmniSafe's IPO,
    a weight above `penalty_max`, and any cost on or above its limit (where the barrier is undefined), gives
    `penalty_max`. A NaN cost (no finished episode) gives NaN: the caller keeps its last weight. Shape (K,).
    """
    costs = np.asarray(mean_episode_costs, dtype=np.float64).reshape(-1)
    slack = np.asarray(limits, dtype=np.float64).reshape(-1) - costs
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = kappa / slack
    weight = np.where((slack <= 0) | (weight > penalty_max), penalty_max, weight)
    return np.where(np.isnan(costs), np.nan, weight)


def p3o_penalty(ratio: torch.Tensor, cost_adv: torch.Tensor, violation: "torch.Tensor | np.ndarray", kappa: float,
                clip: float) -> torch.Tensor:
    """P3O's exact penalty: kappa * sum_k max(0, E[max(rho A_c,k, clip(rho, 1-e, 1+e) A_c,k)] + violation_k).

    `ratio` (b,), `cost_adv` (b, K), `violation` (K,) the constraint's current value J_c,k - d_k added to the
    surrogate as given (the caller picks its units). The cost surrogate is clipped pessimistically (max, as PPO's
    min for a reward): a step that lowers the cost gains nothing beyond the clip range. The ReLU makes the penalty
    exact: zero, and gradient-free, while every linearised constraint holds.
    """
    ratio = ratio.unsqueeze(-1)
    surrogate = torch.maximum(ratio * cost_adv, torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * cost_adv).mean(0)
    violation = torch.as_tensor(violation, dtype=surrogate.dtype, device=surrogate.device)
    return kappa * torch.relu(surrogate + violation).sum()

