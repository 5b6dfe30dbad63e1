"""The archive contract, run over every kind in the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evolm.archives import ARCHIVES, STRATEGIES, EmptyArchiveError, make_archive
from evolm.archives.base import Archive
from evolm.types import (
    FITNESS_LIMIT,
    AddStatus,
    DescriptorSpace,
    Evaluation,
    Individual,
    Program,
    Status,
)

SPACE = DescriptorSpace(("x", "y"), ((0.0, 1.0), (0.0, 1.0)))
PARAMS: dict[str, dict] = {
    "grid": {"bins": 4},
    "cvt": {"cells": 16},
    "deep_grid": {"bins": 4, "per_cell": 2},
    "population": {"size": 8},
    "best_of_n": {},
}
KINDS = sorted(PARAMS)
OFFSET = -10.0
NEW, IMPROVED, NOT_ADDED = AddStatus.NEW, AddStatus.IMPROVED, AddStatus.NOT_ADDED


def ind(
    i: int,
    fitness: object = 1.0,
    descriptors: object = (0.5, 0.5),
    *,
    status: Status = Status.OK,
    operator: str = "seed",
) -> Individual:
    return Individual(
        Program(id=i, code="pass", operator=operator),
        Evaluation(status=status, fitness=fitness, descriptors=descriptors),  # type: ignore[arg-type]
    )


def build(kind: str) -> Archive:
    return make_archive(kind, SPACE, qd_offset=OFFSET, seed=0, **PARAMS[kind])


def random_batches(seed: int, batches: int = 20, size: int = 8) -> list[list[Individual]]:
    """Seeds first, then offspring with parents among earlier ids; fitness in [-5, 5]."""
    rng = np.random.default_rng(seed)
    out, next_id = [], 0
    for b in range(batches):
        batch = []
        for _ in range(size):
            parents = () if b == 0 else (int(rng.integers(0, b * size)),)
            batch.append(
                Individual(
                    Program(
                        id=next_id,
                        code="pass",
                        parent_ids=parents,
                        operator="seed" if b == 0 else "mutate",
                    ),
                    Evaluation(
                        status=Status.OK,
                        fitness=float(rng.uniform(-5, 5)),
                        descriptors=tuple(rng.uniform(-0.2, 1.2, size=2).tolist()),
                    ),
                )
            )
            next_id += 1
        out.append(batch)
    return out


def run(archive: Archive, batches: list[list[Individual]]) -> list[list[AddStatus]]:
    """Add each batch, then give curiosity feedback the way the engine does."""
    statuses = []
    for batch in batches:
        st = archive.add(batch)
        for item, s in zip(batch, st, strict=True):
            if item.program.parent_ids:
                archive.feedback(item.program.parent_ids, s is not NOT_ADDED)
        statuses.append(st)
    return statuses


def saturate(archive: Archive, kind: str) -> None:
    """Fill the place (0.5, 0.5) competes for, with fitness 1.0, so the next item must beat it."""
    room = {"deep_grid": 2, "population": 8}.get(kind, 1)
    assert archive.add([ind(100 + k, 1.0) for k in range(room)]) == [NEW] * room


def test_registry_is_covered() -> None:
    assert set(PARAMS) == set(ARCHIVES)
    for kind, cls in ARCHIVES.items():
        assert cls.name == kind


@pytest.mark.parametrize("kind", KINDS)
def test_first_item_is_new_and_stored(kind: str) -> None:
    archive = build(kind)
    item = ind(1, 2.5)
    assert archive.add([item]) == [NEW]
    assert len(archive) == 1
    assert list(archive) == [item]
    st = archive.stats
    assert (st.num_elites, st.max_fitness, st.mean_fitness) == (1, 2.5, 2.5)
    assert st.qd_score == pytest.approx(2.5 - OFFSET)


@pytest.mark.parametrize("kind", KINDS)
def test_statuses_equal_worse_better_and_duplicate(kind: str) -> None:
    archive = build(kind)
    saturate(archive, kind)
    before = len(archive)
    statuses = archive.add(
        [
            ind(1, 1.0, operator="mutate"),  # equal: the incumbent stays
            ind(2, 0.5, operator="mutate"),  # worse
            ind(3, 2.0, operator="mutate"),  # strictly better
            ind(3, 9.0, operator="mutate"),  # same id again: already stored
        ]
    )
    assert statuses == [NOT_ADDED, NOT_ADDED, IMPROVED, NOT_ADDED]
    # best-of-N keeps its seeds and adds the champion next to them; the others replace
    assert len(archive) == before + (kind == "best_of_n")
    ids = {i.id for i in archive}
    assert 3 in ids and not ids & {1, 2}
    assert archive.stats.max_fitness == 2.0


BAD_ITEMS = [
    ind(1, status=Status.ERROR),
    ind(2, status=Status.TIMEOUT),
    ind(3, fitness=None),
    ind(4, fitness=math.nan),
    ind(5, fitness=math.inf),
    ind(6, fitness=-math.inf),
    ind(7, fitness="high"),
    ind(8, descriptors=None),
    ind(9, descriptors=(math.nan, 0.5)),
    ind(10, descriptors=(0.5, math.inf)),
    ind(11, descriptors=(0.5,)),
    ind(12, descriptors=(0.5, 0.5, 0.5)),
    ind(13, descriptors=("a", "b")),
    ind(14, fitness=1.7e308),  # beyond FITNESS_LIMIT: the QD score would overflow
    ind(15, fitness=-1.7e308),
]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_items_are_not_added_and_never_stored(kind: str) -> None:
    archive = build(kind)
    good = ind(99, 1.0)
    statuses = archive.add([*BAD_ITEMS[:5], good, *BAD_ITEMS[5:]])
    assert statuses == [NOT_ADDED] * 5 + [NEW] + [NOT_ADDED] * (len(BAD_ITEMS) - 5)
    assert list(archive) == [good]
    assert archive.add(BAD_ITEMS) == [NOT_ADDED] * len(BAD_ITEMS)
    assert list(archive) == [good]


@pytest.mark.parametrize("kind", KINDS)
def test_all_bad_batch_leaves_archive_empty(kind: str) -> None:
    archive = build(kind)
    assert archive.add(BAD_ITEMS) == [NOT_ADDED] * len(BAD_ITEMS)
    assert archive.add([]) == []
    assert len(archive) == 0
    assert archive.stats.num_elites == 0 and archive.stats.max_fitness is None


@pytest.mark.parametrize("kind", KINDS)
def test_sample_from_empty_archive_raises(kind: str) -> None:
    archive = build(kind)
    for strategy in STRATEGIES:
        with pytest.raises(EmptyArchiveError, match="evaluate seeds first"):
            archive.sample(1, strategy, np.random.default_rng(0))


@pytest.mark.parametrize("kind", KINDS)
def test_sample_argument_errors(kind: str) -> None:
    archive = build(kind)
    archive.add([ind(1)])
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="uniform, fitness, curiosity"):
        archive.sample(1, "roulette", rng)
    with pytest.raises(ValueError, match="n >= 1"):
        archive.sample(0, "uniform", rng)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_sample_draws_stored_individuals(kind: str, strategy: str) -> None:
    archive = build(kind)
    run(archive, random_batches(1))
    drawn = archive.sample(50, strategy, np.random.default_rng(2))
    assert len(drawn) == 50
    stored = {i.id for i in archive}
    assert {d.id for d in drawn} <= stored
    if kind == "best_of_n":
        assert all(d.program.operator == "seed" for d in drawn)


@pytest.mark.parametrize("kind", KINDS)
def test_best_per_cell_and_qd_score_never_fall(kind: str) -> None:
    archive = build(kind)
    best: dict[object, float] = {}
    qd = archive.stats.qd_score
    for batch in random_batches(3, batches=30):
        archive.add(batch)
        now: dict[object, float] = {}
        for record in archive.export():
            now[record["cell"]] = max(now.get(record["cell"], -math.inf), record["fitness"])
        for cell, fitness in best.items():
            assert now[cell] >= fitness
        best = now
        assert archive.stats.qd_score >= qd - 1e-9  # every fitness is above the offset
        qd = archive.stats.qd_score


@pytest.mark.parametrize("kind", KINDS)
def test_stats_agree_with_the_stored_individuals(kind: str) -> None:
    archive = build(kind)
    run(archive, random_batches(4))
    stored = list(archive)
    fitness = [i.fitness for i in stored]
    st = archive.stats
    assert st.num_elites == len(archive) == len(stored)
    assert st.max_fitness == max(fitness)
    assert st.mean_fitness == pytest.approx(sum(fitness) / len(fitness))
    if kind == "deep_grid":
        bests: dict[object, float] = {}
        for record in archive.export():
            bests[record["cell"]] = max(bests.get(record["cell"], -math.inf), record["fitness"])
        assert st.qd_score == pytest.approx(sum(b - OFFSET for b in bests.values()))
    else:
        assert st.qd_score == pytest.approx(sum(f - OFFSET for f in fitness))
    assert 0.0 < st.coverage <= 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_replaying_the_same_calls_gives_an_identical_archive(kind: str) -> None:
    batches = random_batches(5)
    a, b = build(kind), build(kind)
    assert run(a, batches) == run(b, batches)
    assert a.export() == b.export()
    assert a.state() == b.state()  # type: ignore[attr-defined]
    for strategy in STRATEGIES:
        drawn_a = a.sample(20, strategy, np.random.default_rng(7))
        drawn_b = b.sample(20, strategy, np.random.default_rng(7))
        assert [d.id for d in drawn_a] == [d.id for d in drawn_b]


@pytest.mark.parametrize("kind", KINDS)
def test_statuses_do_not_depend_on_batching(kind: str) -> None:
    items = [item for batch in random_batches(6) for item in batch]
    whole, single = build(kind), build(kind)
    assert whole.add(items) == [s for item in items for s in single.add([item])]
    assert whole.state() == single.state()  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_feedback_ignores_unknown_ids(kind: str) -> None:
    archive = build(kind)
    archive.add([ind(1)])
    before = archive.state()  # type: ignore[attr-defined]
    archive.feedback([12345], True)
    archive.feedback([], False)
    assert archive.state() == before  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_export_records(kind: str) -> None:
    archive = build(kind)
    archive.add([ind(1, 3.0, (0.1, 0.9))])
    (record,) = archive.export()
    assert record["id"] == 1 and record["fitness"] == 3.0
    assert record["descriptors"] == [0.1, 0.9]
    if kind in ("grid", "cvt", "deep_grid"):
        assert isinstance(record["cell"], int)
    else:
        assert record["cell"] is None


@pytest.mark.parametrize("kind", ["grid", "cvt", "deep_grid"])
def test_out_of_bounds_descriptors_are_clipped_into_edge_cells(kind: str) -> None:
    archive = build(kind)
    outside, corner = ind(1, 1.0, (-5.0, 7.0)), ind(2, 2.0, (0.0, 1.0))
    assert archive.cell_of(outside) == archive.cell_of(corner)
    assert archive.add([outside, corner]) == [NEW, NEW if kind == "deep_grid" else IMPROVED]
    far, edge = ind(3, 0.0, (1e308, -1e308)), ind(4, 0.0, (1.0, 0.0))
    assert archive.cell_of(far) == archive.cell_of(edge) != archive.cell_of(corner)


@pytest.mark.parametrize("kind", ["grid", "cvt", "deep_grid"])
def test_cell_of_needs_valid_descriptors(kind: str) -> None:
    archive = build(kind)
    cells = archive.cells  # type: ignore[attr-defined]
    assert 0 <= archive.cell_of(ind(1, 1.0, (0.3, 0.7))) < cells  # type: ignore[operator]
    for bad in ((math.nan, 0.1), (0.1,), None):
        with pytest.raises(ValueError, match="2 finite descriptors"):
            archive.cell_of(ind(2, 1.0, bad))


BAD_ARGS = [
    ("grid", {"bins": 0}, "bins must be >= 1"),
    ("grid", {"bins": [4]}, "bins has 1 entries but the descriptor space has 2"),
    ("grid", {"bins": [4, 0]}, r"bins\[1\] must be >= 1"),
    ("grid", {"bins": 2.5}, "bins must be an int"),
    ("grid", {"bins": 100_000}, "MAX_CELLS"),
    ("cvt", {"cells": 0}, "cells must be >= 1"),
    ("cvt", {"cells": 50, "samples": 10}, r"samples \(10\) must be >= cells \(50\)"),
    ("deep_grid", {"bins": 4, "per_cell": 0}, "per_cell must be >= 1"),
    ("deep_grid", {"bins": [2, 2, 2], "per_cell": 2}, "bins has 3 entries"),
    ("population", {"size": 0}, "size must be >= 1"),
    ("population", {"size": 4, "tournament_size": 0}, "tournament_size must be >= 1"),
    ("population", {"size": True}, "size must be an int"),
]


@pytest.mark.parametrize(("kind", "params", "match"), BAD_ARGS)
def test_bad_constructor_args_name_the_problem(kind: str, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_archive(kind, SPACE, **params)


@pytest.mark.parametrize("kind", KINDS)
def test_non_finite_qd_offset_is_rejected(kind: str) -> None:
    with pytest.raises(ValueError, match="qd_offset must be finite"):
        make_archive(kind, SPACE, qd_offset=math.nan, **PARAMS[kind])
    with pytest.raises(ValueError, match="beyond the limit"):
        make_archive(kind, SPACE, qd_offset=-1e300, **PARAMS[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_qd_score_stays_finite_at_the_value_limit(kind: str) -> None:
    archive = make_archive(kind, SPACE, qd_offset=-FITNESS_LIMIT, seed=0, **PARAMS[kind])
    items = [
        ind(i, fitness=FITNESS_LIMIT, descriptors=(x, y))
        for i, (x, y) in enumerate((x / 4 + 0.1, y / 4 + 0.1) for x in range(4) for y in range(4))
    ]
    archive.add(items)
    stats = archive.stats
    assert stats.num_elites > 0 and math.isfinite(stats.qd_score) and stats.qd_score > 0
    assert stats.max_fitness == FITNESS_LIMIT and math.isfinite(stats.mean_fitness or math.nan)
    (parent,) = archive.sample(1, "fitness", np.random.default_rng(0))  # finite weights
    assert parent.fitness == FITNESS_LIMIT


def test_make_archive_errors_name_the_kinds_and_parameters() -> None:
    with pytest.raises(ValueError, match="choose one of grid, cvt, deep_grid, population"):
        make_archive("hexgrid", SPACE)
    with pytest.raises(ValueError, match="'grid' has no parameter 'cells'; it takes: bins"):
        make_archive("grid", SPACE, cells=10)
    with pytest.raises(ValueError, match="'grid' needs parameter 'bins'"):
        make_archive("grid", SPACE)
    with pytest.raises(ValueError, match=r"'best_of_n' has no parameter 'size'.*no parameters"):
        make_archive("best_of_n", SPACE, size=3)


def test_make_archive_passes_seed_only_where_it_matters() -> None:
    a = make_archive("cvt", SPACE, seed=1, cells=16)
    b = make_archive("cvt", SPACE, seed=2, cells=16)
    assert not np.array_equal(a.centroids, b.centroids)  # type: ignore[attr-defined]
    grid = make_archive("grid", SPACE, seed=5, qd_offset=-3.0, bins=[2, 3])
    assert grid.qd_offset == -3.0 and grid.cells == 6  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", KINDS)
def test_export_cells_agree_with_cell_of(kind: str) -> None:
    archive = build(kind)
    run(archive, random_batches(8))
    records = archive.export()
    assert [r["id"] for r in records] == [i.id for i in archive]
    for record, item in zip(records, archive, strict=True):
        assert record["cell"] == archive.cell_of(item)
        assert record["fitness"] == item.fitness
        assert record["descriptors"] == list(item.descriptors)
