"""Confidence intervals for search-quality figures (the report, ``evolm compare``, benchmarks).

Comparisons across seeds are small samples (3 to 10 runs), so means carry a Student-t interval,
not a normal one; rates (solved, valid) carry a Wilson score interval, which stays inside [0, 1]
and is sensible at 0 of n.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["t_interval", "wilson"]


def _t975(df: int) -> float:
    from scipy.stats import t  # scipy comes with ribs

    return float(t.ppf(0.975, df))


def t_interval(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean of ``values`` and the half-width of its two-sided 95 % Student-t interval.

    The half-width is None for a single value (no spread to estimate). Raises ValueError for no
    values or a non-finite one: an interval over a NaN would silently be NaN.
    """
    if not values:
        raise ValueError("t_interval needs at least one value")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"t_interval got a non-finite value: {list(values)}")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    return mean, _t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a binomial rate of ``k`` successes in ``n`` trials."""
    if not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(mid - half, 0.0), min(mid + half, 1.0)
