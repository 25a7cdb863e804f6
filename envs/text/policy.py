"""The language-model agent of the text CMDP: actor (a causal LM), critics (value heads), and their inputs.

The text CMDP is token-level: a state is a prompt plus the response tokens so far, an action is the next
token. A batch holds many token positions of a few sequences, so the "observations" are not vectors but
`TokenObs`: positions into a shared (S, L) block of token ids. Indexing a `TokenObs` selects positions, and
the actor and critics run their model once over just the sequences those positions belong to. With that,
the solvers' code (`cmdp/solver.py`, `algorithms/*.py`) runs unchanged on text: `actor.log_prob(obs, a)`,
`actor.distribution(obs)`, `critic(obs)` mean the same things as for an MLP policy.

Sampling temperature is part of the policy: every log-probability here is of softmax(logits / temperature),
the distribution responses are drawn from, so PPO's ratios are exact. (top-k / top-p truncation at
generation time is not reflected in the log-probabilities, as in safe-rlhf and TRL.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from cmdp.envs.text.score_model import ScoreModel
from cmdp.networks import Actor, categorical_log_prob
from cmdp.optim import ClipGroup, trainable_parameters


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over each row's real tokens (left padding gets 0): what the model saw in training."""
    return (attention_mask.long().cumsum(1) - 1).clamp_min(0)


@dataclass
class TokenObs:
    """Token positions (the states of the token-level MDP) into one block of sequences.

    `input_ids`/`attention_mask` (S, L) hold every sequence of a batch (left-padded prompt, response,
    right padding). Sample i is the state "sequence `seq[i]` up to position `pos[i]` (excluded)"; its action is
    the token at `pos[i]`. Indexing with a LongTensor, a slice or an int list gives a `TokenObs` of fewer
    samples sharing the same block.
    """

    input_ids: torch.Tensor  # (S, L) long
    attention_mask: torch.Tensor  # (S, L) long
    seq: torch.Tensor  # (B,) long
    pos: torch.Tensor  # (B,) long, >= 1

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    def __getitem__(self, index: Any) -> "TokenObs":
        return TokenObs(self.input_ids, self.attention_mask, self.seq[index], self.pos[index])

    def to(self, device: torch.device | str) -> "TokenObs":
        return TokenObs(self.input_ids.to(device), self.attention_mask.to(device), self.seq.to(device),
                        self.pos.to(device))

    def chunks(self, max_sequences: int) -> list[tuple[torch.Tensor, "TokenObs"]]:
        """Split into parts touching at most `max_sequences` sequences each: (sample indices, part) pairs."""
        seqs = torch.unique(self.seq)
        if len(seqs) <= max_sequences:
            return [(torch.arange(len(self), device=self.seq.device), self)]
        parts = []
        for start in range(0, len(seqs), max_sequences):
            index = torch.isin(self.seq, seqs[start:start + max_sequences]).nonzero().squeeze(1)
            parts.append((index, self[index]))
        return parts

    def model_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The distinct sequences these samples need, trimmed to their common real span.

        Returns ids, mask, position ids (S', L'), and per sample its row in them and the position (in the
        trimmed block) of the hidden state that predicts its action (its own position - 1).
        """
        seqs, row = torch.unique(self.seq, return_inverse=True)
        ids, mask = self.input_ids[seqs], self.attention_mask[seqs]
        real = mask.ne(0)
        length = real.shape[1]
        first = int(real.long().argmax(1).min())
        last = int((length - 1 - real.flip(1).long().argmax(1)).max()) + 1
        ids, mask = ids[:, first:last], mask[:, first:last]
        return ids, mask, position_ids_from_mask(mask), row, self.pos - first - 1


def autocast_context(device: torch.device | str, dtype: torch.dtype | None) -> Any:
    """Autocast to `dtype` on `device` (mixed precision for fp32 weights), or nothing when `dtype` is None."""
    import contextlib

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def evaluate_in_chunks(obs: TokenObs, fn: Any, max_sequences: int) -> torch.Tensor:
    """fn(obs) computed a few sequences at a time when no gradient is needed (bounded memory), else at once."""
    if torch.is_grad_enabled() or max_sequences <= 0:
        return fn(obs)
    parts = obs.chunks(max_sequences)
    if len(parts) == 1:
        return fn(obs)
    outs = [(index, fn(part)) for index, part in parts]
    first = outs[0][1]
    out = torch.empty((len(obs), *first.shape[1:]), dtype=first.dtype, device=first.device)
    for index, value in outs:
        out[index] = value
    return out


class TextActor(Actor):
    """A Hugging Face causal LM as a policy over next tokens, at a fixed sampling temperature (a stochastic policy,
    `Actor.stochastic`)."""

    def __init__(self, model: nn.Module, temperature: float = 1.0, eval_batch_size: int = 16,
                 autocast: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)
        self.eval_batch_size = int(eval_batch_size)
        self.autocast = autocast  # e.g. bf16 compute for fp32 weights on a GPU

    def selected_logits(self, obs: TokenObs) -> torch.Tensor:
        """(B, V) temperature-scaled logits of the next token at each sample's state."""
        return evaluate_in_chunks(obs, self._selected_logits, self.eval_batch_size)

    def _selected_logits(self, obs: TokenObs) -> torch.Tensor:
        ids, mask, pid, row, at = obs.model_inputs()
        with autocast_context(ids.device, self.autocast):
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pid, use_cache=False).logits
        return logits[row, at].float() / self.temperature

    def distribution(self, obs: TokenObs) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.selected_logits(obs))

    def distribution_mlp(self) -> None:
        """None: a language model is not a plain MLP (the trust region's Fisher products take the double backward)."""
        return None

    def distribution_params(self, obs: TokenObs) -> torch.Tensor:
        """(B, V) next-token logits, detached (V floats per token: kept only for solvers that ask for them)."""
        with torch.no_grad():
            return self.selected_logits(obs)

    def distribution_from_params(self, params: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=params)

    def log_prob(self, obs: TokenObs, actions: torch.Tensor) -> torch.Tensor:
        """log pi(token | state) per sample, shape (B,)."""
        return categorical_log_prob(self.selected_logits(obs), actions)

    def log_prob_and_distribution(self, obs: TokenObs,
                                  actions: torch.Tensor) -> tuple[torch.Tensor, torch.distributions.Categorical]:
        """`log_prob(obs, actions)` and `distribution(obs)` from one pass of the model, for a loss that needs both."""
        logits = self.selected_logits(obs)
        return categorical_log_prob(logits, actions), self.distribution_from_params(logits)

    def entropy(self, obs: TokenObs) -> torch.Tensor:
        return self.distribution(obs).entropy()


class TextCritic(nn.Module):
    """E value functions (reward first, then one per cost), each a score model read at the state's last token.

    forward(obs) -> (B, E), like the control side's `EnsembleCritic`.
    """

    def __init__(self, models: Sequence[ScoreModel], eval_batch_size: int = 16,
                 autocast: torch.dtype | None = None) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)
        self.eval_batch_size = int(eval_batch_size)
        self.autocast = autocast

    def clip_groups(self) -> list[ClipGroup]:
        """Each value model is one critic (`critic_clip: per_critic`): its trainable parameters (LoRA: adapters)."""
        return [(trainable_parameters(m), (0,)) for m in self.models]

    def forward(self, obs: TokenObs) -> torch.Tensor:
        return evaluate_in_chunks(obs, self._values, self.eval_batch_size)

    def _values(self, obs: TokenObs) -> torch.Tensor:
        ids, mask, pid, row, at = obs.model_inputs()
        with autocast_context(ids.device, self.autocast):
            values = [m(ids, attention_mask=mask, position_ids=pid).scores[row, at].float() for m in self.models]
        return torch.stack(values, dim=-1)


class TextAgent(nn.Module):
    """The trainable parts of a text run: `actor` (TextActor) and `critic` (TextCritic; None for critic-free
    solvers)."""

    def __init__(self, actor: TextActor, critic: TextCritic | None) -> None:
        super().__init__()
        self.actor = actor
        self.critic = critic
