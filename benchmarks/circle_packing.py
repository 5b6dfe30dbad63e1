"""Circle packing (examples/circle_packing/): best sum of radii against LLM calls, MAP-Elites vs
best-of-N.

    python benchmarks/circle_packing.py [--calls 48] [--seeds 0 1 2]
        [--methods map_elites,best_of_n] [--checkpoints 8,16,32,48] [--llm llama_cpp]

Both methods run the example task with the ``task`` preset (chat mode, prompt mutation and
SEARCH/REPLACE edits under Thompson sampling) and the same ``--calls`` LLM calls per run:

- ``map_elites``: the preset's grid over the example's descriptors (``radius_spread`` x
  ``on_border``, 8 bins each);
- ``best_of_n``: the same operators and calls, but every parent is the seed (the ``best_of_n``
  archive): N independent samples, the "is evolution needed?" baseline.

Per method it prints the best valid sum (strict evaluator, tolerance 0; the seed counts, so the
floor is initial.py's 1.4901) after each checkpoint's number of LLM calls, as the mean over seeds
with a 95 % Student-t interval (n - 1 degrees of freedom; "n/a" with one seed), the share of
candidates (not the seed) that were valid, and how many candidates each guard turned down:
``invalid`` (the evaluator's rules: overlap, outside the square, not finite, a reported sum that
does not match; the commonest reasons are listed), ``did not reproduce`` (a new best whose
re-evaluation differed), ``integrity`` (``integrity_check`` said no), ``other rejected``
(non-finite or out-of-bounds metrics) and ``error`` (the program raised or timed out).
``--llm`` takes the CLI's model specs (``llama_cpp`` is the embedded SmolLM2-135M, ``fake`` the
offline test model for a smoke check, ``openai:MODEL@URL`` a server).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import evolm
from evolm.cli import parse_llm_spec
from evolm.store import RunStore
from intervals import t_interval

METHODS = ("map_elites", "best_of_n")
TASK = Path(__file__).resolve().parents[1] / "examples" / "circle_packing"
GUARDS = ("invalid", "did not reproduce", "integrity", "other rejected", "error")


def overrides(method: str, seed: int, calls: int, llm: dict[str, Any]) -> dict[str, Any]:
    """The config overrides (over the ``task`` preset) of one run."""
    cfg: dict[str, Any] = {
        "seed": seed,
        "domain": {"name": "task", "params": {"path": str(TASK)}},
        "llm": dict(llm),
        "budget": {"llm_calls": calls},
    }
    if method == "best_of_n":
        cfg["archive"] = {"kind": "best_of_n"}
    return cfg


def guard(status: str, error: str) -> str | None:
    """Which guard turned a candidate down (None: it was valid)."""
    if status == "ok":
        return None
    if status == "invalid":
        return "invalid"
    if status == "rejected":
        if error.startswith("did not reproduce"):
            return "did not reproduce"
        if error.startswith("integrity check failed"):
            return "integrity"
        return "other rejected"
    return "error"


def one_run(method: str, seed: int, calls: int, checkpoints: list[int], llm: dict) -> dict:
    """Run one method once: the best sum after each checkpoint and the guards' counts."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "run.db"
        t0 = time.perf_counter()
        result = evolm.run(overrides(method, seed, calls, llm), preset="task", out=db)
        seconds = time.perf_counter() - t0
        with RunStore(db, readonly=True) as store:
            evaluated = list(store.evaluated())
            call_ids = [c.id for c in store.llm_calls()]
    rank = {cid: k + 1 for k, cid in enumerate(call_ids)}  # the call's number, from 1
    best_at = {c: -math.inf for c in checkpoints}
    guards: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    candidates = valid = 0
    for ind in evaluated:
        cid = ind.program.llm_call_id
        made_after = rank.get(cid, 0) if cid is not None else 0  # the seed: 0 calls
        ev = ind.evaluation
        if cid is not None:
            candidates += 1
            which = guard(ev.status.value, ev.error or "")
            if which is None:
                valid += 1
            else:
                guards[which] += 1
                if which == "invalid":
                    reasons[re.sub(r"[-+]?\d[\d.e-]*", "#", (ev.error or "")[:60])] += 1
        if ev.ok and ev.fitness is not None:
            for c in checkpoints:
                if made_after <= c:
                    best_at[c] = max(best_at[c], float(ev.fitness))
    return {
        "status": result.status,
        "best_at": best_at,
        "valid_share": valid / candidates if candidates else 0.0,
        "candidates": candidates,
        "guards": guards,
        "reasons": reasons,
        "calls": len(call_ids),
        "seconds": seconds,
    }


def _cell(values: list[float], percent: bool = False) -> str:
    mean, half = t_interval(values)
    scale, fmt = (100.0, ".0f") if percent else (1.0, ".4f")
    unit = " %" if percent else ""
    text = f"{mean * scale:{fmt}}"
    return text + (f" ± {half * scale:{fmt}}{unit}" if half is not None else f"{unit} (n/a)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=48)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--checkpoints", default="8,16,32,48")
    ap.add_argument("--llm", default="llama_cpp")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c and int(c) < args.calls})
    checkpoints.append(args.calls)
    llm = parse_llm_spec(args.llm)
    print(
        f"# circle packing (n = 26, tolerance 0): seeds {args.seeds}, {args.calls} LLM calls per "
        f"run, llm {args.llm}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    runs: dict[str, list[dict]] = {}
    for method in methods:
        for seed in args.seeds:
            r = one_run(method, seed, args.calls, checkpoints, llm)
            runs.setdefault(method, []).append(r)
            print(
                f"  {method:<10} seed {seed}: {r['status']}, {r['calls']} calls, best "
                f"{r['best_at'][args.calls]:.4f}, {r['candidates']} candidates "
                f"({r['valid_share']:.0%} valid), {r['seconds']:.1f} s",
                flush=True,
            )
    print()
    print("best valid sum after N LLM calls: mean ± 95 % t-interval half-width over seeds")
    print(f"| method | {' | '.join(f'{c} calls' for c in checkpoints)} | valid share |")
    print("|---|" + "---|" * (len(checkpoints) + 1))
    for method in methods:
        rows = runs[method]
        cells = [_cell([r["best_at"][c] for r in rows]) for c in checkpoints]
        valid = _cell([r["valid_share"] for r in rows], percent=True)
        print(f"| {method} | {' | '.join(cells)} | {valid} |")
    print()
    print("candidates turned down, summed over seeds")
    print(f"| method | {' | '.join(GUARDS)} | commonest invalid reasons |")
    print("|---|" + "---|" * (len(GUARDS) + 1))
    for method in methods:
        guards: Counter[str] = sum((r["guards"] for r in runs[method]), Counter())
        reasons: Counter[str] = sum((r["reasons"] for r in runs[method]), Counter())
        top = "; ".join(f"{why} ({n})" for why, n in reasons.most_common(3)) or "-"
        print(f"| {method} | {' | '.join(str(guards[g]) for g in GUARDS)} | {top} |")


if __name__ == "__main__":
    main()
