"""`cmdp.optim.TorchUpdater` on its flat buffers: the same steps as torch's Adam and clip_grad_norm_, checkpoints
of torch's Adam still resume, a parameter moved out of its buffer is refused; and `RolloutBatch.minibatch_pass`
draws the minibatches `minibatches` does."""
import gymnasium
import pytest
import torch

from cmdp.algorithms.ppo_lag import PPOLagConfig
from cmdp.config import build_config
from cmdp.networks import ActorCritic
from cmdp.optim import TorchUpdater, clip_runs, flatten_parameters, linear_decay
from cmdp.rollout import OldDistribution, RolloutBatch
from cmdp.vec_env import EpisodeStats


def agent_and_config(**changes):
    cfg = build_config(PPOLagConfig, {"algo": "ppo_lag", "actor_lr": 0.01, "critic_lr": 0.02, "max_grad_norm": 0.5,
                                      **changes})
    torch.manual_seed(0)
    agent = ActorCritic(gymnasium.spaces.Box(-1, 1, (3,)), gymnasium.spaces.Box(-1, 1, (2,)), 2, [5], [6]).double()
    return agent, cfg


def losses(agent, step: int):
    g = torch.Generator().manual_seed(step)
    obs = torch.randn(7, 3, generator=g, dtype=torch.float64)
    actions = torch.randn(7, 2, generator=g, dtype=torch.float64)
    targets = 10 * torch.randn(7, 3, generator=g, dtype=torch.float64)  # far: the clip binds on some steps
    return -agent.actor.log_prob(obs, actions).mean(), ((agent.critic(obs) - targets) ** 2).mean(0).sum()


def torch_reference_steps(agent, cfg, steps: int, epochs: int) -> None:
    """What version 0.1's TorchUpdater did with critic_clip joint: torch's Adam (coupled weight decay 2 * l2 on the
    critics), each part clipped by clip_grad_norm_, linear decay of both rates per epoch."""
    actor, critic = list(agent.actor.parameters()), list(agent.critic.parameters())
    adam = torch.optim.Adam([{"params": actor, "lr": cfg.actor_lr, "weight_decay": 0.0},
                             {"params": critic, "lr": cfg.critic_lr, "weight_decay": 2 * cfg.critic_l2}])
    schedule = torch.optim.lr_scheduler.LambdaLR(adam, [linear_decay(epochs, True)] * 2)
    for step in range(steps):
        adam.zero_grad()
        loss_pi, loss_v = losses(agent, step)
        (loss_pi + loss_v).backward()
        torch.nn.utils.clip_grad_norm_(actor, cfg.max_grad_norm)
        torch.nn.utils.clip_grad_norm_(critic, cfg.max_grad_norm)
        adam.step()
        if step % 2 == 1:
            schedule.step()


def test_flat_adam_takes_torch_adams_steps():
    agent, cfg = agent_and_config(critic_clip="joint", critic_l2=0.01, critic_lr_decay=True)
    reference, _ = agent_and_config()
    reference.load_state_dict(agent.state_dict())
    torch_reference_steps(reference, cfg, steps=6, epochs=4)
    updater = TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=4)
    for step in range(6):
        updater.step(*losses(agent, step))
        if step % 2 == 1:
            updater.end_epoch()
    moved = [(agent.state_dict()[k] - v).abs().max() for k, v in reference.state_dict().items()]
    assert max(moved) < 1e-12, moved
    assert updater.actor_lr == pytest.approx(0.25 * cfg.actor_lr)  # 3 of 4 epochs done


def test_a_checkpoint_of_torch_adam_resumes_with_its_moments_and_epochs():
    agent, cfg = agent_and_config(critic_clip="joint", critic_l2=0.01, critic_lr_decay=True)
    actor, critic = list(agent.actor.parameters()), list(agent.critic.parameters())
    adam = torch.optim.Adam([{"params": actor, "lr": cfg.actor_lr}, {"params": critic, "lr": cfg.critic_lr}])
    schedule = torch.optim.lr_scheduler.LambdaLR(adam, [linear_decay(4, True)] * 2)
    for step in range(3):
        adam.zero_grad()
        sum(losses(agent, step)).backward()
        adam.step()
    schedule.step()
    old = {"optimizer": adam.state_dict(), "scheduler": schedule.state_dict()}
    updater = TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=4)
    updater.load_state_dict(old)
    assert updater.epochs_done == 1 and updater.actor_lr == pytest.approx(0.75 * cfg.actor_lr)
    for name, params in (("actor", actor), ("critic", critic)):
        part = updater.parts[name]
        assert part.steps == 3
        torch.testing.assert_close(part.exp_avg, torch.cat([adam.state[p]["exp_avg"].reshape(-1) for p in params]))
        torch.testing.assert_close(part.exp_avg_sq,
                                   torch.cat([adam.state[p]["exp_avg_sq"].reshape(-1) for p in params]))
    resumed = TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=4)
    resumed.load_state_dict(updater.state_dict())  # and today's form round-trips
    assert resumed.epochs_done == 1 and resumed.parts["critic"].steps == 3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_clip_binds_where_a_tensor_comparison_says(dtype):
    # a gradient norm of exactly float32(0.1), which is above the double 0.1: torch compares a float32 tensor with
    # 0.1 rounded to float32 (the clip does not bind), a float64 tensor with 0.1 itself (it binds). The step reads the
    # norms as Python floats, so it must round the limit the same way to decide as the tensors would.
    actor = torch.nn.Linear(1, 1, bias=False).to(dtype)
    cfg = build_config(PPOLagConfig, {"algo": "ppo_lag", "max_grad_norm": 0.1})
    updater = TorchUpdater(actor, None, cfg, num_epochs=1)
    norm = torch.tensor(0.1, dtype=torch.float32).to(dtype)
    updater.step(actor_loss=(actor.weight * norm).sum())
    bound = bool(norm > cfg.max_grad_norm)
    assert bound == (dtype == torch.float64)
    assert updater.end_epoch()["grad_clip_actor"] == float(bound)


def test_a_parameter_given_new_storage_is_refused():
    agent, cfg = agent_and_config()
    updater = TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=4)
    agent.load_state_dict({k: v + 1 for k, v in agent.state_dict().items()})  # in place: still in the buffer
    updater.step(*losses(agent, 0))
    agent.float()
    with pytest.raises(RuntimeError, match="left its updater's flat buffer"):
        updater.step(*losses(agent.double(), 1))


def test_gradients_a_module_reset_are_taken_back_into_the_buffer():
    agent, cfg = agent_and_config()
    other, _ = agent_and_config()
    updater = TorchUpdater(agent.actor, agent.critic, cfg, num_epochs=4)
    reference = TorchUpdater(other.actor, other.critic, cfg, num_epochs=4)
    for step in range(3):
        agent.zero_grad()  # sets every .grad to None: backward then makes new tensors outside the buffer
        updater.step(*losses(agent, step))
        reference.step(*losses(other, step))
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in agent.state_dict().items())
    actor = updater.parts["actor"]
    assert all(p.grad.data_ptr() == view.data_ptr() for p, view in zip(actor.params, actor.grad_views))


def test_flat_buffers_refuse_mixed_kinds_and_unclipped_parameters():
    with pytest.raises(ValueError, match="one dtype and device"):
        flatten_parameters([torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2).double())])
    a, b = torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.zeros(4))
    lengths, segments = clip_runs([a, b], [([a], (0, 1)), ([b], (0,))])
    assert lengths.tolist() == [3, 3, 4] and segments.tolist() == [0, 1, 2]
    # heads 0 and 1 of a stacked tensor in one segment (twin Q heads), head 2 in the next; then the next group's
    c, d = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(5))
    lengths, segments = clip_runs([c, d], [([c], (0, 0, 1)), ([d], (0,))])
    assert lengths.tolist() == [2, 2, 2, 5] and segments.tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError, match="in no clip group"):
        clip_runs([a, b], [([a], (0,))])
    with pytest.raises(ValueError, match="none skipped"):
        clip_runs([c], [([c], (0, 0, 2))])


@pytest.mark.parametrize("with_groups", [False, True])
def test_a_minibatch_pass_draws_the_minibatches_of_minibatches(with_groups):
    n = 10
    g = torch.Generator().manual_seed(0)
    batch = RolloutBatch(obs=torch.randn(n, 3, generator=g), actions=torch.randn(n, 2, generator=g),
                         logp_old=torch.randn(n, generator=g), values=torch.randn(n, 2, generator=g),
                         advantages=torch.randn(n, 2, generator=g), returns=torch.randn(n, 2, generator=g),
                         episodes=EpisodeStats.empty(1), ref_logp=torch.randn(n, generator=g),
                         groups=torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 4]) if with_groups else None,
                         old_dist=OldDistribution(torch.randn(n, 4, generator=g),
                                                  lambda p: torch.distributions.Normal(p[:, :2], p[:, 2:].exp())))
    adv = torch.randn(n, generator=g)
    drawn = list(batch.minibatch_pass(3, torch.Generator().manual_seed(5), adv))
    indexed = [batch.minibatch(idx, adv) for idx in batch.minibatches(3, torch.Generator().manual_seed(5))]
    assert len(drawn) == len(indexed) == (2 if with_groups else 4)
    for a, b in zip(drawn, indexed):
        for field in ("obs", "actions", "logp_old", "adv", "advantages", "returns", "values", "ref_logp"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
        assert torch.equal(a.old_dist.loc, b.old_dist.loc) and torch.equal(a.old_dist.scale, b.old_dist.scale)
    # a pass for the critics alone (no policy advantage): the same samples, and no old distribution to build
    critics = list(batch.minibatch_pass(3, torch.Generator().manual_seed(5), None))
    assert [mb.adv for mb in critics] == [None] * len(drawn) and [mb.old_dist for mb in critics] == [None] * len(drawn)
    assert all(torch.equal(a.returns, b.returns) and torch.equal(a.obs, b.obs) for a, b in zip(critics, drawn))
