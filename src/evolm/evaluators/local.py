"""The default evaluator: a local pool of sandboxed workers (:class:`SandboxPool`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from evolm.evaluators.base import EvalJob, Evaluator
from evolm.sandbox import SandboxPool
from evolm.types import Evaluation

__all__ = ["SandboxEvaluator"]


class SandboxEvaluator(Evaluator):
    """Evaluate jobs in a :class:`SandboxPool` of one domain (see its arguments).

    Jobs of one call run concurrently, up to the pool's worker count; the rest queue.
    """

    name = "sandbox"

    def __init__(
        self,
        domain: str,
        params: dict[str, Any] | None = None,
        *,
        workers: int = 0,
        timeout: float = 5.0,
        memory_mb: int | None = 1024,
        tier: str = "auto",
        allow_weak: bool = False,
    ) -> None:
        super().__init__()
        self.pool = SandboxPool(
            domain,
            params,
            workers=workers,
            timeout=timeout,
            memory_mb=memory_mb,
            tier=tier,
            allow_weak=allow_weak,
        )

    async def start(self) -> None:
        """Start the workers; raises ``SandboxUnavailable`` when no jail works here."""
        await self.pool.start()
        self.info = self.pool.info

    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        if len(jobs) == 1:  # the common case: no gather
            j = jobs[0]
            return [await self.pool.evaluate(j.program.code, j.seed, j.timeout)]
        return list(
            await asyncio.gather(
                *(self.pool.evaluate(j.program.code, j.seed, j.timeout) for j in jobs)
            )
        )

    def close(self) -> None:
        self.pool.close()
