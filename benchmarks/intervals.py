"""Confidence intervals the benchmark scripts print (imported by them as ``intervals``: a script
run as ``python benchmarks/NAME.py`` has this directory on its path)."""

from __future__ import annotations

import math
import statistics

__all__ = ["t_interval", "wilson"]

# Two-sided 95 % quantiles of Student's t for 1..10 degrees of freedom (beyond: 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_interval(values: list[float]) -> tuple[float, float | None]:
    """The mean and the half-width of its 95 % Student-t interval (None for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    df = len(values) - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial rate."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(mid - half, 0.0), min(mid + half, 1.0)
