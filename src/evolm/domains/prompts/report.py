"""Held-out test accuracy of a prompts run's best instructions (``evolm prompt-test``).

Fitness is validation accuracy, so the best instructions of a run are chosen on the validation
split and flatter themselves there; their accuracy on the test split, which no part of the run
saw, shows how much of it was overfitting. :func:`best_instructions` reads a run's N best
distinct instructions and :func:`prompt_test` scores each on the test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evolm.llm.base import Completion, LLMError, Request

if TYPE_CHECKING:
    from evolm.domains.prompts.domain import PromptsDomain, TaskModel
    from evolm.llm.base import LLMBackend

__all__ = ["BackendTaskModel", "PromptTestRow", "best_instructions", "prompt_test"]


class BackendTaskModel:
    """An LLM backend as a task model, for scoring outside a run: calls are not stored or
    budgeted (inside a run the runner's LLM client does that)."""

    def __init__(self, backend: LLMBackend) -> None:
        self.backend = backend

    async def generate(self, request: Request) -> Completion:
        """The backend's answer to ``request``.

        Raises:
            LLMError: the call failed (the backend's error).
        """
        (completion,) = await self.backend.generate([request])
        if completion.error is not None:
            raise LLMError(completion.error)
        return completion


@dataclass(frozen=True)
class PromptTestRow:
    """One instruction's accuracies: on validation as the run stored it, and on test."""

    program_id: int
    instruction: str
    validation_accuracy: float
    test_accuracy: float


def best_instructions(run_db: Path, top: int) -> list[tuple[int, str, float]]:
    """The ``top`` best distinct instructions a prompts run scored ``ok``: ``(program id,
    instruction, validation accuracy)``, best first (ties: the earliest program first).

    Raises:
        ValueError: ``top`` < 1.
        evolm.store.StoreError: ``run_db`` is not a readable run database.
    """
    from evolm.store import RunStore

    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    with RunStore(run_db, readonly=True) as store:
        rows = [r for r in store.export_rows() if r["status"] == "ok"]
    rows.sort(key=lambda r: (-float(r["fitness"]), r["id"]))
    out: list[tuple[int, str, float]] = []
    seen: set[str] = set()
    for r in rows:
        if r["code"] not in seen:
            seen.add(r["code"])
            out.append((int(r["id"]), r["code"], float(r["fitness"])))
        if len(out) == top:
            break
    return out


async def prompt_test(
    domain: PromptsDomain,
    best: Sequence[tuple[int, str, float]],
    client: TaskModel,
    seed: int = 0,
) -> list[PromptTestRow]:
    """Score each of ``best`` (as :func:`best_instructions` gives them) on ``domain``'s test
    split with ``client``'s task model.

    Raises:
        evolm.domains.prompts.domain.TaskModelFailed: a task-model call failed.
    """
    rows = []
    for program_id, instruction, validation in best:
        test = await domain.test_accuracy(instruction, client, seed)
        rows.append(PromptTestRow(program_id, instruction, validation, test))
    return rows
