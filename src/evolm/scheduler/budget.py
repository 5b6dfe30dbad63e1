"""The run's budgets: what was reserved, what was spent, and why the run stops.

A :class:`Budget` is plain bookkeeping with no asyncio, database or sandbox in it. The scheduler
*reserves* LLM calls and evaluations when it asks a batch (so the batches in flight never ask
more than the budget allows) and *charges* what a told batch actually spent. The wall-time budget
has one path: :meth:`Budget.time_left` bounds every wait of the runner, and
:meth:`Budget.stop_reason` names it when it is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from evolm.config import BudgetConfig

__all__ = ["Budget", "Spent"]


@dataclass
class Spent:
    """Totals charged so far (told batches only)."""

    llm_calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    evaluations: int = 0
    judge_calls: int = 0  # calls that scored candidates (LLM-scored domains); not in llm_calls


class Budget:
    """Reserve, charge and the stop reason for one run.

    Args:
        config: the limits (``None`` fields are unlimited).
        counts_calls: whether LLM calls limit batch sizes (False when no arm uses an LLM, so a
            GP-only run under an LLM-call budget is bounded by its other limits).
        clock: seconds since some fixed point (``time.monotonic``); tests pass their own.
    """

    def __init__(
        self,
        config: BudgetConfig,
        *,
        counts_calls: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.counts_calls = counts_calls
        self.spent = Spent()
        self.calls_reserved = 0
        self.evals_reserved = 0
        self._clock = clock
        self._elapsed_before = 0.0
        self._t0 = clock()

    # -- time -----------------------------------------------------------------------------
    def start_clock(self, elapsed_before: float = 0.0) -> None:
        """Start (or, on resume, continue) the wall clock, ``elapsed_before`` seconds in."""
        self._elapsed_before = elapsed_before
        self._t0 = self._clock()

    @property
    def elapsed(self) -> float:
        """Seconds of run time, including the time before a resume."""
        return self._elapsed_before + (self._clock() - self._t0)

    def time_left(self) -> float | None:
        """Seconds left on the wall-time budget (never negative), or None without one."""
        wall = self.config.wall_time
        return None if wall is None else max(wall - self.elapsed, 0.0)

    def wall_time_reason(self) -> str:
        """The stop reason of a spent wall-time budget (the only place its text lives)."""
        return f"wall-time budget {self.config.wall_time} s spent"

    # -- reserve and charge ---------------------------------------------------------------
    def ask_size(self, batch_size: int) -> int:
        """How many candidates the next batch may have, given what is already reserved."""
        b = self.config
        n = batch_size
        if b.llm_calls is not None and self.counts_calls:
            n = min(n, b.llm_calls - self.calls_reserved)
        if b.evaluations is not None:
            n = min(n, b.evaluations - self.evals_reserved)
        return max(n, 0)

    def calls_left(self, n: int) -> int:
        """LLM calls a batch of ``n`` candidates may still make."""
        calls = self.config.llm_calls
        return n if calls is None else calls - self.calls_reserved

    def reserve(self, *, llm_calls: int = 0, evaluations: int = 0) -> None:
        """Set aside calls and evaluations for a batch that was just asked."""
        self.calls_reserved += llm_calls
        self.evals_reserved += evaluations

    def charge(
        self,
        *,
        llm_calls: int = 0,
        tokens: int = 0,
        cost: float = 0.0,
        evaluations: int = 0,
        judge_calls: int = 0,
    ) -> None:
        """Count what a told batch spent. ``llm_calls`` are the operators' calls (what the
        LLM-call budget limits); ``judge_calls`` the calls that scored candidates, whose tokens
        and cost are in ``tokens`` and ``cost``."""
        self.spent.judge_calls += judge_calls
        self.spent.llm_calls += llm_calls
        self.spent.tokens += tokens
        self.spent.cost += cost
        self.spent.evaluations += evaluations

    def restore(self, spent: Spent) -> None:
        """Resume: what the stored batches spent is spent and reserved."""
        self.spent = Spent(
            spent.llm_calls, spent.tokens, spent.cost, spent.evaluations, spent.judge_calls
        )
        self.calls_reserved = spent.llm_calls
        self.evals_reserved = spent.evaluations

    # -- stop -----------------------------------------------------------------------------
    def stop_reason(self, max_fitness: float | None, batch_size: int) -> str | None:
        """Why the run must stop now, or None: the target, then tokens, cost, wall time, then
        LLM calls or evaluations when not one more candidate may be asked."""
        b = self.config
        target = b.target_fitness
        if target is not None and max_fitness is not None and max_fitness >= target:
            return f"target fitness {b.target_fitness} reached ({max_fitness:.6g})"
        if b.tokens is not None and self.spent.tokens >= b.tokens:
            return f"token budget {b.tokens} spent"
        if b.cost is not None and self.spent.cost >= b.cost:
            return f"cost budget ${b.cost} spent"
        if b.wall_time is not None and self.elapsed >= b.wall_time:
            return self.wall_time_reason()
        if self.ask_size(batch_size) == 0:
            if b.llm_calls is not None and self.calls_reserved >= b.llm_calls:
                return f"LLM-call budget {b.llm_calls} spent"
            return f"evaluation budget {b.evaluations} spent"
        return None
