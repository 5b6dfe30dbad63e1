"""Sandbox cost: per-program latency and throughput of SandboxPool against a fresh interpreter.

For a trivial program (``f()`` returns a number), on each sandbox tier that works here:

* latency: programs sent one at a time (mean, p50, p99, in ms), and the mean overhead over
  running the same evaluation in-process;
* throughput: programs per second with the pool saturated, with 1 and 2 workers, and the CPU
  time each program costs all processes together (a number other load on the machine does not
  change much, unlike the rates);
* the timeout kill: how long past a 1 s deadline an infinite loop survives.

Each is measured for the one-process domain (``scoring = "in_process"``: the program's child
scores it) and for its two-phase twin (``scoring = "separate"``: a second child, forked from the
pristine zygote, scores the data the program's child sent back), unless ``--scoring`` names one.

The baseline, measured in the same run, is what a peer without a fork server does: a fresh
``python -I -c "import numpy; ..."`` per program, one at a time and two at a time.

    python benchmarks/sandbox.py [--programs 1000] [--sequential 300] [--fresh 30]
                                 [--tiers auto,userns,landlock]
                                 [--scoring in_process,separate]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evolm.sandbox import SandboxPool, SandboxUnavailable, probe_tiers
from evolm.types import Status
from trivial_domain import TrivialDomain

DOMAINS = {  # a light module: every zygote imports it
    "in_process": "trivial_domain:TrivialDomain",
    "separate": "trivial_domain:SplitTrivialDomain",
}
PROGRAM = "def f():\n    return 2.5\n"
LOOP = "def f():\n    while True:\n        pass\n"


def summary(latencies: list[float]) -> tuple[float, float, float]:
    """(mean, p50, p99) in milliseconds."""
    ms = sorted(x * 1000 for x in latencies)
    return statistics.fmean(ms), ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def sandbox_cpu_seconds(sandbox_id: str) -> float:
    """CPU used so far by this process and by every process of the pool (with reaped children)."""
    own = os.times()
    total = own.user + own.system
    needle = f"EVOLM_SANDBOX={sandbox_id}".encode()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle not in Path(f"/proc/{pid}/environ").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def in_process_seconds(n: int = 2000) -> float:
    dom = TrivialDomain()
    t0 = time.perf_counter()
    for _ in range(n):
        dom.evaluate(PROGRAM)
    return (time.perf_counter() - t0) / n


async def sandbox_numbers(
    tier: str, workers: int, sequential: int, programs: int, domain: str
) -> dict:
    async with SandboxPool(domain, workers=workers, timeout=5.0, tier=tier) as pool:
        for _ in range(20):  # warm up
            await pool.evaluate(PROGRAM)
        lat = []
        for _ in range(sequential):
            t0 = time.perf_counter()
            ev = await pool.evaluate(PROGRAM)
            lat.append(time.perf_counter() - t0)
            assert ev.ok, ev.error
        t0, c0 = time.perf_counter(), sandbox_cpu_seconds(pool.sandbox_id)
        evs = await asyncio.gather(*(pool.evaluate(PROGRAM) for _ in range(programs)))
        rate = programs / (time.perf_counter() - t0)
        cpu = (sandbox_cpu_seconds(pool.sandbox_id) - c0) / programs
        assert all(ev.ok for ev in evs)
        kills = []
        if workers == 1:
            for _ in range(3):
                t0 = time.perf_counter()
                ev = await pool.evaluate(LOOP, timeout=1.0)
                kills.append(time.perf_counter() - t0 - 1.0)
                assert ev.status is Status.TIMEOUT
        return {"tier": pool.tier, "lat": lat, "rate": rate, "cpu": cpu, "kill": kills}


def fresh_command() -> list[str]:
    score = "print(-abs(x - 3.0), x % 1.0, min(abs(x) / 100.0, 1.0))"
    body = f"import numpy\n{PROGRAM}x = float(f())\n{score}\n"
    return [sys.executable, "-I", "-c", body]


def fresh_numbers(workers: int, n: int) -> dict:
    cmd = fresh_command()
    lat = []
    c0 = os.times()
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        lat.append(time.perf_counter() - t0)
    c1 = os.times()
    cpu = (c1.children_user + c1.children_system - c0.children_user - c0.children_system) / n
    t0 = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    for _ in range(n):
        if len(running) == workers:
            running.pop(0).wait()
        running.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
    for p in running:
        p.wait()
    return {"lat": lat, "rate": n / (time.perf_counter() - t0), "cpu": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--programs", type=int, default=1000, help="programs per throughput run")
    ap.add_argument("--sequential", type=int, default=300, help="programs sent one at a time")
    ap.add_argument("--fresh", type=int, default=30, help="fresh interpreters per baseline run")
    ap.add_argument("--tiers", default="auto,userns,landlock")
    ap.add_argument("--scoring", default="in_process,separate", help="domain scoring modes")
    args = ap.parse_args()

    load_before = os.getloadavg()
    inproc_ms = in_process_seconds() * 1000
    rows = []
    kill_rows = []
    for tier in args.tiers.split(","):
        if tier != "auto" and not probe_tiers((tier,))[0].ok:
            print(f"skipping tier {tier}: {probe_tiers((tier,))[0].reason}")
            continue
        for mode in args.scoring.split(","):
            for workers in (1, 2):
                try:
                    r = asyncio.run(
                        sandbox_numbers(
                            tier, workers, args.sequential, args.programs, DOMAINS[mode]
                        )
                    )
                except SandboxUnavailable as exc:
                    print(f"skipping tier {tier}: {exc}")
                    break
                name = f"{r['tier']}{', auto' if tier == 'auto' else ''}, {mode}"
                rows.append((name, workers, *summary(r["lat"]), r["rate"], r["cpu"]))
                kill_rows += [(f"{r['tier']}, {mode}", k) for k in r["kill"]]
    fresh = [fresh_numbers(w, args.fresh) for w in (1, 2)]
    for w, f in zip((1, 2), fresh, strict=True):
        rows.append(("fresh python -I + numpy", w, *summary(f["lat"]), f["rate"], f["cpu"]))

    print(
        f"\n{os.cpu_count()} cores; 1-minute load average {load_before[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (other processes skew every number below)"
    )
    print(f"in-process evaluate of the same program: {inproc_ms:.3f} ms")
    header = (
        f"{'evaluator':<32} {'workers':>7} {'mean ms':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'overhead ms':>11} {'programs/s':>10} {'vs fresh':>9} {'CPU ms/prog':>11}"
    )
    print(header)
    print("-" * len(header))
    fresh_mean = {w: summary(f["lat"])[0] for w, f in zip((1, 2), fresh, strict=True)}
    for name, w, mean, p50, p99, rate, cpu in rows:
        ratio = fresh_mean[w] / mean
        print(
            f"{name:<32} {w:>7} {mean:>8.2f} {p50:>8.2f} {p99:>8.2f} "
            f"{mean - inproc_ms:>11.2f} {rate:>10.0f} {ratio:>8.1f}x {cpu * 1000:>11.2f}"
        )
    print(
        "CPU ms/prog: CPU time of the engine process, the zygotes and their children per program "
        "in the throughput run\n(for fresh interpreters, of the interpreter); "
        "2000 / it is the rate two idle cores could sustain."
    )
    print("\ntimeout kill (1 s deadline, infinite loop): seconds past the deadline, end to end")
    for tier, k in kill_rows:
        print(f"  {tier:<22} +{k * 1000:.0f} ms")


if __name__ == "__main__":
    main()
