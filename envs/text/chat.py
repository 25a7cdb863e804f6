"""The conversation format every text model of a run is trained and scored with, and batch padding.

A tokenizer with a chat template of its own (Llama, Qwen2, Mistral instruct tokenizers, ...) gets it: the prompt is
`apply_chat_template([user turn], add_generation_prompt=True)` rendered to text, the response follows after the text
the template puts between the generation prompt and an assistant message's content (often nothing), then the
tokenizer's EOS. A tokenizer without one (GPT-2, base models) gets the built-in format
`[bos] "User: {prompt}\\nAssistant:" " {response}" [eos]`, which is also what our own tokenizers' template
(`CHAT_TEMPLATE`) renders, so for them nothing changes. The prompt and the response are tokenised separately and
concatenated, which is exactly what generation does (the policy continues the prompt's token ids), so the
response's first token index is known without any offset arithmetic.

Attention masks are built from sequence lengths, never by comparing ids with the pad id: with a
tokenizer whose pad token is its EOS token, a mask `ids != pad_id` would drop the real EOS and move
the score of the sequence to the wrong token (a known bug of safe-rlhf).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from cmdp.spec import ConfigError

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
    """The built-in format's text the policy sees before it answers (the response follows after one space)."""
    return PROMPT_TEMPLATE.format(prompt=prompt)


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def chat_template_of(tokenizer: Any) -> Any:
    """The tokenizer's own chat template, or None when it has none or when it is `CHAT_TEMPLATE` (the built-in
    format, which `encode_prompt` then builds directly)."""
    template = tokenizer.chat_template
    if not template or template == CHAT_TEMPLATE:
        return None
    return template


def _render(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as exc:  # a Jinja error or the template's own raise_exception
        raise ConfigError(f"the tokenizer's chat template cannot render a user turn and an assistant answer: "
                          f"{' '.join(str(exc).split())}") from None


_SENTINEL = "CMDPRESPONSE7F3A"
_PREFIXES: dict[tuple[str, Any, Any], str] = {}


def response_prefix(tokenizer: Any) -> str:
    """The text between the rendered prompt and the response: " " in the built-in format; with a chat template,
    what it renders between the generation prompt and an assistant message's content (usually "")."""
    template = chat_template_of(tokenizer)
    if template is None:
        return RESPONSE_PREFIX
    key = (str(template), tokenizer.bos_token, tokenizer.eos_token)
    if key not in _PREFIXES:
        user = {"role": "user", "content": "Hello?"}
        prompt = _render(tokenizer, [user], add_generation_prompt=True)
        full = _render(tokenizer, [user, {"role": "assistant", "content": _SENTINEL}], add_generation_prompt=False)
        at = full.find(_SENTINEL, len(prompt)) if full.startswith(prompt) else -1
        _PREFIXES[key] = full[len(prompt):at] if at >= 0 else ""
    return _PREFIXES[key]


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of the prompt in the tokenizer's format: what generation starts from.

    With a chat template of its own: the user turn and the generation prompt, as the template renders them. Else
    `[bos] format_prompt(prompt)` (no bos when the tokenizer has none).
    """
    if chat_template_of(tokenizer) is not None:
        return _ids(tokenizer, _render(tokenizer, [{"role": "user", "content": prompt}], add_generation_prompt=True))
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + _ids(tokenizer, format_prompt(prompt))


def encode_example(tokenizer: Any, prompt: str, response: str, max_length: int) -> tuple[list[int], int]:
    """Token ids of a whole (prompt, response) sequence ending with EOS, and the index of its first response token.

    Longer sequences are cut at `max_length` tokens (the cut one loses its EOS, as an unfinished answer).
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; scores and SFT targets are defined at the EOS")
    prompt_ids = encode_prompt(tokenizer, prompt)
    ids = prompt_ids + _ids(tokenizer, response_prefix(tokenizer) + response) + [tokenizer.eos_token_id]
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
