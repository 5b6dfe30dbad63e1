"""MAP-Elites grid archive (Mouret & Clune 2015), and the one-elite-per-cell machinery it shares
with the CVT archive."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from evolm.archives.base import Archive, ArchiveStats, EmptyArchiveError
from evolm.archives.gridindex import GridIndex
from evolm.archives.metrics import check_count, check_offset, insertable, summarise
from evolm.archives.selection import SlotSelector
from evolm.types import AddStatus, DescriptorSpace, Individual

if TYPE_CHECKING:
    import ribs.archives

__all__ = ["MAX_CELLS", "EliteMap", "GridArchive", "check_bins"]

MAX_CELLS = 10_000_000
"""Largest number of cells an archive may allocate (its arrays are dense over the cells)."""

EMPTY_MESSAGE = (
    "archive is empty: evaluate seeds first (add at least one ok individual before sampling)"
)


def check_bins(bins: int | Sequence[int], space: DescriptorSpace) -> tuple[int, ...]:
    """Bin counts per descriptor: an int broadcasts, a sequence needs one entry per descriptor.

    Raises:
        ValueError: a count is not an int >= 1, the sequence length differs from
            ``space.dim``, or the grid would have more than :data:`MAX_CELLS` cells.
    """
    if isinstance(bins, numbers.Integral) and not isinstance(bins, bool):
        dims = (check_count("bins", bins),) * space.dim
    elif isinstance(bins, Iterable) and not isinstance(bins, str | bytes):
        listed = list(bins)
        if len(listed) != space.dim:
            raise ValueError(
                f"bins has {len(listed)} entries but the descriptor space has {space.dim} "
                f"descriptors {space.names}; give one bin count per descriptor, or one int"
            )
        dims = tuple(check_count(f"bins[{i}]", b) for i, b in enumerate(listed))
    else:
        raise ValueError(f"bins must be an int or a sequence of ints, got {bins!r}")
    cells = 1
    for d in dims:
        cells *= d
    if cells > MAX_CELLS:
        raise ValueError(
            f"bins {dims} give {cells} cells, more than MAX_CELLS={MAX_CELLS}; use fewer bins "
            "per descriptor, or a CVT archive whose cell count does not grow with the dimension"
        )
    return dims


def descriptor_row(ind: Individual, space: DescriptorSpace) -> np.ndarray:
    """``ind``'s descriptors as a ``(1, dim)`` float array, for cell lookups.

    Raises:
        ValueError: ``ind`` has no finite descriptors of the right length.
    """
    descriptors = ind.evaluation.descriptors
    array = np.asarray(descriptors if descriptors is not None else (), dtype=np.float64)
    if array.shape != (space.dim,) or not np.all(np.isfinite(array)):
        raise ValueError(
            f"program {ind.id} has descriptors {descriptors!r}; a cell needs "
            f"{space.dim} finite descriptors {space.names}"
        )
    return array[None]


class EliteMap(Archive):
    """One elite per cell, with the cell of a descriptor given by an index function.

    Subclasses give the function that maps measures to cells (a :class:`GridIndex`, or a pyribs
    archive's ``index_of``) and one that builds the matching pyribs archive, and may map
    descriptors to measures with :meth:`_measures`. Everything on the hot path lives in
    dense numpy arrays over the cells plus a :class:`~evolm.archives.selection.SlotSelector`, so
    ``add`` costs O(batch) and ``sample`` O(n log cells), whatever the number of elites. The
    pyribs archive is only written when :meth:`to_ribs` is called.
    """

    def __init__(
        self,
        space: DescriptorSpace,
        qd_offset: float,
        index: Callable[[np.ndarray], Any],
        make_ribs: Callable[[], ribs.archives.GridArchive | ribs.archives.CVTArchive],
        cells: int,
    ) -> None:
        super().__init__(space, check_offset(qd_offset))
        self._index_of = index
        self._make_ribs = make_ribs
        self._ribs: ribs.archives.GridArchive | ribs.archives.CVTArchive | None = None
        self._cells = cells
        self._fitness = np.full(cells, -np.inf, dtype=np.float64)
        self._elites = np.empty(cells, dtype=object)
        self._selector = SlotSelector(cells, self.qd_offset)
        self._cell_of_id: dict[int, int] = {}
        self._unsynced: dict[int, None] = {}

    @property
    def cells(self) -> int:
        """Total number of cells."""
        return self._cells

    def _measures(self, descriptors: np.ndarray) -> np.ndarray:
        """Map ``(n, dim)`` descriptors to the measures the pyribs archive indexes."""
        return descriptors

    def _index(self, descriptors: np.ndarray) -> np.ndarray:
        return np.asarray(self._index_of(self._measures(descriptors)), dtype=np.int64)

    def _holds(self, ind: Individual) -> bool:
        cell = self._cell_of_id.get(ind.id)
        if cell is None:
            return False
        elite = self._elites[cell]
        return elite is not None and elite.id == ind.id

    def add(self, batch: Sequence[Individual]) -> list[AddStatus]:
        """Insert a batch; one status per item, in order.

        Items are judged one after another against the archive as the earlier items left it, so
        the statuses do not depend on how the adds are split into batches (pyribs instead judges
        a whole batch against the archive before it). ``NEW``: the item filled an empty cell.
        ``IMPROVED``: its fitness is strictly higher than the cell's elite, which it replaced.
        ``NOT_ADDED``: not ``ok``, fitness or descriptors missing or not finite, wrong number of
        descriptors, fitness not strictly higher (ties keep the incumbent), or an individual with
        this id is already stored. Descriptors outside the space's bounds land in the edge cells.
        """
        statuses = [AddStatus.NOT_ADDED] * len(batch)
        keep = [i for i, ind in enumerate(batch) if insertable(ind, self.space.dim)]
        if not keep:
            return statuses
        descriptors = np.array([batch[i].descriptors for i in keep], dtype=np.float64)
        for i, cell in zip(keep, self._index(descriptors).tolist(), strict=True):
            ind = batch[i]
            if self._holds(ind):
                continue
            fitness = ind.fitness
            if self._elites[cell] is None:
                statuses[i] = AddStatus.NEW
                self._selector.fill(cell, fitness)
            elif fitness > self._fitness.item(cell):
                statuses[i] = AddStatus.IMPROVED
                self._selector.set_fitness(cell, fitness)
            else:
                continue
            self._fitness[cell] = fitness
            self._elites[cell] = ind
            self._cell_of_id[ind.id] = cell
            self._unsynced[cell] = None
        return statuses

    def sample(self, n: int, strategy: str, rng: np.random.Generator) -> list[Individual]:
        """Draw ``n`` elites with replacement: a cell by ``strategy``, then its elite.

        ``uniform``: every filled cell equally likely. ``fitness``: a cell with probability
        proportional to ``max(fitness - qd_offset, FITNESS_FLOOR)``. ``curiosity``: proportional
        to the cell's curiosity score (see :mod:`evolm.archives.selection`).

        Raises:
            EmptyArchiveError: no elites yet.
            ValueError: unknown strategy, or ``n < 1``.
        """
        self._check_sample_args(n, strategy)
        if not len(self._selector):
            raise EmptyArchiveError(EMPTY_MESSAGE)
        return [self._elites[c] for c in self._selector.draw(n, strategy, rng).tolist()]

    def feedback(self, parent_ids: Sequence[int], accepted: bool) -> None:
        """Reward (``accepted``) or penalise the curiosity of the cells the parents were stored in.

        A parent counts for the cell it was last stored in, even if it has since been replaced;
        ids never stored are ignored.
        """
        cells = [self._cell_of_id[i] for i in parent_ids if i in self._cell_of_id]
        self._selector.reward(cells, accepted)

    @property
    def stats(self) -> ArchiveStats:
        """Stats over the elites; coverage is ``len(self) / cells``."""
        filled = self._selector.filled
        return summarise(
            self._fitness[filled], qd_offset=self.qd_offset, coverage=len(filled) / self._cells
        )

    def __iter__(self) -> Iterator[Individual]:
        """Elites in ascending cell order."""
        for cell in np.sort(self._selector.filled).tolist():
            yield self._elites[cell]

    def __len__(self) -> int:
        return len(self._selector)

    def cell_of(self, ind: Individual) -> int:
        """Cell index of ``ind``'s descriptors (clipped into the bounds), stored or not.

        Raises:
            ValueError: ``ind`` has no finite descriptors of the right length.
        """
        return int(self._index(descriptor_row(ind, self.space))[0])

    def export(self) -> list[dict[str, Any]]:
        """One record per elite (id, fitness, descriptors, cell), in ascending cell order."""
        return [
            {
                "id": elite.id,
                "fitness": elite.fitness,
                "descriptors": list(elite.descriptors),
                "cell": cell,
            }
            for cell in np.sort(self._selector.filled).tolist()
            for elite in (self._elites[cell],)
        ]

    def elite_at(self, cell: int) -> Individual | None:
        """The elite stored in ``cell``, or None when the cell is empty."""
        return self._elites[cell]

    def state(self) -> dict[str, Any]:
        """Everything that decides future ``add``/``sample`` results, as plain data.

        Two archives whose states are equal answer the same later calls (with equally seeded
        generators) identically; the engine compares a rebuilt archive with the original so.
        """
        filled = self._selector.filled.tolist()
        return {
            "filled": filled,
            "ids": [self._elites[c].id for c in filled],
            "fitness": self._fitness[filled].tolist(),
            "curiosity": self._selector.curiosity(filled),
            "cell_of_id": dict(self._cell_of_id),
        }

    def to_ribs(self) -> ribs.archives.GridArchive | ribs.archives.CVTArchive:
        """The pyribs archive holding the same elites, for pyribs' plots and analysis tools.

        Solutions are the :class:`~evolm.types.Individual` objects; measures are what the pyribs
        archive indexes (raw descriptors for a grid, normalised ones for a CVT). The pyribs archive
        is built on the first call (importing pyribs) and brought up to date on each call, costing
        O(changed cells + cells).
        """
        if self._ribs is None:
            self._ribs = self._make_ribs()  # every cell changed since construction is unsynced
        if self._unsynced:
            cells = np.fromiter(self._unsynced, dtype=np.int64, count=len(self._unsynced))
            elites = self._elites[cells]
            descriptors = np.array([e.descriptors for e in elites], dtype=np.float64)
            self._ribs.add(elites, self._fitness[cells], self._measures(descriptors))
            self._unsynced.clear()
        return self._ribs


class GridArchive(EliteMap):
    """MAP-Elites grid: the descriptor box split into equal bins per dimension, one elite per cell.

    From `Mouret & Clune 2015 <https://arxiv.org/abs/1504.04909>`_, as used for programs in ELM
    (`Lehman et al. 2022 <https://arxiv.org/abs/2206.08896>`_). Cells are indexed as by
    :meth:`ribs.archives.GridArchive.index_of` over ``space.bounds`` (see :class:`GridIndex`,
    which needs no pyribs): a descriptor outside the bounds is clipped into the edge cell. Cell
    indices are row-major over the bins.

    Args:
        space: the descriptor space; its bounds are the grid's range.
        bins: bins per descriptor; an int is used for every descriptor.
        qd_offset: subtracted from every fitness in the QD score and the fitness weights.

    Raises:
        ValueError: bad ``bins`` (see :func:`check_bins`) or non-finite ``qd_offset``.
    """

    name = "grid"

    def __init__(
        self, space: DescriptorSpace, bins: int | Sequence[int], qd_offset: float = 0.0
    ) -> None:
        dims = check_bins(bins, space)
        offset = check_offset(qd_offset)

        def make_ribs() -> ribs.archives.GridArchive:
            import ribs.archives  # loads torch, numba, scipy: only when asked for

            return ribs.archives.GridArchive(
                solution_dim=(),
                dims=dims,
                ranges=space.bounds,
                solution_dtype=object,
                qd_score_offset=offset,
            )

        index = GridIndex(dims, space.lower, space.upper)
        super().__init__(space, offset, index, make_ribs, int(np.prod(dims)))
        self.dims = dims
        self._lower, self._upper = space.lower, space.upper

    def cell_position(self, ind: Individual) -> np.ndarray:
        """The bin coordinates of ``ind``'s cell (one integer per descriptor, as floats)."""
        return np.array(np.unravel_index(self.cell_of(ind), self.dims), dtype=np.float64)

    def _measures(self, descriptors: np.ndarray) -> np.ndarray:
        # Clip first: pyribs scales before it clips, and a huge descriptor would overflow.
        return np.clip(descriptors, self._lower, self._upper)
