"""Evaluation through Ray against the local sandbox pool: throughput and per-evaluation overhead.

Three setups with the same two sandbox workers in all, measured in one run on this machine:

* ``local``: the engine's own :class:`SandboxEvaluator` (a pool of 2 zygotes);
* ``ray 1 node``: a Ray head started with ``ray start --num-cpus=2`` on loopback, whose actor
  owns a pool of 2;
* ``ray 2 nodes``: a head and a second node (``ray start --address``), one CPU each: two actors,
  pools of 1.

For two domains: a trivial evaluator (``f()`` returns a number: the cost is all overhead) and
Sodarace (the domain's first seed, a walker simulated in Box2D). For each:

* latency: ``--sequential`` programs sent one at a time; the mean in ms, and its difference to
  the local pool's mean, the per-evaluation overhead Ray adds;
* throughput: ``--programs`` programs in one ``evaluate`` call, ``--repeats`` times; programs/s
  (mean and 95 % t-interval over the repeats);
* driver CPU: CPU seconds this process (the engine's side) spends per evaluation while
  saturated, which bounds how many evaluations per second one engine can dispatch however many
  nodes there are.

The clusters are started and stopped by the benchmark (each node its own ``ray start --block``
process, stopped by pid). Needs the ray extra.

    python benchmarks/distributed.py [--programs 200] [--sequential 50] [--repeats 5]
                                     [--soda-programs 64] [--soda-sequential 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # trivial_domain
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.evaluators.local_cluster

from tests.evaluators.local_cluster import LocalCluster

from evolm.domains.base import get_domain
from evolm.evaluators import EvalJob, Evaluator
from evolm.evaluators.local import SandboxEvaluator
from evolm.evaluators.ray_cluster import RayEvaluator
from evolm.stats import t_interval
from evolm.types import Program

HERE = Path(__file__).resolve().parent
TRIVIAL = ("trivial", "trivial_domain:TrivialDomain", "def f():\n    return 2.5\n", 5.0)


def sodarace() -> tuple[str, str, str, float]:
    dom = get_domain("sodarace")
    return ("sodarace", "sodarace", dom.seeds()[0], float(dom.eval_timeout))


def jobs(code: str, n: int, timeout: float, start: int = 0) -> list[EvalJob]:
    return [EvalJob(Program(id=start + i, code=code), start + i, timeout) for i in range(n)]


async def measure(
    ev: Evaluator, code: str, timeout: float, programs: int, sequential: int, repeats: int
) -> dict[str, Any]:
    await ev.start()
    try:
        warm = await ev.evaluate(jobs(code, 4, timeout))
        if not all(e.ok for e in warm):
            raise RuntimeError(f"the program does not evaluate: {warm[0].error}")
        lat = []
        for j in jobs(code, sequential, timeout, 100):
            t0 = time.perf_counter()
            (e,) = await ev.evaluate([j])
            lat.append(time.perf_counter() - t0)
            assert e.ok, e.error
        rates, cpu = [], []
        for r in range(repeats):
            batch = jobs(code, programs, timeout, 10_000 * (r + 1))
            c0, t0 = time.process_time(), time.perf_counter()
            evs = await ev.evaluate(batch)
            wall, used = time.perf_counter() - t0, time.process_time() - c0
            assert all(e.ok for e in evs), [e.error for e in evs if not e.ok][:1]
            rates.append(programs / wall)
            cpu.append(used / programs)
        return {
            "latency_ms": 1000 * statistics.fmean(lat),
            "rate": t_interval(rates),
            "driver_cpu_ms": 1000 * statistics.fmean(cpu),
            "workers": ev.info.get("workers"),
        }
    finally:
        ev.close()


def run_setup(
    name: str, make: Any, domains: list[tuple[str, str, str, float]], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    out = {}
    for label, spec, code, timeout in domains:
        soda = label == "sodarace"
        n = args.soda_programs if soda else args.programs
        k = args.soda_sequential if soda else args.sequential
        print(f"  {name}: {label} ...", file=sys.stderr, flush=True)
        out[label] = asyncio.run(measure(make(spec, timeout), code, timeout, n, k, args.repeats))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--programs", type=int, default=200)
    ap.add_argument("--sequential", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--soda-programs", type=int, default=64)
    ap.add_argument("--soda-sequential", type=int, default=20)
    args = ap.parse_args()
    domains = [TRIVIAL, sodarace()]
    results: dict[str, dict[str, dict[str, Any]]] = {}

    results["local"] = run_setup(
        "local", lambda spec, t: SandboxEvaluator(spec, workers=2, timeout=t), domains, args
    )
    for label, cpus in (("ray 1 node", [2]), ("ray 2 nodes", [1, 1])):
        cluster = LocalCluster(extra_path=(str(HERE),))
        try:
            print(f"starting {label} ...", file=sys.stderr, flush=True)
            cluster.start_head(num_cpus=cpus[0])
            for c in cpus[1:]:
                cluster.add_node(num_cpus=c)
            address = cluster.address
            results[label] = run_setup(
                label,
                lambda spec, t, a=address: RayEvaluator(spec, address=a, timeout=t),
                domains,
                args,
            )
        finally:
            cluster.stop()

    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        "| domain | setup | workers | latency (ms) | overhead vs local (ms) | programs/s "
        "(95 % CI) | driver CPU per evaluation (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, *_ in domains:
        base = results["local"][label]["latency_ms"]
        for setup, res in results.items():
            r = res[label]
            mean, half = r["rate"]
            ci = f"{mean:.1f} ± {half:.1f}" if half is not None else f"{mean:.1f}"
            over = "-" if setup == "local" else f"{r['latency_ms'] - base:+.1f}"
            print(
                f"| {label} | {setup} | {r['workers']} | {r['latency_ms']:.1f} | {over} | "
                f"{ci} | {r['driver_cpu_ms']:.2f} |"
            )


if __name__ == "__main__":
    main()
