"""Small pure helpers that keep a report's page small: downsampling of series, even picks of
snapshot points, windows over steps, and truncation of long texts with a visible note.

They know nothing of run databases, so they are unit-tested on known numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "downsample_indices",
    "even_picks",
    "round_sig",
    "truncate",
    "windows",
]


def downsample_indices(n: int, max_points: int, keep: Sequence[int] = ()) -> list[int]:
    """At most about ``max_points`` indices into a series of length ``n``, evenly spread, always
    with the first and the last, plus every index in ``keep`` (e.g. the steps where a run was
    resumed, which a plot must not smooth away). Sorted, without repeats."""
    if n <= 0:
        return []
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if n <= max_points:
        picked = set(range(n))
    else:
        step = (n - 1) / (max_points - 1)
        picked = {round(i * step) for i in range(max_points)}
    picked.update(k for k in keep if 0 <= k < n)
    return sorted(picked)


def even_picks(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(n)``, ending at ``n - 1`` (snapshot points:
    the archive after the first told batch, ..., after the last)."""
    if n <= 0 or count <= 0:
        return []
    if n <= count:
        return list(range(n))
    return sorted({round((i + 1) * (n - 1) / count) for i in range(count)})


def windows(n: int, count: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into at most ``count`` contiguous, nearly equal, non-empty windows, as
    ``(start, stop)`` pairs (stop exclusive), in order."""
    if n <= 0 or count <= 0:
        return []
    count = min(count, n)
    bounds = [round(i * n / count) for i in range(count + 1)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def truncate(text: str | None, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters, and how many characters were cut (0 if none)."""
    if text is None:
        return "", 0
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


def round_sig(value: Any, digits: int = 6) -> Any:
    """A float rounded to ``digits`` significant digits (smaller JSON); None and non-finite
    floats become None, anything else is returned as is."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value == 0.0:
            return 0.0
        return float(f"{value:.{digits}g}")
    return value
