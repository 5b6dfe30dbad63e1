"""Deep-grid MAP-Elites archive (Flageat & Cully 2020): up to ``per_cell`` elites per grid cell."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from evolm.archives.base import Archive, ArchiveStats, EmptyArchiveError
from evolm.archives.grid import EMPTY_MESSAGE, check_bins, descriptor_row
from evolm.archives.gridindex import GridIndex
from evolm.archives.metrics import check_count, check_offset, insertable, summarise
from evolm.archives.selection import FITNESS_FLOOR, SlotSelector
from evolm.types import AddStatus, DescriptorSpace, Individual

__all__ = ["DeepGridArchive"]


class DeepGridArchive(Archive):
    """MAP-Elites grid whose cells each hold up to ``per_cell`` individuals.

    After `Flageat & Cully 2020 <https://arxiv.org/abs/2006.14253>`_: keeping several individuals
    per cell makes the archive robust to noisy fitness and keeps more stepping stones. Cells are
    the same as :class:`~evolm.archives.grid.GridArchive` with the same ``bins`` (indexed by
    :class:`~evolm.archives.gridindex.GridIndex`, as pyribs' grid is; descriptors outside the
    bounds go to edge cells).

    Insertion, judged item by item: an item lands in a cell with a free slot -> ``NEW`` (whether
    the cell was empty or already held others); in a full cell, it replaces the cell's worst
    individual if its fitness is strictly higher -> ``IMPROVED`` (of tied worst, the one in the
    lowest slot goes); otherwise ``NOT_ADDED``. Invalid items and stored ids are ``NOT_ADDED``.

    Selection: a cell is drawn by the strategy (uniform over filled cells; fitness-proportional to
    the cell's best ``fitness - qd_offset``; or by the cell's curiosity score), then an individual
    within that cell with probability proportional to ``max(fitness - qd_offset, FITNESS_FLOOR)``.

    Stats: ``qd_score`` is the QD score of the cell bests, ``sum over filled cells of (best -
    qd_offset)``, so it is comparable with a grid of the same bins; ``coverage`` is filled cells
    over cells; ``num_elites`` and ``mean_fitness`` count every stored individual;
    ``max_fitness`` is the best of all.

    Args:
        space: the descriptor space; its bounds are the grid's range.
        bins: bins per descriptor; an int is used for every descriptor.
        per_cell: individuals a cell can hold (the grid's depth).
        qd_offset: subtracted from fitness in the QD score and in the selection weights.

    Raises:
        ValueError: bad ``bins`` or ``per_cell``, or non-finite ``qd_offset``.
    """

    name = "deep_grid"

    def __init__(
        self,
        space: DescriptorSpace,
        bins: int | Sequence[int],
        per_cell: int = 4,
        qd_offset: float = 0.0,
    ) -> None:
        super().__init__(space, check_offset(qd_offset))
        self.dims = check_bins(bins, space)
        self.per_cell = check_count("per_cell", per_cell)
        self._indexer = GridIndex(self.dims, space.lower, space.upper)
        self._lower, self._upper = space.lower, space.upper
        self._cells = int(np.prod(self.dims))
        self._fitness = np.full((self._cells, self.per_cell), -np.inf, dtype=np.float64)
        self._members = np.empty((self._cells, self.per_cell), dtype=object)
        self._count = np.zeros(self._cells, dtype=np.int64)
        self._best = np.full(self._cells, -np.inf, dtype=np.float64)
        self._selector = SlotSelector(self._cells, self.qd_offset)
        self._cell_of_id: dict[int, int] = {}
        self._size = 0

    @property
    def cells(self) -> int:
        """Total number of cells."""
        return self._cells

    def _index(self, descriptors: np.ndarray) -> np.ndarray:
        # Clip first: pyribs scales before it clips, and a huge descriptor would overflow.
        clipped = np.clip(descriptors, self._lower, self._upper)
        return self._indexer(clipped)

    def _holds(self, ind: Individual) -> bool:
        cell = self._cell_of_id.get(ind.id)
        if cell is None:
            return False
        return any(m.id == ind.id for m in self._members[cell, : self._count.item(cell)])

    def add(self, batch: Sequence[Individual]) -> list[AddStatus]:
        """Insert a batch; one status per item, in order (see the class docstring)."""
        statuses = [AddStatus.NOT_ADDED] * len(batch)
        keep = [i for i, ind in enumerate(batch) if insertable(ind, self.space.dim)]
        if not keep:
            return statuses
        descriptors = np.array([batch[i].descriptors for i in keep], dtype=np.float64)
        cells = self._index(descriptors).tolist()
        for i, cell in zip(keep, cells, strict=True):
            ind = batch[i]
            if self._holds(ind):
                continue
            fitness = ind.fitness
            count = self._count.item(cell)
            if count < self.per_cell:
                slot = count
                self._count[cell] = count + 1
                self._size += 1
                statuses[i] = AddStatus.NEW
            else:
                slot = int(np.argmin(self._fitness[cell]))
                if not fitness > self._fitness.item(cell, slot):
                    continue
                statuses[i] = AddStatus.IMPROVED
            self._fitness[cell, slot] = fitness
            self._members[cell, slot] = ind
            self._cell_of_id[ind.id] = cell
            if count == 0:
                self._best[cell] = fitness
                self._selector.fill(cell, fitness)
            elif fitness > self._best.item(cell):
                self._best[cell] = fitness
                self._selector.set_fitness(cell, fitness)
        return statuses

    def sample(self, n: int, strategy: str, rng: np.random.Generator) -> list[Individual]:
        """Draw ``n`` individuals with replacement: a cell by ``strategy``, then one by fitness.

        Raises:
            EmptyArchiveError: nothing stored yet.
            ValueError: unknown strategy, or ``n < 1``.
        """
        self._check_sample_args(n, strategy)
        if not len(self._selector):
            raise EmptyArchiveError(EMPTY_MESSAGE)
        cells = self._selector.draw(n, strategy, rng).tolist()
        chosen = []
        for cell, u in zip(cells, rng.random(n).tolist(), strict=True):
            count = self._count.item(cell)
            weights = [
                max(f - self.qd_offset, FITNESS_FLOOR) for f in self._fitness[cell, :count].tolist()
            ]
            u *= sum(weights)
            slot = count - 1  # reached only when rounding leaves u at the very top
            for k, w in enumerate(weights):
                if u < w:
                    slot = k
                    break
                u -= w
            chosen.append(self._members[cell, slot])
        return chosen

    def feedback(self, parent_ids: Sequence[int], accepted: bool) -> None:
        """Reward (``accepted``) or penalise the curiosity of the cells the parents were stored in.

        Ids never stored are ignored.
        """
        cells = [self._cell_of_id[i] for i in parent_ids if i in self._cell_of_id]
        self._selector.reward(cells, accepted)

    @property
    def stats(self) -> ArchiveStats:
        """Stats; ``qd_score`` and ``max_fitness`` over cell bests, the rest over all stored."""
        filled = self._selector.filled
        counts = self._count[filled]
        every = self._fitness[filled][np.arange(self.per_cell) < counts[:, None]]
        return summarise(
            self._best[filled],
            qd_offset=self.qd_offset,
            coverage=len(filled) / self._cells,
            num_elites=self._size,
            mean_of=every,
        )

    def __iter__(self) -> Iterator[Individual]:
        """Stored individuals, by ascending cell, then by slot within the cell."""
        for cell in np.sort(self._selector.filled).tolist():
            yield from self._members[cell, : self._count.item(cell)].tolist()

    def __len__(self) -> int:
        return self._size

    def cell_of(self, ind: Individual) -> int:
        """Cell index of ``ind``'s descriptors (clipped into the bounds), stored or not.

        Raises:
            ValueError: ``ind`` has no finite descriptors of the right length.
        """
        return int(self._index(descriptor_row(ind, self.space))[0])

    def cell_position(self, ind: Individual) -> np.ndarray:
        """The bin coordinates of ``ind``'s cell (one integer per descriptor, as floats)."""
        return np.array(np.unravel_index(self.cell_of(ind), self.dims), dtype=np.float64)

    def export(self) -> list[dict[str, Any]]:
        """One record per individual (id, fitness, descriptors, cell), in iteration order."""
        return [
            {
                "id": member.id,
                "fitness": member.fitness,
                "descriptors": list(member.descriptors),
                "cell": cell,
            }
            for cell in np.sort(self._selector.filled).tolist()
            for member in self.members_of(cell)
        ]

    def members_of(self, cell: int) -> list[Individual]:
        """The individuals stored in ``cell``, in slot order (empty list for an empty cell)."""
        return list(self._members[cell, : self._count.item(cell)])

    def state(self) -> dict[str, Any]:
        """Everything that decides future ``add``/``sample`` results, as plain data.

        Two archives whose states are equal answer the same later calls (with equally seeded
        generators) identically.
        """
        filled = self._selector.filled.tolist()
        return {
            "filled": filled,
            "ids": [[m.id for m in self.members_of(c)] for c in filled],
            "fitness": [self._fitness[c, : self._count.item(c)].tolist() for c in filled],
            "curiosity": self._selector.curiosity(filled),
            "cell_of_id": dict(self._cell_of_id),
        }
