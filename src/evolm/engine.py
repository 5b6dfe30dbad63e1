"""Compatibility names: the run loop now lives in :mod:`evolm.runner` (the asyncio runner)
and :mod:`evolm.scheduler` (ask / tell, budgets, archive rebuilding).

``Engine`` is :class:`evolm.runner.Runner`. The backend builder now lives in
:mod:`evolm.llm.build`; its names are re-exported here.
"""

from __future__ import annotations

from evolm.llm.build import SHIPPED, build_backend, resolve_adapter, resolve_cassette
from evolm.runner import PromptTooLong, Runner, RunResult, dependency_versions
from evolm.scheduler import Arm, Snapshot, apply_batch, build_archive, rebuild_archive

Engine = Runner

__all__ = [
    "SHIPPED",
    "Arm",
    "Engine",
    "PromptTooLong",
    "RunResult",
    "Snapshot",
    "apply_batch",
    "build_archive",
    "build_backend",
    "dependency_versions",
    "rebuild_archive",
    "resolve_adapter",
    "resolve_cassette",
]
