"""The archive protocol every archive implements.

An archive stores individuals and answers queries (pyribs' vocabulary): ``add`` inserts a batch
and returns one :class:`~evolm.types.AddStatus` per item; ``sample`` draws parents with a named
selection strategy and a caller-owned generator; ``stats`` summarises the archive; iteration yields
the stored elites; ``export`` gives plain records. ``feedback`` tells the archive whether the
offspring of sampled parents were accepted, which the ``curiosity`` strategy uses.

Only ``ok`` individuals with finite descriptors of the right length and a fitness of magnitude at
most :data:`~evolm.types.FITNESS_LIMIT` are ever stored; anything else is ``NOT_ADDED``. With the
QD offset bounded the same way, the QD score never overflows.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from evolm.types import FITNESS_LIMIT, AddStatus, DescriptorSpace, Individual

__all__ = ["Archive", "ArchiveStats", "EmptyArchiveError", "Strategy", "is_insertable"]

Strategy = Literal["uniform", "fitness", "curiosity"]
STRATEGIES: tuple[str, ...] = ("uniform", "fitness", "curiosity")


class EmptyArchiveError(RuntimeError):
    """Raised when sampling from an archive that holds no elites."""


@dataclass(frozen=True)
class ArchiveStats:
    """Summary of an archive after a step.

    ``qd_score`` is ``sum(fitness - qd_offset)`` over elites, so with an offset below the lowest
    attainable fitness it rises as cells fill even in domains with negative fitness.
    ``coverage`` is the filled fraction of cells (1.0 for non-QD archives that are full).
    ``max_fitness`` and ``mean_fitness`` are ``None`` for an empty archive.
    """

    num_elites: int
    coverage: float
    qd_score: float
    max_fitness: float | None
    mean_fitness: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_insertable(ind: Individual, dim: int) -> bool:
    """True when ``ind`` is ``ok`` with ``dim`` finite descriptors and a fitness of magnitude at
    most :data:`~evolm.types.FITNESS_LIMIT` (so sums such as the QD score stay finite)."""
    ev = ind.evaluation
    if not ev.ok or ev.fitness is None or ev.descriptors is None:
        return False
    if len(ev.descriptors) != dim:
        return False
    return abs(ev.fitness) <= FITNESS_LIMIT and all(math.isfinite(d) for d in ev.descriptors)


class Archive(ABC):
    """Base class: shared validation, with the storage details in subclasses.

    Args:
        space: the descriptor space of the domain.
        qd_offset: subtracted from every fitness in the QD score; choose it at or below the
            lowest fitness the domain can produce.
    """

    name: str = "archive"

    def __init__(self, space: DescriptorSpace, qd_offset: float = 0.0) -> None:
        self.space = space
        self.qd_offset = float(qd_offset)

    @abstractmethod
    def add(self, batch: Sequence[Individual]) -> list[AddStatus]:
        """Insert a batch; one status per item, in order. Never raises for bad items."""

    @abstractmethod
    def sample(self, n: int, strategy: str, rng: np.random.Generator) -> list[Individual]:
        """Draw ``n`` parents (with replacement) using ``strategy``.

        Raises:
            EmptyArchiveError: the archive holds no elites.
            ValueError: unknown strategy, or ``n < 1``.
        """

    def feedback(self, parent_ids: Sequence[int], accepted: bool) -> None:  # noqa: B027
        """Record whether an offspring of ``parent_ids`` entered the archive (for curiosity)."""

    @property
    @abstractmethod
    def stats(self) -> ArchiveStats:
        """Current :class:`ArchiveStats`."""

    @abstractmethod
    def __iter__(self) -> Iterator[Individual]:
        """Iterate over stored elites."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of stored elites."""

    def export(self) -> list[dict[str, Any]]:
        """One plain record per elite: id, fitness, descriptors, and the cell when meaningful."""
        return [
            {
                "id": ind.program.id,
                "fitness": ind.fitness,
                "descriptors": list(ind.descriptors),
                "cell": self.cell_of(ind),
            }
            for ind in self
        ]

    def cell_of(self, ind: Individual) -> int | None:
        """Integer cell index of an individual's descriptors, or None for non-QD archives."""
        return None

    def cell_position(self, ind: Individual) -> np.ndarray:
        """Where ``ind`` lies in units of cells, for distances between cells (LMX's "near"
        parents). Grids: the integer bin coordinates; CVT: the cell's centroid divided by the
        mean spacing of neighbouring centroids; archives without cells: the normalised
        descriptors times 10, as if on a 10-bin grid."""
        return self.space.normalise(np.asarray(ind.descriptors, dtype=np.float64)) * 10.0

    @staticmethod
    def _check_sample_args(n: int, strategy: str) -> None:
        if n < 1:
            raise ValueError(f"sample needs n >= 1, got {n}")
        if strategy not in STRATEGIES:
            raise ValueError(
                f"unknown selection strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}"
            )
