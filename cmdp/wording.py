"""How the command line words counts and spreads, one way everywhere (imports nothing heavy, so the benchmark
runner and the report use it without loading torch)."""
from __future__ import annotations

import math


def count_text(count: int, unit: str) -> str:
    """`count` things of `unit`, a plural noun ("episodes", "run folders", a FamilyRun's `evaluation_unit`), in
    the singular for one: "1 episode", "3 episodes"."""
    return f"{count} {unit[:-1] if count == 1 and unit.endswith('s') else unit}"


def mean_std_text(mean: float, std: float, count: int, digits: int = 2) -> str:
    """"mean ± std" over `count` values; the mean alone for one, whose std (0) says nothing about the spread; "n/a"
    for a mean that was not measured (NaN)."""
    if math.isnan(mean):
        return "n/a"
    return f"{mean:,.{digits}f}" if count == 1 else f"{mean:,.{digits}f} ± {std:,.{digits}f}"
