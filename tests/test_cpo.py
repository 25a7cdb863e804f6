"""CPO: the trust-region math (conjugate gradient, Fisher-vector products, the subproblem's cases)
checked against independent computations, the one-cost refusal, and learning on an exact CMDP.

The subproblem's expected answers come from brute force: the objective is linear, so its maximum
over {x^T H x / 2 <= delta} intersected with the half-plane {b^T x + c <= 0} lies on the ellipse
x^T H x = 2 delta (on the arc inside the half-plane or at a corner where the line crosses it);
sampling that ellipse (then resampling around the best point) finds it to ~1e-9 without using any of CPO's formulas.
"""
import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from cmdp.cli import main
from cmdp.networks import CategoricalActor, GaussianActor
from cmdp.fisher import FISHER_PRODUCTS, fisher_product
from cmdp.trust_region import backtracking_line_search, conjugate_gradient, flat_params, solve_cpo_subproblem
from cmdp.envs.exact import make_exact, solve_lp
from run_helpers import interrupted_run
from exact_oracle import assert_near_lp_optimum, train_and_evaluate

DELTA = 0.5


def test_conjugate_gradient_solves_a_random_spd_system():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(20, 20, generator=gen, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(20, dtype=torch.float64)
    b = torch.randn(20, generator=gen, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=60, residual_tol=1e-20)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-7, atol=1e-9)


def _kl_hessian(actor: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """Explicit Hessian of mean KL(pi_theta0 || pi_theta) in theta at theta0, on flat parameters,
    computed by torch.autograd.functional.hessian (independent of cmdp.trust_region)."""
    names = [n for n, _ in actor.named_parameters()]
    shapes = [p.shape for _, p in actor.named_parameters()]
    theta0 = flat_params(actor)

    def dist(theta: torch.Tensor) -> torch.distributions.Distribution:
        params, offset = {}, 0
        for n, shape in zip(names, shapes):
            k = math.prod(shape)
            params[n] = theta[offset:offset + k].reshape(shape)
            offset += k
        if isinstance(actor, GaussianActor):
            sub = {k[len("mean."):]: v for k, v in params.items() if k.startswith("mean.")}
            return torch.distributions.Normal(functional_call(actor.mean, sub, (obs,)), params["log_std"].exp())
        sub = {k[len("logits."):]: v for k, v in params.items() if k.startswith("logits.")}
        return torch.distributions.Categorical(logits=functional_call(actor.logits, sub, (obs,)))

    with torch.no_grad():
        old = dist(theta0)  # the fixed reference policy pi_theta0

    def kl(theta: torch.Tensor) -> torch.Tensor:
        d = torch.distributions.kl_divergence(old, dist(theta))
        return d.reshape(d.shape[0], -1).sum(-1).mean()

    return torch.autograd.functional.hessian(kl, theta0)


@pytest.mark.parametrize("method", FISHER_PRODUCTS)
@pytest.mark.parametrize("kind", ["gaussian", "categorical", "gaussian-relu-deep"])
def test_fisher_vector_product_is_the_kl_hessian_plus_damping(kind, method):
    """Both ways of multiplying by the Fisher matrix (cmdp/fisher.py) against the KL's Hessian formed explicitly."""
    torch.manual_seed(0)
    if kind == "gaussian":
        actor = GaussianActor(3, 2, [5], init_log_std=-0.3).double()
    elif kind == "gaussian-relu-deep":
        actor = GaussianActor(3, 2, [6, 5, 4], activation="relu", init_log_std=0.2).double()
    else:
        actor = CategoricalActor(3, 4, [5]).double()
    with torch.no_grad():  # move off the tiny output init so every block of H is non-trivial
        for p in actor.parameters():
            p.add_(0.3 * torch.randn_like(p))
    obs = torch.randn(12, 3, dtype=torch.float64)
    hessian = _kl_hessian(actor, obs)
    n = hessian.shape[0]
    assert torch.linalg.matrix_norm(hessian) > 1e-3
    fvp = fisher_product(actor, obs, 0.1, None, "sum", method)
    for seed in range(3):
        v = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        torch.testing.assert_close(fvp(v), hessian @ v + 0.1 * v, rtol=1e-8, atol=1e-10)


# --- CPO's subproblem on 2-D quadratics ---------------------------------------------------------

H_SPD = np.array([[2.0, 0.6], [0.6, 1.0]])


def _inputs(H: np.ndarray, g: np.ndarray, b: np.ndarray) -> dict:
    h_inv = np.linalg.inv(H)
    return dict(hinv_g=torch.tensor(h_inv @ g), hinv_b=torch.tensor(h_inv @ b),
                q=float(g @ h_inv @ g), r=float(g @ h_inv @ b), s=float(b @ h_inv @ b))


def _ellipse(H: np.ndarray, delta: float, n: int = 100_000, lo: float = 0.0, hi: float = 2 * np.pi
             ) -> tuple[np.ndarray, np.ndarray]:
    """n angles in [lo, hi) and their points x on the ellipse x^T H x = 2 delta."""
    theta = np.linspace(lo, hi, n, endpoint=False)
    u = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    L = np.linalg.cholesky(H)
    return theta, math.sqrt(2 * delta) * np.linalg.solve(L.T, u.T).T


def _brute_force(H: np.ndarray, g: np.ndarray, b: np.ndarray, c: float, delta: float) -> tuple[float, np.ndarray]:
    """Best g^T y over sampled y on the trust region's boundary with b^T y + c <= 0: 1e5 angles, then
    twice 1e5 angles around the best one so far (a corner of the feasible arc is found to ~1e-9)."""
    lo, hi = 0.0, 2 * np.pi
    for _ in range(3):
        theta, y = _ellipse(H, delta, 100_000, lo, hi)
        feasible = y @ b + c <= 0
        assert feasible.any()
        vals = np.where(feasible, y @ g, -np.inf)
        i = int(vals.argmax())
        step = (hi - lo) / len(theta)
        lo, hi = theta[i] - 2 * step, theta[i] + 2 * step
    return float(vals[i]), y[i]


def test_subproblem_interior_case_is_the_scaled_natural_gradient():
    g, b, c = np.array([1.0, 0.3]), np.array([0.2, 1.0]), -5.0  # the plane is far outside the region
    step = solve_cpo_subproblem(**_inputs(H_SPD, g, b), c=c, delta=DELTA)
    assert step.case == 3 and step.nu == 0.0
    natural = np.linalg.solve(H_SPD, g)
    expected = natural * math.sqrt(2 * DELTA / (g @ natural))
    np.testing.assert_allclose(step.direction.numpy(), expected, rtol=1e-10)
    best, _ = _brute_force(H_SPD, g, b, c, DELTA)
    assert g @ step.direction.numpy() == pytest.approx(best, abs=1e-6)


def test_subproblem_without_cost_gradient_is_the_natural_gradient():
    g, b = np.array([1.0, -0.4]), np.zeros(2)
    step = solve_cpo_subproblem(**_inputs(H_SPD, g, b), c=-0.1, delta=DELTA)
    assert step.case == 4
    x = step.direction.numpy()
    assert x @ H_SPD @ x / 2 == pytest.approx(DELTA)
    natural = np.linalg.solve(H_SPD, g)
    np.testing.assert_allclose(x / np.linalg.norm(x), natural / np.linalg.norm(natural))


@pytest.mark.parametrize("c, case", [(-0.2, 2), (0.3, 1)])
def test_subproblem_boundary_case_sits_on_both_constraints_and_beats_every_feasible_point(c, case):
    g, b = np.array([1.0, 0.2]), np.array([1.0, 0.5])
    natural = np.linalg.solve(H_SPD, g)
    natural *= math.sqrt(2 * DELTA / (g @ natural))
    assert b @ natural + c > 0  # the plain trust-region step would break the constraint
    step = solve_cpo_subproblem(**_inputs(H_SPD, g, b), c=c, delta=DELTA)
    x = step.direction.numpy()
    assert step.case == case and step.nu > 0
    assert b @ x + c == pytest.approx(0.0, abs=1e-10)
    assert x @ H_SPD @ x / 2 == pytest.approx(DELTA, rel=1e-10)
    best, best_y = _brute_force(H_SPD, g, b, c, DELTA)
    assert g @ x >= best - 1e-9  # no sampled feasible boundary point is better
    assert g @ x == pytest.approx(best, abs=1e-7)
    np.testing.assert_allclose(x, best_y, atol=1e-6)


def test_subproblem_infeasible_case_recovers_along_minus_hinv_b():
    g, b, c = np.array([1.0, 0.2]), np.array([1.0, 0.5]), 5.0  # the feasible half-plane misses the region
    step = solve_cpo_subproblem(**_inputs(H_SPD, g, b), c=c, delta=DELTA)
    assert step.case == 0
    x = step.direction.numpy()
    assert x @ H_SPD @ x / 2 == pytest.approx(DELTA, rel=1e-10)
    hinv_b = np.linalg.solve(H_SPD, b)
    np.testing.assert_allclose(x, -hinv_b * math.sqrt(2 * DELTA / (b @ hinv_b)), rtol=1e-10)
    # it is the point of the trust region with the lowest linearised cost
    _, y = _ellipse(H_SPD, DELTA)
    assert b @ x <= (y @ b).min() + 1e-9


def test_subproblem_matches_brute_force_on_random_quadratics():
    """Every case, both signs of r and c, including a cutting plane that does not bind (nu = 0)."""
    rng = np.random.default_rng(0)
    cases_seen = set()
    bindings = set()
    for _ in range(60):
        m = rng.normal(size=(2, 2))
        H = m @ m.T + 0.2 * np.eye(2)
        g, b = rng.normal(size=2), rng.normal(size=2)
        inputs = _inputs(H, g, b)
        c = float(rng.uniform(-1.5, 1.5)) * math.sqrt(2 * DELTA * inputs["s"])  # c^2 / s spans both sides of 2 delta
        step = solve_cpo_subproblem(**inputs, c=c, delta=DELTA)
        x = step.direction.numpy()
        cases_seen.add(step.case)
        assert x @ H @ x / 2 == pytest.approx(DELTA, rel=1e-8)
        if step.case == 0:
            assert b @ x <= (_ellipse(H, DELTA)[1] @ b).min() + 1e-9
            continue
        bindings.add(step.nu > 0)
        assert b @ x + c <= 1e-9
        best, _ = _brute_force(H, g, b, c, DELTA)
        assert g @ x == pytest.approx(best, abs=1e-7)
    assert cases_seen == {0, 1, 2, 3}
    assert bindings == {True, False}


def test_line_search_restores_the_old_parameters_when_nothing_is_accepted():
    actor = CategoricalActor(3, 2, [4])
    theta = flat_params(actor)
    frac, tries = backtracking_line_search(actor, theta, torch.ones_like(theta), lambda: False, steps=5)
    assert (frac, tries) == (0.0, 0)
    torch.testing.assert_close(flat_params(actor), theta, rtol=0, atol=0)
    frac, tries = backtracking_line_search(actor, theta, torch.ones_like(theta),
                                           lambda: bool(flat_params(actor)[0] - theta[0] < 0.7), steps=5, decay=0.8)
    assert tries == 3 and frac == pytest.approx(0.64)
    torch.testing.assert_close(flat_params(actor), theta + 0.64)


# --- the solver ---------------------------------------------------------------------------------

def test_cpo_refuses_two_costs_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--algo", "cpo", "--env", "ExactTwoCost-v0", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "'cpo'" in err and "at most 1 cost" in err and "has 2" in err, err
    assert not out.exists()


def test_cpo_refuses_cost_normalize(tmp_path, capsys):
    rc = main(["train", "--algo", "cpo", "--env", "ExactChain-v0", "--set", "cost_normalize=true",
               "--no-progress", "--out", str(tmp_path / "run")])
    assert rc == 2 and "cost_normalize" in capsys.readouterr().err


def test_cpo_resume_reproduces_an_uninterrupted_run(tmp_path):
    """The solver's state (the last constraint estimate, the critics' optimiser) survives a resume."""
    import csv

    from cmdp.logger import TIMING_COLUMNS
    from cmdp.trainer import resolve_config

    args = ["train", "--algo", "cpo", "--env", "ExactChain-v0", "--total-steps", "2048", "--set",
            "steps_per_epoch=512", "--set", "num_envs=4", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    cfg, _ = resolve_config({"algo": "cpo", "env": "ExactChain-v0", "total_steps": 2048, "steps_per_epoch": 512,
                             "num_envs": 4})
    run_dir = interrupted_run(cfg, tmp_path / "cut", after_epoch=2)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0

    def rows(path):
        with (path / "progress.csv").open() as f:
            return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]

    assert len(rows(run_dir)) == 4 and rows(tmp_path / "full") == rows(run_dir)
    assert all(0.0 <= float(r["kl"]) <= cfg.target_kl for r in rows(run_dir))  # every step stayed in the region


def test_cpo_reaches_the_lp_optimum_on_exact_chain(tmp_path):
    """Measured (EXACT_BASE: 160 epochs of 2048 steps, gamma = cost_gamma = 1, critic lr 3e-3):
    seeds 0/1/2 -> value ratio 0.997/0.986/0.996, exact cost 1.489/1.448/1.487 (limit 1.5)."""
    value, costs, lp, limits = train_and_evaluate(tmp_path, "ExactChain-v0", seed=0, algo="cpo")
    unconstrained = solve_lp(make_exact("ExactChain-v0").cmdp, constrained=False)
    assert unconstrained.costs[0] > 1.3 * limits[0]  # the limit binds
    assert_near_lp_optimum(value, costs, lp, limits)


def test_trpo_lag_steps_inside_the_trust_region_and_raises_violated_multipliers(tmp_path):
    """Smoke test of TRPO-Lagrangian (no learning assertion: its last iterate oscillates around the
    saddle point; measured on ExactChain-v0 with the PPO-Lagrangian test's SGD multiplier, lr 10:
    target_kl 0.01 -> value ratio 1.001/1.025, cost 1.504/1.589 for seeds 0/1; target_kl 0.005 ->
    ratio 1.020/0.977/0.951, cost 1.571/1.416/1.321 for seeds 0/1/2)."""
    import csv

    out = tmp_path / "run"
    rc = main(["train", "--algo", "trpo_lag", "--env", "ExactTwoCost-v0", "--total-steps", "2048", "--set",
               "steps_per_epoch=512", "--set", "num_envs=4", "--set", "lagrangian_optimizer=sgd",
               "--set", "lagrangian_lr=1.0", "--no-progress", "--out", str(out)])
    assert rc == 0
    rows = list(csv.DictReader((out / "progress.csv").open()))
    assert len(rows) == 4
    assert all(0.0 <= float(r["kl"]) <= 0.01 for r in rows)
    assert any(float(r["step_frac"]) > 0 for r in rows)
    for name, limit in (("cost_a", 1.5), ("cost_b", 1.0)):
        assert float(rows[0][f"ep_cost/{name}"]) > limit  # the uniform start breaks both limits
        assert float(rows[0][f"lambda/{name}"]) > 0.001  # so the first update raised both multipliers


def test_trust_region_solvers_declare_their_needs_and_trpo_lag_composes_the_multiplier():
    """CPO and TRPO-Lag step the actor themselves and read the old policy from the batch; TRPO-Lag takes
    its update from TrustRegionSolver and its multiplier from PPOLag (see trpo_lag's docstring)."""
    from cmdp.algorithms.cpo import CPO
    from cmdp.algorithms.ppo_lag import PPOLag
    from cmdp.algorithms.trpo_lag import TRPOLag
    from cmdp.solver import PolicyGradientSolver, Solver
    from cmdp.trust_region import TrustRegionSolver

    for cls in (CPO, TRPOLag):
        assert issubclass(cls, TrustRegionSolver) and cls.trust_region and cls.needs_old_distribution
    assert TRPOLag.__mro__[:5] == (TRPOLag, TrustRegionSolver, PPOLag, PolicyGradientSolver, Solver)
    for name in ("update", "policy_step"):
        assert getattr(TRPOLag, name) is getattr(TrustRegionSolver, name)
    for name in ("__init__", "update_multipliers", "combine_advantages", "multipliers", "state_dict",
                 "load_state_dict"):
        assert getattr(TRPOLag, name) is getattr(PPOLag, name)
