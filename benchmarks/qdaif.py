"""QDAIF (MAP-Elites with AI feedback) against the QDAIF paper's baselines at equal mutation calls.

    python benchmarks/qdaif.py [--kind story] [--calls 32] [--seeds 0 1 2]
        [--methods qdaif,lmx_quality_only,random_search,fixed_few_shot] [--llm llama_cpp]
        [--scorer judge]

Every method runs the ``poetry`` preset's domain (``--kind story``: QDAIF's 2-D Stories, genre x
ending; ``--kind poem``: tone x form) with the same ``--calls`` writing (mutation) calls; each
candidate, the seeds included, is then scored by the judge (one call per question: quality and
one per axis). The methods (Bradley et al. 2023, section 4):

- ``qdaif``: the preset: a 10 x 10 MAP-Elites grid over the judge's axes, ``text_lmx`` (3
  parents near each other on the map) and ``text_rewrite`` under Thompson sampling;
- ``lmx_quality_only``: the same operators, but the search keeps the fittest texts whatever
  their descriptors: a ``population`` archive (elitist steady-state GA) of 100 texts, as many as
  the grid has cells, with tournament parents for ``text_rewrite`` and fitness-weighted distinct
  parents for ``text_lmx`` (its "near" parents would use the descriptors). A grid of one bin
  would also ignore the descriptors, but it keeps a single text, so LMX would cross a text with
  copies of itself: the population is the single-objective search the paper compares against;
- ``random_search``: no evolution: ``text_rewrite`` of a seed every time (the ``best_of_n``
  archive, whose parents are always the seeds);
- ``fixed_few_shot``: ``text_lmx`` whose examples are always seeds (``best_of_n`` archive and
  ``selection = "archive"``, so the parents come from the archive's seed draw).

The baselines' archives are not QD archives, so as in the paper every method is measured the
same way afterwards: the descriptors stored with every ``ok`` evaluation of the run (seeds
included) are re-binned into one MAP-Elites grid (the preset's 10 x 10 bins, ``qd_offset`` 0),
and its QD score (sum of the elites' fitness) and coverage (filled share of the cells) are
reported as the mean over seeds with a 95 % Student-t interval, with the QD-score ratio to
``qdaif``'s mean, the best quality found (where ``lmx_quality_only`` should lead) and the writing
and judge calls each method spent (equal writing calls; judge
calls differ only by candidates that were invalid before judging).

``--llm`` takes the CLI's model specs (``llama_cpp``: the embedded SmolLM2-135M writes and
judges; ``openai:MODEL@URL`` a server). ``--scorer lexicon`` scores with word lists instead of a
judge (uniform bin edges, as the ``poetry-lexicon`` preset), so ``--llm fake --scorer lexicon``
is a model-free smoke check of the machinery; its numbers say nothing about QDAIF.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import evolm
from evolm.archives import make_archive
from evolm.cli import parse_llm_spec
from evolm.domains.base import get_domain
from evolm.store import RunStore
from intervals import t_interval

METHODS = ("qdaif", "lmx_quality_only", "random_search", "fixed_few_shot")
BINS = 10  # the preset's grid: 10 x 10 bins over the (warped) judge probabilities


def domain_params(kind: str, scorer: str) -> dict[str, Any]:
    """The ``poetry`` domain's parameters, the same for every method."""
    edges = "qdaif" if scorer == "judge" else "uniform"
    return {"kind": kind, "scorer": scorer, "bins": BINS, "edges": edges}


def overrides(
    method: str, seed: int, calls: int, llm: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """The config overrides (over the ``poetry`` preset) of one run."""
    cfg: dict[str, Any] = {
        "seed": seed,
        "domain": {"name": "poetry", "params": dict(params)},
        "llm": dict(llm),
        "budget": {"llm_calls": calls},
    }
    if method == "lmx_quality_only":
        cfg["archive"] = {"kind": "population", "size": BINS * BINS, "selection": "fitness"}
        cfg["operators"] = [
            {"kind": "text_lmx", "params": {"k": 3, "selection": "fitness"}},
            {"kind": "text_rewrite"},
        ]
    elif method == "random_search":
        cfg["archive"] = {"kind": "best_of_n"}
        cfg["operators"] = [{"kind": "text_rewrite"}]
        cfg["bandit"] = {"kind": "fixed"}
    elif method == "fixed_few_shot":
        cfg["archive"] = {"kind": "best_of_n"}
        cfg["operators"] = [{"kind": "text_lmx", "params": {"k": 3, "selection": "archive"}}]
        cfg["bandit"] = {"kind": "fixed"}
    return cfg


def rebinned(store: RunStore, params: dict[str, Any]) -> tuple[float, float, int, float]:
    """QD score, coverage, elites and best fitness of the grid that every ``ok`` evaluation of
    the run (seeds included), added in the order they were evaluated, fills."""
    domain = get_domain("poetry", params)
    grid = make_archive("grid", domain.descriptor_space, qd_offset=domain.qd_offset, bins=BINS)
    grid.add([ind for ind in store.evaluated() if ind.evaluation.ok])
    stats = grid.stats
    best = stats.max_fitness if stats.max_fitness is not None else math.nan
    return stats.qd_score, stats.coverage, stats.num_elites, best


def one_run(
    method: str, seed: int, calls: int, llm: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Run one method once and measure its re-binned archive and the calls it spent."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "run.db"
        t0 = time.perf_counter()
        result = evolm.run(overrides(method, seed, calls, llm, params), preset="poetry", out=db)
        seconds = time.perf_counter() - t0
        with RunStore(db, readonly=True) as store:
            qd, coverage, elites, best = rebinned(store, params)
            totals = store.llm_totals()
            counts = store.counts()
    return {
        "status": result.status,
        "qd_score": qd,
        "coverage": coverage,
        "elites": elites,
        "best": best,
        "calls": int(totals["calls"]),
        "judge_calls": int(totals["judge_calls"]),
        "counts": counts,
        "seconds": seconds,
    }


def _cell(values: list[float], fmt: str = ".2f", scale: float = 1.0, unit: str = "") -> str:
    mean, half = t_interval(values)
    text = f"{mean * scale:{fmt}}"
    return text + (f" ± {half * scale:{fmt}}{unit}" if half is not None else f"{unit} (n/a)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=("story", "poem"), default="story")
    ap.add_argument("--calls", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--llm", default="llama_cpp")
    ap.add_argument("--scorer", choices=("judge", "lexicon"), default="judge")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    if args.calls < 1:
        ap.error(f"--calls must be at least 1, got {args.calls}")
    llm = parse_llm_spec(args.llm)
    params = domain_params(args.kind, args.scorer)
    print(
        f"# QDAIF {args.kind} ({args.scorer} scorer, {params['edges']} edges, {BINS} x {BINS} "
        f"grid): seeds {args.seeds}, {args.calls} writing calls per run, llm {args.llm}; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    runs: dict[str, list[dict[str, Any]]] = {}
    for method in methods:
        for seed in args.seeds:
            r = one_run(method, seed, args.calls, llm, params)
            runs.setdefault(method, []).append(r)
            print(
                f"  {method:<16} seed {seed}: {r['status']}, {r['calls']} writing + "
                f"{r['judge_calls']} judge calls, QD score {r['qd_score']:.2f}, coverage "
                f"{r['coverage']:.0%} ({r['elites']} cells), {r['seconds']:.1f} s",
                flush=True,
            )
    print()
    print(
        "re-binned grid (every ok evaluation, seeds included): mean ± 95 % t-interval "
        "half-width over seeds"
    )
    print(
        "| method | QD score | coverage | QD score / qdaif | best quality | writing calls | "
        "judge calls |"
    )
    print("|---|---|---|---|---|---|---|")
    base = statistics.fmean(r["qd_score"] for r in runs["qdaif"]) if "qdaif" in runs else None
    for method in methods:
        rows = runs[method]
        qd = [r["qd_score"] for r in rows]
        ratio = f"{statistics.fmean(qd) / base:.2f}" if base else "-"
        print(
            f"| {method} | {_cell(qd)} | {_cell([r['coverage'] for r in rows], '.1f', 100.0, ' %')}"
            f" | {ratio} | {_cell([r['best'] for r in rows], '.3f')} | "
            f"{_cell([float(r['calls']) for r in rows], '.1f')} | "
            f"{_cell([float(r['judge_calls']) for r in rows], '.1f')} |"
        )


if __name__ == "__main__":
    main()
