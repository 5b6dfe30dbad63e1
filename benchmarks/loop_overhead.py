"""Runner loop overhead: programs per second end to end, with the run database on.

A zero-latency fake LLM (the mutating responder), a trivial evaluator (``f()`` returns a number),
the whole engine (operator prompts, code extraction, sandbox, archive, SQLite writes). The
baseline, measured in the same run, is the sandbox pool alone evaluating the same number of
programs with nothing else around it, so the ratio shows what the engine adds.

    python benchmarks/loop_overhead.py [--evaluations 3000] [--workers 2] [--batch-size 32]
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
DOMAIN = "trivial_domain:TrivialDomain"


def engine_rate(evaluations: int, workers: int, batch_size: int, depth: int) -> float:
    cfg = load_config(
        overrides={
            "seed": 0,
            "domain": {"name": DOMAIN},
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


def pool_rate(evaluations: int, workers: int) -> float:
    code = "def f():\n    return 2.5\n"

    async def go() -> float:
        async with SandboxPool(DOMAIN, {}, workers=workers, timeout=5) as pool:
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
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}, workers: {args.workers}, evaluations: {args.evaluations}")
    base = max(pool_rate(args.evaluations, args.workers) for _ in range(args.repeats))
    rates = [
        engine_rate(args.evaluations, args.workers, args.batch_size, args.depth)
        for _ in range(args.repeats)
    ]
    best = max(rates)
    print(f"{'measure':<44}{'programs/s':>12}")
    print(f"{'sandbox pool alone (baseline)':<44}{base:>12.0f}")
    print(
        f"{'whole engine, batch ' + str(args.batch_size) + ', depth ' + str(args.depth):<44}"
        f"{best:>12.0f}"
    )
    print(f"engine / baseline: {best / base:.2f}  (runs: {', '.join(f'{r:.0f}' for r in rates)})")
    print("target: >= 300 programs/s end to end on 2 cores")


if __name__ == "__main__":
    main()
