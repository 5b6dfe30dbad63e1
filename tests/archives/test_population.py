"""Population archive: fill, then elitist replacement of the worst."""

from __future__ import annotations

import numpy as np
import pytest

from evolm.archives import PopulationArchive
from evolm.types import AddStatus, DescriptorSpace, Evaluation, Individual, Program, Status

SPACE = DescriptorSpace(("x",), ((0.0, 1.0),))
NEW, IMPROVED, NOT_ADDED = AddStatus.NEW, AddStatus.IMPROVED, AddStatus.NOT_ADDED


def ind(i: int, fitness: float) -> Individual:
    return Individual(
        Program(id=i, code=""),
        Evaluation(status=Status.OK, fitness=fitness, descriptors=(0.5,)),
    )


def test_fill_then_replace_the_worst() -> None:
    population = PopulationArchive(SPACE, size=3, qd_offset=-1.0)
    assert population.add([ind(0, 2.0), ind(1, 1.0), ind(2, 1.0)]) == [NEW, NEW, NEW]
    assert population.add([ind(3, 1.0), ind(4, 0.0)]) == [NOT_ADDED, NOT_ADDED]
    assert population.add([ind(5, 1.5)]) == [IMPROVED]
    # Of the tied worst (ids 1 and 2), the earliest stored went.
    assert sorted(m.id for m in population) == [0, 2, 5]
    assert population.add([ind(6, 3.0)]) == [IMPROVED]
    assert sorted(m.id for m in population) == [0, 5, 6]
    st = population.stats
    assert (st.num_elites, st.coverage, st.max_fitness) == (3, 1.0, 3.0)
    assert st.qd_score == pytest.approx(2.0 + 1.5 + 3.0 + 3 * 1.0)


def test_coverage_grows_with_the_fill() -> None:
    population = PopulationArchive(SPACE, size=4)
    population.add([ind(0, 1.0)])
    assert population.stats.coverage == 0.25


def test_an_evicted_member_can_come_back_and_gets_no_feedback() -> None:
    population = PopulationArchive(SPACE, size=1)
    population.add([ind(0, 1.0)])
    population.add([ind(1, 2.0)])
    population.feedback([0], True)  # 0 left the population: ignored
    assert population.state()["curiosity"] == [1.0]
    population.feedback([1], True)
    assert population.state()["curiosity"] == [2.0]
    assert population.add([ind(2, 3.0)]) == [IMPROVED]
    assert population.state()["curiosity"] == [1.0]  # a newcomer starts afresh


def test_tournament_of_one_is_uniform() -> None:
    population = PopulationArchive(SPACE, size=4, tournament_size=1)
    population.add([ind(k, float(k)) for k in range(4)])
    drawn = population.sample(8000, "fitness", np.random.default_rng(0))
    counts = np.bincount([d.id for d in drawn], minlength=4) / 8000
    np.testing.assert_allclose(counts, 0.25, atol=0.02)
