"""Evaluation through Ray against the local sandbox pool: throughput and per-evaluation overhead.

Two phases, each with one Ray cluster on this machine (loopback) and the local pool, with the
same two sandbox workers in all:

* ``ray 1 node``: a Ray head started with ``ray start --num-cpus=2``, whose actor owns a pool
  of 2;
* ``ray 2 nodes``: a head and a second node (``ray start --address``), one CPU each: two actors,
  pools of 1;
* ``local``, in each phase: the engine's own :class:`SandboxEvaluator` (a pool of 2 zygotes).

Within a phase the rounds alternate between the local pool and Ray, so load from elsewhere on
the machine falls on both alike; the overhead is the difference of the two, round by round.

For two domains: a trivial evaluator (``f()`` returns a number: the cost is all overhead) and
Sodarace (the domain's first seed, a walker simulated in Box2D). For each:

* latency: ``--sequential`` programs sent one at a time; the mean in ms, and its difference to
  the local pool's mean, the per-evaluation overhead Ray adds;
* throughput: ``--programs`` programs in one ``evaluate`` call; programs/s;
* driver CPU: CPU seconds this process (the engine's side) spends per evaluation while
  saturated, which bounds how many evaluations per second one engine can dispatch however many
  nodes there are.

Every figure is the mean over ``--repeats`` rounds with its 95 % t-interval.

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


async def _round(
    ev: Evaluator, code: str, timeout: float, programs: int, sequential: int, start: int
) -> tuple[float, float, float]:
    """(mean latency of ``sequential`` programs sent one at a time in s, programs/s of a batch
    of ``programs``, driver CPU s per evaluation in that batch)."""
    lat = []
    for j in jobs(code, sequential, timeout, start):
        t0 = time.perf_counter()
        (e,) = await ev.evaluate([j])
        lat.append(time.perf_counter() - t0)
        assert e.ok, e.error
    batch = jobs(code, programs, timeout, start + sequential)
    c0, t0 = time.process_time(), time.perf_counter()
    evs = await ev.evaluate(batch)
    wall, used = time.perf_counter() - t0, time.process_time() - c0
    assert all(e.ok for e in evs), [e.error for e in evs if not e.ok][:1]
    return statistics.fmean(lat), programs / wall, used / programs


async def paired(
    evs: dict[str, Evaluator], code: str, timeout: float, args: argparse.Namespace, soda: bool
) -> dict[str, dict[str, Any]]:
    """Rounds that alternate between the evaluators (so load from elsewhere on the machine
    falls on each alike); per evaluator the latency, rate and driver CPU over the rounds, and
    each one's latency minus the first's, round by round."""
    n = args.soda_programs if soda else args.programs
    k = args.soda_sequential if soda else args.sequential
    for ev in evs.values():
        await ev.start()
    try:
        for ev in evs.values():
            warm = await ev.evaluate(jobs(code, 4, timeout))
            if not all(e.ok for e in warm):
                raise RuntimeError(f"the program does not evaluate: {warm[0].error}")
        per: dict[str, list[tuple[float, float, float]]] = {name: [] for name in evs}
        for r in range(args.repeats):
            for name, ev in evs.items():
                per[name].append(await _round(ev, code, timeout, n, k, 100_000 * (r + 1)))
        first = next(iter(per.values()))

        def over(rows: list[tuple[float, float, float]]) -> list[float]:
            return [1000 * (x[0] - b[0]) for x, b in zip(rows, first, strict=True)]

        return {
            name: {
                "latency_ms": t_interval([1000 * x[0] for x in rows]),
                "overhead_ms": t_interval(over(rows)),
                "rate": t_interval([x[1] for x in rows]),
                "driver_cpu_ms": 1000 * statistics.fmean(x[2] for x in rows),
                "workers": evs[name].info.get("workers"),
            }
            for name, rows in per.items()
        }
    finally:
        for ev in evs.values():
            ev.close()


def _ci(value: tuple[float, float | None], digits: int = 1) -> str:
    mean, half = value
    return f"{mean:.{digits}f}" if half is None else f"{mean:.{digits}f} ± {half:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--programs", type=int, default=200)
    ap.add_argument("--sequential", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--soda-programs", type=int, default=64)
    ap.add_argument("--soda-sequential", type=int, default=20)
    args = ap.parse_args()
    domains = [TRIVIAL, sodarace()]
    rows = []
    for label, cpus in (("ray 1 node", [2]), ("ray 2 nodes", [1, 1])):
        cluster = LocalCluster(extra_path=(str(HERE),))
        try:
            print(f"starting {label} ...", file=sys.stderr, flush=True)
            cluster.start_head(num_cpus=cpus[0])
            for c in cpus[1:]:
                cluster.add_node(num_cpus=c)
            for dom, spec, code, timeout in domains:
                print(f"  {dom} ...", file=sys.stderr, flush=True)
                evs: dict[str, Evaluator] = {
                    "local": SandboxEvaluator(spec, workers=2, timeout=timeout),
                    label: RayEvaluator(spec, address=cluster.address, timeout=timeout),
                }
                res = asyncio.run(paired(evs, code, timeout, args, dom == "sodarace"))
                rows += [(dom, label, name, r) for name, r in res.items()]
        finally:
            cluster.stop()

    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        "| domain | phase | evaluator | workers | latency (ms) | overhead vs local (ms) | "
        "programs/s | driver CPU per evaluation (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for dom, phase, name, r in sorted(
        rows, key=lambda x: (x[0] != "trivial", x[1], x[2] != "local")
    ):
        over = "-" if name == "local" else _ci(r["overhead_ms"])
        print(
            f"| {dom} | {phase} | {name} | {r['workers']} | {_ci(r['latency_ms'])} | {over} | "
            f"{_ci(r['rate'])} | {r['driver_cpu_ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
