"""The numpy grid index gives the cells pyribs' GridArchive gives, edges and boundaries included."""

from __future__ import annotations

import numpy as np
import pytest
import ribs.archives

from evolm.archives import DeepGridArchive, GridArchive
from evolm.archives.gridindex import GridIndex
from evolm.types import DescriptorSpace, Evaluation, Individual, Program, Status


@pytest.mark.parametrize(
    ("dims", "bounds"),
    [
        ([6, 6, 6], [(0.0, 1.0)] * 3),
        ([10], [(-3.5, 7.25)]),
        ([7, 3], [(0.0, 0.3), (-1e6, 1e6)]),
    ],
)
def test_cells_match_pyribs(dims: list[int], bounds: list[tuple[float, float]]) -> None:
    rng = np.random.default_rng(3)
    lower = np.array([b[0] for b in bounds])
    upper = np.array([b[1] for b in bounds])
    width = upper - lower
    random = lower + rng.random((2000, len(dims))) * width
    # every bin boundary exactly, and just either side of it
    edges = [lower + width * k / np.array(dims) for k in range(max(dims) + 1)]
    edges = np.clip(np.array(edges), lower, upper)
    near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    measures = np.clip(np.concatenate([random, near, [lower, upper]]), lower, upper)
    theirs = ribs.archives.GridArchive(
        solution_dim=(), dims=dims, ranges=bounds, solution_dtype=object
    ).index_of(measures)
    ours = GridIndex(dims, lower, upper)(measures)
    assert ours.dtype == np.int64
    np.testing.assert_array_equal(ours, theirs)


def test_grid_archive_builds_its_pyribs_archive_only_when_asked() -> None:
    space = DescriptorSpace(("a", "b"), ((0.0, 1.0), (0.0, 1.0)))
    archive = GridArchive(space, 4)
    inds = [
        Individual(Program(id=i, code=""), Evaluation(Status.OK, float(i), (i / 5, 0.9 - i / 7)))
        for i in range(5)
    ]
    archive.add(inds)
    assert archive._ribs is None
    theirs = archive.to_ribs()
    assert len(theirs) == len(archive)
    # each elite sits in the same cell in both
    for elite in theirs:
        assert archive.cell_of(elite["solution"]) == elite["index"]
    deep = DeepGridArchive(space, 4, per_cell=2)
    deep.add(inds)
    assert [deep.cell_of(i) for i in inds] == [archive.cell_of(i) for i in inds]
