"""Puzzles co-evolution over rounds: valid-pair rate, niches filled, mean elite difficulty.

Runs the ``puzzles-coevolve`` preset (seed puzzles: the library's grades 1 and 2, ``k``
solver attempts per puzzle) with the given backend and budget, and prints one row per round
(batch; round 0 checks the seed puzzles):

- ``written``: puzzle candidates of the round; ``parsed``: those that are P3 puzzles;
- ``valid pairs``: those whose own reference ``g`` solves their ``f`` (ACES's valid pair), as a
  share of ``written``;
- ``kept``: puzzles with an ``ok`` verdict (solved by someone, not by all ``k`` attempts);
  ``unsolvable`` and ``trivial``: the puzzles refused for those reasons;
- ``niches``: cells of the 128-cell skill grid holding a puzzle after the round;
- ``mean difficulty``: the mean fitness (``1 - solved / k``) of the elites after the round.

    .venv/bin/python benchmarks/puzzles_coevolve.py [--llm llama_cpp] [--calls 160] [--k 4]
        [--batch-size 4] [--seed 0] [--out coevolve.db]

``--llm fake`` is an offline smoke check (the fake writes variants of its parents and solves
int puzzles by a bounded search); the figures worth reporting come from a real model.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from evolm.coevolution import CoevolutionRunner
from evolm.config import load_config
from evolm.llm.build import parse_llm_spec
from evolm.scheduler import Snapshot
from evolm.store import RunStore


def _rounds(path: Path) -> dict[int, dict[str, int]]:
    """Per batch: written, parsed, valid pairs, kept, unsolvable and trivial puzzles."""
    rows: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with RunStore(path, readonly=True) as store:
        for ind in store.evaluated():
            ev = ind.evaluation
            if ev.extras.get("population") != "puzzles":
                continue
            row = rows[ind.program.batch]
            row["written"] += 1
            row["parsed"] += "tags" in ev.extras
            row["valid"] += ev.extras.get("reference") == "solved"
            row["kept"] += ev.ok
            row["unsolvable"] += (ev.error or "").startswith("unsolvable:")
            row["trivial"] += (ev.error or "").startswith("trivial:")
    return rows


def main() -> None:
    """Run one co-evolution and print its per-round table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--llm", default="llama_cpp", help="backend spec, as evolm run --llm")
    ap.add_argument("--calls", type=int, default=160, help="LLM-call budget")
    ap.add_argument("--k", type=int, default=4, help="solver attempts per puzzle")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="run database (default: temporary)")
    args = ap.parse_args()
    cfg = load_config(
        preset="puzzles-coevolve",
        overrides={
            "seed": args.seed,
            "domain": {"params": {"mode": "coevolve", "k": args.k}},
            "llm": parse_llm_spec(args.llm),
            "engine": {"batch_size": args.batch_size},
            "budget": {"llm_calls": args.calls},
        },
    )
    tmp = tempfile.TemporaryDirectory()
    path = args.out or Path(tmp.name) / "coevolve.db"
    after: dict[int, tuple[int, float | None]] = {}
    runner: Any = None

    def on_step(snap: Snapshot) -> None:
        elites = list(runner.archive)
        mean = sum(e.fitness for e in elites) / len(elites) if elites else None
        after[snap.batch] = (len(elites), mean)

    with RunStore(path) as store:
        runner = CoevolutionRunner(cfg, store, on_step=on_step)
        result = asyncio.run(runner.run())
    print(
        f"# puzzles co-evolution: {args.llm}, k={args.k}, {args.calls} calls, seed {args.seed}; "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; run {result.status}: {result.reason}"
    )
    print("round  written  parsed  valid pairs  kept  unsolvable  trivial  niches  mean difficulty")
    for batch, row in sorted(_rounds(Path(result.path)).items()):
        niches, mean = after.get(batch, (0, None))
        valid = f"{row['valid']} ({row['valid'] / row['written']:.0%})" if row["written"] else "-"
        shown = f"{mean:.3f}" if mean is not None else "-"
        print(
            f"{batch:5d}  {row['written']:7d}  {row['parsed']:6d}  {valid:>11}  {row['kept']:4d}"
            f"  {row['unsolvable']:10d}  {row['trivial']:7d}  {niches:6d}  {shown:>15}"
        )
    tmp.cleanup()


if __name__ == "__main__":
    main()
