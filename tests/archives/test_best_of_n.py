"""Best-of-N: seeds and a champion; parents only from seeds."""

from __future__ import annotations

import numpy as np
import pytest

from evolm.archives import BestOfNArchive, EmptyArchiveError
from evolm.types import AddStatus, DescriptorSpace, Evaluation, Individual, Program, Status

SPACE = DescriptorSpace(("x",), ((0.0, 1.0),))
NEW, IMPROVED, NOT_ADDED = AddStatus.NEW, AddStatus.IMPROVED, AddStatus.NOT_ADDED


def ind(i: int, fitness: float, operator: str = "seed", status: Status = Status.OK) -> Individual:
    return Individual(
        Program(id=i, code="", operator=operator),
        Evaluation(status=status, fitness=fitness, descriptors=(0.5,)),
    )


def test_seeds_are_new_and_the_champion_improves() -> None:
    archive = BestOfNArchive(SPACE, qd_offset=-1.0)
    assert archive.add([ind(0, 1.0), ind(1, 3.0)]) == [NEW, NEW]
    offspring = [ind(2, 2.0, "mutate"), ind(3, 4.0, "mutate"), ind(4, 4.0, "mutate")]
    assert archive.add(offspring) == [NOT_ADDED, IMPROVED, NOT_ADDED]
    assert archive.add([ind(5, 5.0, "mutate")]) == [IMPROVED]
    assert [e.id for e in archive] == [0, 1, 5]  # the previous champion was replaced
    assert archive.best is not None and archive.best.id == 5
    st = archive.stats
    assert (st.num_elites, st.coverage, st.max_fitness) == (3, 1.0, 5.0)
    assert st.mean_fitness == pytest.approx(3.0)
    assert st.qd_score == pytest.approx(1.0 + 3.0 + 5.0 + 3 * 1.0)


def test_counts_every_valid_candidate() -> None:
    archive = BestOfNArchive(SPACE)
    archive.add([ind(0, 1.0), ind(1, 0.5, "mutate"), ind(2, 1.0, status=Status.ERROR)])
    assert archive.num_seen == 2


def test_a_champion_into_an_empty_archive_is_new_but_not_a_parent() -> None:
    archive = BestOfNArchive(SPACE)
    assert archive.add([ind(0, 1.0, "mutate")]) == [NEW]
    assert archive.stats.coverage == 1.0
    with pytest.raises(EmptyArchiveError, match="archive holds no seed: evaluate seeds first"):
        archive.sample(1, "uniform", np.random.default_rng(0))


def test_a_late_seed_is_kept_and_may_become_the_best() -> None:
    archive = BestOfNArchive(SPACE)
    archive.add([ind(0, 1.0), ind(1, 2.0, "mutate"), ind(2, 3.0)])
    assert [e.id for e in archive] == [0, 2, 1]
    assert archive.stats.max_fitness == 3.0
    assert archive.add([ind(3, 2.5, "mutate")]) == [NOT_ADDED]


def test_empty_stats() -> None:
    st = BestOfNArchive(SPACE).stats
    assert (st.num_elites, st.coverage, st.qd_score, st.max_fitness) == (0, 0.0, 0.0, None)
