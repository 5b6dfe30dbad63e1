"""What the ``evolm`` commands share: the stderr console, one-paragraph error messages
(:func:`_fail`, :func:`_guarded`), domain loading, ``--llm`` parsing and the budget and
sandbox options."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from evolm.config import ConfigError, RunConfig
from evolm.store import StoreError, describe_db_error

# soft_wrap: messages are never broken at the terminal width (a path or a command stays on one
# line, and what the CLI prints does not depend on how wide the terminal is).
console = Console(stderr=True, soft_wrap=True)


def _fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
    raise typer.Exit(code)


def _exit_message(exc: SystemExit, what: str) -> str:
    return (
        f"{what} called sys.exit({exc.code!r}) in the engine process, so evolm could not go on. "
        "A domain (or plugin) must raise an exception to report a problem, never exit the "
        "process: replace the sys.exit call in its module or __init__ with a raise"
    )


@contextmanager
def _guarded(db: Path | None, what: str) -> Iterator[None]:
    """Turn what can go wrong while ``what`` works on run database ``db`` into a one-paragraph
    message (exit 2), keeping any traceback in ``RUN.db.log`` rather than on the screen."""
    from evolm.runlock import log_traceback

    try:
        yield
    except typer.Exit:
        raise
    except StoreError as exc:
        _fail(str(exc))
    except BrokenPipeError:
        raise  # the reader of our output went away (e.g. `| head`): not a database problem
    except (sqlite3.Error, OSError) as exc:
        log = log_traceback(db, exc, what)
        where = db if db is not None else "the run database"
        _fail(describe_db_error(where, exc) + (f" (traceback in {log})" * bool(log)))
    except RecursionError as exc:
        log = log_traceback(db, exc, what)
        _fail(
            f"{what} failed: a value stored in {db} is nested too deeply to read "
            f"(RecursionError). The traceback is in {log}; please report it with that file"
        )
    except Exception as exc:
        log = log_traceback(db, exc, what)
        _fail(
            f"{what} failed unexpectedly: {type(exc).__name__}: {exc}. The traceback is in "
            f"{log}; please report it with that file"
        )


def _load_domain(cfg: RunConfig, db: Path | None = None) -> Any:
    """The configured domain, or a one-paragraph message (exit 2) when loading it fails in
    this process: an invalid domain, an import error, or a domain calling ``sys.exit``."""
    from evolm.domains.base import get_domain
    from evolm.runlock import log_traceback

    name = cfg.domain.name
    try:
        return get_domain(name, cfg.domain.params)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
    except SystemExit as exc:
        log = log_traceback(db, exc, f"loading the domain {name}")
        _fail(_exit_message(exc, f"the domain {name}") + (f" (traceback in {log})" * bool(log)))
    except Exception as exc:
        log = log_traceback(db, exc, f"loading the domain {name}")
        _fail(
            f"the domain {name} failed to load: {type(exc).__name__}: {exc}. Fix the domain's "
            f"module (the traceback is in {log})"
        )
    raise AssertionError("unreachable: _fail exits")


def parse_llm_spec(spec: str) -> dict[str, Any]:
    """An ``--llm`` spec -> ``[llm]`` overrides (see :func:`evolm.llm.build.parse_llm_spec`)."""
    from evolm.llm.build import parse_llm_spec as parse

    return parse(spec)


def _kinds(registry: str) -> str:
    """The names of a registry, for help text (imports no heavy module)."""
    from evolm.operators import OPERATORS
    from evolm.operators.bandit import SELECTORS
    from evolm.registry import Registry

    chosen: Registry[Any] = OPERATORS if registry == "operators" else SELECTORS
    names = chosen.names()
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def _budget_overrides(
    llm_calls: int | None,
    tokens: int | None,
    evals: int | None,
    wall: float | None,
    cost: float | None,
    target: float | None,
) -> dict[str, Any]:
    pairs = {
        "llm_calls": llm_calls,
        "tokens": tokens,
        "evaluations": evals,
        "wall_time": wall,
        "cost": cost,
        "target_fitness": target,
    }
    return {k: v for k, v in pairs.items() if v is not None}


BudgetCalls = Annotated[int | None, typer.Option("--budget-llm-calls", help="Max LLM calls.")]
BudgetTokens = Annotated[int | None, typer.Option("--budget-tokens", help="Max tokens in+out.")]
BudgetEvals = Annotated[int | None, typer.Option("--budget-evals", help="Max evaluations.")]
BudgetTime = Annotated[float | None, typer.Option("--budget-time", help="Max wall seconds.")]
BudgetCost = Annotated[float | None, typer.Option("--budget-cost", help="Max USD spent.")]
Target = Annotated[
    float | None, typer.Option("--target-fitness", help="Stop once max fitness reaches this.")
]


SandboxTier = Annotated[
    str | None,
    typer.Option(help="Evaluation jail: auto, bwrap, userns, landlock or weak (see `doctor`)."),
]
AllowWeak = Annotated[
    bool,
    typer.Option(
        "--allow-weak-sandbox",
        help="Allow evaluation without Landlock when nothing stronger works.",
    ),
]


EvaluateOn = Annotated[
    str | None,
    typer.Option(
        "--evaluate-on",
        help="Where programs run: sandbox (this machine's pool) or ray[:ADDRESS] (a jailed "
        "pool on every node of a Ray cluster; needs the ray extra). Sets engine.evaluator.",
    ),
]


def _sandbox_overrides(
    tier: str | None, allow_weak: bool, evaluate_on: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if evaluate_on is not None:
        out["evaluator"] = evaluate_on
    if tier is not None:
        out["sandbox"] = tier
    if allow_weak:
        out["allow_weak_sandbox"] = True
    return out


TRAIN_PACKAGES = ("torch", "transformers", "peft", "gguf")
"""What training a model needs (the ``train`` extra): ``finetune``, ``distill`` and ``rl``."""


def _need_packages(command: str, packages: tuple[str, ...] = TRAIN_PACKAGES) -> None:
    """Exit with the install command when a package ``evolm COMMAND`` needs is missing."""
    missing = [m for m in packages if not importlib.util.find_spec(m)]
    if missing:
        _fail(f"evolm {command} needs {', '.join(missing)}: pip install 'evolm[train]'")


def _training_progress(
    *, speed: bool = True
) -> tuple[Progress, Callable[[int, int, float, float], None]]:
    """A progress bar of training steps and loss (and tokens/s with ``speed``), and the
    ``on_progress(step, total, loss, tokens_per_s)`` callback that updates it."""
    columns = [
        TextColumn("training"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("loss {task.fields[loss]}"),
        *([TextColumn("{task.fields[speed]} tok/s")] if speed else []),
        TimeElapsedColumn(),
    ]
    progress = Progress(*columns, console=console)
    task = progress.add_task("train", total=None, loss="-", speed="-")

    def on_progress(step: int, total: int, loss: float, tokens_per_s: float) -> None:
        progress.update(
            task, completed=step, total=total, loss=f"{loss:.4f}", speed=f"{tokens_per_s:.0f}"
        )

    return progress, on_progress
