"""Invariants under random insertion sequences (hypothesis)."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolm.archives import ARCHIVES, make_archive
from evolm.archives.base import Archive
from evolm.types import AddStatus, DescriptorSpace, Evaluation, Individual, Program, Status

SPACE = DescriptorSpace(("x", "y"), ((0.0, 1.0), (-2.0, 2.0)))
OFFSET = -200.0
PARAMS: dict[str, dict] = {
    "grid": {"bins": 3},
    "cvt": {"cells": 9},
    "deep_grid": {"bins": 3, "per_cell": 3},
    "population": {"size": 5},
    "best_of_n": {},
}
CAPACITY = {"grid": 9, "cvt": 9, "deep_grid": 27, "population": 5, "best_of_n": math.inf}
PROPERTY = settings(max_examples=40, deadline=None)

fitness = st.one_of(
    st.floats(-100, 100, allow_nan=False),
    st.sampled_from([0.0, 1.0, 2.0]),  # ties are common
    st.sampled_from([math.nan, math.inf, -math.inf, None]),
)
coordinate = st.one_of(
    st.floats(-1.0, 3.0, allow_nan=False), st.sampled_from([math.nan, 1e308, -1e308])
)
raw_item = st.tuples(
    fitness, st.tuples(coordinate, coordinate), st.booleans(), st.sampled_from(["seed", "mutate"])
)
raw_batches = st.lists(st.lists(raw_item, max_size=6), max_size=8)


def materialise(raw: list[list[tuple]]) -> list[list[Individual]]:
    out, next_id = [], 0
    for batch in raw:
        items = []
        for fit, desc, ok, operator in batch:
            items.append(
                Individual(
                    Program(id=next_id, code="", operator=operator),
                    Evaluation(
                        status=Status.OK if ok else Status.ERROR, fitness=fit, descriptors=desc
                    ),
                )
            )
            next_id += 1
        out.append(items)
    return out


def valid(item: Individual) -> bool:
    ev = item.evaluation
    return (
        ev.ok
        and ev.fitness is not None
        and math.isfinite(ev.fitness)
        and all(math.isfinite(d) for d in item.descriptors)
    )


def build(kind: str) -> Archive:
    return make_archive(kind, SPACE, qd_offset=OFFSET, **PARAMS[kind])


@PROPERTY
@given(raw=raw_batches)
def test_grid_cell_best_is_the_first_maximum_inserted(raw: list[list[tuple]]) -> None:
    archive = build("grid")
    batches = materialise(raw)
    for batch in batches:
        archive.add(batch)
    winner: dict[int, Individual] = {}
    for item in (i for batch in batches for i in batch if valid(i)):
        cell = archive.cell_of(item)
        if cell not in winner or item.fitness > winner[cell].fitness:
            winner[cell] = item
    stored = {archive.cell_of(e): e for e in archive}
    assert stored == winner
    assert len(archive) <= archive.cells  # type: ignore[attr-defined]
    assert archive.stats.qd_score == pytest.approx(sum(w.fitness - OFFSET for w in winner.values()))


@PROPERTY
@given(raw=raw_batches)
def test_deep_grid_keeps_the_top_per_cell(raw: list[list[tuple]]) -> None:
    archive = build("deep_grid")
    batches = materialise(raw)
    for batch in batches:
        archive.add(batch)
    inserted: dict[int, list[float]] = defaultdict(list)
    for item in (i for batch in batches for i in batch if valid(i)):
        inserted[archive.cell_of(item)].append(item.fitness)
    stored: dict[int, list[float]] = defaultdict(list)
    for e in archive:
        stored[archive.cell_of(e)].append(e.fitness)
    assert {c: sorted(f) for c, f in stored.items()} == {
        c: sorted(f)[-3:] for c, f in inserted.items()
    }
    assert archive.stats.qd_score == pytest.approx(sum(max(f) - OFFSET for f in inserted.values()))


@PROPERTY
@given(raw=raw_batches)
def test_population_keeps_the_top_and_best_of_n_keeps_every_seed(raw: list[list[tuple]]) -> None:
    population, best_of_n = build("population"), build("best_of_n")
    batches = materialise(raw)
    for batch in batches:
        population.add(batch)
        best_of_n.add(batch)
    good = [i for batch in batches for i in batch if valid(i)]
    assert sorted(e.fitness for e in population) == sorted(i.fitness for i in good)[-5:]
    seeds = [i for i in good if i.program.operator == "seed"]
    assert [e for e in best_of_n if e.program.operator == "seed"] == seeds
    assert best_of_n.stats.max_fitness == max((i.fitness for i in good), default=None)
    assert best_of_n.num_seen == len(good)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", sorted(ARCHIVES))
@PROPERTY
@given(raw=raw_batches, split=st.integers(1, 4))
def test_invariants_replay_and_batching(kind: str, raw: list[list[tuple]], split: int) -> None:
    batches = materialise(raw)
    a, b, c = build(kind), build(kind), build(kind)
    statuses = [a.add(batch) for batch in batches]
    assert [b.add(batch) for batch in batches] == statuses
    assert a.state() == b.state()  # type: ignore[attr-defined]
    flat = [i for batch in batches for i in batch]
    regrouped = [flat[k : k + split] for k in range(0, len(flat), split)]
    assert [s for group in regrouped for s in c.add(group)] == [s for st in statuses for s in st]
    assert c.state() == a.state()  # type: ignore[attr-defined]

    flat_status = [s for st in statuses for s in st]
    assert all(
        s is AddStatus.NOT_ADDED for i, s in zip(flat, flat_status, strict=True) if not valid(i)
    )
    stored = list(a)
    assert len(stored) == len(a) == a.stats.num_elites <= CAPACITY[kind]
    assert all(valid(e) for e in stored)
    if kind != "deep_grid":
        assert a.stats.qd_score == pytest.approx(sum(e.fitness - OFFSET for e in stored))
    if any(kind != "best_of_n" or e.program.operator == "seed" for e in stored):
        rng_a, rng_b = np.random.default_rng(len(flat)), np.random.default_rng(len(flat))
        for strategy in ("uniform", "fitness", "curiosity"):
            assert [e.id for e in a.sample(5, strategy, rng_a)] == [
                e.id for e in b.sample(5, strategy, rng_b)
            ]
