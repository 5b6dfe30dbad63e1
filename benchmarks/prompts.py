"""Prompt evolution: test accuracy of the best evolved instruction against the seed instructions
and best-of-N, at equal task-model calls.

    python benchmarks/prompts.py [--task antonyms | --tasks antonyms,arithmetic] [--calls 16]
        [--seeds 0 1 2] [--methods map_elites,best_of_n] [--llm llama_cpp]

Both methods run the ``prompts`` preset's domain (validation accuracy of 20 items is the
fitness, 50 held-out test items) with ``--calls`` writer calls and no early stop at a perfect
score, so each run scores the same number of candidates and makes the same number of task-model
calls (candidates x validation items, the seeds included):

- ``map_elites``: the ``prompts`` preset: a grid over words x share of well-formed answers,
  ``text_rewrite`` and ``text_lmx`` under Thompson sampling;
- ``best_of_n``: the same operators and calls, but every parent is a seed (the ``best_of_n``
  archive): N independent variations of the seeds, the "is evolution needed?" baseline.

After each run, the instruction with the best validation accuracy (ties: the earliest) is scored
on the test split with the task model the run used (its ``[judge]``, else its ``[llm]``), as
``evolm prompt-test`` does; those calls are not part of the run. Each seed instruction is scored
on the test split once per task (the seed baseline; its validation accuracy is read from the
first run, where the seeds were scored like any candidate).

Per task it prints, per method, the best instruction's validation and test accuracy (mean over
seeds with a 95 % Student-t interval), the writer and task-model calls each run spent, and the
seeds' accuracies: the seed chosen by validation accuracy (what a user without evolution would
pick) and the best seed on test (an optimistic ceiling, chosen on the test split itself).
``--llm`` takes the CLI's model specs (``llama_cpp``: the embedded SmolLM2-135M writes and
answers; ``fake`` the offline test model, a smoke check whose accuracies mean nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import evolm
from evolm.cli import parse_llm_spec
from evolm.config import RunConfig
from evolm.domains.base import get_domain
from evolm.domains.prompts import (
    TASKS,
    BackendTaskModel,
    PromptsDomain,
    best_instructions,
    prompt_test,
)
from evolm.llm.build import build_backend
from evolm.store import RunStore
from intervals import t_interval

METHODS = ("map_elites", "best_of_n")


def overrides(method: str, task: str, seed: int, calls: int, llm: dict[str, Any]) -> dict:
    """The config overrides (over the ``prompts`` preset) of one run."""
    cfg: dict[str, Any] = {
        "seed": seed,
        "domain": {"name": "prompts", "params": {"task": task}},
        "llm": dict(llm),
        # no stop at a perfect validation score: every run makes the same task-model calls
        "budget": {"llm_calls": calls, "target_fitness": None},
    }
    if method == "best_of_n":
        cfg["archive"] = {"kind": "best_of_n"}
    return cfg


async def test_accuracies(
    config: RunConfig, domain: PromptsDomain, best: list[tuple[int, str, float]]
) -> list[float]:
    """Test accuracy of each of ``best`` with ``config``'s task model (``[judge]``, else
    ``[llm]``), through a backend built for the purpose and closed afterwards."""
    backend = build_backend(config, config.judge or config.llm)
    try:
        rows = await prompt_test(domain, best, BackendTaskModel(backend), config.seed)
    finally:
        await backend.aclose()
    return [r.test_accuracy for r in rows]


def one_run(method: str, task: str, seed: int, calls: int, llm: dict[str, Any]) -> dict:
    """Run one method once; its best instruction's validation and test accuracy, the calls it
    spent and the seeds' validation accuracies."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "run.db"
        t0 = time.perf_counter()
        result = evolm.run(overrides(method, task, seed, calls, llm), preset="prompts", out=db)
        seconds = time.perf_counter() - t0
        with RunStore(db, readonly=True) as store:
            config = RunConfig.model_validate(store.run_info()["config"])
            totals = store.llm_totals()
            seed_validation = {
                ind.program.code: float(ind.fitness)
                for ind in store.evaluated()
                if ind.program.operator == "seed" and ind.evaluation.ok
            }
        best = best_instructions(db, 1)
    domain = get_domain("prompts", config.domain.params)
    if not isinstance(domain, PromptsDomain):
        raise TypeError(f"the prompts domain built a {type(domain).__name__}")
    if not best:
        raise SystemExit(f"{method} seed {seed} on {task}: no instruction was scored ok")
    (test,) = asyncio.run(test_accuracies(config, domain, best))
    return {
        "status": result.status,
        "instruction": best[0][1],
        "validation": best[0][2],
        "test": test,
        "calls": int(totals["calls"]),
        "task_calls": int(totals["judge_calls"]),
        "seed_validation": seed_validation,
        "config": config,
        "domain": domain,
        "seconds": seconds,
    }


def _cell(values: list[float], fmt: str = ".1f", scale: float = 1.0, unit: str = "") -> str:
    mean, half = t_interval(values)
    text = f"{mean * scale:{fmt}}"
    return text + (f" ± {half * scale:{fmt}}{unit}" if half is not None else f"{unit} (n/a)")


def _pct(values: list[float]) -> str:
    return _cell(values, ".0f", 100.0, " %")


def benchmark_task(task: str, args: argparse.Namespace, llm: dict[str, Any]) -> None:
    """Run every method and seed on ``task`` and print its tables."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for method in args.method_list:
        for seed in args.seeds:
            r = one_run(method, task, seed, args.calls, llm)
            runs.setdefault(method, []).append(r)
            print(
                f"  {task} {method:<10} seed {seed}: {r['status']}, {r['calls']} writer + "
                f"{r['task_calls']} task calls, best validation {r['validation']:.2f}, test "
                f"{r['test']:.2f}, {r['seconds']:.1f} s: {r['instruction'][:60]!r}",
                flush=True,
            )
    first = next(iter(runs.values()))[0]
    domain: PromptsDomain = first["domain"]
    seeds = domain.seeds()
    best = [(0, s, first["seed_validation"].get(s, math.nan)) for s in seeds]
    seed_test = asyncio.run(test_accuracies(first["config"], domain, best))
    n_val, n_test = len(domain.splits.validation), len(domain.splits.test)
    print()
    print(
        f"{task}: accuracy of the best instruction ({n_val} validation, {n_test} test items), "
        "mean ± 95 % t-interval half-width over seeds"
    )
    print("| method | validation | test | writer calls | task calls |")
    print("|---|---|---|---|---|")
    for method, rows in runs.items():
        print(
            f"| {method} | {_pct([r['validation'] for r in rows])} | "
            f"{_pct([r['test'] for r in rows])} | {_cell([float(r['calls']) for r in rows])} | "
            f"{_cell([float(r['task_calls']) for r in rows])} |"
        )
    by_val = max(range(len(seeds)), key=lambda k: (best[k][2], -k))
    print(
        f"| seed chosen by validation | {best[by_val][2] * 100:.0f} % | "
        f"{seed_test[by_val] * 100:.0f} % | - | "
        f"{len(seeds) * n_val} |"
    )
    print(f"| best seed on test (ceiling) | - | {max(seed_test) * 100:.0f} % | - | - |")
    print()
    print("| seed instruction | validation | test |")
    print("|---|---|---|")
    for (_, text, val), test in zip(best, seed_test, strict=True):
        print(f"| {' '.join(text.split())} | {val * 100:.0f} % | {test * 100:.0f} % |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="antonyms")
    ap.add_argument("--tasks", default=None, help="comma-separated tasks (overrides --task)")
    ap.add_argument("--calls", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--llm", default="llama_cpp")
    args = ap.parse_args()
    args.method_list = [m for m in args.methods.split(",") if m]
    for m in args.method_list:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    if not args.method_list:
        ap.error(f"--methods names no method; choose from {', '.join(METHODS)}")
    tasks = [t for t in (args.tasks or args.task).split(",") if t]
    for t in tasks:
        if t not in TASKS:
            ap.error(f"unknown task {t!r}; choose from {', '.join(TASKS)}")
    if args.calls < 1:
        ap.error(f"--calls must be at least 1, got {args.calls}")
    llm = parse_llm_spec(args.llm)
    print(
        f"# prompts: tasks {', '.join(tasks)}, seeds {args.seeds}, {args.calls} writer calls per "
        f"run, llm {args.llm}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    for task in tasks:
        benchmark_task(task, args, llm)


if __name__ == "__main__":
    main()
