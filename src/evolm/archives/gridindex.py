"""Cell indices of an equal-bin grid, computed with numpy alone.

The grid archives map descriptors to cells the way :meth:`ribs.archives.GridArchive.index_of`
does, but importing pyribs loads torch, numba, scipy, pandas and scikit-learn (hundreds of MB in
the engine). :class:`GridIndex` gives the same cells without importing pyribs; the pyribs archive
itself is only built when a caller asks for it (``to_ribs``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["EPSILON", "GridIndex"]

EPSILON = 1e-6
"""Added to the scaled coordinate before truncation (pyribs' default), so a descriptor that
lies on a bin boundary up to float error lands in the upper bin."""


class GridIndex:
    """Row-major cell index of descriptors in ``dims`` equal bins per dimension over a box.

    A coordinate ``x`` in ``[lower, upper]`` goes to bin ``int((dims * (x - lower) + EPSILON) /
    (upper - lower))``, clipped to ``[0, dims - 1]``; bins combine row-major. This is the cell
    pyribs' ``GridArchive.index_of`` gives for the same ranges, so archives built either way
    agree cell for cell.

    Args:
        dims: bins per dimension.
        lower: lower bound per dimension.
        upper: upper bound per dimension (each above its lower bound).
    """

    def __init__(self, dims: Sequence[int], lower: ArrayLike, upper: ArrayLike) -> None:
        self.dims = np.asarray(dims, dtype=np.int64)
        self.lower = np.asarray(lower, dtype=np.float64)
        self.interval = np.asarray(upper, dtype=np.float64) - self.lower
        self.epsilon = np.float64(EPSILON)

    def __call__(self, measures: np.ndarray) -> np.ndarray:
        """The ``(n,)`` int64 cell indices of ``(n, dim)`` finite ``measures``."""
        measures = np.asarray(measures, dtype=np.float64)
        bins = ((self.dims * (measures - self.lower) + self.epsilon) / self.interval).astype(
            np.int32
        )
        bins = np.clip(bins, 0, self.dims - 1)
        cells = np.ravel_multi_index(tuple(bins.T), tuple(int(d) for d in self.dims))
        return np.asarray(cells, dtype=np.int64)
