"""Search quality: MAP-Elites against best-of-N, the GA, the GP operator and random search at
equal budgets.

    python benchmarks/quality.py                                  # embedded, 64 calls, 3 seeds
    python benchmarks/quality.py --calls 128 --seeds 0 1 2 3 4    # a bigger comparison
    python benchmarks/quality.py --llm fake --calls 8 --seeds 0 1 # a smoke test (seconds)

For each domain (Sodarace and image by default) this runs ``evolm compare`` through the library
(:mod:`evolm.experiment`): the domain's default preset (a MAP-Elites grid, prompt mutation, the
embedded model unless ``--llm`` says otherwise) as the arm ``map-elites``, and the baselines
derived from it: ``best-of-n`` (every parent a seed, the same LLM calls), ``ga`` (a GA
population, the same LLM calls), ``gp`` (the GP operator, no LLM, at the evaluations the
MAP-Elites run of the same seed counted) and ``random`` (random search: the domain's random
programs, no LLM, at those evaluations too). Every run is stored in
``OUT/DOMAIN/ARM-seedN.db`` (a second call with the same ``--out`` skips finished runs and
resumes interrupted ones), and the table (mean ± 95 % Student-t interval across seeds; QD score
and coverage on the preset's grid holding every valid program a run evaluated) is printed and
written to ``OUT/DOMAIN/compare.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from evolm.experiment import Experiment, ExperimentBudget, parse_arm, run_experiment
from evolm.llm.build import parse_llm_spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", nargs="+", default=["sodarace", "image"])
    ap.add_argument("--calls", type=int, default=64, help="LLM calls per run (the budget)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--llm", default="llama_cpp", help="as `evolm run --llm` (fake: smoke test)")
    ap.add_argument("--baselines", nargs="+", default=["best-of-n", "ga", "gp", "random"])
    ap.add_argument(
        "--preset",
        default="",
        help="the MAP-Elites arm's preset for every domain (e.g. embedded); default: the domain's",
    )
    ap.add_argument("--set", dest="assignments", action="append", default=[], metavar="K=V")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once (each loads its model)")
    ap.add_argument("--out", type=Path, default=Path("runs/quality"))
    args = ap.parse_args(argv)

    for domain in args.domains:
        exp = Experiment(
            domain={"name": domain},
            arms=[parse_arm(f"map-elites=preset:{args.preset}" if args.preset else "map-elites=")],
            seeds=list(args.seeds),
            budget=ExperimentBudget("llm_calls", args.calls),
            out=args.out / domain,
            baselines=list(args.baselines),
            llm=parse_llm_spec(args.llm),
            assignments=list(args.assignments),
        )
        t0 = time.monotonic()
        result = run_experiment(exp, jobs=args.jobs, log=lambda s: print(s, file=sys.stderr))
        seconds = time.monotonic() - t0
        what = f"{args.calls} LLM calls per run, seeds {args.seeds}, --llm {args.llm}"
        print(f"\n## {domain}: {what}")
        print(f"({seconds:.0f} s for the runs this call made; runs in {exp.out})\n")
        print(result["table"])
        for note in [s["reason"] for s in result["skipped"]] + result["warnings"]:
            print(f"- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
