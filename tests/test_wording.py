"""The shared wording of numbers in what a user reads (`cmdp.wording`)."""
from __future__ import annotations

import math

from cmdp.wording import mean_std_text


def test_a_mean_and_its_spread_read_with_thousands_separators() -> None:
    # a report's cost of 8779.50 ± 946.00 beside a return of 2,833.72 (the report's own numbers had separators)
    assert mean_std_text(8779.5, 946.0, 3) == "8,779.50 ± 946.00"
    assert mean_std_text(12345.678, 1234.5, 2, digits=1) == "12,345.7 ± 1,234.5"
    assert mean_std_text(31.57, 0.0, 1) == "31.57"  # one value: its std says nothing
    assert mean_std_text(math.nan, math.nan, 0) == "n/a"
