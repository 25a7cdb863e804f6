"""docs/omnisafe-differences.md stays honest where it names our config keys and our code.

- every key written as key=value in backticks is a field of the config of each solver the row (or the item, or
  the per-solver section) names, and the value is accepted by that config (`build_config`);
- every file of ours it cites (`cmdp/...`, `algorithms/...`, ...) exists, and every `path: Name.attr` names a
  class, function or field defined there;
- the table covers the points issue 12 asks for, with a "Same?" verdict and, for a difference, a key or
  "none yet";
- where OmniSafe's mirror is present (env OMNISAFE_GIT_DIR, default the workplace's mirror), the commit the page
  names exists, is version 0.5.0, and every OmniSafe `path: Name.attr` it cites is defined at that commit.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cmdp.cli import main
from cmdp.config import build_config
from cmdp.presets import OMNISAFE
from cmdp.trainer import resolve_config
from source_helpers import defined

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "omnisafe-differences.md"
SOLVERS = {"ppo": ("ppo", "PPO"), "ppo_lag": ("ppo_lag", "PPOLag"), "pid_lag": ("pid_lag", "PIDLag"),
           "cup": ("cup", "CUP"), "cpo": ("cpo", "CPO"), "trpo_lag": ("trpo_lag", "TRPOLag"),
           "reward_shaping": ("reward_shaping", "RewardShaping")}
KEY = re.compile(r"`([a-z_][a-z0-9_]*)=([^`]*)`")
SOLVER_NAME = re.compile(r"`(" + "|".join(sorted(SOLVERS, key=len, reverse=True)) + r")`")
CITE = re.compile(r"`((?:cmdp|algorithms|envs|benchmarks|docs|tests|omnisafe)/[\w/.-]+\.(?:py|md|yaml|csv))"
                  r"(?::\s*([\w.]+))?`")
OMNISAFE_GIT_DIR = Path(os.environ.get("OMNISAFE_GIT_DIR", "/work/.mirror/PKU-Alignment+omnisafe/repo"))
# the points issue 12 lists, as they are named in the table's "Point" column
REQUIRED_POINTS = ["advantage standardisation", "observation normalisation and its clipping",
                   "reward and cost normalisation", "when the multiplier moves", "learning-rate schedule",
                   "critic losses and their l2 penalty", "gradient clipping", "early stopping on kl", "minibatch",
                   "initial std", "value targets", "truncated episodes", "entropy bonus"]


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def config_of(solver: str) -> type:
    module, cls = SOLVERS[solver]
    return getattr(importlib.import_module(f"cmdp.algorithms.{module}"), cls).Config


def check_key(solver: str, key: str, value: str, where: str) -> None:
    cfg_cls = config_of(solver)
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    assert key in names, f"{where}: `{key}` is not a config key of {solver} ({cfg_cls.__name__})"
    build_config(cfg_cls, {key: yaml.safe_load(value)}, source=where)  # the value is one the config accepts


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table() -> tuple[list[str], list[list[str]]]:
    section = doc_text().split("## The table", 1)[1]
    lines: list[str] = []
    for line in section.splitlines()[1:]:
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    header = cells(lines[0])
    rows = [cells(line) for line in lines[2:]]
    for row in rows:
        assert len(row) == len(header), f"row {row[0]} has {len(row)} cells, the header {len(header)}"
    return header, rows


def row_solvers(cell: str) -> set[str]:
    return set(SOLVERS) if "all seven" in cell else set(SOLVER_NAME.findall(cell))


def test_the_table_covers_the_issues_points_with_a_verdict_each() -> None:
    header, rows = table()
    assert header == ["#", "Point", "OmniSafe 0.5.0", "cmdp-lab", "Same?", "Solvers", "Deliberate?",
                      "OmniSafe's behaviour via"]
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]
    points = " / ".join(row[1].lower() for row in rows)
    missing = [p for p in REQUIRED_POINTS if p not in points]
    assert not missing, f"the table has no row for {missing}"
    for row in rows:
        verdict, solvers, via = row[4], row[5], row[7]
        assert verdict.startswith(("same", "different")), f"row {row[0]}: Same? is {verdict!r}"
        assert row_solvers(solvers), f"row {row[0]} names no solver"
        assert via, f"row {row[0]} says nothing about a key"
        if verdict.startswith("different"):
            assert "none yet" in via or KEY.search(via), f"row {row[0]}: a difference needs a key or 'none yet'"


def test_every_key_in_the_table_is_a_key_of_the_solvers_it_is_named_for() -> None:
    _, rows = table()
    for row in rows:
        solvers = row_solvers(row[5])
        for item in row[7].split(";"):
            scoped = set(SOLVER_NAME.findall(item))
            assert scoped <= solvers, f"row {row[0]}: {sorted(scoped - solvers)} are not in its Solvers column"
            for key, value in KEY.findall(item):
                for solver in sorted(scoped or solvers):
                    check_key(solver, key, value, f"row {row[0]}")


#: in the "cmdp-lab" column, a key named with the value it has by default: "`kl_reduction` `sum`, the default",
#: "`early_stop_kl` `exact` (the default", "`obs_clip` (default 5", "`cg_iters` 15", "`init_log_std` = 0"
OURS_DEFAULT = re.compile(r"`([a-z_][a-z0-9_]*)` "
                          r"(?:`([^`]+)`(?:, | \()the default|(?:\(default |= )?(-?\d[\d.e-]*)(?=[ ,;:)]))")


def solver_defaults(solver: str) -> dict:
    """The solver's resolved config on a Safety-Gymnasium task, as a mapping (its family's defaults included)."""
    cfg, _ = resolve_config({"algo": solver, "env": "SafetyHopperVelocity-v1"})
    return dataclasses.asdict(cfg)


def test_every_default_the_table_states_is_the_configs_default() -> None:
    """A value the table calls a default (the "OmniSafe's behaviour via" column's "(the default)" items and every
    item of a cell that opens with "the defaults:"; the values the "cmdp-lab" column gives a key) is what each of
    the row's solvers resolves to on a Safety-Gymnasium task."""
    _, rows = table()
    defaults = {solver: solver_defaults(solver) for solver in SOLVERS}
    checked = 0
    for row in rows:
        solvers = row_solvers(row[5])
        via = row[7]
        items = via.split(";")
        claims = [(item, key, value) for item in items
                  if via.lower().startswith("the defaults:") or "(the default" in item
                  for key, value in KEY.findall(item)]
        claims += [(row[3], key, word or number) for key, word, number in OURS_DEFAULT.findall(row[3])]
        for where, key, value in claims:
            scoped = set(SOLVER_NAME.findall(where)) if where is not row[3] else set()
            for solver in sorted((scoped & solvers) or solvers):
                if key not in defaults[solver]:
                    continue
                expected = yaml.safe_load(value)
                actual = defaults[solver][key]
                assert actual == expected, (f"row {row[0]}: the table gives `{key}` {value!r} as {solver}'s default; "
                                            f"its config resolves to {actual!r}")
                checked += 1
    assert checked > 40, checked  # the patterns still find the table's defaults


def solver_sections() -> dict[str, str]:
    """The body of each per-solver section, by solver name."""
    per_solver = re.split(r"(?m)^## ", doc_text().split("## Per solver", 1)[1], maxsplit=1)[0]  # to the next section
    sections = re.split(r"(?m)^### `(\w+)`\s*$", per_solver)
    return dict(zip(sections[1::2], sections[2::2]))


def test_every_key_in_a_solver_section_is_a_key_of_that_solver() -> None:
    named = solver_sections()
    assert set(named) == set(SOLVERS), f"per-solver sections: {sorted(named)}"
    for solver, body in named.items():
        for key, value in KEY.findall(body):
            check_key(solver, key, value, f"section {solver}")


def test_the_omnisafe_preset_sets_each_solvers_closest_keys_and_yields_to_set(
        capsys: pytest.CaptureFixture[str]) -> None:
    named = solver_sections()
    assert set(OMNISAFE) == set(SOLVERS) - {"reward_shaping"}  # the six with an OmniSafe counterpart
    for solver, keys in OMNISAFE.items():
        bullets = re.split(r"\n- ", named[solver])
        closest = [b for b in bullets if "closest today" in b.lower()]
        assert len(closest) == 1, f"section {solver}: one 'Closest today' bullet, found {len(closest)}"
        documented = {key: yaml.safe_load(value) for key, value in KEY.findall(closest[0])}
        assert documented == keys, f"section {solver}: the doc says {documented}, the preset sets {keys}"
        cfg, _ = resolve_config({"algo": solver, "env": "SafetyHopperVelocity-v1"}, preset="omnisafe")
        plain, _ = resolve_config({"algo": solver, "env": "SafetyHopperVelocity-v1"})
        for key, value in keys.items():
            assert getattr(cfg, key) == value, (solver, key)
        # only those keys move; the rest is our defaults, which already follow OmniSafe's
        moved = {f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) != getattr(plain, f.name)}
        assert moved == {k for k in keys if getattr(plain, k) != keys[k]}, (solver, moved)
    cfg, _ = resolve_config({"algo": "cpo", "env": "SafetyHopperVelocity-v1", "kl_reduction": "sum"}, preset="omnisafe")
    assert (cfg.kl_reduction, cfg.cpo_constraint_units) == ("sum", "episode")  # --set wins
    assert main(["train", "--preset", "omnisafe", "--algo", "reward_shaping", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "preset 'omnisafe' covers ppo, ppo_lag, pid_lag, cup, cpo, trpo_lag; it has no keys for 'reward_shaping'" \
        in err and len(err.splitlines()) == 1


def test_every_key_anywhere_on_the_page_exists_for_some_solver() -> None:
    fields = {solver: {f.name for f in dataclasses.fields(config_of(solver))} for solver in SOLVERS}
    for key, value in KEY.findall(doc_text()):
        owners = [s for s, names in fields.items() if key in names]
        assert owners, f"`{key}={value}` is not a config key of any of {sorted(SOLVERS)}"
        check_key(owners[0], key, value, "page")


def test_every_file_and_name_of_ours_the_page_cites_exists() -> None:
    cited = [(path, name) for path, name in CITE.findall(doc_text()) if not path.startswith("omnisafe/")]
    assert len(cited) > 20
    for path, name in cited:
        file = ROOT / path
        assert file.is_file(), f"the page cites {path}, which does not exist"
        if name:
            assert path.endswith(".py"), f"{path}: {name}"
            assert defined(file.read_text(encoding="utf-8"), name), f"{path} defines no {name}"


def omnisafe_commit() -> str:
    match = re.search(r"at commit `([0-9a-f]{40})`", doc_text())
    assert match, "the page names no full OmniSafe commit"
    return match.group(1)


def git_show(commit: str, path: str) -> str:
    return subprocess.run(["git", f"--git-dir={OMNISAFE_GIT_DIR}", "show", f"{commit}:{path}"], check=True,
                          capture_output=True, text=True).stdout


@pytest.mark.skipif(not OMNISAFE_GIT_DIR.is_dir(), reason="no mirror of OmniSafe's repository here")
def test_the_omnisafe_files_and_names_the_page_cites_exist_at_its_commit() -> None:
    commit = omnisafe_commit()
    assert "__version__ = '0.5.0'" in git_show(commit, "omnisafe/version.py")
    cited = [(path, name) for path, name in CITE.findall(doc_text()) if path.startswith("omnisafe/")]
    assert len(cited) > 20
    for path, name in cited:
        source = git_show(commit, path)
        if name:
            assert defined(source, name), f"OmniSafe's {path} defines no {name} at {commit[:8]}"
