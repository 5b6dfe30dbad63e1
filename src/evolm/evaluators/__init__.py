"""Evaluators: where candidate programs run (see :mod:`evolm.evaluators.base`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evolm.evaluators.base import EvalJob, Evaluator

if TYPE_CHECKING:
    from evolm.config import RunConfig
    from evolm.domains.base import Domain
    from evolm.types import Evaluation

__all__ = ["EngineScored", "EvalJob", "Evaluator", "build_evaluator"]


class EngineScored(Evaluator):
    """The evaluator of an LLM-scored domain (``scoring = "llm"``): nothing runs in a sandbox,
    the runner scores each text with the domain's ``assess`` in the engine."""

    name = "none"

    def __init__(self) -> None:
        super().__init__()
        self.info = {"scoring": "llm"}

    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        """Never called: LLM-scored candidates are assessed by the runner."""
        raise RuntimeError("an LLM-scored domain's texts are assessed by the runner, not run")


def build_evaluator(config: RunConfig, domain: Domain) -> Evaluator:
    """The evaluator a run configuration describes (``engine.evaluator``): the local sandbox
    pool, a :class:`~evolm.evaluators.ray_cluster.RayEvaluator` (``ray[:ADDRESS]``, with
    ``engine.workers`` per node), or :class:`EngineScored` for an LLM-scored domain."""
    if domain.scoring == "llm":
        return EngineScored()
    eng = config.engine
    common: dict[str, Any] = {
        "workers": eng.workers,
        "timeout": eng.eval_timeout or domain.eval_timeout,
        "memory_mb": domain.memory_mb or eng.memory_mb,
        "tier": eng.sandbox,
        "allow_weak": eng.allow_weak_sandbox,
    }
    kind, _, address = eng.evaluator.partition(":")
    if kind == "ray":
        from evolm.evaluators.ray_cluster import RayEvaluator

        return RayEvaluator(
            config.domain.name, config.domain.params, address=address or None, **common
        )
    from evolm.evaluators.local import SandboxEvaluator

    return SandboxEvaluator(config.domain.name, config.domain.params, **common)
