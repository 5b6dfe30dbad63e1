"""ELM's Figure 1 at small scale: how often one mutation repairs a bugged 4-Parity program.

For each number of injected bugs (1 to 5; see :mod:`evolm.domains.parity`) the bugged program
is mutated ``--gp-trials`` times by the GP baseline (no LLM; one row with one AST edit per
mutation, one with 1 to 5 edits, ``--gp-edits``) and ``--trials`` times by each LLM
operator on each model, and every child is scored in the sandbox. A trial *fixes* the program
when the child answers all 16 inputs right. Every trial has its own seed
(``default_rng([seed, bugs, trial])``), so the table is reproducible for a given model.

ELM (Lehman et al. 2022, Fig. 1) reports that GP mutation essentially never repairs five bugs
(0 of 100,000 trials) while its diff model often does; ours uses a far smaller model.

    .venv/bin/python benchmarks/parity.py [--bugs 1,2,3,4,5] [--gp-trials 10000]
        [--trials 20] [--llm llama_cpp] [--llm openai:MODEL@URL ...]
        [--operators gp,prompt_mutation,rewrite,elm_diff,search_replace]
        [--mode chat] [--max-tokens 256] [--temperature 0.8] [--seed 0]

Columns: ``fixed/trials`` with the rate and its 95 % Wilson interval; ``parsed`` is the share
of completions that gave a program (after the operator's extraction or patching).
GP children are deduplicated before scoring (evaluation is deterministic), which changes
nothing but the time taken.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

from evolm.domains.parity import ParityDomain, parity_program
from evolm.llm import LLMBackend, make_backend
from evolm.operators import OPERATORS, make_operator
from evolm.operators.base import Operator
from evolm.sandbox import SandboxPool
from evolm.types import Evaluation, Individual, Program, Status
from intervals import wilson

LLM_OPERATORS = ("prompt_mutation", "rewrite", "elm_diff", "search_replace")


@dataclass
class Cell:
    trials: int = 0
    parsed: int = 0
    fixed: int = 0
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)

    def text(self) -> str:
        if not self.trials:
            return "-"
        lo, hi = wilson(self.fixed, self.trials)
        return f"{self.fixed}/{self.trials} {self.fixed / self.trials:.2%} [{lo:.2%}, {hi:.2%}]"


async def score_all(pool: SandboxPool, codes: list[str | None]) -> list[Evaluation | None]:
    """Score each distinct program once, in the sandbox."""
    unique = sorted({c for c in codes if c})
    evals = await asyncio.gather(*(pool.evaluate(c, 0) for c in unique))
    by_code = dict(zip(unique, evals, strict=True))
    return [by_code[c] if c else None for c in codes]


def is_fixed(ev: Evaluation | None) -> bool:
    return ev is not None and ev.ok and bool(ev.extras.get("fixed"))


def parent_of(code: str) -> Individual:
    return Individual(Program(id=0, code=code), Evaluation(Status.OK, 0.0, (0.0, 0.0)))


async def gp_cell(op: Operator, pool: SandboxPool, bugs: int, trials: int, seed: int) -> Cell:
    t0 = time.perf_counter()
    parent = parent_of(parity_program(bugs))
    codes = []
    for t in range(trials):
        prop = op.propose([parent], np.random.default_rng([seed, bugs, t]))
        codes.append(prop.code if prop.error is None else None)
    evals = await score_all(pool, codes)
    cell = Cell(trials, sum(c is not None for c in codes), sum(map(is_fixed, evals)))
    cell.seconds = time.perf_counter() - t0
    return cell


async def llm_cell(
    op: Operator, llm: LLMBackend, pool: SandboxPool, bugs: int, trials: int, seed: int
) -> Cell:
    t0 = time.perf_counter()
    parent = parent_of(parity_program(bugs))
    proposals = [
        op.propose([parent], np.random.default_rng([seed, bugs, t])) for t in range(trials)
    ]
    requests = [p.request for p in proposals]
    assert all(r is not None for r in requests)
    completions = await llm.generate(requests)  # type: ignore[arg-type]
    codes: list[str | None] = []
    for prop, comp in zip(proposals, completions, strict=True):
        result = op.finish(prop, comp.text) if comp.ok else None
        codes.append(result.code if result is not None and result.ok else None)
    evals = await score_all(pool, codes)
    cell = Cell(trials, sum(c is not None for c in codes), sum(map(is_fixed, evals)))
    cell.examples = [c for c, e in zip(codes, evals, strict=True) if is_fixed(e)][:1]
    cell.seconds = time.perf_counter() - t0
    return cell


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bugs", default="1,2,3,4,5")
    ap.add_argument("--gp-trials", type=int, default=10000)
    ap.add_argument(
        "--gp-edits",
        default="1,1-5",
        help="GP rows: edits per mutation, a count or a LOW-HIGH range drawn uniformly",
    )
    ap.add_argument("--trials", type=int, default=20, help="trials per LLM operator and bug count")
    ap.add_argument("--llm", action="append", help="backend spec (default: llama_cpp)")
    ap.add_argument("--operators", default="gp," + ",".join(LLM_OPERATORS))
    ap.add_argument("--mode", default="chat", choices=["chat", "completion"])
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    bug_counts = [int(b) for b in args.bugs.split(",")]
    gp_edits = []
    for part in args.gp_edits.split(","):
        lo, _, hi = part.partition("-")
        gp_edits.append((int(lo), int(hi or lo)))
    names = [n for n in args.operators.split(",") if n]
    for n in names:
        if n not in OPERATORS:
            ap.error(f"unknown operator {n!r}; known: {', '.join(OPERATORS)}")
    ctx = ParityDomain().context()
    specs = args.llm or ["llama_cpp"]
    llm_names = [n for n in names if OPERATORS[n].uses_llm]
    llms = [make_backend(s, concurrency=args.concurrency) for s in specs] if llm_names else []
    sampling = {"max_tokens": args.max_tokens, "temperature": args.temperature, "top_p": 0.95}

    print(f"# evolm benchmarks/parity.py on {platform.machine()}, {os.cpu_count()} cores")
    print(
        f"# bugs {bug_counts}; GP trials {args.gp_trials}; LLM trials {args.trials}; "
        f"mode {args.mode}; max_tokens {args.max_tokens}; temperature {args.temperature}"
    )
    rows: list[tuple[str, str, dict[int, Cell]]] = []
    async with SandboxPool("parity", {}, timeout=2.0) as pool:
        for name in names:
            if not OPERATORS[name].uses_llm:
                for low, high in gp_edits:
                    op = make_operator(name, ctx, args.mode, mutations=(low, high))
                    cells = {}
                    for b in bug_counts:
                        cells[b] = await gp_cell(op, pool, b, args.gp_trials, args.seed)
                    edits = f"{low}" if low == high else f"{low}-{high}"
                    rows.append((f"{name} ({edits} edit{'s' * (high > 1)})", "-", cells))
                    print_row(rows[-1], bug_counts)
                continue
            for llm in llms:
                op = make_operator(name, ctx, args.mode, **sampling)
                cells = {}
                for b in bug_counts:
                    cells[b] = await llm_cell(op, llm, pool, b, args.trials, args.seed)
                rows.append((name, llm.model, cells))
                print_row(rows[-1], bug_counts)
    for llm in llms:
        await llm.aclose()
    print()
    print(
        "| operator | model | "
        + " | ".join(f"{b} bug{'s' * (b > 1)}" for b in bug_counts)
        + " | parsed | s/trial |"
    )
    print("|---|---|" + "---|" * (len(bug_counts) + 2))
    for name, model, cells in rows:
        trials = sum(c.trials for c in cells.values())
        parsed = sum(c.parsed for c in cells.values())
        secs = sum(c.seconds for c in cells.values())
        print(
            f"| {name} | {model} | "
            + " | ".join(cells[b].text() for b in bug_counts)
            + f" | {parsed / max(trials, 1):.0%} | {secs / max(trials, 1):.3f} |"
        )


def print_row(row: tuple[str, str, dict[int, Cell]], bug_counts: list[int]) -> None:
    name, model, cells = row
    parts = "  ".join(f"{b}:{cells[b].fixed}/{cells[b].trials}" for b in bug_counts)
    print(f"{name:16s} {model:28s} {parts}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
