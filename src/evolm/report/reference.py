"""Runs side by side measured on one yardstick: a *reference grid*.

Each run keeps its own archive (a grid, a CVT, a GA population, best-of-N's champion), and their
own QD scores are not comparable: best-of-N's "archive" is one cell. As ``evolm compare`` does
(:mod:`evolm.comparison`), the side-by-side curves and table therefore insert every valid program
a run evaluated, batch by batch, into one grid per comparison (the first grid run's bins, else 10
per descriptor, with each run's own QD offset) and read its QD score, coverage, best and mean
fitness at the batches the run's own curves are plotted at. For runs on equal grids the figures
equal the runs' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolm.report.sampling import round_sig

__all__ = ["reference_bins", "reference_series"]

DEFAULT_BINS = 10
"""Bins per descriptor of the reference grid when the first run's archive is not a grid."""


def reference_bins(configs: Sequence[dict[str, Any]]) -> int | list[int]:
    """The reference grid's bins for runs with ``configs``: the bins of the first run on a
    grid (``evolm compare`` lists its first arm first), else :data:`DEFAULT_BINS`."""
    for config in configs:
        archive = config.get("archive") or {}
        if archive.get("kind") in ("grid", "deep_grid") and archive.get("bins") is not None:
            bins = archive["bins"]
            return int(bins) if isinstance(bins, int) else [int(b) for b in bins]
    return DEFAULT_BINS


def reference_series(
    path: str | Path, bins: int | Sequence[int], batches: Sequence[int]
) -> dict[str, list[Any]] | None:
    """QD score, coverage, best and mean fitness on the reference grid after each of
    ``batches`` (ascending), or None when the grid does not fit the run's descriptors (another
    domain's runs side by side: their own archives are shown instead)."""
    from evolm.archives import make_archive
    from evolm.config import RunConfig
    from evolm.domains.base import get_domain
    from evolm.scheduler.rebuild import stored_batches
    from evolm.store import RunStore

    keys = ("qd_score", "coverage", "max_fitness", "mean_fitness")
    out: dict[str, list[Any]] = {k: [] for k in keys}
    with RunStore(path, readonly=True) as store:
        cfg = RunConfig.model_validate(store.run_info()["config"])
        domain = get_domain(cfg.domain.name, cfg.domain.params)
        offset = cfg.archive.qd_offset
        if offset is None:
            offset = domain.qd_offset
        grid_bins = bins if isinstance(bins, int) else list(bins)
        try:
            grid = make_archive("grid", domain.descriptor_space, qd_offset=offset, bins=grid_bins)
        except ValueError:
            return None
        wanted = list(batches)
        i = 0

        def record(upto: int | None) -> None:
            nonlocal i
            stats = grid.stats
            while i < len(wanted) and (upto is None or wanted[i] < upto):
                out["qd_score"].append(round_sig(stats.qd_score))
                out["coverage"].append(round_sig(stats.coverage))
                out["max_fitness"].append(round_sig(stats.max_fitness))
                out["mean_fitness"].append(round_sig(stats.mean_fitness))
                i += 1

        for index, individuals in stored_batches(store):
            record(index)  # the points before this batch see the grid as it was
            grid.add([ind for ind in individuals if ind.evaluation.ok])
        record(None)
    return out
