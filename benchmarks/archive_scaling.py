"""Cost of ``add`` and ``sample`` as archives grow from 10^3 to 10^5 stored programs.

Run: ``.venv/bin/python benchmarks/archive_scaling.py`` (about a minute on two cores).

For each archive kind and each N in (10^3, 10^4, 10^5), the archive is filled with N stored
individuals, then timed:

- ``add``: batches of 16 items, each placed where a stored individual is and fitter than
  anything stored, so every item takes the storing path (``IMPROVED``) and N does not change;
  reported in microseconds per item.
- ``sample``: ``sample(4, strategy, rng)`` for each strategy; microseconds per call.

Each figure is the median over ``REPEATS`` repeats of a loop of ``CALLS`` calls, timed with
``time.perf_counter`` and the garbage collector off. ``xN`` columns give the ratio to the same
figure at N = 10^3; flat ratios mean the cost does not grow with the archive.

Sizes: grid 400x400 (160,000 cells); CVT 100,000 cells (centroids from 2 samples per cell to
keep the setup short); deep grid 160x160 cells, 4 per cell, filled four to a cell so its cells
are full; population of size N; best-of-N holding N seeds.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import ribs

from evolm.archives import (
    BestOfNArchive,
    CVTArchive,
    DeepGridArchive,
    GridArchive,
    PopulationArchive,
)
from evolm.archives.base import Archive
from evolm.types import SEED_OPERATOR, DescriptorSpace, Evaluation, Individual, Program, Status

SPACE = DescriptorSpace(("x", "y"), ((0.0, 1.0), (0.0, 1.0)))
SIZES = (1_000, 10_000, 100_000)
BATCH = 16
SAMPLE_N = 4
REPEATS = 7
CALLS = 25
STRATEGIES = ("uniform", "fitness", "curiosity")


def individual(i: int, fitness: float, descriptors: np.ndarray, operator: str) -> Individual:
    return Individual(
        Program(id=i, code="", operator=operator),
        Evaluation(status=Status.OK, fitness=fitness, descriptors=tuple(descriptors.tolist())),
    )


def grid_centres(dims: int, cells: np.ndarray) -> np.ndarray:
    rows, cols = np.divmod(cells, dims)
    return np.stack([(rows + 0.5) / dims, (cols + 0.5) / dims], axis=1)


def filled(kind: str, n: int, rng: np.random.Generator) -> Archive:
    """An archive of ``kind`` holding exactly ``n`` individuals, fitness in [0, 1)."""
    archive: Archive
    if kind == "grid":
        archive = GridArchive(SPACE, bins=400)
        places = grid_centres(400, rng.choice(400 * 400, size=n, replace=False))
    elif kind == "cvt":
        cvt = CVTArchive(SPACE, cells=100_000, seed=0, samples=200_000)
        places = cvt.centroids[rng.choice(100_000, size=n, replace=False)]
        archive = cvt
    elif kind == "deep_grid":
        archive = DeepGridArchive(SPACE, bins=160, per_cell=4)
        cells = rng.choice(160 * 160, size=n // 4, replace=False)
        places = grid_centres(160, np.repeat(cells, 4))
    elif kind == "population":
        archive = PopulationArchive(SPACE, size=n)
        places = rng.random((n, 2))
    else:
        archive = BestOfNArchive(SPACE)
        places = rng.random((n, 2))
    items = [individual(i, float(rng.random()), places[i], SEED_OPERATOR) for i in range(n)]
    for start in range(0, n, 1000):
        archive.add(items[start : start + 1000])
    return archive


def median_time(call: Callable[[int], object], per: int) -> float:
    """Median over REPEATS of the mean time (µs) of CALLS calls, divided by ``per``."""
    times = []
    gc.collect()
    gc.disable()
    try:
        for r in range(REPEATS):
            start = time.perf_counter()
            for k in range(CALLS):
                call(r * CALLS + k)
            times.append((time.perf_counter() - start) / CALLS / per * 1e6)
    finally:
        gc.enable()
    return statistics.median(times)


def measure(kind: str, n: int) -> list[float]:
    rng = np.random.default_rng(0)
    archive = filled(kind, n, rng)
    stored = list(archive)
    assert len(archive) == n, (kind, len(archive))
    targets = rng.choice(len(stored), size=REPEATS * CALLS * BATCH)
    batches = [
        [
            individual(
                n + b * BATCH + j,
                10.0 + b * BATCH + j,
                np.asarray(stored[targets[b * BATCH + j]].descriptors),
                "mutate",
            )
            for j in range(BATCH)
        ]
        for b in range(REPEATS * CALLS)
    ]
    row = [median_time(lambda b: archive.add(batches[b]), BATCH)]
    sample_rng = np.random.default_rng(1)
    for strategy in STRATEGIES:
        row.append(median_time(lambda _b, s=strategy: archive.sample(SAMPLE_N, s, sample_rng), 1))
    return row


def main() -> None:
    print(
        f"# python {platform.python_version()}, numpy {np.__version__}, ribs {ribs.__version__}, "
        f"{os.cpu_count()} cpus; median of {REPEATS}x{CALLS} calls"
    )
    header = f"{'kind':<11}{'N':>8}{'add µs/item':>13}{'xN':>6}"
    for strategy in STRATEGIES:
        header += f"{strategy + ' µs':>15}{'xN':>6}"
    print(header)
    for kind in ("grid", "cvt", "deep_grid", "population", "best_of_n"):
        base: list[float] | None = None
        for n in SIZES:
            row = measure(kind, n)
            base = base or row
            line = f"{kind:<11}{n:>8}"
            for k, value in enumerate(row):
                width = 13 if k == 0 else 15
                line += f"{value:>{width}.1f}{value / base[k]:>6.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
