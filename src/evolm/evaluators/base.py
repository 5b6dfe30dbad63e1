"""The evaluator protocol: candidate programs in, evaluations out.

An :class:`Evaluator` runs untrusted programs somewhere other than the engine's process (a local
sandbox pool, a cluster) and returns one :class:`~evolm.types.Evaluation` per job, never raising
for anything a program does. The runner calls :meth:`Evaluator.evaluate` as soon as a
candidate's code is ready (often one job at a time, so LLM sampling and evaluation overlap);
an implementation may batch, queue or spread the jobs as it likes. What comes back is checked by
the runner against the domain's descriptor space (:meth:`Evaluation.checked`) before any archive
sees it, so an evaluator cannot insert a non-finite or out-of-shape result.

Implementations: :class:`~evolm.evaluators.local.SandboxEvaluator` (the default, a pool of
jailed local workers). Pass another as ``evaluator=`` to :class:`evolm.runner.Runner` or
:func:`evolm.run`; whoever builds an evaluator closes it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evolm.types import Evaluation, Program

__all__ = ["EvalJob", "Evaluator"]


@dataclass(frozen=True)
class EvalJob:
    """One program to evaluate: the program (code and lineage), the seed its evaluation is
    reseeded with, and its time limit in seconds."""

    program: Program
    seed: int
    timeout: float


class Evaluator(ABC):
    """Base class of evaluators.

    Attributes:
        name: what the run's ``sandbox`` event records as the evaluator.
        info: details for that event once started (e.g. the sandbox tier and why).
    """

    name: str = "evaluator"

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Get ready (start workers, connect); raise before the run stores anything if the
        evaluator cannot work."""

    @abstractmethod
    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        """One evaluation per job, in order. Never raises for what a program does: failures
        are evaluations with a non-ok status."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers and files; safe to call twice."""
