"""Shared helpers of the command and resume tests (not a test module)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cmdp.trainer import new_run


def interrupted_run(cfg: Any, out: Path, after_epoch: int) -> Path:
    """Start a run of `cfg` in `out` and interrupt it (as Ctrl-C would) right after epoch `after_epoch`'s checkpoint."""
    trainer, run_dir = new_run(cfg, str(out))

    def interrupt(row: dict) -> None:
        if row["epoch"] == after_epoch:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.train(run_dir, progress=False, on_epoch=interrupt)
    return run_dir


def one_error_line(err: str, program: str = "cmdp") -> str:
    """The single `<program>: error:` line of a failed command's stderr. Anything else there fails the test: a
    traceback, or a plan, progress or warning line printed before the error."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith(f"{program}: error: "), f"not one error line: {err}"
    return lines[0]
