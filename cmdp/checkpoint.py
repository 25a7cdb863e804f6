"""Checkpoints: a dict of tensors and plain values written atomically, read back with weights_only."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from cmdp.spec import ConfigError

# What `cmdp.trainer.Trainer.state_dict` writes and `Trainer.load_state_dict` reads back on --resume
# (`last_episodes` and `config`, the run's config as it trained, are optional: checkpoints written before they
# existed lack them).
CHECKPOINT_KEYS: tuple[str, ...] = ("epoch", "wall_seconds", "agent", "solver", "family", "schedule", "numpy_rng",
                                     "torch_rng")


#: The first bytes of a zip archive, the format of torch.save (`torch.load(mmap=True)` reads no other).
ZIP_MAGIC = b"PK\x03\x04"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` via a temporary file, so an interruption never leaves a torn checkpoint; the part of the
    temporary file written before an interruption (Ctrl-C, a full disk) is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _short_reason(exc: BaseException) -> str:
    """One line saying why torch could not read the file, without torch's advice to retry with weights_only=False
    (that would unpickle arbitrary objects from a file that is not even a checkpoint)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:  # the real reason sits between torch's paragraphs of advice
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line]
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def load_checkpoint(path: str | Path, required: Sequence[str] = CHECKPOINT_KEYS,
                    mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint without unpickling arbitrary objects (torch.load(weights_only=True)).

    `mmap`: map the file's tensors instead of reading them (torch.load(mmap=True)): a tensor's bytes are read when it
    is used, so a caller that needs only the weights (an evaluation) never reads an off-policy run's replay buffer.
    The tensors stay valid while the file is replaced (`save_checkpoint` writes a new file, never into this one).

    Raises ConfigError (one line naming the file) if the file cannot be read, is not a checkpoint (empty,
    truncated, corrupted) or lacks any of the `required` top-level keys.
    """
    path = Path(path)
    hint = "restore it from a copy, or train the run again"
    try:
        size = path.stat().st_size
        if size == 0:
            raise ConfigError(f"{path} is not a readable cmdp checkpoint (truncated or corrupted: the file is "
                              f"empty); {hint}")
        mapped = False
        if mmap:
            with path.open("rb") as file:
                # torch maps only its zip format (every torch.save since torch 1.6); anything else is read as before,
                # so a file that is no checkpoint fails with torch's reason, not its advice to save with mmap support
                mapped = file.read(4) == ZIP_MAGIC
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mapped)
    except ConfigError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # torch raises many types for a damaged file: RuntimeError, UnpicklingError, EOFError...
        raise ConfigError(f"{path} is not a readable cmdp checkpoint (truncated or corrupted: {_short_reason(exc)}); "
                          f"{hint}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} is not a cmdp checkpoint (it holds a {type(state).__name__}, not the dict "
                          f"a run saves); {hint}")
    missing = [key for key in required if key not in state]
    if missing:
        raise ConfigError(f"{path} is not a complete cmdp checkpoint (missing {', '.join(repr(k) for k in missing)}); "
                          f"{hint}")
    return state
