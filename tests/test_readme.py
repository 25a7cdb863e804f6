"""The README's Python example runs as written (with its run folder replaced by a real one)."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from cmdp.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", "--env", "ExactChain-v0", "--total-steps", "400", "--set", "steps_per_epoch=200",
                 "--no-progress", "--out", str(run)]) == 0
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    for code in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code.replace('"runs/hopper-lim10"', repr(str(run))), "README.md", "exec"), {})
        assert "return_mean" in out.getvalue()
