"""Continuous-action off-policy solvers (DDPG, TD3, SAC; their Lagrangian and PID versions): the squashed
actors, the multiplier delay, each solver from the CLI with an exact resume, and the constrained ones against
the closed-form optimum of QuadraticBandit-v0, the unconstrained bases breaking its limits."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

from cmdp.cli import main
from cmdp.envs.quadratic_bandit import bandit_optimum, evaluate_bandit_policy
from cmdp.lagrange import DelayedMultiplier, LagrangeMultiplier, PIDMultiplier
from cmdp.logger import TIMING_COLUMNS, read_progress
from cmdp.networks import DeterministicActor, SquashedGaussianActor
from cmdp.normalize import StepStandardizer
from cmdp.trainer import Trainer, resolve_config
from run_helpers import interrupted_run

OFF_POLICY = ["ddpg", "ddpg_lag", "ddpg_pid", "td3", "td3_lag", "td3_pid", "sac", "sac_lag", "sac_pid"]

# The bandit's settings for the learning checks: a per-step problem (gamma < 1, the next context does not
# depend on the action), small networks, a quarter of a gradient step per environment step and a multiplier
# fast enough to settle in 16 epochs. SAC runs with a small fixed temperature: its optimum is the entropy-
# regularised one, which the LP-style optimum approaches as alpha -> 0. Measured with `_train_and_score` below
# (return / optimum 9.167 with two costs, seed 0), with the orthogonal initialisation of before 2026-12-05:
# ddpg_lag 0.976, td3_lag 0.968, sac_lag 0.987, every cost at or below its limit 0.833; with the default since
# (network_init: pytorch): 0.971, 0.967, 0.977, costs 0.60-0.74.
BANDIT: dict[str, Any] = dict(
    env="QuadraticBandit-v0", num_envs=8, gamma=0.9, cost_gamma=0.9, total_steps=6400, steps_per_epoch=400,
    update_after=800, random_steps=800, updates_per_step=0.25, batch_size=64, actor_hidden=[32, 32],
    critic_hidden=[32, 32], actor_lr=1e-3, critic_lr=1e-3, policy_delay=1)
MULTIPLIER: dict[str, Any] = dict(lagrangian_optimizer="sgd", lagrangian_lr=0.2, lagrangian_steps="epoch",
                                  multiplier_delay=0)
SAC_TEMPERATURE: dict[str, Any] = dict(auto_alpha=False, alpha=0.005)


def _bandit(algo: str, num_costs: int, seed: int, **extra: Any) -> tuple[Trainer, dict[str, Any]]:
    values = {**BANDIT, "algo": algo, "seed": seed, "env_kwargs": {"num_costs": num_costs}, **extra}
    if algo.endswith("_lag"):
        values.update(MULTIPLIER)
    if algo.startswith("sac"):
        values.update(SAC_TEMPERATURE)
    cfg, _ = resolve_config(values)
    return Trainer(cfg), values


def _train_and_score(tmp_path: Path, algo: str, num_costs: int, seed: int, **extra: Any
                     ) -> tuple[float, np.ndarray, Any, np.ndarray]:
    """Train on the bandit; the exact-in-expectation (Monte Carlo, 20,000 contexts) return and costs of the
    policy the solver learnt: SAC's stochastic policy, DDPG's and TD3's deterministic one."""
    trainer, _ = _bandit(algo, num_costs, seed, **extra)
    trainer.train(tmp_path, progress=False)
    sample, rng = trainer.agent.actor.numpy_sampler(), np.random.default_rng(1)
    deterministic = not algo.startswith("sac")
    value, costs = evaluate_bandit_policy(lambda s: sample(s.astype(np.float64), rng, deterministic), num_costs, 10)
    limits = trainer.spec.cost_limits
    return value, costs, bandit_optimum(limits, 10, num_costs), limits


def test_squashed_gaussian_log_prob_is_the_change_of_variables_of_its_bounds() -> None:
    torch.manual_seed(0)
    space = gymnasium.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    actor = SquashedGaussianActor(3, space, [16], "relu")
    obs = torch.randn(64, 3)
    action, logp = actor.sample(obs, torch.Generator().manual_seed(0))
    assert torch.all(action[:, 0].abs() < 2) and torch.all((action[:, 1] > 0) & (action[:, 1] < 1))
    mean, log_std = actor.net(obs).chunk(2, dim=-1)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.clamp(-20, 2).exp()),
        [torch.distributions.TanhTransform(), torch.distributions.AffineTransform(actor.scale.center,
                                                                                  actor.scale.half_range)])
    torch.testing.assert_close(logp, reference.log_prob(action).sum(-1), rtol=1e-4, atol=1e-3)
    sampler = actor.numpy_sampler()
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(sampler(obs.double().numpy(), rng, True), actor.mean_action(obs).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    drawn = sampler(obs.double().numpy(), rng, False)
    assert np.all(drawn >= space.low) and np.all(drawn <= space.high)
    assert not np.allclose(drawn, sampler(obs.double().numpy(), rng, True))


def test_deterministic_actor_acts_in_its_bounds_with_exploration_noise() -> None:
    torch.manual_seed(0)
    space = gymnasium.spaces.Box(-3.0, 3.0, (2,), np.float32)
    actor = DeterministicActor(4, space, [16], "relu", noise=0.5)
    obs = torch.randn(256, 4)
    sampler, rng = actor.numpy_sampler(), np.random.default_rng(0)
    exact = sampler(obs.double().numpy(), rng, True)
    np.testing.assert_allclose(exact, actor(obs).detach().numpy(), rtol=1e-5, atol=1e-6)
    noisy = sampler(obs.double().numpy(), rng, False)
    assert np.all(np.abs(noisy) <= 3.0)
    assert np.std(noisy - exact) == pytest.approx(0.5 * 3.0, rel=0.15)  # noise x half-range


def test_delayed_multiplier_holds_still_then_moves_and_round_trips() -> None:
    delayed = DelayedMultiplier(LagrangeMultiplier(np.array([1.0]), init=0.5, lr=0.1, optimizer="sgd"), delay=2)
    assert delayed.update(np.array([3.0])).tolist() == [0.5]
    assert delayed.update(np.array([3.0])).tolist() == [0.5]
    assert delayed.update(np.array([3.0])).tolist() == pytest.approx([0.7])  # 0.5 + 0.1 * (3 - 1)
    copy = DelayedMultiplier(LagrangeMultiplier(np.array([1.0]), init=0.5, lr=0.1, optimizer="sgd"), delay=2)
    copy.load_state_dict(delayed.state_dict())
    assert copy.update(np.array([0.0])).tolist() == delayed.update(np.array([0.0])).tolist() == pytest.approx([0.6])


def test_adam_per_update_follows_the_cost_where_one_step_per_epoch_keeps_its_momentum() -> None:
    """`lagrangian_steps`: OmniSafe's 2,000 Adam steps of 1e-5 per epoch and one step of 0.02 per epoch rise alike
    under a steady violation, but once the cost falls below the limit the first turns lambda down within a few epochs
    and the second keeps raising it for some 30, on the momentum of the epochs before (cmdp/off_policy.py,
    OffPolicyLagrangeOptions)."""
    per_update = LagrangeMultiplier(np.array([25.0]), init=0.001, lr=1e-5)
    per_epoch = LagrangeMultiplier(np.array([25.0]), init=0.001, lr=0.02)
    for _ in range(20):
        per_update.update(np.array([980.0]), steps=2000)
        per_epoch.update(np.array([980.0]), steps=1)
    assert per_update.value == pytest.approx(per_epoch.value, rel=1e-3)
    assert per_epoch.value == pytest.approx([0.001 + 20 * 0.02], rel=1e-3)  # a full step per epoch
    before_update, before_epoch = per_update.value.copy(), per_epoch.value.copy()
    for _ in range(10):  # the policy now keeps within the limit
        per_update.update(np.array([0.0]), steps=2000)
        per_epoch.update(np.array([0.0]), steps=1)
    assert (per_update.value - before_update) / 0.02 == pytest.approx([-7.0], abs=0.1)  # 10 epochs, 3 to turn
    assert (per_epoch.value - before_epoch) / 0.02 == pytest.approx([6.1], abs=0.1)  # still rising
    state = per_update.state_dict()
    assert per_update.update(np.array([500.0]), steps=0).tolist() == state["value"]  # an epoch without updates
    assert per_update.state_dict() == state


def test_losses_get_their_columns_from_the_first_epoch_with_an_update_and_resume_alike(tmp_path: Path) -> None:
    """OmniSafe's defaults learn from step 10,000 or 25,000, epochs are 2,000 steps: the losses first appear in
    epoch 6 or 13. progress.csv gains their columns then (earlier rows empty there), also across a resume."""
    values = dict(algo="sac_lag", env="QuadraticBandit-v0", total_steps=1600, steps_per_epoch=400, num_envs=4,
                  update_after=800, random_steps=800, batch_size=32, actor_hidden=[16], critic_hidden=[16],
                  updates_per_step=0.25, seed=2)
    cfg, _ = resolve_config(values)
    Trainer(cfg).train(tmp_path / "full", progress=False)
    log = read_progress(tmp_path / "full" / "progress.csv")
    assert log[0]["loss_q"] == "" and all(row["loss_q"] for row in log[1:])  # updates from step 800, epoch 2's last
    header = list(log[0])
    assert header.index("ep_cost") < header.index("loss_q") < header.index("updates") < header.index("wall_s")
    cut = interrupted_run(cfg, tmp_path / "cut", after_epoch=1)
    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    assert _rows(cut) == _rows(tmp_path / "full")
    assert (cut / "progress.csv").read_text().splitlines()[0] == (tmp_path / "full" / "progress.csv").read_text(
    ).splitlines()[0]


def test_step_standardizer_is_omnisafes_running_standardisation_by_hand() -> None:
    """Each step's value against the mean and sample std (n - 1) of every value up to it, floored at 1e-2 and
    clipped at 5, computed from the whole prefix; the first value passes unchanged."""
    rng = np.random.default_rng(0)
    costs = np.concatenate([np.zeros((60, 1, 2)), (rng.random((40, 1, 2)) < 0.3).astype(float)])
    costs[:, :, 1] *= 2.5  # a second cost on another scale
    standardizer = StepStandardizer((2,))
    out = np.stack([standardizer(step) for step in costs])
    assert out[0].tolist() == costs[0].tolist()
    seen = costs[:, 0]
    for t in range(1, len(costs)):
        std = np.maximum(seen[:t + 1].std(0, ddof=1), 1e-2)
        assert out[t, 0] == pytest.approx(np.clip((seen[t] - seen[:t + 1].mean(0)) / std, -5, 5), abs=1e-12), t
    assert out[60].max() == 5.0  # the first cost after 60 free steps: 7.7 standard deviations, clipped
    batched = StepStandardizer((2,))  # two copies per step: the statistics take both rows at once
    pairs = costs.reshape(50, 2, 2)
    last = [batched(pair) for pair in pairs][-1]
    std = np.maximum(costs[:, 0].std(0, ddof=1), 1e-2)
    assert last == pytest.approx(np.clip((pairs[-1] - costs[:, 0].mean(0)) / std, -5, 5), abs=1e-12)
    copy = StepStandardizer((2,))
    copy.load_state_dict(batched.state_dict())
    assert copy(pairs[0]).tolist() == batched(pairs[0]).tolist()


def test_cost_standardize_trains_on_standardised_costs_logs_raw_ones_and_resumes_exactly(tmp_path: Path) -> None:
    values = dict(algo="sac_lag", env="QuadraticBandit-v0", total_steps=1200, steps_per_epoch=400, num_envs=4,
                  update_after=400, random_steps=400, batch_size=32, actor_hidden=[16], critic_hidden=[16],
                  updates_per_step=0.25, multiplier_delay=0, seed=1)
    plain = Trainer(resolve_config(values)[0])
    plain.train(tmp_path / "plain", progress=False)
    standardized_cfg, _ = resolve_config({**values, "cost_standardize": True})
    standardized = Trainer(standardized_cfg)
    standardized.train(tmp_path / "standardized", progress=False)
    stored = standardized.loop.replay.state_dict()["data"]["costs"]
    raw = plain.loop.replay.state_dict()["data"]["costs"]
    assert stored.shape == raw.shape and stored[:400].abs().max() > 0  # the random first epoch: the same steps
    assert not torch.equal(stored[:400], raw[:400])
    assert stored[:400].mean().abs() < 0.1 and raw[:400].mean() > 0.1  # centred, and the costs are not
    plain_log = read_progress(tmp_path / "plain" / "progress.csv")
    standardized_log = read_progress(tmp_path / "standardized" / "progress.csv")
    episode_columns = [k for k in plain_log[0] if k.startswith(("ep_", "episodes"))]
    # epoch 1 acts at random: the same episodes, logged with their raw costs
    assert [plain_log[0][k] for k in episode_columns] == [standardized_log[0][k] for k in episode_columns]
    assert plain_log[-1]["loss_q"] != standardized_log[-1]["loss_q"]
    standardized_rows = _rows(tmp_path / "standardized")
    cut = interrupted_run(standardized_cfg, tmp_path / "cut", after_epoch=1)
    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    assert _rows(cut) == standardized_rows


def test_multiplier_kinds_and_omnisafe_defaults_per_solver() -> None:
    kinds = {"ddpg": None, "td3": None, "sac": None, "ddpg_lag": LagrangeMultiplier, "td3_lag": LagrangeMultiplier,
             "sac_lag": LagrangeMultiplier, "ddpg_pid": PIDMultiplier, "td3_pid": PIDMultiplier,
             "sac_pid": PIDMultiplier}
    for algo, kind in kinds.items():
        cfg, _ = resolve_config({"algo": algo, "env": "SafetyHopperVelocity-v1"})
        multiplier = cfg.multiplier(np.array([25.0]))
        if kind is None:
            assert multiplier is None, algo
            continue
        assert isinstance(multiplier, DelayedMultiplier) and multiplier.delay == 100, algo  # warmup_epochs
        assert isinstance(multiplier.inner, kind), algo
    # OmniSafe: SAC starts learning at 10,000 steps with alpha 0.2 fixed and a delayed actor; DDPG and TD3 at 25,000
    sac, _ = resolve_config({"algo": "sac_lag", "env": "SafetyHopperVelocity-v1"})
    assert (sac.update_after, sac.alpha, sac.auto_alpha, sac.policy_delay) == (10_000, 0.2, False, 2)
    ddpg, _ = resolve_config({"algo": "ddpg_pid", "env": "SafetyHopperVelocity-v1"})
    assert (ddpg.update_after, ddpg.policy_delay, ddpg.actor_lr, ddpg.lagrangian_init) == (25_000, 1, 1e-4, 0.0)
    td3, _ = resolve_config({"algo": "td3_lag", "env": "SafetyHopperVelocity-v1"})
    assert (td3.policy_delay, td3.policy_noise, td3.policy_noise_clip) == (2, 0.2, 0.5)
    # OmniSafe's multiplier: Adam with lambda_lr 1e-5, one step per gradient update; the PID variants once per epoch
    assert (td3.lagrangian_lr, td3.lagrangian_optimizer, td3.lagrangian_steps) == (1e-5, "adam", "update")
    assert (td3.multiplier_steps(2000), ddpg.multiplier_steps(2000)) == (2000, 1)
    per_epoch, _ = resolve_config({"algo": "sac_lag", "env": "SafetyHopperVelocity-v1", "lagrangian_steps": "epoch"})
    assert per_epoch.multiplier_steps(2000) == 1
    assert (sac.network_init, sac.cost_standardize) == ("pytorch", False)


@pytest.mark.parametrize("algo", ["ddpg_lag", "sac_lag"])
def test_network_init_reaches_the_actor_and_the_critics(algo: str) -> None:
    """torch's own init (OmniSafe's kaiming_uniform) draws every bias; the orthogonal init sets them to 0."""
    for init, zero_biases in (("pytorch", False), ("orthogonal", True)):
        trainer = Trainer(resolve_config({"algo": algo, "env": "QuadraticBandit-v0", "network_init": init})[0])
        agent = trainer.agent
        for net in (agent.actor, agent.critic):
            biases = [p for name, p in net.named_parameters() if "bias" in name or name.startswith("b")]
            assert biases and all(bool((b == 0).all()) for b in biases) is zero_biases, (algo, init, net)
        trainer.close()


def _rows(run_dir: Path) -> list[list[str]]:
    return [[v for k, v in row.items() if k not in TIMING_COLUMNS] for row in read_progress(run_dir / "progress.csv")]


@pytest.mark.parametrize("algo", OFF_POLICY)
def test_every_off_policy_solver_trains_from_the_cli_and_resumes_exactly(tmp_path: Path, algo: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    settings = ["--set", "total_steps=1200", "--set", "steps_per_epoch=400", "--set", "num_envs=4",
                "--set", "update_after=400", "--set", "random_steps=400", "--set", "batch_size=32",
                "--set", "actor_hidden=[16]", "--set", "critic_hidden=[16]", "--set", "env_kwargs={num_costs: 2}",
                "--set", "updates_per_step=0.25"]
    if algo not in ("ddpg", "td3", "sac"):
        settings += ["--set", "multiplier_delay=1"]  # the delay's state crosses the checkpoint too
    assert main(["train", "--algo", algo, "--env", "QuadraticBandit-v0", "--out", str(tmp_path / "full"),
                 "--no-progress", *settings]) == 0
    full = tmp_path / "full"
    cfg, _ = resolve_config({"algo": algo, "env": "QuadraticBandit-v0", "total_steps": 1200, "steps_per_epoch": 400,
                             "num_envs": 4, "update_after": 400, "random_steps": 400, "batch_size": 32,
                             "actor_hidden": [16], "critic_hidden": [16], "env_kwargs": {"num_costs": 2},
                             "updates_per_step": 0.25,
                             **({} if algo in ("ddpg", "td3", "sac") else {"multiplier_delay": 1})})
    run_dir = interrupted_run(cfg, tmp_path / "cut", after_epoch=1)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert _rows(full) == _rows(run_dir)
    header = read_progress(full / "progress.csv")[0]
    assert ("lambda/effort_0" in header) is (algo not in ("ddpg", "td3", "sac"))
    assert main(["eval", str(full), "--episodes", "2"]) == 0
    assert "return" in capsys.readouterr().out


@pytest.mark.parametrize("algo", ["ddpg_lag", "td3_lag", "sac_lag"])
def test_constrained_solvers_reach_the_bandit_optimum_with_two_costs(tmp_path: Path, algo: str) -> None:
    value, costs, optimum, limits = _train_and_score(tmp_path, algo, num_costs=2, seed=0)
    assert value == pytest.approx(optimum.value, rel=0.05)
    assert np.all(costs <= limits * 1.05), (costs, limits)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("algo", ["ddpg_lag", "td3_lag", "sac_lag", "ddpg_pid", "td3_pid", "sac_pid"])
def test_constrained_solvers_reach_the_bandit_optimum_with_one_cost(tmp_path: Path, algo: str, seed: int) -> None:
    # the PID versions with a controller as fast as the _lag versions' ascent (ki = lr) plus as much proportional
    # action; measured on seed 0: ddpg_pid 0.981, td3_pid 0.986, sac_pid 0.997 of the optimum, costs at or below
    extra = {} if algo.endswith("_lag") else dict(pid_kp=0.3, pid_ki=0.3, pid_kd=0.0, multiplier_delay=0,
                                                  pid_delta_p_ema_alpha=0.0, pid_delta_d_ema_alpha=0.0)
    value, costs, optimum, limits = _train_and_score(tmp_path, algo, num_costs=1, seed=seed, **extra)
    assert value == pytest.approx(optimum.value, rel=0.05)
    assert np.all(costs <= limits * 1.05), (costs, limits)


def test_unconstrained_bases_break_the_bandit_limits(tmp_path: Path) -> None:
    for algo in ("ddpg", "td3", "sac"):
        value, costs, optimum, limits = _train_and_score(tmp_path / algo, algo, num_costs=2, seed=0,
                                                         total_steps=3200)
        # the unconstrained optimum a = s costs 4x each limit and returns 10 > 9.167
        assert np.all(costs > 2 * limits), (algo, costs, limits)
        assert value > optimum.value, algo


def test_continuous_solvers_refuse_discrete_actions_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for algo in ("ddpg_lag", "td3"):
        assert main(["train", "--algo", algo, "--env", "ExactChain-v0", "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert "needs Box (continuous) actions" in err and len(err.splitlines()) == 1


def test_the_off_policy_guide_commands_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/off-policy.md's commands, each made tiny (a few hundred steps, small networks) or dry."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "off-policy.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [["cmdp", "train"], ["cmdp", "train"], ["cmdp", "benchmark"]]
    tiny = ["--total-steps", "400", "--set", "steps_per_epoch=200", "--set", "update_after=100", "--set",
            "random_steps=100", "--set", "batch_size=16", "--set", "actor_hidden=[16]", "--set", "critic_hidden=[16]",
            "--no-progress"]
    for i, command in enumerate(commands[:2]):
        assert main([*command[1:], *tiny, "--out", str(tmp_path / str(i))]) == 0, command
    benchmark = commands[2][1:]
    assert benchmark[-2:] == ["--ray", "auto"]
    assert main([*benchmark[:-2], "--dry-run"]) == 0
    assert "sac_pid" in capsys.readouterr().out


@pytest.mark.parametrize("critic_clip, same_as_omnisafe", [("per_critic", True), ("joint", False)])
def test_critics_clip_as_omnisafes_reward_critic_and_cost_critic(critic_clip, same_as_omnisafe):
    """OmniSafe's SACLag clips its reward critic (both Q networks) as one vector and its cost critic as another, each
    with its own Adam (DDPG._update_reward_critic and _update_cost_critic): `critic_clip: per_critic`, the default,
    steps the three heads of one `EnsembleCritic` exactly so; clipped jointly they step otherwise."""
    from cmdp.algorithms.sac_lag import SACLagConfig
    from cmdp.config import build_config
    from cmdp.networks import mlp
    from cmdp.off_policy import ActorQAgent
    from cmdp.optim import TorchUpdater

    cfg = build_config(SACLagConfig, {"algo": "sac_lag", "critic_clip": critic_clip, "max_grad_norm": 1.0,
                                      "critic_lr": 0.01})
    assert build_config(SACLagConfig, {"algo": "sac_lag"}).critic_clip == "per_critic"
    torch.manual_seed(0)
    actor = torch.nn.Linear(2, 1).double()  # takes no step: only the critics have a loss
    agent = ActorQAgent(actor, 2, 1, reward_heads=2, num_costs=1, critic_hidden=[4], activation="relu",
                        target_actor=False, init="pytorch").double()
    ensemble = agent.critic
    assert ensemble.clip_groups()[0][1] == (0, 0, 1)  # twin reward heads one critic, the cost head another
    nets = []  # each head as the torch.nn MLP OmniSafe builds (w[e].T is head e's nn.Linear weight)
    for e in range(3):
        net = mlp([3, 4, 1], "relu", 1.0).double()
        with torch.no_grad():
            for linear, w, b in zip([m for m in net if isinstance(m, torch.nn.Linear)], ensemble.weights,
                                    ensemble.biases):
                linear.weight.copy_(w[e].T)
                linear.bias.copy_(b[e, 0])
        nets.append(net)
    sa = torch.tensor([[0.5, -1.0, 0.3], [1.0, 0.2, -0.4], [-0.3, 0.7, 0.9]], dtype=torch.float64)
    with torch.no_grad():  # the reward heads' targets far (their norm stays above 1), the cost head's near
        near = ensemble(sa)[:, 2] + torch.tensor([0.01, -0.01, 0.0], dtype=torch.float64)
    targets = torch.stack([torch.tensor([30.0, 20.0, 25.0]).double(), torch.tensor([-10.0, 5.0, 15.0]).double(),
                           near], dim=1)
    critics = {"reward": ([0, 1], []), "cost": ([2], [])}  # OmniSafe's two critics: their heads, their clip norms
    optimizers = {name: torch.optim.Adam([p for e in heads for p in nets[e].parameters()], lr=cfg.critic_lr)
                  for name, (heads, _) in critics.items()}
    for _ in range(4):  # several steps: Adam's first is the gradient's sign whatever its scale
        for name, (heads, norms) in critics.items():
            optimizers[name].zero_grad()
            sum(((nets[e](sa)[:, 0] - targets[:, e]) ** 2).mean() for e in heads).backward()
            params = [p for e in heads for p in nets[e].parameters()]
            norms.append(float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)))
            optimizers[name].step()
    assert min(critics["reward"][1]) > 1.0 > max(critics["cost"][1])  # the clip binds on the reward critic only

    updater = TorchUpdater(actor, ensemble, cfg, num_epochs=10)
    for _ in range(4):
        updater.step(critic_loss=((ensemble(sa) - targets) ** 2).mean(0).sum())
    same = [all(torch.allclose(linear.weight, w[e].T, rtol=0, atol=1e-9)
                and torch.allclose(linear.bias, b[e, 0], rtol=0, atol=1e-9)
                for linear, w, b in zip([m for m in nets[e] if isinstance(m, torch.nn.Linear)], ensemble.weights,
                                        ensemble.biases)) for e in range(3)]
    # jointly, the reward heads' large gradient also scales the cost head's down
    assert same[2] == same_as_omnisafe and (all(same) if same_as_omnisafe else not all(same)), same
