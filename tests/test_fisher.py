"""The trust region's two Fisher-vector products (cmdp/fisher.py): the Jacobian one (J^T M J from one forward pass of
a plain MLP actor) against the double backward, and which one a solver takes.

The products against the KL's Hessian formed explicitly, in float64, are in tests/test_cpo.py
(`test_fisher_vector_product_is_the_kl_hessian_plus_damping`, for both methods)."""
from __future__ import annotations

import pytest
import torch

from cmdp.cli import main
from cmdp.config import ConfigError
from cmdp.fisher import fisher_product, fisher_vector_product, mlp_fisher_product
from cmdp.networks import CategoricalActor, GaussianActor
from cmdp.optim import trainable_parameters
from cmdp.rollout import OldDistribution
from test_trust_region_zoo import _hand_batch, _trainer


def _hopper_actor() -> tuple[GaussianActor, torch.Tensor, torch.Tensor]:
    """A float32 actor of the size Hopper trains ([64, 64] tanh, 11 -> 3), moved off its initialisation."""
    torch.manual_seed(0)
    actor = GaussianActor(11, 3, [64, 64], init_log_std=-0.4)
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(0.05 * torch.randn_like(p))
    obs = torch.randn(3000, 11)
    v = torch.randn(sum(p.numel() for p in trainable_parameters(actor)))
    return actor, obs, v


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_the_jacobian_product_equals_the_double_backward_in_float32(reduction: str) -> None:
    actor, obs, v = _hopper_actor()
    with torch.no_grad():
        old = OldDistribution(actor.distribution_params(obs), actor.distribution_from_params)[:]
    want = fisher_vector_product(actor, obs, 0.1, old, reduction)(v)
    got = mlp_fisher_product(actor, actor.distribution_mlp(), obs, 0.1, old, reduction)(v)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    assert not torch.equal(got, want)  # another order of operations: equal to rounding, not bit for bit


def test_the_jacobian_product_leaves_out_frozen_parameters() -> None:
    """A frozen layer has no entries in the flat vector; the others' products are unchanged."""
    actor, obs, _ = _hopper_actor()
    actor.mean[0].weight.requires_grad_(False)
    v = torch.randn(sum(p.numel() for p in trainable_parameters(actor)))
    want = fisher_vector_product(actor, obs, 0.1)(v)
    got = mlp_fisher_product(actor, actor.distribution_mlp(), obs, 0.1)(v)
    assert got.shape == want.shape and (got - want).abs().max() <= 1e-5 * want.abs().max()


def test_which_product_an_actor_gets() -> None:
    """`jacobian` for a plain MLP actor, the double backward for one with an image encoder (and a language model,
    whose `distribution_mlp` is None) and whenever `double_backward` is asked for."""
    actor, obs, _ = _hopper_actor()
    assert actor.distribution_mlp().net is actor.mean and actor.distribution_mlp().log_std is actor.log_std
    assert CategoricalActor(4, 3, [5]).distribution_mlp().log_std is None
    assert GaussianActor(8, 2, [5], encoder=torch.nn.Identity()).distribution_mlp() is None

    def kind(fvp) -> str:
        return fvp.__qualname__.split(".")[0]

    assert kind(fisher_product(actor, obs, 0.1, None, "sum", "jacobian")) == "mlp_fisher_product"
    assert kind(fisher_product(actor, obs, 0.1, None, "sum", "double_backward")) == "fisher_vector_product"
    with pytest.raises(ConfigError, match="fisher_product must be one of jacobian, double_backward, got 'exact'"):
        fisher_product(actor, obs, 0.1, None, "sum", "exact")


@pytest.mark.parametrize("algo", ["cpo", "trpo_lag"])
def test_a_solver_takes_the_product_its_config_names(algo: str) -> None:
    """The solver's `fisher` on a hand batch (ExactChain's softmax actor): the two keys give the same products to
    rounding, and the trust region's step from either satisfies the same KL bound."""
    products = {}
    for method in ("jacobian", "double_backward"):
        trainer = _trainer(algo, fisher_product=method)
        batch = _hand_batch(trainer)
        v = torch.randn(sum(p.numel() for p in trainable_parameters(trainer.agent.actor)),
                        generator=torch.Generator().manual_seed(1))
        products[method] = trainer.solver.fisher(batch)(v)
    torch.testing.assert_close(products["jacobian"], products["double_backward"], rtol=1e-5, atol=1e-7)


def test_a_bad_fisher_product_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["train", "--algo", "cpo", "--env", "ExactChain-v0", "--set", "fisher_product=exact",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fisher_product must be one of jacobian, double_backward, got 'exact'" in err[0]
    assert not (tmp_path / "bad").exists()
