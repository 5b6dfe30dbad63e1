"""CVT archive: seed-reproducible centroids and normalised distances."""

from __future__ import annotations

import numpy as np
import pytest

from evolm.archives import CVTArchive, cvt_centroids
from evolm.types import DescriptorSpace, Evaluation, Individual, Program, Status

UNEVEN = DescriptorSpace(("ratio", "length"), ((0.0, 1.0), (0.0, 1000.0)))


def ind(i: int, fitness: float, descriptors: tuple[float, ...]) -> Individual:
    return Individual(
        Program(id=i, code=""),
        Evaluation(status=Status.OK, fitness=fitness, descriptors=descriptors),
    )


def test_centroids_are_reproducible_from_the_seed() -> None:
    a = CVTArchive(UNEVEN, cells=32, seed=3)
    b = CVTArchive(UNEVEN, cells=32, seed=3)
    c = CVTArchive(UNEVEN, cells=32, seed=4)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert not np.array_equal(a.centroids, c.centroids)
    assert a.centroids.shape == (32, 2)
    assert np.all((a.centroids >= 0.0) & (a.centroids <= 1.0))
    np.testing.assert_array_equal(cvt_centroids(32, 2, seed=3), a.centroids)


def test_centroids_are_read_only_and_cached_copies_are_private() -> None:
    archive = CVTArchive(UNEVEN, cells=8, seed=0, samples=500)
    with pytest.raises(ValueError, match="read-only"):
        archive.centroids[0, 0] = 0.5
    mine = cvt_centroids(8, 2, seed=0, samples=500)
    mine[:] = 0.0  # the caller's copy; the cache is untouched
    np.testing.assert_array_equal(cvt_centroids(8, 2, seed=0, samples=500), archive.centroids)


def test_lloyd_iterations_spread_the_centroids() -> None:
    centroids = cvt_centroids(64, 2, seed=0)
    distances = np.linalg.norm(centroids[:, None] - centroids[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    # An even 8x8 layout has nearest-neighbour distance 1/8; uniform random points get much
    # closer pairs. Lloyd's method pushes the closest pair apart.
    assert distances.min() > 0.5 / 8


def test_cell_is_the_nearest_centroid_after_normalisation() -> None:
    archive = CVTArchive(UNEVEN, cells=50, seed=1)
    rng = np.random.default_rng(0)
    for k in range(200):
        d = (float(rng.uniform(0, 1)), float(rng.uniform(0, 1000)))
        normalised = np.array([d[0], d[1] / 1000.0])
        nearest = int(np.argmin(np.linalg.norm(archive.centroids - normalised, axis=1)))
        assert archive.cell_of(ind(k, 0.0, d)) == nearest


def test_normalisation_lets_both_descriptors_separate_cells() -> None:
    """With bounds (0, 1) and (0, 1000), both descriptors must matter for the cell."""
    archive = CVTArchive(UNEVEN, cells=64, seed=0)
    sweep = np.linspace(0.0, 1.0, 101)
    along_ratio = {archive.cell_of(ind(0, 0.0, (float(r), 500.0))) for r in sweep}
    along_length = {archive.cell_of(ind(0, 0.0, (0.5, float(1000 * t)))) for t in sweep}
    # An 8x8-like tessellation: a line across the square crosses about 8 cells.
    assert len(along_ratio) >= 5
    assert len(along_length) >= 5

    rng = np.random.default_rng(1)
    batch = [
        ind(k, 1.0, (float(rng.uniform(0, 1)), float(rng.uniform(0, 1000)))) for k in range(3000)
    ]
    archive.add(batch)
    assert archive.stats.coverage == 1.0


def test_out_of_bounds_descriptors_are_clipped_before_the_lookup() -> None:
    archive = CVTArchive(UNEVEN, cells=20, seed=0)
    assert archive.cell_of(ind(0, 0.0, (-3.0, 5000.0))) == archive.cell_of(
        ind(1, 0.0, (0.0, 1000.0))
    )


def test_to_ribs_holds_the_same_elites_in_normalised_measures() -> None:
    archive = CVTArchive(UNEVEN, cells=20, seed=0)
    rng = np.random.default_rng(2)
    archive.add(
        [ind(k, float(k), (float(rng.random()), float(rng.uniform(0, 1000)))) for k in range(60)]
    )
    mirror = archive.to_ribs()
    data = mirror.data()
    assert len(mirror) == len(archive)
    by_index = dict(zip(data["index"].tolist(), data["solution"].tolist(), strict=True))
    assert by_index == {archive.cell_of(e): e for e in archive}
    assert np.all((data["measures"] >= 0.0) & (data["measures"] <= 1.0))
