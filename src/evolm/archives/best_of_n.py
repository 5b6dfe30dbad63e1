"""Best-of-N: the "is evolution needed?" baseline that never breeds from offspring."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from evolm.archives.base import Archive, ArchiveStats, EmptyArchiveError
from evolm.archives.metrics import check_offset, insertable
from evolm.types import SEED_OPERATOR, AddStatus, DescriptorSpace, Individual

__all__ = ["BestOfNArchive"]


class BestOfNArchive(Archive):
    """Keeps the seeds and the best offspring; parents are always drawn from the seeds.

    With this archive every offspring is a one-step variation of a seed, so a run measures what
    N independent samples around the seeds achieve, the baseline that evolution (parents drawn
    from offspring) has to beat.

    Storage and statuses, judged item by item (invalid items are always ``NOT_ADDED``):

    - a seed (``program.operator == SEED_OPERATOR``, ``"seed"``) is always stored: ``NEW``;
    - another item is stored as the *champion* when its fitness is strictly higher than
      everything stored: ``NEW`` if the archive was empty, else ``IMPROVED``; it replaces the
      previous champion (stored seeds stay);
    - anything else is ``NOT_ADDED``, as is an id already stored.

    :attr:`num_seen` counts the valid items offered to ``add``, stored or not.

    ``sample`` draws uniformly from the stored seeds whatever the strategy (the strategy is still
    checked), and ``feedback`` is ignored.

    Stats over the stored individuals (the seeds and the champion): ``qd_score`` is
    ``sum(fitness - qd_offset)``, ``max_fitness`` the best, ``mean_fitness`` their mean;
    ``coverage`` is 1.0 once anything is stored and 0.0 before: the archive has one "cell", the
    best found.

    Args:
        space: the descriptor space (descriptors are checked, then ignored).
        qd_offset: subtracted from every fitness in the QD score.

    Raises:
        ValueError: ``qd_offset`` is not finite.
    """

    name = "best_of_n"

    def __init__(self, space: DescriptorSpace, qd_offset: float = 0.0) -> None:
        super().__init__(space, check_offset(qd_offset))
        self._seeds: list[Individual] = []
        self._seed_ids: set[int] = set()
        self._seed_sum = 0.0
        self._champion: Individual | None = None
        self._best: Individual | None = None
        self._seen = 0

    @property
    def num_seen(self) -> int:
        """Valid (``ok``, finite) items offered to ``add`` so far, stored or not."""
        return self._seen

    @property
    def best(self) -> Individual | None:
        """The fittest individual stored (first of ties), or None when empty."""
        return self._best

    def add(self, batch: Sequence[Individual]) -> list[AddStatus]:
        """Insert a batch; one status per item, in order (see the class docstring)."""
        statuses = [AddStatus.NOT_ADDED] * len(batch)
        for i, ind in enumerate(batch):
            if not insertable(ind, self.space.dim):
                continue
            self._seen += 1
            champion = self._champion
            if ind.id in self._seed_ids or (champion is not None and champion.id == ind.id):
                continue
            fitness = ind.fitness
            better = self._best is None or fitness > self._best.fitness
            if ind.program.operator == SEED_OPERATOR:
                self._seeds.append(ind)
                self._seed_ids.add(ind.id)
                self._seed_sum += fitness
                statuses[i] = AddStatus.NEW
            elif better:
                statuses[i] = AddStatus.NEW if self._best is None else AddStatus.IMPROVED
                self._champion = ind
            if better:
                self._best = ind
        return statuses

    def sample(self, n: int, strategy: str, rng: np.random.Generator) -> list[Individual]:
        """Draw ``n`` seeds uniformly with replacement, whatever ``strategy`` names.

        Raises:
            EmptyArchiveError: no seed is stored.
            ValueError: unknown strategy, or ``n < 1``.
        """
        self._check_sample_args(n, strategy)
        if not self._seeds:
            what = "archive is empty" if self._best is None else "archive holds no seed"
            raise EmptyArchiveError(
                f"{what}: evaluate seeds first (best-of-N draws parents only from stored seed "
                f"programs, those with operator {SEED_OPERATOR!r})"
            )
        return [self._seeds[k] for k in rng.integers(0, len(self._seeds), size=n).tolist()]

    @property
    def stats(self) -> ArchiveStats:
        """Stats over the seeds and the champion; coverage 1.0 once anything is stored."""
        count = len(self)
        if self._best is None:
            return ArchiveStats(0, 0.0, 0.0, None, None)
        total = self._seed_sum + (self._champion.fitness if self._champion is not None else 0.0)
        return ArchiveStats(
            num_elites=count,
            coverage=1.0,
            qd_score=total - count * self.qd_offset,
            max_fitness=self._best.fitness,
            mean_fitness=total / count,
        )

    def __iter__(self) -> Iterator[Individual]:
        """The seeds in the order stored, then the champion if any."""
        yield from self._seeds
        if self._champion is not None:
            yield self._champion

    def __len__(self) -> int:
        return len(self._seeds) + (self._champion is not None)

    def state(self) -> dict[str, Any]:
        """Everything that decides future ``add``/``sample`` results, as plain data."""
        return {
            "seeds": [s.id for s in self._seeds],
            "champion": None if self._champion is None else self._champion.id,
            "best": None if self._best is None else self._best.id,
            "seen": self._seen,
        }
