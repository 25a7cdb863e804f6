"""The defaults that now follow OmniSafe 0.5.0 (docs/omnisafe-differences.md), each on a hand case.

- `cost_advantage: center`: the reward advantage standardised, each cost advantage only centred (row 1);
- the critics' learning rate constant while the actor's decays (`critic_lr_decay: false`, row 5);
- observations clipped at 5 with the std floored at 1e-2 (`obs_clip`, row 2);
- the policy's initial std 1.0 (`init_log_std: 0`, row 10);
- CPO's line search of 20 tries (row 22).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cmdp.algorithms.cpo import CPOConfig
from cmdp.algorithms.ppo_lag import PPOLag, PPOLagConfig
from cmdp.algorithms.trpo_lag import TRPOLagConfig
from cmdp.config import ConfigError, build_config
from cmdp.losses import standardize_streams
from cmdp.networks import ActorCritic
from cmdp.normalize import ObsNormalizer
from cmdp.optim import TorchUpdater
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


def ppo_lag(**overrides) -> PPOLag:
    spec = CMDPSpec(gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.Box(-1, 1, (1,)), (CostSpec("cost", 1.0),), 10)
    cfg = build_config(PPOLagConfig, {"algo": "ppo_lag", "lagrangian_init": 0.5, **overrides})
    agent = ActorCritic(spec.observation_space, spec.action_space, 1, [4], [4]).double()
    return PPOLag(cfg, spec, agent, TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=10),
                  torch.Generator().manual_seed(0))


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
