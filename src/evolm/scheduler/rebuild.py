"""Archives from configurations and from run databases.

Reading a run (``evolm status``, ``show``, ``export``, reports) rebuilds its archive by telling
the stored batches again, through the same :func:`apply_batch` the live run used. This module is
light on purpose: it imports neither the runner nor the sandbox nor any LLM backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from evolm.archives import make_archive
from evolm.archives.base import Archive
from evolm.types import AddStatus, Individual

if TYPE_CHECKING:
    from evolm.config import RunConfig
    from evolm.domains.base import Domain
    from evolm.store import RunStore

__all__ = ["apply_batch", "build_archive", "rebuild_archive", "stored_batches"]


def apply_batch(archive: Archive, individuals: Sequence[Individual]) -> list[AddStatus]:
    """Tell a batch to an archive: insertion, then curiosity feedback for each offspring.

    The live run and every rebuild go through here, so a rebuilt archive receives exactly the
    calls the live one did.
    """
    statuses = archive.add(individuals)
    for ind, st in zip(individuals, statuses, strict=True):
        if ind.program.parent_ids:
            archive.feedback(ind.program.parent_ids, st is not AddStatus.NOT_ADDED)
    return statuses


def build_archive(config: RunConfig, domain: Domain) -> Archive:
    """The empty archive a configuration describes, over the domain's descriptor space."""
    a = config.archive
    offset = a.qd_offset if a.qd_offset is not None else domain.qd_offset
    return make_archive(
        a.kind, domain.descriptor_space, qd_offset=offset, seed=config.seed, **a.params()
    )


def stored_batches(
    store: RunStore, max_batch: int | None = None
) -> Iterator[tuple[int, list[Individual]]]:
    """The evaluated batches of a run database, in order, as ``(index, individuals)``."""
    current: list[Individual] = []
    current_batch = 0
    for ind in store.evaluated(max_batch=max_batch):
        if ind.program.batch != current_batch:
            if current:
                yield current_batch, current
            current, current_batch = [], ind.program.batch
        current.append(ind)
    if current:
        yield current_batch, current


def rebuild_archive(
    archive: Archive,
    store: RunStore,
    max_batch: int | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> list[Individual]:
    """Re-add the stored batches (up to ``max_batch``) in order; returns the seed batch.

    ``after_batch(k)`` is called once batch ``k`` has been applied, with the archive in the
    state the live run had right after telling batch ``k``.
    """
    seeds: list[Individual] = []
    for index, individuals in stored_batches(store, max_batch):
        apply_batch(archive, individuals)
        if index == 0:
            seeds = list(individuals)
        if after_batch is not None:
            after_batch(index)
    return seeds
