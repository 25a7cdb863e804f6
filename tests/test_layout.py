"""The core package never imports the packages that use it: importing any module of cmdp/ but the CLI loads no
solver, environment or benchmark module (they register through entry points, found only when asked for)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "cmdp"


def test_core_modules_import_no_solver_environment_or_benchmark() -> None:
    modules = sorted(f"cmdp.{p.stem}" for p in CORE.glob("*.py") if p.stem not in ("__init__", "__main__", "cli"))
    assert "cmdp.trainer" in modules and "cmdp.family" in modules
    code = ("import sys\n"
            f"for name in {modules!r}:\n"
            "    __import__(name)\n"
            "users = sorted(m for m in sys.modules if m.split('.')[:2] in (['cmdp', 'algorithms'], ['cmdp', 'envs'],"
            " ['cmdp', 'benchmarks']))\n"
            "assert not users, users\n")
    subprocess.run([sys.executable, "-c", code], check=True)
