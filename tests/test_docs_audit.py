"""The documentation names no file that is not there, in backticks or not: a path written as plain text
("see shared/ANCHORS.md") escapes tests/test_doc_references.py, which checks backticked paths and links only.

Every relative path a doc writes (a folder, a slash, a file with an extension) must exist, taken from the repository
root, under the installed name `cmdp/`, or from the doc's own folder, unless its first folder is one of the places
outside this repository that the docs name on purpose (a run's output, OmniSafe's or safe-rlhf's repository)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
#: a relative path with at least one folder and a file extension, not part of a longer path or a URL
PATH = re.compile(r"(?<![\w/.:-])([A-Za-z_][\w.-]*/[\w/.-]*\w\.(?:py|md|yaml|yml|csv|png|sh|json|txt|cfg|toml))"
                  r"(?![\w/])")
#: first folders of paths that are not this repository's files: what a command writes (`runs/...`, a folder the
#: reader names, `DIR/...`), OmniSafe's repository (`omnisafe/...`) and safe-rlhf's (`scripts/ppo-lag.sh`)
OUTSIDE = {"runs", "DIR", "omnisafe", "scripts"}
#: paths in OmniSafe's repository that benchmarks/README.md cites (its published tables), not ours
OMNISAFE_PATHS = {"benchmarks/on-policy/README.md", "benchmarks/off-policy/README.md"}


def missing_paths(doc: Path, text: str) -> list[str]:
    """`line: path` for each path `text` (the doc `doc`'s) names that is neither there nor outside the repository."""
    problems = []
    for match in PATH.finditer(text):
        path = match.group(1)
        if path.split("/", 1)[0] in OUTSIDE or path in OMNISAFE_PATHS:
            continue
        candidates = [ROOT / path, ROOT / path.removeprefix("cmdp/"), doc.parent / path]
        if not any(candidate.exists() for candidate in candidates):
            problems.append(f"{doc.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: {path}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    problems = missing_paths(doc, doc.read_text(encoding="utf-8"))
    assert not problems, "no such file:\n" + "\n".join(problems)


def test_a_plain_text_path_to_a_missing_file_is_found() -> None:
    doc = ROOT / "benchmarks" / "README.md"
    text = "on the same machine class (see shared/ANCHORS.md), and `cmdp/solver.py` and suites/smoke.yaml exist"
    assert missing_paths(doc, text) == ["benchmarks/README.md:1: shared/ANCHORS.md"]
