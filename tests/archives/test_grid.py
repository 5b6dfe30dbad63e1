"""Grid archive: bins, cell layout, and the pyribs mirror."""

from __future__ import annotations

import numpy as np
import pytest
import ribs.archives

from evolm.archives import GridArchive
from evolm.types import AddStatus, DescriptorSpace, Evaluation, Individual, Program, Status

SPACE = DescriptorSpace(("a", "b"), ((0.0, 1.0), (-10.0, 10.0)))


def ind(i: int, fitness: float, descriptors: tuple[float, ...]) -> Individual:
    return Individual(
        Program(id=i, code=""),
        Evaluation(status=Status.OK, fitness=fitness, descriptors=descriptors),
    )


def test_bins_broadcast_or_per_descriptor() -> None:
    assert GridArchive(SPACE, 5).dims == (5, 5)
    archive = GridArchive(SPACE, [2, 3])
    assert archive.dims == (2, 3) and archive.cells == 6
    assert GridArchive(SPACE, np.array([4, 2])).cells == 8


def test_cells_are_row_major_and_match_pyribs() -> None:
    archive = GridArchive(SPACE, [2, 3])
    reference = ribs.archives.GridArchive(solution_dim=0, dims=[2, 3], ranges=SPACE.bounds)
    rng = np.random.default_rng(0)
    for k in range(100):
        d = (float(rng.uniform(-0.5, 1.5)), float(rng.uniform(-15, 15)))
        assert archive.cell_of(ind(k, 0.0, d)) == int(reference.index_of_single(d))
    assert archive.cell_of(ind(0, 0.0, (0.99, -9.9))) == 3  # row 1, column 0
    assert archive.cell_of(ind(0, 0.0, (0.0, 10.0))) == 2  # upper bound -> last bin


def test_elite_at_and_replacement() -> None:
    archive = GridArchive(SPACE, 2)
    first, better = ind(1, 1.0, (0.1, -5.0)), ind(2, 1.5, (0.2, -6.0))
    assert archive.add([first, better]) == [AddStatus.NEW, AddStatus.IMPROVED]
    cell = archive.cell_of(first)
    assert archive.elite_at(cell) is better
    assert archive.elite_at(3) is None


def test_to_ribs_mirrors_the_elites_and_catches_up_incrementally() -> None:
    archive = GridArchive(SPACE, 4, qd_offset=-1.0)
    rng = np.random.default_rng(1)

    def batch(start: int) -> list[Individual]:
        return [
            ind(start + k, float(rng.normal()), (float(rng.random()), float(rng.uniform(-10, 10))))
            for k in range(30)
        ]

    for start in (0, 30, 60):
        archive.add(batch(start))
        mirror = archive.to_ribs()
        assert mirror is archive.to_ribs()
        assert len(mirror) == len(archive)
        assert float(mirror.stats.qd_score) == pytest.approx(archive.stats.qd_score)
        assert float(mirror.stats.obj_max) == archive.stats.max_fitness
        data = mirror.data()
        by_index = dict(zip(data["index"].tolist(), data["solution"].tolist(), strict=True))
        assert by_index == {archive.cell_of(e): e for e in archive}


def test_iteration_is_in_cell_order() -> None:
    archive = GridArchive(SPACE, 3)
    archive.add([ind(0, 1.0, (0.9, 9.0)), ind(1, 1.0, (0.1, -9.0)), ind(2, 1.0, (0.5, 0.0))])
    assert [archive.cell_of(e) for e in archive] == [0, 4, 8]
