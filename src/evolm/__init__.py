"""evolm: Evolution through Large Models.

The quickest way in from Python::

    import evolm
    result = evolm.run({"domain": {"name": "image"}, "budget": {"evaluations": 100}},
                       out="runs/demo.db")

Heavy pieces (pyribs, the engine) are imported on first use, so ``import evolm`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from evolm.domains.base import Domain, DomainContext, register_domain
from evolm.types import AddStatus, DescriptorSpace, Evaluation, Individual, Program, Status

if TYPE_CHECKING:
    from evolm.config import RunConfig
    from evolm.engine import RunResult
    from evolm.evaluators import Evaluator
    from evolm.llm.base import LLMBackend

__version__ = "0.1.0"

__all__ = [
    "AddStatus",
    "DescriptorSpace",
    "Domain",
    "DomainContext",
    "Evaluation",
    "Individual",
    "Program",
    "Status",
    "__version__",
    "register_domain",
    "resume",
    "run",
]


def run(
    config: RunConfig | dict[str, Any],
    *,
    out: str | Path,
    preset: str | None = None,
    llm: LLMBackend | None = None,
    evaluator: Evaluator | None = None,
) -> RunResult:
    """Run an evolution to completion and return how it ended.

    Args:
        config: a :class:`~evolm.config.RunConfig`, or a dict of overrides merged over ``preset``.
        out: the run database to create (must not exist).
        preset: a shipped preset the dict overrides (ignored for a ``RunConfig``).
        llm: a backend instance to use instead of the one the config names.
        evaluator: where programs run instead of the local sandbox pool (see
            :class:`evolm.evaluators.Evaluator`); the caller closes it.

    Raises:
        evolm.config.ConfigError: invalid configuration.
        FileExistsError: ``out`` already exists (use :func:`resume`).
    """
    import asyncio

    from evolm.config import RunConfig, load_config
    from evolm.engine import Engine
    from evolm.store import RunStore

    cfg = config if isinstance(config, RunConfig) else load_config(preset=preset, overrides=config)
    path = Path(out)
    if path.exists():
        raise FileExistsError(
            f"{path} already exists; continue it with evolm.resume({str(path)!r})"
        )
    with RunStore(path) as store:
        return asyncio.run(Engine(cfg, store, llm=llm, evaluator=evaluator).run())


def resume(path: str | Path, *, llm: LLMBackend | None = None) -> RunResult:
    """Continue the run stored in ``path`` (after Ctrl-C, a crash or a spent budget)."""
    import asyncio

    from evolm.config import load_config
    from evolm.engine import Engine
    from evolm.store import RunStore

    with RunStore(path, create=False) as store:
        cfg = load_config(overrides=store.run_info()["config"])
        return asyncio.run(Engine(cfg, store, llm=llm).run(resume=True))
