"""Runner loop overhead: programs per second end to end, with the run database on.

A zero-latency fake LLM (the mutating responder), a trivial evaluator (``f()`` returns a number),
the whole engine (operator prompts, code extraction, sandbox, archive, SQLite writes). The
baseline, measured in the same run, is the sandbox pool alone evaluating the same number of
programs with nothing else around it, so the ratio shows what the engine adds.

    python benchmarks/loop_overhead.py [--evaluations 3000] [--workers 2] [--batch-size 32]
        [--scoring in_process,separate]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evolm.config import load_config
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.runner import Runner
from evolm.sandbox import SandboxPool
from evolm.store import RunStore

# The domain lives in its own small module: each sandbox zygote imports it, and importing this
# script there would pull the whole engine into every zygote (a bigger process forks slower).
DOMAINS = {
    "in_process": "trivial_domain:TrivialDomain",
    "separate": "trivial_domain:SplitTrivialDomain",  # run in the program's child, score apart
}


def engine_rate(
    evaluations: int, workers: int, batch_size: int, depth: int, domain: str = DOMAINS["in_process"]
) -> float:
    cfg = load_config(
        overrides={
            "seed": 0,
            "domain": {"name": domain},
            "archive": {"kind": "grid", "bins": [50, 50]},
            "llm": {"concurrency": 256},
            "engine": {
                "batch_size": batch_size,
                "pipeline_depth": depth,
                "workers": workers,
                "init_batches": 1,
            },
            "budget": {"evaluations": evaluations},
        }
    )
    with tempfile.TemporaryDirectory() as d:
        store = RunStore(Path(d) / "bench.db")
        engine = Runner(cfg, store, llm=FakeLLM(responder=mutating_responder, concurrency=256))
        t0 = time.perf_counter()
        result = asyncio.run(engine.run())
        dt = time.perf_counter() - t0
        assert result.status == "completed", result
        n = sum(store.counts().values())
        store.close()
    return n / dt


def pool_rate(evaluations: int, workers: int, domain: str = DOMAINS["in_process"]) -> float:
    code = "def f():\n    return 2.5\n"

    async def go() -> float:
        async with SandboxPool(domain, {}, workers=workers, timeout=5) as pool:
            await asyncio.gather(*(pool.evaluate(code) for _ in range(50)))  # warm up
            t0 = time.perf_counter()
            await asyncio.gather(*(pool.evaluate(code, i) for i in range(evaluations)))
            return evaluations / (time.perf_counter() - t0)

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluations", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--scoring",
        default="in_process,separate",
        help="domain scoring modes to measure: in_process (the program's child scores itself), "
        "separate (a scorer process scores the program's data)",
    )
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}, workers: {args.workers}, evaluations: {args.evaluations}")
    print(f"{'scoring':<12}{'measure':<40}{'programs/s':>12}")
    pools = {}
    for mode in args.scoring.split(","):
        domain = DOMAINS[mode]
        base = max(pool_rate(args.evaluations, args.workers, domain) for _ in range(args.repeats))
        rates = [
            engine_rate(args.evaluations, args.workers, args.batch_size, args.depth, domain)
            for _ in range(args.repeats)
        ]
        best = max(rates)
        pools[mode] = base
        engine = f"whole engine, batch {args.batch_size}, depth {args.depth}"
        print(f"{mode:<12}{'sandbox pool alone (baseline)':<40}{base:>12.0f}")
        print(f"{mode:<12}{engine:<40}{best:>12.0f}")
        runs = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{mode:<12}engine / baseline: {best / base:.2f}  (runs: {runs})")
    if len(pools) == 2:
        print(f"separate / in_process, pool alone: {pools['separate'] / pools['in_process']:.2f}")
    print("target: >= 300 programs/s end to end on 2 cores (>= 400 for the jailed pool)")


if __name__ == "__main__":
    main()
