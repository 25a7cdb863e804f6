"""The defaults that now follow OmniSafe 0.5.0 (docs/omnisafe-differences.md), each on a hand case.

- `cost_advantage: center`: the reward advantage standardised, each cost advantage only centred (row 1), also in
  CUP's projection (since 2026-12-04);
- the critics' learning rate constant while the actor's decays (`critic_lr_decay: false`, row 5);
- observations clipped at 5 with the std floored at 1e-2 (`obs_clip`, row 2);
- the policy's initial std 1.0 (`init_log_std: 0`, row 10);
- CPO's line search of 20 tries (row 22);
- the PPO family's early stop on the exact KL of the action distributions (`early_stop_kl: exact`, row 8);
- the 50-episode cost window on Safety-Gymnasium tasks (`cost_window: 50`, a family default, row 4);
- each critic's gradient clipped on its own, its L2 term inside the clip (`critic_clip: per_critic`, row 7);
- torch.nn.Linear's own initialisation of the actor and critics (`network_init: pytorch`, row 14, since 2026-12-04);
- the multipliers (rows 4 and 18), replayed against OmniSafe's own log of its costs and multipliers;
and the deliberate differences that a key switches to OmniSafe's behaviour:
- the trust region's KL averaged over action dimensions (`kl_reduction: mean`, row 21);
- CPO's constraint value as the raw episode total (`cpo_constraint_units: episode`, row 23);
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from cmdp.algorithms.cpo import CPO, CPOConfig
from cmdp.algorithms.cup import CUP, CUPConfig
from cmdp.algorithms.ppo_lag import PPOLag, PPOLagConfig
from cmdp.algorithms.trpo_lag import TRPOLagConfig
from cmdp.config import ConfigError, build_config
from cmdp.errors import TrainingDiverged
from cmdp.losses import approx_kl, distribution_kl, standardize_streams
from cmdp.networks import NETWORK_INITS, ActorCritic, EncodedCritic, GaussianActor, mlp
from cmdp.resolve import resolve_config
from cmdp.trainer import Trainer
from cmdp.normalize import ObsNormalizer
from cmdp.optim import FlatPart, TorchUpdater
from cmdp.registry import get_algorithm
from cmdp.fisher import fisher_vector_product, mean_kl
from cmdp.rollout import RolloutBatch
from cmdp.spec import CMDPSpec, CostSpec
from cmdp.vec_env import EpisodeStats
import gymnasium

# (B, 1 + K) = (3, 2): reward advantages 1, 3, 5 (mean 3, std 2); cost advantages 10, 30, 20 (mean 20, std 10)
ADV = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]], dtype=torch.float64)


def test_center_keeps_cost_advantages_in_cost_units():
    out = standardize_streams(ADV, "center")
    torch.testing.assert_close(out[:, 0], torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(out[:, 1], torch.tensor([-10.0, 10.0, 0.0], dtype=torch.float64))


def test_standardize_scales_cost_advantages_too():
    out = standardize_streams(ADV, "standardize")
    torch.testing.assert_close(out[:, 1], torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64))


def test_unknown_cost_advantage_is_refused():
    with pytest.raises(ConfigError, match="cost_advantage must be one of standardize, center"):
        build_config(PPOLagConfig, {"algo": "ppo_lag", "cost_advantage": "whiten"})


def build_solver(solver_cls: type, config_cls: type, algo: str, **overrides):
    """A first-order solver of one cost on a 2-d observation and 1-d action, in float64."""
    spec = CMDPSpec(gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.Box(-1, 1, (1,)), (CostSpec("cost", 1.0),), 10)
    cfg = build_config(config_cls, {"algo": algo, **overrides})
    agent = ActorCritic(spec.observation_space, spec.action_space, 1, [4], [4]).double()
    return solver_cls(cfg, spec, agent, TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=10),
                      torch.Generator().manual_seed(0))


def ppo_lag(**overrides) -> PPOLag:
    return build_solver(PPOLag, PPOLagConfig, "ppo_lag", lagrangian_init=0.5, **overrides)


def batch(adv: torch.Tensor) -> RolloutBatch:
    n = adv.shape[0]
    return RolloutBatch(obs=torch.zeros(n, 2, dtype=torch.float64), actions=torch.zeros(n, 1, dtype=torch.float64),
                        logp_old=torch.zeros(n, dtype=torch.float64), values=torch.zeros_like(adv), advantages=adv,
                        returns=adv.clone(), episodes=EpisodeStats.empty(1))


@pytest.mark.parametrize("mode, expected", [("center", [-1.0 + 5.0, 0.0 - 5.0, 1.0]),  # (A_r - 0.5 A_c) / 1.5
                                            ("standardize", [-1.0 + 0.5, 0.0 - 0.5, 1.0])])
def test_ppo_lag_policy_advantage_weighs_cost_per_mode(mode, expected):
    solver = ppo_lag(cost_advantage=mode)
    out = solver.policy_advantage(batch(ADV))
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64) / 1.5)


def test_cups_projection_centres_its_cost_advantages_by_default():
    cup = build_solver(CUP, CUPConfig, "cup")
    # cost advantages 10, 30, 20: centred to -10, 10, 0 in cost units, not standardised to -1, 1, 0
    torch.testing.assert_close(cup.cost_advantages(batch(ADV))[:, 0],
                               torch.tensor([-10.0, 10.0, 0.0], dtype=torch.float64))


OMNISAFE_MULTIPLIERS = Path(__file__).with_name("omnisafe_multipliers.csv")


@pytest.mark.parametrize("algo, omnisafe_algo", [("ppo_lag", "PPOLag"), ("cup", "CUP"), ("pid_lag", "CPPOPID")])
def test_the_default_multiplier_replays_omnisafes_from_its_costs(algo, omnisafe_algo):
    # OmniSafe 0.5.0's own log of 50 epochs on SafetyHopperVelocity-v1 at cost limit 25: the cost its multiplier
    # read (its 50-episode window) and the multiplier after that epoch's update, from the side by side's runs of
    # 2026-12-04 (PPOLag and CUP seed 1, CPPOPID seed 0). Our multiplier at the solver's defaults, fed the same
    # costs, takes the same values to float32's rounding: Adam's step and its clamp at 0 (rows 4 and 18), and the
    # PID controller with its gains, delay and averages (CUP's bound 2.0 is never reached here)
    with open(OMNISAFE_MULTIPLIERS, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["omnisafe_algo"] == omnisafe_algo]
    multiplier = build_config(get_algorithm(algo).Config, {"algo": algo}).multiplier(np.array([25.0]))
    ours = [float(multiplier.update(np.array([float(row["ep_cost"])]))[0]) for row in rows]
    theirs = [float(row["multiplier"]) for row in rows]
    assert len(rows) == 50 and max(theirs) > 0.05  # a whole run, whose multiplier moved
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_raw_advantages_when_standardisation_is_off():
    solver = ppo_lag(standardize_advantages=False, cost_advantage="center")
    torch.testing.assert_close(solver.stream_advantages(batch(ADV)), ADV)


@pytest.mark.parametrize("critic_lr_decay, critic_factor", [(False, 1.0), (True, 0.5)])
def test_critic_learning_rate_stays_constant_unless_asked(critic_lr_decay, critic_factor):
    cfg = build_config(PPOLagConfig, {"algo": "ppo_lag", "critic_lr_decay": critic_lr_decay})
    agent = ActorCritic(gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.Box(-1, 1, (1,)), 1, [4], [4])
    updater = TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=2)
    updater.end_epoch()  # one of two epochs done: the decaying rates are at half
    assert updater.actor_lr == pytest.approx(0.5 * cfg.actor_lr)
    assert updater.critic_lr == pytest.approx(critic_factor * cfg.critic_lr)


def test_obs_normalizer_clips_at_5_and_floors_the_std():
    norm = ObsNormalizer((2,))
    norm(np.array([[0.0, 1.0], [2.0, 1.0]]))  # feature 0: mean 1, std 1; feature 1: constant (std 0)
    out = norm(np.array([[100.0, 1.02]]), update=False)
    assert out[0, 0] == 5.0  # clipped at OmniSafe's 5, not 10
    assert out[0, 1] == pytest.approx(2.0)  # 0.02 / the floor 1e-2, not 0.02 / 1e-8 (which the clip would hide)


def test_obs_clip_is_a_config_key_and_must_be_positive():
    assert build_config(PPOLagConfig, {"algo": "ppo_lag"}).obs_clip == 5.0
    with pytest.raises(ConfigError, match="obs_clip must be > 0"):
        build_config(PPOLagConfig, {"algo": "ppo_lag", "obs_clip": 0})


def test_initial_std_is_one():
    cfg = build_config(PPOLagConfig, {"algo": "ppo_lag"})
    agent = ActorCritic(gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.Box(-1, 1, (3,)), 1, [4], [4],
                        init_log_std=cfg.init_log_std)
    torch.testing.assert_close(agent.actor.log_std.exp().detach(), torch.ones(3))


def test_cpo_searches_20_tries_and_trpo_lag_15():
    assert build_config(CPOConfig, {"algo": "cpo"}).line_search_steps == 20
    assert build_config(TRPOLagConfig, {"algo": "trpo_lag"}).line_search_steps == 15


@pytest.mark.parametrize("mode", ["exact", "sample"])
def test_early_stop_measures_the_kl_early_stop_kl_names(mode):
    """One pass of ppo_lag on 6 random states: the KL it logs (and stops on) is the closed-form KL between the
    behaviour policy's and the updated Gaussians (`exact`, the default) or the k3 estimate on the batch's actions."""
    overrides = {} if mode == "exact" else {"early_stop_kl": mode}  # exact: the default
    solver = ppo_lag(update_iters=1, batch_size=3, actor_lr=0.05, **overrides)
    assert solver.cfg.early_stop_kl == mode
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(6, 2, generator=g, dtype=torch.float64)
    actions = torch.randn(6, 1, generator=g, dtype=torch.float64)
    actor = solver.agent.actor
    with torch.no_grad():
        old = actor.distribution(obs)
        old = torch.distributions.Normal(old.loc.clone(), old.scale.clone())
        logp_old = actor.log_prob(obs, actions)
    adv = torch.randn(6, 2, generator=g, dtype=torch.float64)
    data = RolloutBatch(obs=obs, actions=actions, logp_old=logp_old, values=torch.zeros_like(adv), advantages=adv,
                        returns=adv.clone(), episodes=EpisodeStats.empty(1))
    logged = solver.optimize(data, solver.policy_advantage(data))["kl"]
    with torch.no_grad():
        exact = distribution_kl(old, actor.distribution(obs)).mean().item()
        sampled = approx_kl(logp_old, actor.log_prob(obs, actions)).item()
    assert exact > 1e-4 and abs(exact - sampled) > 1e-3 * exact  # the two measures differ on this case
    assert logged == pytest.approx(exact if mode == "exact" else sampled, rel=1e-9)


def test_early_stop_kl_is_checked_and_the_text_family_samples():
    with pytest.raises(ConfigError, match="early_stop_kl must be one of exact, sample"):
        build_config(PPOLagConfig, {"algo": "ppo_lag", "early_stop_kl": "approx"})
    from cmdp.envs.text.run import TEXT_CONFIG_DEFAULTS

    assert TEXT_CONFIG_DEFAULTS["early_stop_kl"] == "sample"


def test_kl_reduction_mean_is_omnisafes_kl_averaged_over_action_dimensions():
    """On a 3-dimensional Gaussian actor: `mean` is OmniSafe's kl_divergence(p, q).mean(), a third of the joint
    KL that `sum` (the default) measures, and so is the Fisher matrix built from it (checked without damping)."""
    torch.manual_seed(0)
    actor = GaussianActor(2, 3, [5], init_log_std=-0.3).double()
    obs = torch.randn(8, 2, dtype=torch.float64)
    with torch.no_grad():
        old = actor.distribution(obs)
        old = torch.distributions.Normal(old.loc.clone(), old.scale.clone())
        for p in actor.parameters():
            p.add_(0.1 * torch.randn_like(p))
        new = actor.distribution(obs)
    omnisafe = torch.distributions.kl_divergence(old, new).mean()  # OmniSafe's NaturalPG._fvp / line search
    torch.testing.assert_close(mean_kl(old, new, "mean"), omnisafe)
    torch.testing.assert_close(mean_kl(old, new, "sum"), 3 * omnisafe)
    assert build_config(TRPOLagConfig, {"algo": "trpo_lag"}).kl_reduction == "sum"
    v = torch.randn(sum(p.numel() for p in actor.parameters()), dtype=torch.float64)
    by_sum = fisher_vector_product(actor, obs, damping=0.0, reduction="sum")(v)
    torch.testing.assert_close(fisher_vector_product(actor, obs, damping=0.0, reduction="mean")(v), by_sum / 3)
    with pytest.raises(ConfigError, match="kl_reduction must be one of sum, mean"):
        build_config(CPOConfig, {"algo": "cpo", "kl_reduction": "max"})


@pytest.mark.parametrize("units, cost_advantage, expected", [
    ("per_step", "center", 15.0 / 20),  # (J_c - d) / the mean episode length
    ("per_step", "standardize", 15.0 / 20 / 10.0),  # ... / std(A_c), the standardised surrogate's unit
    ("episode", "center", 15.0),  # OmniSafe 0.5.0: J_c - d as it is
    ("episode", "standardize", 15.0),
])
def test_cpo_constraint_value_in_the_units_asked(units, cost_advantage, expected):
    """Episodes of 10 and 30 steps, J_c = 40 against d = 25, cost advantages 10, 30, 20 (std 10)."""
    spec = CMDPSpec(gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.Box(-1, 1, (1,)), (CostSpec("cost", 25.0),),
                    10)
    overrides = {} if units == "per_step" else {"cpo_constraint_units": units}
    cfg = build_config(CPOConfig, {"algo": "cpo", "cost_advantage": cost_advantage, **overrides})
    assert cfg.cpo_constraint_units == units
    agent = ActorCritic(spec.observation_space, spec.action_space, 1, [4], [4]).double()
    solver = CPO(cfg, spec, agent, TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=10),
                 torch.Generator().manual_seed(0))
    data = batch(ADV)
    data.episodes = EpisodeStats(np.array([1.0, 2.0]), np.array([[35.0], [45.0]]), np.array([10, 30]))
    _, _, c, violation = solver.cost_streams(data, np.array([40.0]))
    assert c == pytest.approx(expected, rel=1e-6) and violation == 15.0
    data.episodes = EpisodeStats.empty(1)  # no finished episode: the last c is reused
    assert solver.constraint_value(data, np.array([np.nan]))[0] == pytest.approx(15.0 / 20 if units == "per_step"
                                                                                else 15.0)
    with pytest.raises(ConfigError, match="cpo_constraint_units must be one of per_step, episode"):
        build_config(CPOConfig, {"algo": "cpo", "cpo_constraint_units": "total"})


def test_network_init_pytorch_is_torch_linears_own():
    """`pytorch` (the default since 2026-12-04): the actor's layers are exactly what nn.Linear draws from the same
    seed (OmniSafe's kaiming_uniform mode), and every critic head's weights and biases lie in nn.Linear's bounds
    +-1/sqrt(fan_in), biases not 0. `orthogonal` (ours before): zero biases and the policy's output layer 100 times
    smaller. The trainer builds its agent with the config's choice."""
    torch.manual_seed(3)
    net = mlp([3, 5, 2], "tanh", out_gain=0.01, init="pytorch")
    torch.manual_seed(3)
    reference = [torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)]
    for mine, theirs in zip([m for m in net if isinstance(m, torch.nn.Linear)], reference):
        torch.testing.assert_close(mine.weight, theirs.weight)
        torch.testing.assert_close(mine.bias, theirs.bias)
    space, act = gymnasium.spaces.Box(-1, 1, (4,)), gymnasium.spaces.Box(-1, 1, (2,))
    agent = ActorCritic(space, act, 1, [64, 64], [64, 64], init="pytorch")
    for w, b in zip(agent.critic.weights, agent.critic.biases):
        bound = 1.0 / w.shape[1] ** 0.5  # (heads, in, out): fan_in = in
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
        assert b.abs().max() <= bound and (b != 0).all()
    orthogonal = ActorCritic(space, act, 1, [64, 64], [64, 64], init="orthogonal")
    assert all((b == 0).all() for b in orthogonal.critic.biases)
    assert orthogonal.actor.mean[-1].weight.abs().max() < 0.05 < agent.actor.mean[-1].weight.abs().max()
    assert build_config(PPOLagConfig, {"algo": "ppo_lag"}).network_init == "pytorch"
    for init in NETWORK_INITS:  # the config's choice reaches the networks the trainer builds
        trainer = Trainer(resolve_config({"algo": "ppo_lag", "env": "ExactChain-v0", "network_init": init})[0])
        try:
            assert (trainer.agent.critic.biases[0] == 0).all() == (init == "orthogonal")
        finally:
            trainer.close()
    with pytest.raises(ConfigError, match="network_init must be one of orthogonal, pytorch"):
        build_config(PPOLagConfig, {"algo": "ppo_lag", "network_init": "xavier"})


def test_safety_gymnasium_tasks_read_omnisafes_50_episode_cost_window():
    """Row 4: a family default on every Safety-Gymnasium task (OmniSafe 0.5.0's logger window), for on- and
    off-policy solvers; the exact CMDPs keep the epoch's mean (0); a user's value wins."""
    from cmdp.envs.safety_gym import SAFETY_GYM_DEFAULTS

    assert SAFETY_GYM_DEFAULTS == {"cost_window": 50}
    for algo, env in [("ppo_lag", "SafetyHopperVelocity-v1"), ("cpo", "SafetyPointGoal1-v0"),
                      ("sac_lag", "SafetyPointCircle1-v0"), ("pid_lag", "SafetyCarGoal1Vision-v0")]:
        assert resolve_config({"algo": algo, "env": env})[0].cost_window == 50, (algo, env)
    assert resolve_config({"algo": "ppo_lag", "env": "ExactChain-v0"})[0].cost_window == 0
    assert resolve_config({"algo": "ppo_lag", "env": "SafetyHopperVelocity-v1", "cost_window": 0})[0].cost_window == 0


def test_action_bounds_scale_omnisafes_unclipped_or_clip():
    """Row 15: a Gaussian sample is mapped linearly from [-1, 1] onto [low, high] and passed on unclipped (OmniSafe's
    ActionScale, the default) or, with `action_bounds: clip`, clipped to the Box; training and evaluation map alike."""
    from cmdp.envs.quadratic_bandit import QuadraticBanditVecCMDP
    from cmdp.evaluation import policy_actions
    from cmdp.networks import BoxActions, action_map
    from cmdp.rollout import VecCollector

    samples = np.array([[-1.5, 0.0, 1.0, 2.0]])
    low, high = np.full(4, -0.4), np.full(4, 0.4)  # SafetyHumanoidVelocity-v1's bounds
    np.testing.assert_allclose(BoxActions(low, high, "clip")(samples), [[-0.4, 0.0, 0.4, 0.4]])
    np.testing.assert_allclose(BoxActions(low, high)(samples), [[-0.6, 0.0, 0.4, 0.8]])
    np.testing.assert_allclose(BoxActions(np.zeros(4), np.full(4, 2.0))(samples), [[-0.5, 1.0, 2.0, 3.0]])
    # on [-1, 1] the map is the identity bit for bit (float32 bounds, as the spaces give them)
    noise = np.random.default_rng(0).normal(size=(64, 4)) * 3
    ones = np.ones(4, dtype=np.float32)
    assert np.array_equal(BoxActions(-ones, ones)(noise), noise)
    # a dimension with an infinite bound cannot be scaled: it is clipped to its bounds (a no-op where both are
    # infinite), so the action stays in the Box; the bounded dimensions are still scaled
    inf = np.inf
    mixed_low, mixed_high = np.array([-inf, 0.0, -inf, 0.0]), np.array([inf, inf, 1.0, 2.0])
    np.testing.assert_allclose(BoxActions(mixed_low, mixed_high)(np.array([[-2.0, -2.0, 2.0, 0.5]])),
                               [[-2.0, 0.0, 1.0, 1.5]])
    with pytest.raises(ValueError, match="action_bounds must be one of"):
        BoxActions(low, high, "tanh")

    env = QuadraticBanditVecCMDP(num_envs=1, num_costs=4)  # bounds [-1, 1]: scaling is the identity, unclipped
    agent = ActorCritic(env.spec.observation_space, env.spec.action_space, 4, [4], [4])
    for bounds, expected in (("clip", [[-1.0, 0.0, 1.0, 1.0]]), ("scale", samples)):
        collector = VecCollector(env, agent, np.ones(5), np.ones(5), action_bounds=bounds)
        np.testing.assert_allclose(collector.env_action(samples), expected)
        act = policy_actions(env.spec, lambda x, rng, deterministic: samples, None, np.zeros((1, 4)),
                             np.random.default_rng(0), True, action_map(env.spec.action_space, bounds))
        np.testing.assert_allclose(act, expected)

    assert build_config(PPOLagConfig, {"algo": "ppo_lag"}).action_bounds == "scale"
    with pytest.raises(ConfigError, match="action_bounds must be one of"):
        build_config(PPOLagConfig, {"algo": "ppo_lag", "action_bounds": "tanh"})
    cfg, _ = resolve_config({"algo": "ppo_lag", "env": "QuadraticBandit-v0", "action_bounds": "clip",
                             "total_steps": 20, "steps_per_epoch": 10})
    trainer = Trainer(cfg)
    try:  # the run's collector and its evaluation both read the key
        assert trainer.run.collector.action_bounds == "clip" and trainer.run.action_bounds == "clip"
    finally:
        trainer.close()


def test_final_observations_join_the_observation_statistics():
    """Row 17: as OmniSafe's ObsNormalize, the statistics fold in every observation the policy sees (reset ones
    included) and also the final observation of every episode that ended, terminated or truncated, before the
    observations that follow it."""
    from dataclasses import replace

    from cmdp.envs.quadratic_bandit import QuadraticBanditVecCMDP
    from cmdp.normalize import ObsNormalizer, RunningMeanStd
    from cmdp.rollout import VecCollector

    class Recorded(QuadraticBanditVecCMDP):
        """Episodes of 3 steps; copy 1's end terminated instead of truncated; every batch the collector receives is
        recorded in the order OmniSafe's wrapper folds them: final observations first."""

        def __init__(self) -> None:
            super().__init__(num_envs=2, num_costs=1, horizon=3)
            self.batches: list[np.ndarray] = []
            self.ended: list[np.ndarray] = []

        def _reset(self, seed: int | None) -> np.ndarray:
            obs = super()._reset(seed)
            self.batches.append(obs.copy())
            return obs

        def _step(self, actions: np.ndarray):
            res = super()._step(actions)
            terminated = res.truncated & (np.arange(2) == 1)
            res = replace(res, terminated=terminated, truncated=res.truncated & ~terminated)
            ended = res.terminated | res.truncated
            self.ended.append(ended)
            if ended.any():
                self.batches.append(res.final_obs[ended].copy())
            self.batches.append(res.obs.copy())
            return res

    env = Recorded()
    agent = ActorCritic(env.spec.observation_space, env.spec.action_space, 1, [4], [4])
    normalizer = ObsNormalizer((1,))
    collector = VecCollector(env, agent, np.ones(2), np.ones(2), normalizer)
    collector.collect(7, np.random.default_rng(0), reset_seed=0)
    assert sum(int(e[1]) for e in env.ended) == 2 and sum(int(e[0]) for e in env.ended) == 2  # both kinds ended
    expected = RunningMeanStd((1,))
    for batch in env.batches:
        expected.update(batch)
    assert normalizer.stats.count == 2 * 8 + 4  # (reset + 7 steps) x 2 copies + 4 final observations
    np.testing.assert_array_equal(normalizer.stats.mean, expected.mean)
    np.testing.assert_array_equal(normalizer.stats.var, expected.var)


def test_each_stacked_head_is_clipped_on_its_own():
    # two heads stacked in each tensor: head 0's gradient has norm 5 (3, 4 over two tensors), head 1's 0.5
    w, b = torch.nn.Parameter(torch.zeros(2, 1, 1)), torch.nn.Parameter(torch.zeros(2, 1, 1))
    part = FlatPart([w, b], [([w, b], (0, 1))], lr=0.1, weight_decay=0.0)
    grad = torch.tensor([3.0, 0.3, 4.0, 0.4])  # w's two heads, then b's
    norms = part.norms(grad)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.5]))
    part.clip_(grad, norms, max_norm=1.0)
    torch.testing.assert_close(grad, torch.tensor([3.0 / (5 + 1e-6), 0.3, 4.0 / (5 + 1e-6), 0.4]))


def test_a_non_finite_gradient_moves_no_parameter():
    cfg = build_config(PPOLagConfig, {"algo": "ppo_lag"})
    agent = ActorCritic(gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.Box(-1, 1, (1,)), 1, [4], [4])
    updater = TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=10)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    obs = torch.ones(3, 2)
    bad_critic = (agent.critic(obs) * float("nan")).sum()  # the critics' norm is non-finite, the actor's is not
    with pytest.raises(TrainingDiverged, match=r"^training diverged: a gradient norm is not finite \(the critic's "
                                               r"\[nan, nan\]\), so the step cannot be clipped\. Lower"):
        updater.step(actor_loss=agent.actor.log_prob(obs, torch.zeros(3, 1)).mean(), critic_loss=bad_critic)
    assert all(torch.equal(v, before[k]) for k, v in agent.state_dict().items())


def omnisafe_critic_steps(critic: torch.nn.Module, obs: torch.Tensor, target: torch.Tensor, l2: float,
                          max_norm: float, lr: float, steps: int) -> list[float]:
    """OmniSafe's PolicyGradient._update_reward_critic on a separate critic, `steps` times: MSE plus
    l2 * sum(w^2), the whole gradient clipped, an Adam step. Returns the norms before clipping."""
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    norms = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((critic(obs).squeeze(-1) - target) ** 2).mean() + l2 * sum((p ** 2).sum() for p in critic.parameters())
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(critic.parameters(), max_norm)))
        optimizer.step()
    return norms


@pytest.mark.parametrize("critic_clip, same_as_omnisafe", [("per_critic", True), ("joint", False)])
def test_per_critic_clip_is_omnisafes_separate_critics(critic_clip, same_as_omnisafe):
    cfg = build_config(PPOLagConfig, {"algo": "ppo_lag", "critic_clip": critic_clip, "max_grad_norm": 1.0,
                                      "critic_l2": 0.01, "critic_lr": 0.01})
    torch.manual_seed(0)
    agent = ActorCritic(gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.Box(-1, 1, (1,)), 1, [4], [4]).double()
    ensemble = agent.critic
    # each head as the separate torch.nn MLP OmniSafe builds (w[e].T is head e's nn.Linear weight)
    separate = []
    for e in range(2):
        net = mlp([2, 4, 1], "tanh", 1.0).double()
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for linear, w, b in zip(linears, ensemble.weights, ensemble.biases):
                linear.weight.copy_(w[e].T)
                linear.bias.copy_(b[e, 0])
        separate.append(net)
    obs = torch.tensor([[0.5, -1.0], [1.0, 0.2], [-0.3, 0.7]], dtype=torch.float64)
    # the reward head's targets are far (its norm stays above max_grad_norm), the cost head's near (below it);
    # several steps, as Adam's first step is the gradient's sign whatever its scale
    with torch.no_grad():
        near = ensemble(obs)[:, 1] + torch.tensor([0.01, -0.01, 0.0], dtype=torch.float64)
    targets = torch.stack([torch.tensor([30.0, 20.0, 25.0], dtype=torch.float64), near], dim=1)
    steps = 4
    norms = [omnisafe_critic_steps(net, obs, targets[:, e], 0.01, 1.0, cfg.critic_lr, steps)
             for e, net in enumerate(separate)]
    assert min(norms[0]) > 1.0 > max(norms[1])  # the clip binds on the reward critic only

    updater = TorchUpdater(agent.actor, ensemble, cfg, num_epochs=10)
    for _ in range(steps):
        updater.step(critic_loss=((ensemble(obs) - targets) ** 2).mean(0).sum())
    for e, net in enumerate(separate):
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        # Adam's normalised steps carry rounding differences of the tiny cost gradient up to about 2e-10 (seeds
        # 0-5); jointly clipped, the weights differ by 0.02-0.08 after these four steps of 0.01
        same = all(torch.allclose(linear.weight, w[e].T, rtol=0, atol=1e-8)
                   and torch.allclose(linear.bias, b[e, 0], rtol=0, atol=1e-8)
                   for linear, w, b in zip(linears, ensemble.weights, ensemble.biases))
        # jointly, the reward head's large gradient also scales down the cost head's, and the L2 term is unclipped
        assert same == same_as_omnisafe, f"head {e}"
    # the epoch's log says how often the clip bound: on every critic step, and no actor step was taken
    assert updater.end_epoch() == {"grad_clip_critic": 1.0}
    updater.step(critic_loss=((ensemble(obs) - ensemble(obs).detach()) ** 2).mean(0).sum())  # zero gradient
    assert updater.end_epoch() == {"grad_clip_critic": 0.0}


def test_critic_clip_is_checked_and_image_critics_keep_their_state_keys():
    with pytest.raises(ConfigError, match="critic_clip must be one of per_critic, joint"):
        build_config(PPOLagConfig, {"algo": "ppo_lag", "critic_clip": "each"})
    space = gymnasium.spaces.Dict({"image": gymnasium.spaces.Box(0, 255, (36, 36, 3), np.uint8)})
    critic = ActorCritic(space, gymnasium.spaces.Box(-1, 1, (1,)), 1, [4], [4]).critic
    assert isinstance(critic, EncodedCritic)
    assert {k.split(".")[0] for k in critic.state_dict()} == {"0", "1"}  # as when it was a plain Sequential
    (encoder, shared), (stacked, heads) = critic.clip_groups()
    assert shared == (0,) and heads == (0, 1) and len(encoder) + len(stacked) == len(list(critic.parameters()))
