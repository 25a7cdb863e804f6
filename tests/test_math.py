"""The shared math in cmdp/: GAE, Lagrange multipliers, PPO loss, KL, normalisers; each against hand values."""
import math

import numpy as np
import pytest
import torch

from cmdp.gae import discounted_cumsum, gae
from cmdp.lagrange import LagrangeMultiplier
from cmdp.losses import approx_kl, normalize_advantages, ppo_clip_loss
from cmdp.normalize import ObsNormalizer, ReturnScaler, RunningMeanStd


def test_gae_hand_values_termination_vs_truncation():
    # Step 1 terminates (no bootstrap); step 2 starts a new episode that is truncated (bootstrap 2.0).
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    next_values = np.array([[1.0], [99.0], [2.0]])  # 99 must be ignored: the episode terminated
    terminated = np.array([[False], [True], [False]])
    done = np.array([[False], [True], [True]])
    adv, ret = gae(rewards, values, next_values, terminated, done, gamma=0.9, lam=0.8)
    # deltas: 1 + .9*1 - .5 = 1.4 ; 2 - 1 = 1.0 ; 3 + .9*2 - 1.5 = 3.3
    np.testing.assert_allclose(adv[:, 0], [1.4 + 0.72 * 1.0, 1.0, 3.3])
    np.testing.assert_allclose(ret[:, 0], [2.62, 2.0, 4.8])


def test_gae_truncation_bootstraps_but_termination_does_not():
    rewards, values = np.array([[1.0]]), np.array([[0.0]])
    nxt = np.array([[10.0]])
    adv_trunc, _ = gae(rewards, values, nxt, np.array([[False]]), np.array([[True]]), 0.5, 0.9)
    adv_term, _ = gae(rewards, values, nxt, np.array([[True]]), np.array([[True]]), 0.5, 0.9)
    assert adv_trunc[0, 0] == pytest.approx(1.0 + 0.5 * 10.0)
    assert adv_term[0, 0] == pytest.approx(1.0)


def test_gae_lambda_one_is_monte_carlo_and_streams_are_independent():
    rng = np.random.default_rng(0)
    T = 6
    r = rng.normal(size=(T, 1, 2))
    v = rng.normal(size=(T, 1, 2))
    nv = np.concatenate([v[1:], np.zeros((1, 1, 2))])
    term = np.zeros((T, 1), bool)
    term[-1] = True
    gammas = np.array([0.9, 0.5])
    adv, ret = gae(r, v, nv, term, term, gammas, 1.0)
    for e, g in enumerate(gammas):
        np.testing.assert_allclose(ret[:, 0, e], discounted_cumsum(r[:, 0, e], g))


def test_multiplier_moves_up_down_and_never_negative():
    m = LagrangeMultiplier(np.array([25.0]), init=1.0, lr=0.1, optimizer="sgd")
    assert m.update(np.array([35.0]))[0] == pytest.approx(2.0)  # 1 + 0.1 * (35 - 25)
    assert m.update(np.array([20.0]))[0] == pytest.approx(1.5)  # 2 - 0.1 * 5
    assert m.update(np.array([0.0]))[0] == 0.0  # 1.5 - 2.5 projected onto lambda >= 0
    assert m.update(np.array([0.0]))[0] == 0.0


def test_multiplier_adam_direction_bound_and_nan_skip():
    m = LagrangeMultiplier(np.array([25.0, 1.0]), init=0.5, lr=0.035, optimizer="adam", upper_bound=0.52)
    first = m.update(np.array([50.0, 0.0]))
    assert first[0] == pytest.approx(0.52)  # up by ~lr, capped at the bound
    assert first[1] == pytest.approx(0.5 - 0.035, rel=1e-6)  # Adam's first step has size lr
    second = m.update(np.array([np.nan, 0.0]))  # no episode of cost 0 finished: unchanged
    assert second[0] == first[0]
    assert second[1] < first[1]
    state = m.state_dict()
    clone = LagrangeMultiplier(np.array([25.0, 1.0]), upper_bound=0.52)
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.update(np.array([30.0, 3.0])), m.update(np.array([30.0, 3.0])))


def test_ppo_clip_loss_hand_case():
    logp_old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1]))
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss, info = ppo_clip_loss(logp, logp_old, adv, clip=0.2)
    # min(1.5*1, 1.2*1)=1.2 ; min(0.5*-1, 0.8*-1)=-0.8 ; min(1.1*2, 1.1*2)=2.2 -> mean 2.6/3
    assert loss.item() == pytest.approx(-2.6 / 3, rel=1e-6)
    assert info["clip_frac"].item() == pytest.approx(2 / 3)
    masked, _ = ppo_clip_loss(logp, logp_old, adv, 0.2, mask=torch.tensor([1.0, 0.0, 1.0]))
    assert masked.item() == pytest.approx(-(1.2 + 2.2) / 2, rel=1e-6)


def _minimum_form(logp: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip: float,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """PPO's clipped surrogate as the paper writes it, torch.minimum of the two terms (ppo_clip_loss before it
    picked the minimum with `where`)."""
    ratio = torch.exp(logp - logp_old)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv)
    return -surrogate.mean() if mask is None else -(surrogate * mask).sum() / mask.sum().clamp_min(1.0)


@pytest.mark.parametrize("masked", [False, True])
def test_ppo_clip_loss_value_and_gradient_are_the_minimum_forms_bit_for_bit(masked: bool):
    """Every case a sample can be in: ratio inside the range (a tie of the two terms), outside it with the clip
    binding or not (either sign of A), exactly on a bound, A = 0, and a NaN; values and gradients equal bitwise."""
    torch.manual_seed(0)
    ratios = torch.tensor([1.0, 1.1, 0.9, 1.5, 1.5, 0.5, 0.5, 1.2, 0.8, 1.7, 1.0]).repeat(50)
    logp_old = torch.randn(ratios.numel())
    base = logp_old + torch.log(ratios)
    adv = torch.tensor([1.0, -2.0, 0.5, 1.0, -1.0, 1.0, -1.0, 3.0, -3.0, 0.0, float("nan")]).repeat(50)
    adv = adv * torch.rand(adv.numel()) + torch.where(adv == 0, 0.0, 1e-3)  # each sign kept, A = 0 and NaN too
    base = base + 1e-3 * torch.randn(base.numel()) * (torch.arange(base.numel()) % 11 < 7)  # off the exact ratios
    mask = (torch.rand(base.numel()) < 0.7).float() if masked else None
    grads = []
    for form in (lambda lp: ppo_clip_loss(lp, logp_old, adv, 0.2, mask)[0],
                 lambda lp: _minimum_form(lp, logp_old, adv, 0.2, mask)):
        logp = base.clone().requires_grad_()
        loss = form(logp)
        loss.backward()
        grads.append((loss.detach(), logp.grad))
    (loss, grad), (loss_min, grad_min) = grads
    assert torch.equal(loss, loss_min) or (loss.isnan() and loss_min.isnan())
    finite = ~adv.isnan()
    assert torch.equal(grad[finite], grad_min[finite])
    assert grad[finite].ne(0).any() and grad[finite].eq(0).any()  # both kinds of sample were there


def test_ppo_clip_loss_gradient_vanishes_when_clipped():
    logp = torch.log(torch.tensor([1.5])).requires_grad_()
    loss, _ = ppo_clip_loss(logp, torch.zeros(1), torch.tensor([1.0]), 0.2)
    loss.backward()
    assert logp.grad.item() == 0.0


def test_approx_kl_matches_exact_kl_of_gaussians():
    torch.manual_seed(0)
    old = torch.distributions.Normal(0.0, 1.0)
    new = torch.distributions.Normal(0.1, 1.1)
    x = old.sample((200_000,))
    est = approx_kl(old.log_prob(x), new.log_prob(x)).item()
    exact = torch.distributions.kl_divergence(old, new).item()
    assert est == pytest.approx(exact, rel=0.05)


def test_normalize_advantages_per_stream():
    adv = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    out = normalize_advantages(adv)
    np.testing.assert_allclose(out.mean(0).numpy(), [0, 0], atol=1e-6)
    np.testing.assert_allclose(out.std(0).numpy(), [1, 1], atol=1e-6)


def test_running_mean_std_matches_numpy_in_batches():
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, size=(1000, 4))
    rms = RunningMeanStd((4,))
    for chunk in np.array_split(data, 7):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0))
    np.testing.assert_allclose(rms.var, data.var(0))


def test_running_mean_std_one_row_updates_equal_the_batch_formula_bit_for_bit():
    """A step of one environment folds in one row through `_update_one`; it must give the bits the general
    (Chan et al.) formula gives for a batch of one, which `RunningMeanStd` used for every update until 2026-12-04."""
    rng = np.random.default_rng(2)
    fast, general = RunningMeanStd((5,)), RunningMeanStd((5,))
    for i in range(3000):
        row = rng.normal(size=(1, 5)) * rng.uniform(0.01, 100.0) + rng.normal(size=5) * 10.0
        fast.update(row)
        # the general formula on a batch of one, written out
        n, b_mean = 1, row.sum(0) / 1
        centered = row - b_mean
        b_var = (centered * centered).sum(0) / n
        if general.count == 0:
            general.mean, general.var, general.count = b_mean, b_var, 1.0
            continue
        total = general.count + n
        delta = b_mean - general.mean
        general.mean = general.mean + delta * n / total
        general.var = (general.var * general.count + b_var * n + delta * delta * general.count * n / total) / total
        general.count = total
        assert np.array_equal(fast.mean, general.mean) and np.array_equal(fast.var, general.var), i
    assert fast.count == general.count == 3000.0


def test_obs_normalizer_roundtrip_and_clip():
    norm = ObsNormalizer((2,), clip=3.0)
    norm(np.array([[0.0, 0.0], [2.0, 4.0]]))
    out = norm(np.array([[100.0, 2.0]]), update=False)
    assert out[0, 0] == 3.0 and out[0, 1] == pytest.approx(0.0)
    clone = ObsNormalizer((2,), clip=3.0)
    clone.load_state_dict(norm.state_dict())
    np.testing.assert_array_equal(clone(np.array([[1.0, 1.0]]), update=False),
                                  norm(np.array([[1.0, 1.0]]), update=False))


def test_return_scaler_divides_by_return_std_without_shift():
    scaler = ReturnScaler(num_envs=1, num_streams=1, gamma=0.0)  # gamma 0: the return is the signal
    for value in [1.0, 3.0]:
        out = scaler(np.array([[value]]), np.array([False]))
    assert out[0, 0] == pytest.approx(3.0 / math.sqrt(1.0), rel=1e-6)  # std of {1, 3} is 1


def test_clipped_value_loss_by_hand() -> None:
    from cmdp.losses import value_loss

    pred = torch.tensor([[3.0, 0.0], [1.0, 2.0]])
    returns = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    old = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    # unclipped: per stream mean of squares: ((9 + 1) / 2) + ((0 + 4) / 2) = 5 + 2
    assert value_loss(pred, returns).item() == pytest.approx(7.0)
    # clip 1: the clipped predictions are [[1, 0], [1, 1]]; the loss takes the larger error, so moving away from
    # the target gives no escape: max(9, 1) = 9, max(1, 1) = 1, max(0, 0) = 0, max(4, 1) = 4 -> same 7
    assert value_loss(pred, returns, old, clip=1.0).item() == pytest.approx(7.0)
    # with targets beyond the clip the clipped error counts: target 3 from old 0, prediction 3 -> clipped 1
    far = torch.tensor([[3.0, 3.0], [3.0, 3.0]])
    # errors: pred [[0, 9], [4, 1]], clipped [[1, 0], [1, 1]] -> [[4, 9], [4, 4]] -> (4 + 4) / 2 + (9 + 4) / 2
    assert value_loss(pred, far, old, clip=1.0).item() == pytest.approx(4.0 + 6.5)
    with pytest.raises(ValueError):
        value_loss(pred, far, None, clip=1.0)
