"""Engine memory at start: resident set size of the engine process before any evaluation.

Builds a :class:`~evolm.runner.Runner` for a preset (default ``image``) with the fake LLM, the way
``evolm run --llm fake`` does, and prints the process's resident memory (``VmRSS``) after
``import evolm.runner`` and after building the runner, with the heavy libraries that got
imported. Nothing is evaluated and no sandbox is started. Run it against another checkout (e.g.
``PYTHONPATH=/path/to/old/src``) for a before/after comparison.

    python benchmarks/engine_memory.py [--preset image] [--run]

``--run`` also runs the preset's budget to the end and prints the memory after it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "sklearn", "numba", "scipy", "pandas", "ribs", "transformers", "llama_cpp")


def rss_mb() -> float:
    """This process's resident set size in MiB (Linux ``/proc/self/status``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def heavy() -> str:
    """The heavy libraries imported so far, or ``-``."""
    return ", ".join(m for m in HEAVY if m in sys.modules) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="image")
    ap.add_argument("--run", action="store_true", help="also run the budget and measure after")
    args = ap.parse_args()

    print(f"python start          {rss_mb():7.1f} MiB")
    t0 = time.perf_counter()
    import evolm.runner
    from evolm.config import load_config
    from evolm.store import RunStore

    t_import = time.perf_counter() - t0
    print(f"import evolm.runner   {rss_mb():7.1f} MiB  ({t_import:.2f} s)  heavy: {heavy()}")
    cfg = load_config(preset=args.preset, overrides={"llm": {"backend": "fake"}})
    with tempfile.TemporaryDirectory() as d:
        store = RunStore(Path(d) / "mem.db")
        engine = evolm.runner.Runner(cfg, store)
        print(f"runner built          {rss_mb():7.1f} MiB  heavy: {heavy()}")
        if args.run:
            result = asyncio.run(engine.run())
            print(f"after the run         {rss_mb():7.1f} MiB  heavy: {heavy()}  ({result.status})")
        store.close()


if __name__ == "__main__":
    main()
