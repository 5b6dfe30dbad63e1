"""Programming puzzles, solve mode: how often each method solves a puzzle, per difficulty grade.

    python benchmarks/puzzles.py [--per-grade 1] [--grades 1,2,3,4,5] [--calls 16]
        [--seeds 0 1 2] [--methods map_elites,best_of_n,gp] [--llm llama_cpp]

For each grade, the first ``--per-grade`` puzzles of the shipped library (library order) are
solved once per seed and method, each run stopping at the first solution or when its budget is
spent. Every method gets the same budget:

- ``map_elites``: the ``puzzles`` preset (grid over loops x syntax-tree size, uniform parent
  selection, prompt mutation and rewrite chosen by Thompson sampling) with ``--calls`` LLM calls;
- ``best_of_n``: the same operators and calls, but every parent is the seed (the
  ``best_of_n`` archive): N independent samples, the "is evolution needed?" baseline;
- ``gp``: the LLM-free GP mutation from the same seed, at the same number of evaluations as the
  LLM methods (``--calls`` + the seed).

A cell reads ``solved/runs`` with the rate's 95 % Wilson interval, then the mean number of
evaluations the solved runs took. ``--llm`` takes the CLI's model specs (``llama_cpp`` is the
embedded SmolLM2-135M; ``openai:MODEL@URL`` a server).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import evolm
from evolm.cli import parse_llm_spec
from evolm.domains.puzzles import puzzle_set
from evolm.store import RunStore
from intervals import wilson

METHODS = ("map_elites", "best_of_n", "gp")


def overrides(method: str, puzzle: str, seed: int, calls: int, llm: dict[str, Any]) -> dict:
    """The config overrides (over the ``puzzles`` preset) of one run."""
    cfg: dict[str, Any] = {
        "seed": seed,
        "domain": {"name": "puzzles", "params": {"puzzle": puzzle}},
        "llm": dict(llm),
    }
    if method == "gp":
        cfg["llm"] = {"backend": "fake"}  # never called: GP makes no LLM call
        cfg["operators"] = [{"kind": "gp", "params": {"mutations": [1, 3]}}]
        cfg["bandit"] = {"kind": "fixed"}
        cfg["budget"] = {"evaluations": calls + 1, "target_fitness": 1.0, "llm_calls": None}
    else:
        cfg["budget"] = {"llm_calls": calls, "target_fitness": 1.0}
    if method == "best_of_n":
        cfg["archive"] = {"kind": "best_of_n"}
    return cfg


def one_run(method: str, puzzle: str, seed: int, calls: int, llm: dict[str, Any]) -> dict:
    """Run one method on one puzzle; whether it solved it and after how many evaluations."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "run.db"
        t0 = time.perf_counter()
        evolm.run(overrides(method, puzzle, seed, calls, llm), preset="puzzles", out=db)
        seconds = time.perf_counter() - t0
        with RunStore(db, readonly=True) as store:
            evaluated = list(store.evaluated())
    solved_at = next(
        (k + 1 for k, ind in enumerate(evaluated) if ind.evaluation.ok and ind.fitness == 1.0),
        None,
    )
    return {
        "solved": solved_at is not None,
        "evaluations": solved_at or len(evaluated),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-grade", type=int, default=1)
    ap.add_argument("--grades", default="1,2,3,4,5")
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--llm", default="llama_cpp")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    grades = [int(g) for g in args.grades.split(",") if g]
    llm = parse_llm_spec(args.llm)
    print(
        f"# puzzles solve mode: {args.per_grade} puzzle(s) per grade, seeds {args.seeds}, "
        f"{args.calls} LLM calls (GP: {args.calls + 1} evaluations) per run, llm {args.llm}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    table: dict[tuple[str, int], list[dict]] = {}
    for grade in grades:
        for puzzle in puzzle_set(grade=grade)[: args.per_grade]:
            for method in methods:
                for seed in args.seeds:
                    r = one_run(method, puzzle.name, seed, args.calls, llm)
                    table.setdefault((method, grade), []).append(r)
                    print(
                        f"  grade {grade} {puzzle.name:<20} {method:<10} seed {seed}: "
                        f"{'solved' if r['solved'] else 'unsolved'} after {r['evaluations']} "
                        f"evaluations, {r['seconds']:.1f} s",
                        flush=True,
                    )
    print()
    print(f"| method | {' | '.join(f'grade {g}' for g in grades)} | all |")
    print("|---|" + "---|" * (len(grades) + 1))
    for method in methods:
        cells = []
        rows_all: list[dict] = []
        for grade in [*grades, None]:
            rows = table.get((method, grade), []) if grade is not None else rows_all
            if grade is not None:
                rows_all += rows
            k, n = sum(r["solved"] for r in rows), len(rows)
            lo, hi = wilson(k, n)
            evals = [r["evaluations"] for r in rows if r["solved"]]
            mean = f", {sum(evals) / len(evals):.1f} evals" if evals else ""
            cells.append(f"{k}/{n} [{lo:.0%}, {hi:.0%}]{mean}")
        print(f"| {method} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
