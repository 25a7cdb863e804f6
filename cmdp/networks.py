"""Actor and critic networks for vector observations (the control side of the framework); for image observations
an encoder (`cmdp.vision.ImageEncoder`) goes in front of the actor's and the critics' MLPs.

- `Actor`: the actors' base; `stochastic` says whether the trained policy is a distribution (the deterministic
  actor's noise only explores in training, and evaluation leaves it out).
- `GaussianActor` (Box actions): MLP mean, state-independent learned log-std.
- `CategoricalActor` (Discrete actions): MLP logits.
- `SquashedGaussianActor` (Box actions, SAC): MLP mean and log-std, a tanh-squashed sample in the bounds.
- `DeterministicActor` (Box actions, DDPG and TD3): a tanh-squashed MLP, Gaussian exploration noise when acting.
- `EnsembleCritic`: E independent MLP value functions (reward + one per cost) evaluated as one
  batched matrix product, so K extra cost critics cost almost nothing extra.

During on-policy collection the policy is fixed, so actors hand out a numpy copy of themselves
(`numpy_sampler`): sampling one action in numpy costs ~10 us against ~40 us through torch, which
matters when an environment step costs ~130 us. Log-probabilities and values of the whole rollout
are then computed by torch in one batched pass, so the numpy copy only ever draws actions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import gymnasium
import numpy as np
import torch
from torch import nn

from cmdp.optim import ClipGroup
from cmdp.vision import ImageEncoder, ImageLayout

ACTIVATIONS: dict[str, tuple[type[nn.Module], Callable[[np.ndarray], np.ndarray]]] = {
    "tanh": (nn.Tanh, np.tanh),
    "relu": (nn.ReLU, lambda x: np.maximum(x, 0.0)),
}

Sampler = Callable[[np.ndarray, np.random.Generator, bool], np.ndarray]


def flat_obs_dim(space: gymnasium.Space) -> int:
    """Length of the float vector an observation of `space` is encoded as (a Dict with an image: the flat layout of
    `cmdp.vision.ImageLayout`)."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gymnasium.spaces.Box):
        return int(np.prod(space.shape))
    layout = ImageLayout.of(space)
    if layout is not None:
        return layout.flat_dim
    raise TypeError(f"unsupported observation space {space}; supported: Box, Discrete, Dict of Box vectors and "
                    "one (H, W, C) uint8 image")


def encode_obs(space: gymnasium.Space, obs: np.ndarray) -> np.ndarray:
    """Batch of raw observations (N, ...) -> float array (N, flat_obs_dim): one-hot for Discrete. (Dict
    observations with an image arrive already flattened by their environment, `cmdp.vision`.)"""
    if isinstance(space, gymnasium.spaces.Discrete):
        return np.eye(int(space.n), dtype=np.float64)[np.asarray(obs, dtype=np.int64) - int(space.start)]
    return np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)


#: How the on-policy networks' linear layers start (`network_init`). "orthogonal": orthogonal weights with gain
#: sqrt(2) in hidden layers and `out_gain` on the output (0.01 for a policy, 1 for a critic), zero biases, the PPO
#: implementation choice that Engstrom et al. 2020 and Andrychowicz et al. 2021 (the policy's small last layer)
#: measured to matter. "pytorch": torch.nn.Linear's own (Kaiming-uniform weights with a = sqrt(5), biases uniform
#: in +-1/sqrt(fan_in)), which is OmniSafe's `kaiming_uniform` mode (docs/omnisafe-differences.md row 14). The
#: on-policy solvers default to "pytorch" since 2026-12-04 (`PolicyGradientConfig.network_init`, which the trainer
#: passes in), the off-policy ones since 2026-12-05 (`OffPolicyConfig.network_init`, OmniSafe's off-policy configs
#: too); the builders below default to "orthogonal".
NETWORK_INITS = ("orthogonal", "pytorch")


def mlp(sizes: list[int], activation: str, out_gain: float, init: str = "orthogonal") -> nn.Sequential:
    """Linear layers with `activation` between them, initialised as `init` says (`NETWORK_INITS`)."""
    if init not in NETWORK_INITS:
        raise ValueError(f"init must be one of {NETWORK_INITS}, got {init!r}")
    act_cls = ACTIVATIONS[activation][0]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])  # torch's own init: kept when init == "pytorch"
        last = i == len(sizes) - 2
        if init == "orthogonal":
            nn.init.orthogonal_(linear.weight, gain=out_gain if last else math.sqrt(2))
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(act_cls())
    return nn.Sequential(*layers)


def _numpy_mlp(net: nn.Sequential, activation: str) -> Callable[[np.ndarray], np.ndarray]:
    weights = [(m.weight.detach().cpu().double().numpy().T.copy(), m.bias.detach().cpu().double().numpy().copy())
               for m in net if isinstance(m, nn.Linear)]
    act = ACTIVATIONS[activation][1]

    def forward(x: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(weights):
            x = x @ w + b
            if i < len(weights) - 1:
                x = act(x)
        return x

    return forward


def _after(encoder: nn.Module | None, net: nn.Sequential) -> nn.Sequential:
    """`net`, with `encoder` applied first when there is one."""
    return net if encoder is None else nn.Sequential(encoder, net)


@dataclass(frozen=True)
class DistributionMLP:
    """How an actor makes its distribution's parameters (`distribution_params`) when a plain MLP makes them: `net`
    (Linear layers with Tanh or ReLU between them) on the observations, then, for a Gaussian, its state-independent
    `log_std` broadcast over the batch and appended. What the trust region's Jacobian Fisher product needs
    (`cmdp.fisher.mlp_fisher_product`); an actor with an encoder in front, or a language model, has none."""

    net: nn.Sequential
    log_std: nn.Parameter | None = None


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) of the softmax policy with `logits` (B, num_actions) at `actions` (B,), shape (B,)."""
    return torch.log_softmax(logits, dim=-1).gather(-1, actions.long().reshape(-1, 1)).squeeze(-1)


class Actor(nn.Module):
    """Base of the policy networks: says what kind of policy training made, so that evaluation measures that one."""

    #: Whether the trained policy is a distribution its actions are drawn from (a Gaussian, a softmax): sampling it
    #: and taking its mean or most likely action are two policies. False: a deterministic policy, whose sampler
    #: adds noise only to explore during training; evaluating it takes the action alone.
    stochastic: ClassVar[bool] = True


class GaussianActor(Actor):
    """Diagonal Gaussian policy for Box action spaces. With an `encoder` (image observations, `cmdp.vision`) the
    MLP reads the encoder's output, and `obs_dim` is the encoder's `out_dim`."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], activation: str = "tanh",
                 init_log_std: float = 0.0, encoder: nn.Module | None = None, init: str = "orthogonal") -> None:
        super().__init__()
        self.activation = activation
        self.encoded = encoder is not None
        self.mean = _after(encoder, mlp([obs_dim, *hidden, act_dim], activation, out_gain=0.01, init=init))
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.mean(obs), self.log_std.exp())

    def distribution_mlp(self) -> DistributionMLP | None:
        """The MLP and log-std that make `distribution_params`, or None with an image encoder in front."""
        return None if self.encoded else DistributionMLP(self.mean, self.log_std)

    def distribution_params(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, 2 * act_dim) mean and log-std, detached: enough to rebuild `distribution(obs)` later."""
        with torch.no_grad():
            mean = self.mean(obs)
            return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)

    def distribution_from_params(self, params: torch.Tensor) -> torch.distributions.Normal:
        mean, log_std = params.chunk(2, dim=-1)
        return torch.distributions.Normal(mean, log_std.exp())

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) summed over action dimensions, shape (B,)."""
        return self._log_prob_at(self.mean(obs), actions)

    def log_prob_and_distribution(self, obs: torch.Tensor,
                                  actions: torch.Tensor) -> tuple[torch.Tensor, torch.distributions.Normal]:
        """`log_prob(obs, actions)` and `distribution(obs)` from one forward pass, for a loss that needs both."""
        mean = self.mean(obs)
        return self._log_prob_at(mean, actions), torch.distributions.Normal(mean, self.log_std.exp())

    def _log_prob_at(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        log_std = self.log_std
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, obs: torch.Tensor) -> torch.Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum().expand(obs.shape[0])

    def numpy_sampler(self) -> Sampler:
        """A frozen numpy copy: sampler(obs (N, d), rng, deterministic) -> actions (N, act_dim). With an encoder,
        the torch module itself computes the mean (`_live_forward`; a convolution in numpy would be slower)."""
        forward = _live_forward(self.mean) if self.encoded else _numpy_mlp(self.mean, self.activation)
        std = self.log_std.detach().cpu().double().exp().numpy().copy()

        def sample(obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
            mean = forward(obs)
            return mean if deterministic else mean + std * rng.standard_normal(mean.shape)

        return sample


class CategoricalActor(Actor):
    """Softmax policy for Discrete action spaces; `encoder` as for `GaussianActor`."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: list[int], activation: str = "tanh",
                 encoder: nn.Module | None = None, init: str = "orthogonal") -> None:
        super().__init__()
        self.activation = activation
        self.encoded = encoder is not None
        self.logits = _after(encoder, mlp([obs_dim, *hidden, num_actions], activation, out_gain=0.01, init=init))

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.logits(obs))

    def distribution_mlp(self) -> DistributionMLP | None:
        """The MLP that makes the logits (`distribution_params`), or None with an image encoder in front."""
        return None if self.encoded else DistributionMLP(self.logits)

    def distribution_params(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, num_actions) logits, detached: enough to rebuild `distribution(obs)` later."""
        with torch.no_grad():
            return self.logits(obs)

    def distribution_from_params(self, params: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=params)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return categorical_log_prob(self.logits(obs), actions)

    def log_prob_and_distribution(self, obs: torch.Tensor,
                                  actions: torch.Tensor) -> tuple[torch.Tensor, torch.distributions.Categorical]:
        """`log_prob(obs, actions)` and `distribution(obs)` from one forward pass, for a loss that needs both."""
        logits = self.logits(obs)
        return categorical_log_prob(logits, actions), self.distribution_from_params(logits)

    def entropy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.distribution(obs).entropy()

    def probs(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(obs), dim=-1)

    def numpy_sampler(self) -> Sampler:
        forward = _live_forward(self.logits) if self.encoded else _numpy_mlp(self.logits, self.activation)

        def sample(obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
            logits = forward(obs)
            if deterministic:
                return logits.argmax(-1)
            return (logits + rng.gumbel(size=logits.shape)).argmax(-1)  # Gumbel-max draws a softmax sample

        return sample


def _live_forward(net: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """numpy in, numpy out through the module itself. Off-policy actors change after every environment step,
    so the frozen numpy copy on-policy actors hand out would be rebuilt at every step, which costs more than
    the torch forward pass (measured ~2 ms per step for [256, 256] layers)."""
    device = next(net.parameters()).device

    @torch.no_grad()
    def forward(obs: np.ndarray) -> np.ndarray:
        return net(torch.as_tensor(obs, dtype=torch.float32, device=device)).double().cpu().numpy()

    return forward


#: How a Gaussian policy's sample becomes a Box action (the `action_bounds` key). "scale" (the default since
#: 2026-12-03, OmniSafe's `ActionScale` wrapper): the policy acts in [-1, 1], mapped linearly onto [low, high] and not
#: clipped. "clip" (ours until then): clipped to [low, high]. On [-1, 1] bounds the map is exactly the identity, so
#: the two differ only for samples outside them: clipped, or passed on (MuJoCo and Safety-Gymnasium clamp a limited
#: actuator, but a velocity task's control cost reads them). docs/omnisafe-differences.md row 15.
ACTION_BOUNDS = ("scale", "clip")


class BoxActions:
    """Maps a Gaussian policy's samples (N, act_dim) onto a Box's actions, as `bounds` says (`ACTION_BOUNDS`).

    Scaling needs both bounds of a dimension: a dimension with an infinite bound is not scaled but clipped to its
    bounds instead (a no-op where both are infinite), so an action never leaves the Box. The collector builds one per
    run, so a step costs two numpy operations."""

    def __init__(self, low: np.ndarray, high: np.ndarray, bounds: str = "scale") -> None:
        if bounds not in ACTION_BOUNDS:
            raise ValueError(f"action_bounds must be one of {', '.join(ACTION_BOUNDS)}, got {bounds!r}")
        self.low = np.asarray(low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(high, dtype=np.float64).reshape(-1)
        self.scale = bounds == "scale"
        finite = np.isfinite(self.low) & np.isfinite(self.high)
        # center + half * a rather than low + (a + 1) * half: on [-1, 1] it is 0 + 1 * a, bit for bit the sample
        low_f, high_f = np.where(finite, self.low, 0.0), np.where(finite, self.high, 0.0)  # no inf - inf
        self.center = (high_f + low_f) / 2
        self.half = np.where(finite, (high_f - low_f) / 2, 1.0)
        self.clip_unscaled = not finite.all()
        self.clip_low = np.where(finite, -np.inf, self.low)
        self.clip_high = np.where(finite, np.inf, self.high)

    def __call__(self, actions: np.ndarray) -> np.ndarray:
        if not self.scale:
            return np.minimum(np.maximum(actions, self.low), self.high)  # np.clip is ~4x slower on small arrays
        out = self.center + actions * self.half
        if self.clip_unscaled:
            out = np.minimum(np.maximum(out, self.clip_low), self.clip_high)
        return out


def _as_indices(actions: np.ndarray) -> np.ndarray:
    return actions.astype(np.int64)


def action_map(space: gymnasium.spaces.Space, bounds: str = "scale") -> Callable[[np.ndarray], np.ndarray]:
    """What turns a policy's outputs (N, ...) into the actions `space` accepts: Box samples through `BoxActions`
    (`bounds`), Discrete ones as int64 indices. Built once per run or evaluation, then called every step."""
    if isinstance(space, gymnasium.spaces.Box):
        return BoxActions(space.low, space.high, bounds)
    return _as_indices


class BoxScale(nn.Module):
    """Maps tanh outputs onto a bounded Box: a = center + half * tanh(u), with center and half as buffers (they
    follow the module's device and dtype) and the same map in numpy for acting."""

    def __init__(self, action_space: gymnasium.spaces.Box) -> None:
        super().__init__()
        low = np.asarray(action_space.low, dtype=np.float64).reshape(-1)
        high = np.asarray(action_space.high, dtype=np.float64).reshape(-1)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"tanh-squashed actors need a bounded action space, got {action_space}")
        self.low, self.high = low, high
        self.register_buffer("center", torch.as_tensor((high + low) / 2, dtype=torch.float32))
        self.register_buffer("half_range", torch.as_tensor((high - low) / 2, dtype=torch.float32))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.center + self.half_range * torch.tanh(u)

    def numpy(self, u: np.ndarray) -> np.ndarray:
        return (self.high + self.low) / 2 + (self.high - self.low) / 2 * np.tanh(u)


class SquashedGaussianActor(Actor):
    """SAC's policy for bounded Box actions: u ~ N(mu(s), sigma(s)), a = center + half * tanh(u).

    The MLP outputs the mean and the log-std per dimension; the log-std is clamped to [-20, 2] (Haarnoja et
    al. 2018's code, as OmniSafe's gaussian_sac actor). `sample` is reparameterised and returns log pi(a|s)
    with the change of variables of the squashing (the tanh and the scale).
    """

    def __init__(self, obs_dim: int, action_space: gymnasium.spaces.Box, hidden: list[int],
                 activation: str = "relu", init: str = "orthogonal") -> None:
        super().__init__()
        self.activation = activation
        self.scale = BoxScale(action_space)
        self.act_dim = len(self.scale.low)
        self.net = mlp([obs_dim, *hidden, 2 * self.act_dim], activation, out_gain=0.01, init=init)

    def _mean_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(-20.0, 2.0)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action (B, act_dim) and its log-probability (B,); noise from `generator`."""
        mean, log_std = self._mean_log_std(obs)
        # drawn where the generator lives (the CPU), then moved: one stream whatever the device
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        u = mean + log_std.exp() * noise
        log_normal = (-0.5 * ((u - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi))
        # log |d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        log_det = 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u)) + torch.log(self.scale.half_range)
        return self.scale(u), (log_normal - log_det).sum(-1)

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The squashed mean: the deterministic action."""
        return self.scale(self._mean_log_std(obs)[0])

    def numpy_sampler(self) -> Sampler:
        """sampler(obs (N, d), rng, deterministic) -> actions (N, act_dim), reading the live weights (see
        `_live_forward`); the noise comes from the numpy `rng`."""
        forward = _live_forward(self.net)
        scale, d = self.scale, self.act_dim

        def sample(obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
            out = forward(obs)
            mean, log_std = out[:, :d], np.clip(out[:, d:], -20.0, 2.0)
            u = mean if deterministic else mean + np.exp(log_std) * rng.standard_normal(mean.shape)
            return scale.numpy(u)

        return sample


class DeterministicActor(Actor):
    """DDPG's and TD3's policy for bounded Box actions: a = center + half * tanh(mlp(s)).

    Acting adds Gaussian exploration noise of std `noise * half` and clips to the bounds (OmniSafe's mlp actor
    with exploration_noise 0.1 on [-1, 1] actions); `deterministic` acting and the training losses use the
    noiseless action, and so does evaluation (`stochastic` is False), as OmniSafe's evaluator does.
    """

    stochastic = False  # the noise is a training device: the policy that was trained is the noiseless action

    def __init__(self, obs_dim: int, action_space: gymnasium.spaces.Box, hidden: list[int],
                 activation: str = "relu", noise: float = 0.1, init: str = "orthogonal") -> None:
        super().__init__()
        self.activation, self.noise = activation, float(noise)
        self.scale = BoxScale(action_space)
        self.net = mlp([obs_dim, *hidden, len(self.scale.low)], activation, out_gain=0.01, init=init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.scale(self.net(obs))

    def numpy_sampler(self) -> Sampler:
        """sampler(obs (N, d), rng, deterministic) -> actions (N, act_dim), reading the live weights (see
        `_live_forward`); the exploration noise comes from the numpy `rng`."""
        forward = _live_forward(self.net)
        scale = self.scale
        std = self.noise * (scale.high - scale.low) / 2

        def sample(obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
            action = scale.numpy(forward(obs))
            if deterministic or self.noise == 0.0:
                return action
            return np.clip(action + std * rng.standard_normal(action.shape), scale.low, scale.high)

        return sample


class EnsembleCritic(nn.Module):
    """E independent MLP critics computed together as one batched matrix product.

    `out_dim` 1: state values, forward returns (B, E). `out_dim` A > 1: one value per discrete action (Q(s, .)),
    forward returns (B, E, A). `critic_of_head` says which critic each head is part of, for clipping per critic
    (`clip_groups`): by default each head is a critic of its own; an off-policy agent's twin reward Q heads are
    one critic, (0, 0, 1, ...), as OmniSafe's reward critic holds both.
    """

    def __init__(self, obs_dim: int, hidden: list[int], num_heads: int, activation: str = "tanh",
                 out_dim: int = 1, init: str = "orthogonal", critic_of_head: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if init not in NETWORK_INITS:
            raise ValueError(f"init must be one of {NETWORK_INITS}, got {init!r}")
        self.critic_of_head = tuple(range(num_heads)) if critic_of_head is None else tuple(critic_of_head)
        if len(self.critic_of_head) != num_heads:
            raise ValueError(f"critic_of_head names {len(self.critic_of_head)} heads, the ensemble has {num_heads}")
        sizes = [obs_dim, *hidden, out_dim]
        self.act = ACTIVATIONS[activation][0]()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i in range(len(sizes) - 1):
            w = torch.empty(num_heads, sizes[i], sizes[i + 1])
            b = torch.zeros(num_heads, 1, sizes[i + 1])
            gain = 1.0 if i == len(sizes) - 2 else math.sqrt(2)
            for e in range(num_heads):
                # w[e].T is head e's weight as nn.Linear(in, out) holds it, so fan_in is `in` in both inits
                if init == "orthogonal":
                    nn.init.orthogonal_(w[e].T, gain=gain)
                else:  # nn.Linear.reset_parameters
                    nn.init.kaiming_uniform_(w[e].T, a=math.sqrt(5))
                    nn.init.uniform_(b[e], -1.0 / math.sqrt(sizes[i]), 1.0 / math.sqrt(sizes[i]))
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.num_heads = num_heads
        self.out_dim = out_dim

    def clip_groups(self) -> list[ClipGroup]:
        """Every tensor stacks the E heads along its first dimension: each critic's heads (`critic_of_head`) are
        clipped as one vector."""
        return [(list(self.parameters()), self.critic_of_head)]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.unsqueeze(0).expand(self.num_heads, *obs.shape)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = self.act(x)
        if self.out_dim == 1:
            return x.squeeze(-1).T
        return x.permute(1, 0, 2)


class EncodedCritic(nn.Sequential):
    """An image encoder shared by the heads of an `EnsembleCritic` in front of it (a Sequential, whose state keys
    "0." and "1." checkpoints of image runs already use)."""

    def __init__(self, encoder: nn.Module, ensemble: EnsembleCritic) -> None:
        super().__init__(encoder, ensemble)

    def clip_groups(self) -> list[ClipGroup]:
        """Each critic of the ensemble is clipped on its own; the shared encoder, which no single critic owns, as one
        more part."""
        encoder, ensemble = self[0], self[1]
        return [(list(encoder.parameters()), (0,)), *ensemble.clip_groups()]


class ActorCritic(nn.Module):
    """The policy plus one reward critic and one critic per cost (critic column 0 is the reward); `critic` is
    None when `with_critic` is false.

    Image observations (a Dict space with an image, `cmdp.vision`): the actor has its own `ImageEncoder` in front of
    its MLP, and the critics share another one in front of the ensemble."""

    def __init__(self, observation_space: gymnasium.Space, action_space: gymnasium.Space, num_costs: int,
                 actor_hidden: list[int], critic_hidden: list[int], activation: str = "tanh",
                 init_log_std: float = 0.0, with_critic: bool = True, init: str = "orthogonal") -> None:
        super().__init__()
        layout = ImageLayout.of(observation_space)
        encoder = None if layout is None else ImageEncoder(layout)
        obs_dim = flat_obs_dim(observation_space) if encoder is None else encoder.out_dim
        if isinstance(action_space, gymnasium.spaces.Box):
            self.actor: Actor = GaussianActor(obs_dim, int(np.prod(action_space.shape)), actor_hidden,
                                                  activation, init_log_std, encoder, init)
        elif isinstance(action_space, gymnasium.spaces.Discrete):
            self.actor = CategoricalActor(obs_dim, int(action_space.n), actor_hidden, activation, encoder, init)
        else:
            raise TypeError(f"unsupported action space {action_space}; supported: Box, Discrete")
        # critic-free solvers (group baselines) get none
        if not with_critic:
            self.critic: nn.Module | None = None
        elif layout is None:
            self.critic = EnsembleCritic(obs_dim, critic_hidden, 1 + num_costs, activation, init=init)
        else:
            critic_encoder = ImageEncoder(layout)
            self.critic = EncodedCritic(critic_encoder, EnsembleCritic(critic_encoder.out_dim, critic_hidden,
                                                                       1 + num_costs, activation, init=init))
