"""The guide's solvers are real: shown verbatim, trained on an exact CMDP, checked against its LP optimum; the plugin
mechanism it describes loads, trains and resumes the example plugin file (docs/adding-an-algorithm.md)."""
import re
from pathlib import Path

import pytest
import torch

from cmdp.cli import main
from cmdp.config import load_yaml
from cmdp.registry import get_algorithm
from cmdp.trainer import resolve_config
from exact_oracle import assert_near_lp_optimum, train_and_evaluate
from run_helpers import interrupted_run

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs/adding-an-algorithm.md"
# the worked examples the guide shows in full: cmdp-lab's built-in crpo and focops
SHOWN = [ROOT / "algorithms/crpo.py", ROOT / "algorithms/focops.py"]
# the example plugin file the guide names for the plugin mechanism (section 10)
PLUGIN = ROOT / "docs/examples/ppo_loglag.py"

# The guide's section 11 settings, on top of exact_oracle.EXACT_BASE (16 copies, 2048-step epochs, gamma = 1,
# 10 passes per epoch): 80 epochs and minibatches of 1024 keep each run near 30 s of one core.
FAST = dict(total_steps=2048 * 80, batch_size=1024)
SETTINGS = {
    # eta = 0 (OmniSafe's 2.0 is for a limit of 25); a faster actor, as each epoch improves one objective only
    "crpo": dict(crpo_tolerance=0.0, actor_lr=1e-3),
    # a fast multiplier against a slow policy pins the last iterate to the boundary (as test_exact_learning's ppo_lag)
    "focops": dict(lagrangian_lr=10.0),
}


def test_guide_shows_exactly_the_solver_files():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    for path in SHOWN:
        assert path.read_text() in blocks, f"{path.relative_to(ROOT)} differs from the guide's copy"


@pytest.mark.parametrize("algo", sorted(SETTINGS))
def test_guide_solver_reaches_the_lp_optimum_on_exact_chain(tmp_path, algo):
    value, costs, lp, limits = train_and_evaluate(tmp_path, "ExactChain-v0", seed=0, algo=algo, **FAST,
                                                  **SETTINGS[algo])
    assert_near_lp_optimum(value, costs, lp, limits)


def test_cmdp_list_shows_a_plugin_solver(capsys):
    assert main(["list", "--plugin", str(PLUGIN)]) == 0
    listed = re.findall(r"^  (\S+) ", capsys.readouterr().out, flags=re.M)
    assert "ppo_loglag" in listed


def test_plugin_file_through_the_cli_and_an_exact_resume(tmp_path, capsys):
    algo = "ppo_loglag"
    args = ["--plugin", str(PLUGIN), "--algo", algo, "--env", "ExactChain-v0", "--total-steps", "768",
            "--set", "steps_per_epoch=256", "--no-progress"]
    assert main(["train", *args, "--out", str(tmp_path / "full")]) == 0, capsys.readouterr().err
    assert load_yaml(tmp_path / "full/config.yaml")["plugins"] == [str(PLUGIN)]
    assert get_algorithm(algo).name == algo

    cfg, _ = resolve_config({"algo": algo, "env": "ExactChain-v0", "total_steps": 768, "steps_per_epoch": 256,
                             "plugins": [str(PLUGIN)]})
    cut = interrupted_run(cfg, tmp_path / "cut", after_epoch=1)
    assert main(["train", "--resume", str(cut), "--trust-plugins", "--no-progress"]) == 0, capsys.readouterr().err
    full, resumed = (torch.load(d / "checkpoints/last.pt", weights_only=True) for d in (tmp_path / "full", cut))
    own = [key for key in full["solver"] if key != "updater"]  # the example's own state: plain numbers and lists
    assert own and all(full["solver"][key] == resumed["solver"][key] for key in own)
    for key in full["agent"]:
        assert torch.equal(full["agent"][key], resumed["agent"][key]), key


def test_a_missing_plugin_file_is_a_config_error(tmp_path, capsys):
    assert main(["train", "--plugin", "missing_file.py", "--algo", "ppo_lag", "--out", str(tmp_path / "x")]) == 2
    assert "file not found" in capsys.readouterr().err
