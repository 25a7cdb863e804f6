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


def test_the_readme_says_what_ep_cost_is_with_several_costs(tmp_path: Path) -> None:
    # progress.csv's (and TensorBoard's) `ep_cost` is the sum of the costs' episode means when there are several;
    # the README's run-folder table named it beside `ep_cost/<name>` as if it were the cost
    import csv
    import math

    run = tmp_path / "run"
    assert main(["train", "--env", "ExactTwoCost-v0", "--algo", "ppo", "--total-steps", "400", "--set",
                 "steps_per_epoch=200", "--set", "update_iters=1", "--no-progress", "--out", str(run)]) == 0
    for row in csv.DictReader((run / "progress.csv").open()):
        assert math.isclose(float(row["ep_cost"]), float(row["ep_cost/cost_a"]) + float(row["ep_cost/cost_b"]))
    assert "`ep_cost` (with several costs their sum" in README.read_text()
