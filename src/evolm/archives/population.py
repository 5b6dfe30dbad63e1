"""Fixed-size elitist population: the genetic-algorithm baseline without niches."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from evolm.archives.base import Archive, ArchiveStats, EmptyArchiveError
from evolm.archives.grid import EMPTY_MESSAGE, MAX_CELLS
from evolm.archives.metrics import check_count, check_offset, insertable, summarise
from evolm.archives.selection import CURIOSITY_INIT, SumTree, reward_curiosity
from evolm.types import AddStatus, DescriptorSpace, Individual

__all__ = ["PopulationArchive"]


class PopulationArchive(Archive):
    """A population of at most ``size`` individuals with elitist steady-state replacement.

    The baseline that asks whether niches help: descriptors are checked (so the same items are
    rejected as by the QD archives) but otherwise ignored. While the population has room, every
    valid item is ``NEW``; once full, an item whose fitness is strictly higher than the current
    worst replaces it (``IMPROVED``; among tied worst, the earliest stored goes), otherwise it is
    ``NOT_ADDED``. Ids already in the population are ``NOT_ADDED``. The best fitness never falls.

    Selection: ``fitness`` is tournament selection (Miller & Goldberg 1995, *Complex Systems*
    9(3)): ``tournament_size`` members drawn uniformly with replacement, the fittest wins (ties:
    the first drawn). ``uniform`` draws members uniformly. ``curiosity`` draws members in
    proportion to a per-member curiosity score (see :mod:`evolm.archives.selection`), reset to
    the initial score when a newcomer takes the slot; ``feedback`` only updates current members.

    Stats: ``coverage`` is ``len / size``; ``qd_score`` is ``sum(fitness - qd_offset)``.

    Args:
        space: the descriptor space.
        size: the population size.
        tournament_size: members per tournament.
        qd_offset: subtracted from every fitness in the QD score.

    Raises:
        ValueError: ``size`` or ``tournament_size`` is not a positive int, or ``qd_offset`` is
            not finite.
    """

    name = "population"

    def __init__(
        self,
        space: DescriptorSpace,
        size: int,
        tournament_size: int = 3,
        qd_offset: float = 0.0,
    ) -> None:
        super().__init__(space, check_offset(qd_offset))
        self.size = check_count("size", size)
        if self.size > MAX_CELLS:
            raise ValueError(f"size must be <= MAX_CELLS={MAX_CELLS}, got {self.size}")
        self.tournament_size = check_count("tournament_size", tournament_size)
        self._members = np.empty(self.size, dtype=object)
        self._fitness = np.full(self.size, -np.inf, dtype=np.float64)
        self._ids = np.zeros(self.size, dtype=np.int64)
        self._filled = 0
        self._curiosity = SumTree(self.size)
        self._slot_of_id: dict[int, int] = {}
        # Min-heap of (fitness, insertion number, slot): its top is always the current worst,
        # because a member only ever leaves by being that top.
        self._heap: list[tuple[float, int, int]] = []
        self._inserted = 0

    def add(self, batch: Sequence[Individual]) -> list[AddStatus]:
        """Insert a batch; one status per item, in order, each judged after the ones before."""
        statuses = [AddStatus.NOT_ADDED] * len(batch)
        for i, ind in enumerate(batch):
            if not insertable(ind, self.space.dim) or ind.id in self._slot_of_id:
                continue
            fitness = ind.fitness
            if self._filled < self.size:
                slot = self._filled
                self._filled += 1
                heapq.heappush(self._heap, (fitness, self._inserted, slot))
                statuses[i] = AddStatus.NEW
            else:
                worst, _, slot = self._heap[0]
                if not fitness > worst:
                    continue
                heapq.heapreplace(self._heap, (fitness, self._inserted, slot))
                del self._slot_of_id[self._ids.item(slot)]
                statuses[i] = AddStatus.IMPROVED
            self._inserted += 1
            self._members[slot] = ind
            self._fitness[slot] = fitness
            self._ids[slot] = ind.id
            self._slot_of_id[ind.id] = slot
            self._curiosity[slot] = CURIOSITY_INIT
        return statuses

    def sample(self, n: int, strategy: str, rng: np.random.Generator) -> list[Individual]:
        """Draw ``n`` members with replacement (see the class docstring for the strategies).

        Raises:
            EmptyArchiveError: the population is empty.
            ValueError: unknown strategy, or ``n < 1``.
        """
        self._check_sample_args(n, strategy)
        if not self._filled:
            raise EmptyArchiveError(EMPTY_MESSAGE)
        if strategy == "fitness":
            entrants = rng.integers(0, self._filled, size=(n, self.tournament_size))
            winners = np.argmax(self._fitness[entrants], axis=1)
            slots = entrants[np.arange(n), winners]
        elif strategy == "uniform":
            slots = rng.integers(0, self._filled, size=n)
        else:
            slots = self._curiosity.draw(n, rng)
        return [self._members[s] for s in slots.tolist()]

    def feedback(self, parent_ids: Sequence[int], accepted: bool) -> None:
        """Reward (``accepted``) or penalise the curiosity of parents still in the population."""
        slots = [self._slot_of_id[i] for i in parent_ids if i in self._slot_of_id]
        reward_curiosity(self._curiosity, slots, accepted)

    @property
    def stats(self) -> ArchiveStats:
        """Stats over the members; coverage is ``len / size``."""
        return summarise(
            self._fitness[: self._filled],
            qd_offset=self.qd_offset,
            coverage=self._filled / self.size,
        )

    def __iter__(self) -> Iterator[Individual]:
        """Members in slot order."""
        yield from self._members[: self._filled].tolist()

    def __len__(self) -> int:
        return self._filled

    def state(self) -> dict[str, Any]:
        """Everything that decides future ``add``/``sample`` results, as plain data."""
        filled = self._filled
        return {
            "ids": [m.id for m in self._members[:filled].tolist()],
            "fitness": self._fitness[:filled].tolist(),
            "curiosity": [self._curiosity[s] for s in range(filled)],
            "heap": list(self._heap),
        }
