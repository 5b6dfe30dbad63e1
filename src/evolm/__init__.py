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
    from evolm.config import BudgetConfig, RunConfig
    from evolm.evaluators import Evaluator
    from evolm.llm.base import LLMBackend
    from evolm.runner import RunResult

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

    While it runs, the run holds ``out``'s single-writer lock (``out.lock``, see
    :mod:`evolm.runlock`). A run that fails before it begins (the domain or the sandbox fails at
    start, the prompt does not fit) leaves no database behind.

    Raises:
        evolm.config.ConfigError: invalid configuration.
        FileExistsError: ``out`` already exists (use :func:`resume`).
        evolm.runlock.RunLocked: another process is writing ``out``.
        evolm.store.StoreError: ``out`` cannot be created (e.g. the disk is full).
    """
    import asyncio

    from evolm.coevolution import runner_for
    from evolm.config import RunConfig, load_config
    from evolm.runlock import RunLock
    from evolm.store import RunStore

    cfg = config if isinstance(config, RunConfig) else load_config(preset=preset, overrides=config)
    path = Path(out)
    with RunLock(path, command=f"evolm.run(out={str(path)!r})"):
        if path.exists():
            raise FileExistsError(
                f"{path} already exists; continue it with evolm.resume({str(path)!r})"
            )
        try:
            store = RunStore(path)
        except BaseException:
            _remove_db(path)  # it did not exist a moment ago
            raise
        began = True
        try:
            with store:
                try:
                    engine = runner_for(cfg, store, llm=llm, evaluator=evaluator)
                    return asyncio.run(engine.run())
                finally:
                    began = _holds_run(store)
        except BaseException:
            if not began:  # failed before the run began: leave no empty database behind
                _remove_db(path)
            raise


def _remove_db(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        p.unlink(missing_ok=True)


def _holds_run(store: Any) -> bool:
    try:
        return bool(store.has_run())
    except Exception:
        return True  # cannot tell: keep the file


def resume(
    path: str | Path,
    *,
    llm: LLMBackend | None = None,
    budget: BudgetConfig | dict[str, Any] | None = None,
    evaluator: Evaluator | None = None,
) -> RunResult:
    """Continue the run stored in ``path`` (after Ctrl-C, a crash or a spent budget).

    Args:
        path: the run database.
        llm: a backend instance to use instead of the one the config names.
        budget: budget limits to change, like ``evolm resume --budget-*``: a dict of
            :class:`~evolm.config.BudgetConfig` fields (e.g. ``{"evaluations": 200}``) or a
            ``BudgetConfig``, whose explicitly set fields count. The fields given replace the
            stored ones, the others keep their stored values, and the new budget is stored with
            the run.
        evaluator: where programs run instead of the local sandbox pool; the caller closes it.

    Raises:
        evolm.config.ConfigError: ``budget`` names an unknown field or an invalid value.
        evolm.store.StoreError: ``path`` is not a run database (it is left untouched).
        evolm.runlock.RunLocked: another process is writing ``path``.
    """
    import asyncio

    from evolm.coevolution import runner_for
    from evolm.config import BudgetConfig, load_config
    from evolm.runlock import RunLock
    from evolm.store import RunStore, StoreError

    if not Path(path).exists():
        raise StoreError(f"run database {path} does not exist")
    with (
        RunLock(path, command=f"evolm.resume({str(path)!r})"),
        RunStore(path, create=False) as store,
    ):
        data = store.run_info()["config"]
        if budget is not None:
            if isinstance(budget, BudgetConfig):
                changes = budget.model_dump(mode="json", exclude_unset=True)
            else:
                changes = dict(budget)
            data["budget"] = {**data.get("budget", {}), **changes}
        cfg = load_config(overrides=data)
        if budget is not None:
            store.update_config(cfg.model_dump(mode="json"))
        engine = runner_for(cfg, store, llm=llm, evaluator=evaluator)
        return asyncio.run(engine.run(resume=True))
