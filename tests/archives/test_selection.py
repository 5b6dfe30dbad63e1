"""The sum tree, and the selection distributions of every archive."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolm.archives import (
    BestOfNArchive,
    DeepGridArchive,
    GridArchive,
    PopulationArchive,
)
from evolm.archives.selection import (
    CURIOSITY_FLOOR,
    CURIOSITY_INIT,
    CURIOSITY_PENALTY,
    CURIOSITY_REWARD,
    FITNESS_FLOOR,
    SumTree,
)
from evolm.types import DescriptorSpace, Evaluation, Individual, Program, Status

SPACE = DescriptorSpace(("x",), ((0.0, 4.0),))
DRAWS = 20_000


def ind(i: int, fitness: float, x: float, operator: str = "seed") -> Individual:
    return Individual(
        Program(id=i, code="", operator=operator),
        Evaluation(status=Status.OK, fitness=fitness, descriptors=(x,)),
    )


def frequencies(ids: list[int], keys: list[int]) -> np.ndarray:
    counts = Counter(ids)
    return np.array([counts[k] for k in keys]) / len(ids)


def draw_ids(archive, strategy: str, seed: int = 0) -> list[int]:
    return [e.id for e in archive.sample(DRAWS, strategy, np.random.default_rng(seed))]


# --- sum tree -----------------------------------------------------------------------------


def test_sum_tree_sets_totals_and_finds() -> None:
    tree = SumTree(5)  # not a power of two
    for slot, w in enumerate([1.0, 0.0, 2.0, 0.0, 3.0]):
        tree[slot] = w
    assert tree.total == 6.0 and len(tree) == 5
    assert tree.weights.tolist() == [1.0, 0.0, 2.0, 0.0, 3.0]
    assert [tree.find(u) for u in (0.0, 0.999, 1.0, 2.999, 3.0, 5.999)] == [0, 0, 2, 2, 4, 4]
    tree[4] = 0.5
    assert tree.total == 3.5 and tree[4] == 0.5


def test_sum_tree_errors() -> None:
    with pytest.raises(ValueError, match="capacity >= 1"):
        SumTree(0)
    tree = SumTree(3)
    with pytest.raises(ValueError, match="weights are all 0"):
        tree.draw(1, np.random.default_rng(0))
    with pytest.raises(IndexError, match=r"slot 3 is outside \[0, 3\)"):
        tree[3] = 1.0
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree[0] = -1.0
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree[0] = float("nan")
    tree[1] = 1.0
    with pytest.raises(ValueError, match="need 0 <= u < total"):
        tree.find(1.0)


def test_sum_tree_draw_frequencies_match_weights() -> None:
    tree = SumTree(6)
    weights = np.array([0.5, 0.0, 1.5, 3.0, 0.0, 5.0])
    for slot, w in enumerate(weights):
        tree[slot] = float(w)
    drawn = tree.draw(DRAWS, np.random.default_rng(0))
    freq = np.bincount(drawn, minlength=6) / DRAWS
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.015)
    assert freq[1] == freq[4] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    updates=st.lists(
        st.tuples(
            st.integers(0, 12),
            st.one_of(st.just(0.0), st.floats(1e-12, 1e6, allow_nan=False)),
        ),
        min_size=1,
        max_size=40,
    ),
    us=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=20),
)
def test_sum_tree_matches_a_flat_array(updates: list[tuple[int, float]], us: list[float]) -> None:
    tree, flat = SumTree(13), np.zeros(13)
    for slot, w in updates:
        tree[slot] = w
        flat[slot] = w
    assert tree.weights.tolist() == flat.tolist()
    assert tree.total == pytest.approx(flat.sum(), rel=1e-12)
    if tree.total > 0:
        cumulative = np.cumsum(flat)
        for frac in us:
            u = frac * tree.total
            slot = tree.find(u)
            assert flat[slot] > 0  # zero-weight slots are never found
            before = cumulative[slot] - flat[slot]
            assert before - 1e-9 * tree.total <= u <= cumulative[slot] + 1e-9 * tree.total


# --- archives -----------------------------------------------------------------------------


def grid_with(fitnesses: list[float], qd_offset: float = 0.0) -> GridArchive:
    archive = GridArchive(SPACE, bins=4, qd_offset=qd_offset)  # cell k holds x in [k, k+1)
    archive.add([ind(k, f, k + 0.5) for k, f in enumerate(fitnesses)])
    return archive


def test_uniform_is_uniform_over_filled_cells() -> None:
    archive = grid_with([1.0, 2.0, 3.0, 4.0])
    freq = frequencies(draw_ids(archive, "uniform"), [0, 1, 2, 3])
    np.testing.assert_allclose(freq, 0.25, atol=0.015)


def test_fitness_selection_is_proportional_to_fitness_minus_offset() -> None:
    archive = grid_with([1.0, 2.0, 3.0, 4.0])
    freq = frequencies(draw_ids(archive, "fitness"), [0, 1, 2, 3])
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.015)

    shifted = grid_with([1.0, 2.0, 3.0, 4.0], qd_offset=-1.0)  # weights 2, 3, 4, 5
    freq = frequencies(draw_ids(shifted, "fitness"), [0, 1, 2, 3])
    np.testing.assert_allclose(freq, np.array([2, 3, 4, 5]) / 14, atol=0.015)


def test_fitness_weight_is_floored_not_negative() -> None:
    archive = grid_with([-5.0, -1.0, 2.0])  # below the offset 0: weight FITNESS_FLOOR
    ids = draw_ids(archive, "fitness")
    assert FITNESS_FLOOR < 1e-6
    assert Counter(ids)[2] >= DRAWS - 2


def test_fitness_weight_follows_an_improved_elite() -> None:
    archive = grid_with([1.0, 1.0])
    archive.add([ind(10, 9.0, 0.5)])  # replaces cell 0's elite
    freq = frequencies(draw_ids(archive, "fitness"), [10, 1])
    np.testing.assert_allclose(freq, [0.9, 0.1], atol=0.015)


def test_curiosity_prefers_rewarded_cells() -> None:
    archive = grid_with([1.0, 1.0, 1.0])
    for _ in range(3):
        archive.feedback([0], True)
    for _ in range(5):
        archive.feedback([1], False)
    rewarded = CURIOSITY_INIT + 3 * CURIOSITY_REWARD
    penalised = max(CURIOSITY_INIT + 5 * CURIOSITY_PENALTY, CURIOSITY_FLOOR)
    assert penalised == CURIOSITY_FLOOR
    expected = np.array([rewarded, penalised, CURIOSITY_INIT])
    freq = frequencies(draw_ids(archive, "curiosity"), [0, 1, 2])
    np.testing.assert_allclose(freq, expected / expected.sum(), atol=0.015)


def test_curiosity_follows_the_cell_a_parent_was_stored_in() -> None:
    archive = grid_with([1.0, 1.0])
    archive.add([ind(7, 5.0, 0.5)])  # id 0 is replaced in cell 0 by id 7
    archive.feedback([0, 0], True)  # still credits cell 0
    freq = frequencies(draw_ids(archive, "curiosity"), [7, 1])
    np.testing.assert_allclose(freq, [0.75, 0.25], atol=0.015)


def test_deep_grid_selects_within_a_cell_by_fitness() -> None:
    archive = DeepGridArchive(SPACE, bins=1, per_cell=3, qd_offset=-1.0)
    archive.add([ind(0, 0.0, 1.0), ind(1, 1.0, 2.0), ind(2, 5.0, 3.0)])  # weights 1, 2, 6
    for strategy in ("uniform", "fitness", "curiosity"):
        freq = frequencies(draw_ids(archive, strategy), [0, 1, 2])
        np.testing.assert_allclose(freq, np.array([1, 2, 6]) / 9, atol=0.015)


def test_deep_grid_selects_cells_by_their_best() -> None:
    archive = DeepGridArchive(SPACE, bins=2, per_cell=2)
    archive.add([ind(0, 1.0, 0.5), ind(1, 1.0, 0.6), ind(2, 3.0, 3.5)])
    freq = frequencies(draw_ids(archive, "fitness"), [0, 1, 2])
    np.testing.assert_allclose(freq, [0.125, 0.125, 0.75], atol=0.015)
    freq = frequencies(draw_ids(archive, "uniform"), [0, 1, 2])
    np.testing.assert_allclose(freq, [0.25, 0.25, 0.5], atol=0.015)


def test_tournament_prefers_better_individuals() -> None:
    population = PopulationArchive(SPACE, size=10, tournament_size=3)
    population.add([ind(k, float(k), 1.0) for k in range(10)])
    freq = frequencies(draw_ids(population, "fitness"), list(range(10)))
    # The winner has rank r when all 3 entrants have rank <= r and not all < r.
    expected = [((r + 1) ** 3 - r**3) / 1000 for r in range(10)]
    np.testing.assert_allclose(freq, expected, atol=0.015)
    uniform = frequencies(draw_ids(population, "uniform"), list(range(10)))
    np.testing.assert_allclose(uniform, 0.1, atol=0.015)


def test_population_curiosity_prefers_rewarded_members() -> None:
    population = PopulationArchive(SPACE, size=2)
    population.add([ind(0, 1.0, 1.0), ind(1, 1.0, 1.0)])
    population.feedback([0], True)
    freq = frequencies(draw_ids(population, "curiosity"), [0, 1])
    np.testing.assert_allclose(freq, [2 / 3, 1 / 3], atol=0.015)


def test_best_of_n_draws_only_seeds_uniformly() -> None:
    archive = BestOfNArchive(SPACE)
    archive.add([ind(0, 1.0, 1.0), ind(1, 2.0, 1.0), ind(2, 9.0, 1.0, operator="mutate")])
    for strategy in ("uniform", "fitness", "curiosity"):
        freq = frequencies(draw_ids(archive, strategy), [0, 1, 2])
        np.testing.assert_allclose(freq, [0.5, 0.5, 0.0], atol=0.015)
