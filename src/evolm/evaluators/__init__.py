"""Evaluators: where candidate programs run (see :mod:`evolm.evaluators.base`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evolm.evaluators.base import EvalJob, Evaluator

if TYPE_CHECKING:
    from evolm.config import RunConfig
    from evolm.domains.base import Domain

__all__ = ["EvalJob", "Evaluator", "build_evaluator"]


def build_evaluator(config: RunConfig, domain: Domain) -> Evaluator:
    """The evaluator a run configuration describes: today the local sandbox pool."""
    from evolm.evaluators.local import SandboxEvaluator

    eng = config.engine
    return SandboxEvaluator(
        config.domain.name,
        config.domain.params,
        workers=eng.workers,
        timeout=eng.eval_timeout or domain.eval_timeout,
        memory_mb=domain.memory_mb or eng.memory_mb,
        tier=eng.sandbox,
        allow_weak=eng.allow_weak_sandbox,
    )
