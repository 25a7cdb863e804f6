"""The one conversation format every text model here is trained and scored with, and batch padding.

A sequence is `[bos] "User: {prompt}\\nAssistant:" " {response}" [eos]`. The prompt and the response are
tokenised separately and concatenated, which is exactly what generation does (the policy continues the
prompt's token ids), so the response's first token index is known without any offset arithmetic.
The format does not depend on the tokenizer, so any Hugging Face tokenizer works with it.

Attention masks are built from sequence lengths, never by comparing ids with the pad id: with a
tokenizer whose pad token is its EOS token, a mask `ids != pad_id` would drop the real EOS and move
the score of the sequence to the wrong token (a known bug of safe-rlhf).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

PROMPT_TEMPLATE = "User: {prompt}\nAssistant:"
RESPONSE_PREFIX = " "

# The same format as a Hugging Face chat template (Jinja), saved with our tokenizer so that
# `tokenizer.apply_chat_template` renders what `format_prompt` / `encode_example` build.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}User: {{ message['content'] }}\nAssistant:"
    "{% elif message['role'] == 'assistant' %} {{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
)


def format_prompt(prompt: str) -> str:
    """The text the policy sees before it answers (the response follows after one space)."""
    return PROMPT_TEMPLATE.format(prompt=prompt)


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of `[bos] format_prompt(prompt)` (no bos when the tokenizer has none): what generation starts from."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + _ids(tokenizer, format_prompt(prompt))


def encode_example(tokenizer: Any, prompt: str, response: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of a whole (prompt, response) sequence ending with EOS, and the index of its first response token.

    Longer sequences are cut at `max_length` tokens (the cut one loses its EOS, as an unfinished answer).
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; scores and SFT targets are defined at the EOS")
    prompt_ids = encode_prompt(tokenizer, prompt)
    ids = prompt_ids + _ids(tokenizer, RESPONSE_PREFIX + response) + [tokenizer.eos_token_id]
    return ids[:max_length], min(len(prompt_ids), max_length)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to one (B, L) LongTensor; the attention mask (B, L) is 1 on each sequence's own tokens."""
    if not sequences or min(len(s) for s in sequences) == 0:
        raise ValueError("pad_batch needs at least one sequence and no empty sequence")
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for i, seq in enumerate(sequences):
        input_ids[i, :len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        attention_mask[i, :len(seq)] = 1
    return input_ids, attention_mask


def pad_id_of(tokenizer: Any) -> int:
    """The id to pad with: the pad token, else EOS (GPT-2 style tokenizers have no pad token), else 0."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    return 0
