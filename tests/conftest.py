"""Fixtures shared by several test modules."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def quick_text_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded text default at its quick size (seconds on a CPU), built once per test session by our own code:
    corpus, tokenizer, a 1-layer GPT-2 SFT policy, reward and cost models. Nothing is downloaded."""
    pytest.importorskip("transformers")
    from cmdp.envs.text.make_default import DefaultConfig, build_default

    out = tmp_path_factory.mktemp("text-default-quick") / "default"
    build_default(out, DefaultConfig.quick(), device="cpu", log=None)
    return out
