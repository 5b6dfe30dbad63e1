"""What a run tries next, and when it stops: the scheduler, the budget, archive rebuilding.

Everything here is synchronous and deterministic; :mod:`evolm.runner` drives it with asyncio,
the evaluator and the run database.
"""

from __future__ import annotations

from evolm.scheduler.budget import Budget, Spent
from evolm.scheduler.rebuild import apply_batch, build_archive, rebuild_archive, stored_batches
from evolm.scheduler.scheduler import (
    ALL_CALLS_FAILED_STOP,
    LLM_CALL_FAILED,
    SEED,
    Arm,
    Batch,
    Candidate,
    Outcome,
    Pauses,
    Scheduler,
    Snapshot,
    Told,
    build_arms,
    build_selector,
)

__all__ = [
    "ALL_CALLS_FAILED_STOP",
    "LLM_CALL_FAILED",
    "SEED",
    "Arm",
    "Batch",
    "Budget",
    "Candidate",
    "Outcome",
    "Pauses",
    "Scheduler",
    "Snapshot",
    "Spent",
    "Told",
    "apply_batch",
    "build_archive",
    "build_arms",
    "build_selector",
    "rebuild_archive",
    "stored_batches",
]
