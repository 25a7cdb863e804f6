"""Shared pieces of the text test modules: a valid preference row, a JSONL writer for good and broken rows, and
the tiny model and preference files built from a generated corpus.

Not a test module (pytest collects only test_*.py); the text tests import it by module name, as the learning
tests import exact_oracle.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cmdp.envs.text import corpus as corpus_lib
from cmdp.envs.text.data import write_rows
from cmdp.envs.text.make_default import DefaultConfig, make_policy

#: One valid row in the PKU-SafeRLHF column layout; tests break it one field at a time.
GOOD = {"prompt": "How do I bake bread?", "response_0": "Mix and bake.", "response_1": "No.",
        "better_response_id": 0, "safer_response_id": 1, "is_response_0_safe": True, "is_response_1_safe": True}


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows as JSON lines; a str row is written as it is (for malformed lines)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def save_tiny_backbone(tokenizer: Any, path: Path) -> Path:
    """A randomly initialised 1-layer GPT-2 causal LM (seed 0) with `tokenizer`, saved like any HF model path."""
    torch.manual_seed(0)
    policy = make_policy(tokenizer, DefaultConfig(n_layer=1, n_embd=32, n_head=2))
    policy.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def write_preference_files(corpus: corpus_lib.Corpus, folder: Path) -> tuple[Path, Path]:
    """The corpus's train and test preference pairs as pref_train.jsonl and pref_test.jsonl in `folder`."""
    train, test = folder / "pref_train.jsonl", folder / "pref_test.jsonl"
    write_rows(train, [p.to_row() for p in corpus.train_pairs])
    write_rows(test, [p.to_row() for p in corpus.test_pairs])
    return train, test


# ------------------------------------------------------------------------- other architectures, tiny and random

#: The architectures beside GPT-2 that the text family supports, built here at random (seed 0) through their configs.
ARCHITECTURES = ("llama", "qwen2", "mistral")

#: A ChatML template (Qwen2's instruct format) and a Mistral-instruct one, given to the tiny tokenizers below.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% else %} {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def architecture_tokenizer(base: Any, arch: str) -> Any:
    """A tokenizer for `arch` on the vocabulary of `base` (our byte-level BPE with <pad>, <bos>, <eos>), shaped like
    the real family's:

    - llama: no pad token and no chat template (the run pads with EOS and uses the built-in prompt format);
    - qwen2: the ChatML template, `<|im_start|>` / `<|im_end|>` added as special tokens, EOS `<|im_end|>`, pad
      `<|endoftext|>` (as Qwen2's instruct tokenizers);
    - mistral: an `[INST] ... [/INST]` template and no pad token.
    """
    import copy

    from transformers import PreTrainedTokenizerFast

    backend = copy.deepcopy(base.backend_tokenizer)
    if arch == "llama":
        return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>")
    if arch == "qwen2":
        # Qwen2's tokenizer class (which AutoTokenizer picks for a qwen2 model folder) adds <|endoftext|> as its
        # unknown token unless the tokenizer has it; real Qwen2 tokenizers pad with it
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<|im_end|>",
                                            pad_token="<|endoftext|>", unk_token="<|endoftext|>",
                                            chat_template=CHATML_TEMPLATE)
        tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        return tokenizer
    if arch == "mistral":
        return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                       chat_template=MISTRAL_TEMPLATE)
    raise ValueError(f"unknown architecture {arch!r}")


def architecture_config(arch: str, tokenizer: Any) -> Any:
    """A tiny `arch` config: hidden 32, 2 layers, 4 attention heads sharing 2 KV heads, MLP 64, the tokenizer's
    vocabulary and special ids, no dropout."""
    import transformers

    cls = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
           "mistral": transformers.MistralConfig}[arch]
    return cls(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, attention_dropout=0.0,
               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=arch == "qwen2")


def save_tiny_architecture(arch: str, base_tokenizer: Any, folder: Path) -> dict[str, Path]:
    """A random tiny `arch` causal LM (the policy) and a reward and a cost score model on the same backbone
    architecture, each saved with `save_pretrained` and the `arch` tokenizer in its own folder under `folder`.

    Returns {"policy": ..., "reward": ..., "cost": ...}. The score heads are random too (seeded), so scores vary.
    """
    import transformers

    from cmdp.envs.text.score_model import ScoreModel

    tokenizer = architecture_tokenizer(base_tokenizer, arch)
    config = architecture_config(arch, tokenizer)
    paths = {name: folder / name for name in ("policy", "reward", "cost")}
    torch.manual_seed(0)
    policy = transformers.AutoModelForCausalLM.from_config(config)
    policy.save_pretrained(str(paths["policy"]))
    tokenizer.save_pretrained(str(paths["policy"]))
    for seed, kind in enumerate(("reward", "cost"), start=1):
        torch.manual_seed(seed)
        model = ScoreModel(transformers.AutoModel.from_config(config), kind=kind)
        model.save_pretrained(paths[kind])
        tokenizer.save_pretrained(str(paths[kind]))
    return paths
