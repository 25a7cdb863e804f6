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
