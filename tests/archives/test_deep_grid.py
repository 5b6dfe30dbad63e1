"""Deep grid: several individuals per cell, replace-the-worst, stats over cell bests."""

from __future__ import annotations

import pytest

from evolm.archives import DeepGridArchive, GridArchive
from evolm.types import AddStatus, DescriptorSpace, Evaluation, Individual, Program, Status

SPACE = DescriptorSpace(("x",), ((0.0, 2.0),))
NEW, IMPROVED, NOT_ADDED = AddStatus.NEW, AddStatus.IMPROVED, AddStatus.NOT_ADDED


def ind(i: int, fitness: float, x: float = 0.5) -> Individual:
    return Individual(
        Program(id=i, code=""),
        Evaluation(status=Status.OK, fitness=fitness, descriptors=(x,)),
    )


def test_new_while_the_cell_has_room_then_replace_the_worst() -> None:
    archive = DeepGridArchive(SPACE, bins=2, per_cell=3)
    statuses = archive.add([ind(0, 5.0), ind(1, 1.0), ind(2, 1.0)])
    assert statuses == [NEW, NEW, NEW]  # room in the cell, even with equal fitness
    assert archive.add([ind(3, 1.0), ind(4, 0.5)]) == [NOT_ADDED, NOT_ADDED]
    assert archive.add([ind(5, 2.0)]) == [IMPROVED]
    # Of the two tied worst (ids 1 and 2), the one in the lower slot went.
    assert [m.id for m in archive.members_of(0)] == [0, 5, 2]
    assert archive.add([ind(6, 9.0, x=1.5)]) == [NEW]  # another cell
    assert len(archive) == 4 and archive.members_of(1)[0].id == 6


def test_stats_score_cell_bests_but_count_everyone() -> None:
    archive = DeepGridArchive(SPACE, bins=2, per_cell=2, qd_offset=-1.0)
    archive.add([ind(0, 4.0), ind(1, 2.0), ind(2, 3.0, x=1.5)])
    st = archive.stats
    assert st.num_elites == 3
    assert st.coverage == 1.0
    assert st.qd_score == pytest.approx((4.0 + 1.0) + (3.0 + 1.0))
    assert st.max_fitness == 4.0
    assert st.mean_fitness == pytest.approx(3.0)


def test_qd_score_matches_a_grid_fed_the_same_items() -> None:
    deep = DeepGridArchive(SPACE, bins=4, per_cell=3)
    grid = GridArchive(SPACE, bins=4)
    items = [ind(k, float((7 * k) % 11), x=(k % 8) / 4.0) for k in range(40)]
    deep.add(items)
    grid.add(items)
    assert deep.stats.qd_score == pytest.approx(grid.stats.qd_score)
    assert deep.stats.coverage == grid.stats.coverage
    assert {deep.cell_of(e) for e in deep} == {grid.cell_of(e) for e in grid}


def test_curiosity_counts_for_the_cell() -> None:
    archive = DeepGridArchive(SPACE, bins=2, per_cell=2)
    archive.add([ind(0, 1.0), ind(1, 1.0, x=1.5)])
    archive.feedback([0], True)
    curiosity = archive.state()["curiosity"]
    assert curiosity == [2.0, 1.0]
