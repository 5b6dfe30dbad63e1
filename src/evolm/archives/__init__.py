"""Archives: MAP-Elites grid, CVT, deep grid, GA population, best-of-N.

Every archive implements :class:`~evolm.archives.base.Archive`; :data:`ARCHIVES` maps a kind name
to its class and :func:`make_archive` builds one from a kind name and keyword parameters (as read
from a preset).
"""

from __future__ import annotations

import inspect
from typing import Any

from evolm.archives.base import (
    STRATEGIES,
    Archive,
    ArchiveStats,
    EmptyArchiveError,
    Strategy,
    is_insertable,
)
from evolm.archives.best_of_n import BestOfNArchive
from evolm.archives.cvt import CVTArchive, cvt_centroids
from evolm.archives.deep_grid import DeepGridArchive
from evolm.archives.grid import GridArchive
from evolm.archives.population import PopulationArchive
from evolm.registry import Registry
from evolm.types import DescriptorSpace

__all__ = [
    "ARCHIVES",
    "STRATEGIES",
    "Archive",
    "ArchiveStats",
    "BestOfNArchive",
    "CVTArchive",
    "DeepGridArchive",
    "EmptyArchiveError",
    "GridArchive",
    "PopulationArchive",
    "Strategy",
    "cvt_centroids",
    "is_insertable",
    "make_archive",
]

ARCHIVES: Registry[type[Archive]] = Registry(
    "archive kind",
    {
        "grid": "evolm.archives.grid:GridArchive",
        "cvt": "evolm.archives.cvt:CVTArchive",
        "deep_grid": "evolm.archives.deep_grid:DeepGridArchive",
        "population": "evolm.archives.population:PopulationArchive",
        "best_of_n": "evolm.archives.best_of_n:BestOfNArchive",
    },
    base=Archive,
    skip=("space", "qd_offset", "seed"),
)
"""Archive classes by kind name (a :class:`~evolm.registry.Registry`); each class's constructor
parameters are its ``make_archive`` parameters."""


def make_archive(
    kind: str,
    space: DescriptorSpace,
    *,
    qd_offset: float = 0.0,
    seed: int = 0,
    **params: Any,
) -> Archive:
    """Build the archive ``kind`` over ``space``.

    Args:
        kind: a key of :data:`ARCHIVES`, or ``package.module:Class`` (an :class:`Archive`).
        space: the descriptor space.
        qd_offset: passed to every archive.
        seed: passed to archives that take one (``cvt``: it fixes the centroids); ignored by the
            others, whose construction involves no randomness.
        params: the remaining constructor parameters of the kind, e.g. ``bins=20`` for ``grid``,
            ``cells=1000`` for ``cvt``, ``bins`` and ``per_cell`` for ``deep_grid``, ``size`` and
            ``tournament_size`` for ``population``; none for ``best_of_n``.

    Raises:
        ValueError: unknown kind (the message lists the kinds), a parameter the kind does not
            take or a required one missing (the message lists the kind's parameters), or a
            parameter value the constructor rejects.
    """
    if kind not in ARCHIVES and ":" not in kind:
        raise ValueError(f"unknown archive kind {kind!r}; choose one of {', '.join(ARCHIVES)}")
    cls = ARCHIVES.get(kind)
    signature = inspect.signature(cls.__init__)
    accepted = {
        name: p
        for name, p in signature.parameters.items()
        if name not in ("self", "space", "qd_offset", "seed")
    }
    described = ", ".join(
        name if p.default is inspect.Parameter.empty else f"{name}={p.default!r}"
        for name, p in accepted.items()
    )
    for name in params:
        if name not in accepted:
            raise ValueError(
                f"archive kind {kind!r} has no parameter {name!r}; "
                f"it takes: {described or 'no parameters'}"
            )
    for name, p in accepted.items():
        if p.default is inspect.Parameter.empty and name not in params:
            raise ValueError(
                f"archive kind {kind!r} needs parameter {name!r}; it takes: {described}"
            )
    if "seed" in signature.parameters:
        params["seed"] = seed
    return cls(space, qd_offset=qd_offset, **params)
