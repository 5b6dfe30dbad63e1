"""CVT-MAP-Elites archive (Vassiliades et al. 2018) with seed-reproducible centroids."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from evolm.archives.grid import MAX_CELLS, EliteMap
from evolm.archives.metrics import check_count, check_offset
from evolm.types import DescriptorSpace, Individual

if TYPE_CHECKING:
    import ribs.archives

__all__ = ["LLOYD_ITERATIONS", "CVTArchive", "cvt_centroids"]

LLOYD_ITERATIONS = 10
"""Lloyd iterations run from the random initial centroids."""


def cvt_centroids(cells: int, dim: int, *, seed: int = 0, samples: int | None = None) -> np.ndarray:
    """``(cells, dim)`` centroids of an approximate CVT of the unit cube ``[0, 1]^dim``.

    Draws ``samples`` uniform points with ``np.random.default_rng(seed)``, starts from ``cells``
    of them chosen without replacement, and runs :data:`LLOYD_ITERATIONS` Lloyd iterations (assign
    each point to its nearest centroid, move each centroid to the mean of its points; a centroid
    with no points stays put), as in `Vassiliades et al. 2018
    <https://arxiv.org/abs/1610.05729>`_. The result depends only on the arguments: the same seed
    gives identical centroids on every run. Results are cached, so rebuilding an archive is cheap.

    Args:
        cells: number of centroids, 1 to :data:`~evolm.archives.grid.MAX_CELLS`.
        dim: dimension of the cube.
        seed: seed of the generator.
        samples: points to cluster, at least ``cells``; default ``max(20 * cells, 20_000)``.

    Returns:
        A new float64 array (the caller may modify it).

    Raises:
        ValueError: ``cells``, ``dim`` or ``samples`` out of range.
    """
    cells = check_count("cells", cells)
    if cells > MAX_CELLS:
        raise ValueError(f"cells must be <= MAX_CELLS={MAX_CELLS}, got {cells}")
    dim = check_count("dim", dim)
    samples = max(20 * cells, 20_000) if samples is None else check_count("samples", samples)
    if samples < cells:
        raise ValueError(
            f"samples ({samples}) must be >= cells ({cells}); Lloyd's method needs at least one "
            "point per centroid, and about 20 per centroid for evenly sized cells"
        )
    return _lloyd(cells, dim, int(seed), samples).copy()


@functools.lru_cache(maxsize=16)
def _lloyd(cells: int, dim: int, seed: int, samples: int) -> np.ndarray:
    from scipy.spatial import KDTree  # only when CVT centroids are made

    rng = np.random.default_rng(seed)
    points = rng.random((samples, dim))
    centroids = points[rng.choice(samples, size=cells, replace=False)]
    for _ in range(LLOYD_ITERATIONS):
        _, nearest = KDTree(centroids).query(points)
        counts = np.bincount(nearest, minlength=cells)
        sums = np.stack(
            [np.bincount(nearest, weights=points[:, j], minlength=cells) for j in range(dim)],
            axis=1,
        )
        moved = counts > 0
        centroids[moved] = sums[moved] / counts[moved, None]
    centroids.flags.writeable = False
    return centroids


class CVTArchive(EliteMap):
    """CVT-MAP-Elites: one elite per Voronoi cell of ``cells`` centroids.

    From `Vassiliades et al. 2018 <https://arxiv.org/abs/1610.05729>`_. Descriptors are first
    normalised to ``[0, 1]`` per dimension by the space's bounds (:meth:`DescriptorSpace.normalise`,
    which clips values outside the bounds onto them), and the cell is the nearest centroid in
    that normalised space, so a descriptor measured in thousands and one measured in fractions
    weigh the same. Centroids come from :func:`cvt_centroids` (same ``seed``, same centroids) and
    nearest-centroid lookup is :meth:`ribs.archives.CVTArchive.index_of` (a k-d tree).

    Args:
        space: the descriptor space.
        cells: number of cells (centroids).
        seed: seed of the centroids.
        samples: points clustered to place the centroids; see :func:`cvt_centroids`.
        qd_offset: subtracted from every fitness in the QD score and the fitness weights.

    Raises:
        ValueError: ``cells`` or ``samples`` out of range, or non-finite ``qd_offset``.
    """

    name = "cvt"

    def __init__(
        self,
        space: DescriptorSpace,
        cells: int,
        seed: int = 0,
        samples: int | None = None,
        qd_offset: float = 0.0,
    ) -> None:
        offset = check_offset(qd_offset)
        self.seed = check_count("seed", seed, minimum=0)
        self.centroids = cvt_centroids(cells, space.dim, seed=self.seed, samples=samples)
        self.centroids.flags.writeable = False
        import ribs.archives  # loads scikit-learn, scipy, numba, torch: only for a CVT archive

        archive = ribs.archives.CVTArchive(
            solution_dim=(),
            centroids=self.centroids,
            ranges=[(0.0, 1.0)] * space.dim,
            solution_dtype=object,
            qd_score_offset=offset,
            seed=self.seed,
        )

        def make_ribs() -> ribs.archives.CVTArchive:
            return archive

        super().__init__(space, offset, archive.index_of, make_ribs, len(self.centroids))
        self._spacing: float | None = None

    def _measures(self, descriptors: np.ndarray) -> np.ndarray:
        return self.space.normalise(descriptors)

    def cell_position(self, ind: Individual) -> np.ndarray:
        """The centroid of ``ind``'s cell over the mean nearest-neighbour centroid spacing, so
        neighbouring cells are about 1 apart as on a grid."""
        if self._spacing is None:
            c = self.centroids
            from scipy.spatial import KDTree

            if len(c) < 2:
                self._spacing = 1.0
            else:
                dist, _ = KDTree(c).query(c, k=2)
                self._spacing = float(dist[:, 1].mean()) or 1.0
        return np.asarray(self.centroids[self.cell_of(ind)], dtype=np.float64) / self._spacing
