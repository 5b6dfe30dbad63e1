"""Statistics and argument checks shared by the archives."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from evolm.archives.base import ArchiveStats, is_insertable
from evolm.types import FITNESS_LIMIT, Individual

__all__ = ["check_count", "check_offset", "insertable", "summarise"]


def summarise(
    fitness: np.ndarray,
    *,
    qd_offset: float,
    coverage: float,
    num_elites: int | None = None,
    mean_of: np.ndarray | None = None,
) -> ArchiveStats:
    """:class:`ArchiveStats` from the fitness values that make up the QD score.

    Args:
        fitness: ``(k,)`` fitness values counted in the QD score, ``sum(fitness - qd_offset)``;
            their maximum is ``max_fitness``.
        qd_offset: the archive's QD offset.
        coverage: filled fraction, already computed by the archive.
        num_elites: stored individuals; defaults to ``len(fitness)``.
        mean_of: values averaged for ``mean_fitness``; defaults to ``fitness``.

    Returns:
        The stats; ``max_fitness`` and ``mean_fitness`` are None when ``fitness`` is empty.
    """
    mean_values = fitness if mean_of is None else mean_of
    count = len(fitness) if num_elites is None else num_elites
    if len(fitness) == 0:
        return ArchiveStats(count, float(coverage), 0.0, None, None)
    return ArchiveStats(
        num_elites=int(count),
        coverage=float(coverage),
        qd_score=float(np.sum(fitness - qd_offset)),
        max_fitness=float(np.max(fitness)),
        mean_fitness=float(np.mean(mean_values)),
    )


def insertable(ind: Any, dim: int) -> bool:
    """:func:`~evolm.archives.base.is_insertable`, but False instead of raising on odd values.

    ``add`` must never raise for a bad item, and a hand-built evaluation can hold a fitness or a
    descriptor that is not a number at all.
    """
    if not isinstance(ind, Individual):
        return False
    try:
        return is_insertable(ind, dim)
    except (TypeError, ValueError, AttributeError):
        return False


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int, or ValueError naming ``name`` when it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_offset(qd_offset: Any) -> float:
    """``qd_offset`` as a float of magnitude at most :data:`~evolm.types.FITNESS_LIMIT`, or
    ValueError."""
    try:
        offset = float(qd_offset)
    except (TypeError, ValueError):
        raise ValueError(f"qd_offset must be a number, got {qd_offset!r}") from None
    if not math.isfinite(offset):
        raise ValueError(
            f"qd_offset must be finite, got {offset}; choose it at or below the lowest fitness"
        )
    if abs(offset) > FITNESS_LIMIT:
        raise ValueError(
            f"qd_offset {offset:g} is beyond the limit of +-{FITNESS_LIMIT:g} that keeps the QD "
            "score finite; choose an offset just below the lowest fitness the domain produces"
        )
    return offset
