"""RolloutBatch and the vectorised collector that fills it.

The collector runs the current policy in a `VecCMDP` for one epoch, then computes, in single
batched passes: old log-probabilities, reward and cost values, and GAE advantages and returns for
the reward and every cost. Solvers receive the finished `RolloutBatch` and never touch environments.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import gymnasium
import numpy as np
import torch

from cmdp.gae import gae
from cmdp.networks import ActorCritic, action_map, encode_obs
from cmdp.normalize import ObsNormalizer, ReturnScaler
from cmdp.vec_env import EpisodeStats, VecCMDP


@dataclass
class OldDistribution:
    """The behaviour policy's action distributions over a batch, kept as parameters (no model copy).

    `params` (B, P) come from the actor's `distribution_params(obs)` at collection time; indexing rebuilds
    the distributions of some samples with the actor's `distribution_from_params`.
    """

    params: torch.Tensor
    build: Callable[[torch.Tensor], torch.distributions.Distribution]

    def __getitem__(self, idx: Any) -> torch.distributions.Distribution:
        return self.build(self.params[idx])


@dataclass
class Minibatch:
    """The samples of one minibatch, as a solver's `actor_loss` receives them."""

    obs: Any  # (b, obs_dim) tensor, or a TokenObs for text
    actions: torch.Tensor
    logp_old: torch.Tensor  # (b,) log-probability of `actions` under the behaviour policy
    adv: torch.Tensor | None  # (b,) the policy advantage the solver combined (None: critics only)
    advantages: torch.Tensor  # (b, 1 + K) raw GAE per stream (column 0: reward)
    returns: torch.Tensor  # (b, 1 + K) critic targets
    # the behaviour policy's distribution at these states (solvers with `needs_old_distribution`, in minibatches with
    # a policy advantage; else None)
    old_dist: torch.distributions.Distribution | None = None
    values: torch.Tensor | None = None  # (b, 1 + K) the critics' estimates at collection time
    ref_logp: torch.Tensor | None = None  # (b,) log-probability of `actions` under the frozen reference (text)


@dataclass
class RolloutBatch:
    """One epoch of experience, flattened to B = T * N samples.

    Stream axis E = 1 + K: column 0 is the reward, column 1 + k is cost k.
    """

    obs: Any  # (B, obs_dim) tensor encoded and normalised as the policy saw them; text: a TokenObs
    actions: torch.Tensor  # (B, act_dim) or (B,) for discrete actions (text: token ids)
    logp_old: torch.Tensor  # (B,)
    values: torch.Tensor  # (B, E) critic estimates at collection time
    advantages: torch.Tensor  # (B, E) GAE per stream (not standardised)
    returns: torch.Tensor  # (B, E) critic targets: advantages + values
    episodes: EpisodeStats  # episodes that finished during the epoch (raw, unscaled)
    # (B,) group of each sample, groups contiguous and numbered 0..G-1 (text: the response a token belongs to);
    # minibatches then hold whole groups, so a model runs once per sequence, not once per token
    groups: torch.Tensor | None = None
    info: dict[str, float] = field(default_factory=dict)  # collection metrics, logged with the epoch
    # for a batch split over data-parallel processes: the mean of a statistic over all of them (None: this batch
    # is the whole batch); solvers pass decisions such as KL early stopping through `global_mean`
    reduce_mean: Callable[[float], float] | None = None
    old_dist: OldDistribution | None = None  # only for solvers that declared `needs_old_distribution`
    # (B,) log-probability of each action under a frozen reference policy, for families that have one (text: the
    # reference LM of the KL penalty), so a solver can put that KL in its loss (GRPO); None elsewhere
    ref_logp: torch.Tensor | None = None

    def minibatch(self, idx: torch.Tensor | slice, policy_adv: torch.Tensor | None) -> Minibatch:
        """The samples `idx` (from `minibatches`, or a slice) with the policy advantage `policy_adv` (B,) selected
        alike. Without one the minibatch is for the critics alone, and carries no `old_dist` (nothing reads it
        there, and rebuilding a distribution was 5% of a trust-region solver's critic regression)."""
        return Minibatch(self.obs[idx], self.actions[idx], self.logp_old[idx],
                         None if policy_adv is None else policy_adv[idx], self.advantages[idx], self.returns[idx],
                         None if self.old_dist is None or policy_adv is None else self.old_dist[idx],
                         self.values[idx], None if self.ref_logp is None else self.ref_logp[idx])

    def global_mean(self, value: float) -> float:
        """`value` (a mean over this batch) averaged over every process's batch; itself in one process."""
        return value if self.reduce_mean is None else self.reduce_mean(value)

    @property
    def size(self) -> int:
        return int(self.logp_old.shape[0])

    def minibatch_pass(self, batch_size: int, generator: torch.Generator,
                       policy_adv: torch.Tensor | None) -> Iterator[Minibatch]:
        """One random pass over the batch as `Minibatch`es: the samples `minibatches` draws, with the same random
        numbers, so either way gives the same minibatches. Without `groups` the batch is permuted once and every
        minibatch is a slice (a view) of the permuted copy: one gather per field and pass instead of one per
        minibatch, which at 64 samples was about 5% of a PPO update (benchmarks/update_speed.py). The copy lives
        for the pass: twice the batch's memory meanwhile (for 20,000 steps of 64x64 images, 1 GB more)."""
        if self.groups is not None:
            for idx in self.minibatches(batch_size, generator):
                yield self.minibatch(idx, policy_adv)
            return
        perm = torch.randperm(self.size, generator=generator)
        old_dist = None if self.old_dist is None or policy_adv is None else OldDistribution(self.old_dist.params[perm],
                                                                                            self.old_dist.build)
        shuffled = replace(self, obs=self.obs[perm], actions=self.actions[perm], logp_old=self.logp_old[perm],
                           values=self.values[perm], advantages=self.advantages[perm], returns=self.returns[perm],
                           old_dist=old_dist,
                           ref_logp=None if self.ref_logp is None else self.ref_logp[perm])
        adv = None if policy_adv is None else policy_adv[perm]
        for start in range(0, self.size, batch_size):
            yield shuffled.minibatch(slice(start, start + batch_size), adv)

    def minibatches(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """One random pass over the batch as index tensors: `batch_size` samples each, or, with `groups`,
        `batch_size` whole groups each."""
        if self.groups is None:
            perm = torch.randperm(self.size, generator=generator)
            for start in range(0, self.size, batch_size):
                yield perm[start:start + batch_size]
            return
        counts = torch.bincount(self.groups.cpu())
        offsets = torch.cumsum(counts, 0) - counts
        perm = torch.randperm(len(counts), generator=generator)
        for start in range(0, len(counts), batch_size):
            chosen = perm[start:start + batch_size]
            idx = torch.cat([torch.arange(int(offsets[g]), int(offsets[g] + counts[g])) for g in chosen])
            yield idx.to(self.logp_old.device)


class VecCollector:
    """Runs a policy in a vectorised CMDP and produces `RolloutBatch`es.

    Observations are encoded (one-hot for Discrete) and, for Box spaces when `obs_normalizer` is
    given, normalised with running statistics updated as the data arrives (the final observations of
    ended episodes included, as OmniSafe's ObsNormalize does). Rewards and costs may be
    rescaled for learning (`reward_scaler`, `cost_scaler`); episode statistics stay raw. Image
    observations arrive flat (`cmdp.vision`) and are stored as they are: the normaliser given for them
    (`PartialObsNormalizer`) touches only their vector part, and the networks' encoders scale the pixels.
    """

    def __init__(self, env: VecCMDP, agent: ActorCritic, gamma: np.ndarray, lam: np.ndarray,
                 obs_normalizer: ObsNormalizer | None = None, reward_scaler: ReturnScaler | None = None,
                 cost_scaler: ReturnScaler | None = None, device: torch.device | str = "cpu",
                 old_distribution: bool = False, action_bounds: str = "scale") -> None:
        self.env, self.agent = env, agent
        self.action_bounds = action_bounds  # how samples become Box actions (`cmdp.networks.BoxActions`)
        self.old_distribution = old_distribution
        self.gamma, self.lam = np.asarray(gamma, dtype=np.float64), np.asarray(lam, dtype=np.float64)
        self.obs_normalizer, self.reward_scaler, self.cost_scaler = obs_normalizer, reward_scaler, cost_scaler
        self.device = torch.device(device)
        space = env.spec.action_space
        self.discrete = isinstance(space, gymnasium.spaces.Discrete)
        self.to_env = action_map(space, action_bounds)

    def prepare_obs(self, raw: np.ndarray, update: bool) -> np.ndarray:
        """Raw environment observations -> the policy's input (encoded, normalised)."""
        x = encode_obs(self.env.spec.observation_space, raw)
        if self.obs_normalizer is not None:
            x = self.obs_normalizer(x, update=update)
        return x

    def env_action(self, actions: np.ndarray) -> np.ndarray:
        """Policy output -> what the environment accepts (Gaussian samples scaled onto the bounds, or clipped to
        them: `action_bounds`)."""
        return self.to_env(actions)

    def collect(self, steps_per_env: int, rng: np.random.Generator, reset_seed: int,
                progress: Callable[[int], None] | None = None) -> RolloutBatch:
        """Reset every copy with `reset_seed`, run `steps_per_env` steps in each, return the batch.

        Episodes still running at the end are cut and bootstrapped like time-limit truncations;
        resetting at each epoch start makes an epoch a pure function of (weights, rng, reset_seed),
        which is what lets `--resume` reproduce an uninterrupted run exactly.
        """
        env, n, T = self.env, self.env.num_envs, steps_per_env
        k = env.spec.num_costs
        sample = self.agent.actor.numpy_sampler()
        x = self.prepare_obs(env.reset(seed=reset_seed), update=True)
        obs_buf = np.empty((T, n, x.shape[1]), dtype=np.float32)
        act_buf: np.ndarray | None = None
        rew = np.empty((T, n))
        cost = np.empty((T, n, k))
        term = np.zeros((T, n), dtype=bool)
        trunc = np.zeros((T, n), dtype=bool)
        final_rows: list[tuple[int, np.ndarray, np.ndarray]] = []  # (t, env indices, prepared final obs)
        episodes: list[EpisodeStats] = []
        report_every = max(1, 1024 // n)
        for t in range(T):
            actions = sample(x, rng, False)
            if act_buf is None:
                act_buf = np.empty((T, *actions.shape), dtype=np.int64 if self.discrete else np.float32)
            res = env.step(self.env_action(actions))
            obs_buf[t] = x
            act_buf[t] = actions
            rew[t], cost[t], term[t], trunc[t] = res.reward, res.costs, res.terminated, res.truncated
            ended = res.terminated | res.truncated
            if ended.any():
                # every ended episode's final observation joins the statistics before the next observations, as
                # in OmniSafe's ObsNormalize (docs/omnisafe-differences.md row 17); a truncated one is bootstrapped
                idx = np.flatnonzero(ended)
                final_x = self.prepare_obs(res.final_obs[idx], update=True)
                cut = res.truncated[idx]
                if cut.any():
                    final_rows.append((t, idx[cut], final_x[cut]))
            if len(res.episodes.returns):
                episodes.append(res.episodes)
            x = self.prepare_obs(res.obs, update=True)
            if progress is not None and (t + 1) % report_every == 0:
                progress(report_every * n)
        if progress is not None and T % report_every:
            progress((T % report_every) * n)
        done = term | trunc
        done[-1] = True  # the epoch cuts every running episode
        if self.reward_scaler is not None:
            rew = np.stack([self.reward_scaler(rew[t][:, None], done[t])[:, 0] for t in range(T)])
        if self.cost_scaler is not None:
            cost = np.stack([self.cost_scaler(cost[t], done[t]) for t in range(T)])
        return self._finish(obs_buf, act_buf, rew, cost, term, done, x, final_rows,
                            EpisodeStats.concatenate(episodes, k))

    @torch.no_grad()
    def _finish(self, obs_buf: np.ndarray, act_buf: np.ndarray, rew: np.ndarray, cost: np.ndarray,
                term: np.ndarray, done: np.ndarray, last_x: np.ndarray,
                final_rows: list[tuple[int, np.ndarray, np.ndarray]], episodes: EpisodeStats) -> RolloutBatch:
        T, n, d = obs_buf.shape
        extra = [last_x.astype(np.float32)] + [rows.astype(np.float32) for _, _, rows in final_rows]
        all_obs = torch.from_numpy(np.concatenate([obs_buf.reshape(T * n, d), *extra])).to(self.device)
        all_values = self.agent.critic(all_obs).double().cpu().numpy()  # (T*n + extras, E)
        e = all_values.shape[1]
        values = all_values[: T * n].reshape(T, n, e)
        next_values = np.empty_like(values)
        next_values[:-1] = values[1:]
        next_values[-1] = all_values[T * n: T * n + n]
        offset = T * n + n
        for t, idx, rows in final_rows:
            next_values[t, idx] = all_values[offset: offset + len(rows)]
            offset += len(rows)
        signals = np.concatenate([rew[..., None], cost], axis=-1)
        adv, ret = gae(signals, values, next_values, term, done, self.gamma, self.lam)
        obs_t = all_obs[: T * n]
        act_t = torch.from_numpy(act_buf.reshape(T * n, *act_buf.shape[2:])).to(self.device)
        logp = self.agent.actor.log_prob(obs_t, act_t)

        def flat(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.reshape(T * n, e).astype(np.float32)).to(self.device)

        old = None
        if self.old_distribution:
            actor = self.agent.actor
            old = OldDistribution(actor.distribution_params(obs_t), actor.distribution_from_params)
        return RolloutBatch(obs_t, act_t, logp, flat(values), flat(adv), flat(ret), episodes, old_dist=old)


class VecStepper:
    """Steps a vectorised CMDP for off-policy solvers: a few steps at a time, as `Transitions` for a replay buffer.

    The environments are reset at each epoch's start (`start`, with a seed derived from the epoch, as the
    on-policy collector does) so an epoch is a pure function of the weights, the RNG states and the epoch: that
    keeps `--resume` exact. The epoch's last step cuts the running episodes: they are stored as truncated
    (bootstrapped), never as terminal.
    """

    def __init__(self, env: VecCMDP, agent: Any, device: torch.device | str = "cpu") -> None:
        self.env, self.agent = env, agent
        self.device = torch.device(device)
        self.space = env.spec.observation_space
        self.action_space = env.spec.action_space
        self.discrete = isinstance(self.action_space, gymnasium.spaces.Discrete)
        self.x: np.ndarray | None = None

    def start(self, reset_seed: int) -> None:
        self.x = encode_obs(self.space, self.env.reset(seed=reset_seed))

    def random_actions(self, rng: np.random.Generator) -> np.ndarray:
        """Uniform actions over the action space (the warm-up of off-policy solvers)."""
        n = self.env.num_envs
        if self.discrete:
            return rng.integers(int(self.action_space.n), size=n)
        low, high = self.action_space.low, self.action_space.high
        return rng.uniform(low, high, size=(n, *low.shape))

    def steps(self, num_steps: int, rng: np.random.Generator, random_actions: bool, last: bool) -> Any:
        from cmdp.family import Transitions

        if self.x is None:
            raise RuntimeError("VecStepper.start must be called before steps")
        env, k = self.env, self.env.spec.num_costs
        sample = None if random_actions else self.agent.actor.numpy_sampler()
        obs, acts, rews, costs, nxt, term, trunc, episodes = [], [], [], [], [], [], [], []
        for t in range(num_steps):
            actions = self.random_actions(rng) if sample is None else sample(self.x, rng, False)
            if self.discrete:
                actions = np.asarray(actions).astype(np.int64)
            res = env.step(actions)
            x_next = encode_obs(self.space, res.obs)
            done = res.terminated | res.truncated
            after = x_next  # the true next observation of each copy's step: the final one where an episode ended
            if done.any():
                after = x_next.copy()
                after[done] = encode_obs(self.space, res.final_obs[done])
            cut = res.truncated | (last and t == num_steps - 1)
            obs.append(self.x), acts.append(actions), rews.append(res.reward), costs.append(res.costs)
            nxt.append(after), term.append(res.terminated), trunc.append(cut & ~res.terminated)
            if res.episodes is not None and len(res.episodes.returns):
                episodes.append(res.episodes)
            self.x = x_next

        def cat(parts: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(np.concatenate([np.asarray(p) for p in parts]), dtype=dtype)

        return Transitions(cat(obs, torch.float32), cat(acts, torch.int64 if self.discrete else torch.float32),
                           cat(rews, torch.float32), cat(costs, torch.float32).reshape(-1, k),
                           cat(nxt, torch.float32), cat(term, torch.bool), cat(trunc, torch.bool),
                           EpisodeStats.concatenate(episodes, k))
