"""evolm.stats: intervals checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from evolm.stats import t_interval, wilson


def test_t_interval_on_known_numbers() -> None:
    # mean 2, sample sd 1, n 3: half-width = t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    # df = 15 uses t = 2.1314, not the normal 1.96
    values = [float(i % 2) for i in range(16)]
    _, half16 = t_interval(values)
    sd = math.sqrt(sum((v - 0.5) ** 2 for v in values) / 15)
    assert half16 == pytest.approx(2.131450 * sd / 4.0, rel=1e-5)


def test_t_interval_single_value_and_bad_input() -> None:
    assert t_interval([5.0]) == (5.0, None)
    with pytest.raises(ValueError, match="at least one"):
        t_interval([])
    with pytest.raises(ValueError, match="non-finite"):
        t_interval([1.0, math.nan])


def test_wilson_on_known_numbers() -> None:
    lo, hi = wilson(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(0.27753, abs=1e-4)
    lo, hi = wilson(5, 10)
    assert (lo, hi) == (pytest.approx(0.23659, abs=1e-4), pytest.approx(0.76341, abs=1e-4))
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)
