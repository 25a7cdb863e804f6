"""The documentation names only files and code that exist: every repository file it cites in backticks
(`cmdp/solver.py`), every `path.py: Name` or `path.py: Class.attr` it points at, and every relative link target.
(docs/omnisafe-differences.md has its own, stricter checks in tests/test_omnisafe_differences.py.)"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from source_helpers import defined

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
#: a repository path in backticks, optionally followed by ": Name" or ": Class.attr"
CITE = re.compile(r"`((?:cmdp|algorithms|envs|benchmarks|docs|tests)/[\w/.-]+\.(?:py|md|yaml|csv|png|sh))"
                  r"(?::\s*([A-Za-z_][\w.]*))?`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
#: paths in OmniSafe's repository that benchmarks/README.md cites (its published tables), not ours
OMNISAFE_PATHS = {"benchmarks/on-policy/README.md", "benchmarks/off-policy/README.md"}


def repo_file(path: str) -> Path | None:
    """The file a cited path names: as it stands, or under the installed name `cmdp/` for the repository's
    `algorithms/`, `envs/` and `benchmarks/` (`cmdp/algorithms/ppo_lag.py` is algorithms/ppo_lag.py)."""
    candidates = [ROOT / path]
    if path.startswith("cmdp/"):
        candidates.append(ROOT / path.removeprefix("cmdp/"))
    return next((c for c in candidates if c.exists()), None)


def where(doc: Path, text: str, pos: int) -> str:
    return f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, pos) + 1}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_file_and_name_a_doc_cites_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    problems = []
    for match in CITE.finditer(text):
        path, name = match.groups()
        if path in OMNISAFE_PATHS:
            continue
        file = repo_file(path)
        if file is None:
            problems.append(f"{where(doc, text, match.start())}: no file {path}")
        elif name and file.suffix == ".py" and not defined(file.read_text(encoding="utf-8"), name):
            problems.append(f"{where(doc, text, match.start())}: {path} defines no {name}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_relative_link_of_a_doc_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    problems = []
    for match in LINK.finditer(text):
        target = match.group(1).split("#", 1)[0]
        if not target or re.match(r"[a-z]+:", target):  # an anchor on the page, or a URL
            continue
        if not (doc.parent / target).exists():
            problems.append(f"{where(doc, text, match.start())}: the link target {target} does not exist")
    assert not problems, "\n".join(problems)
