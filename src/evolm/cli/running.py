"""``evolm run`` and ``evolm resume``: building the configuration, holding the run
database's writer lock, and executing the run with a progress bar and Ctrl-C handling."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from evolm.cli.common import (
    AllowWeak,
    BudgetCalls,
    BudgetCost,
    BudgetEvals,
    BudgetTime,
    BudgetTokens,
    EvaluateOn,
    SandboxTier,
    Target,
    _budget_overrides,
    _exit_message,
    _fail,
    _guarded,
    _kinds,
    _load_domain,
    _sandbox_overrides,
    console,
    parse_llm_spec,
)
from evolm.config import ConfigError, RunConfig, list_presets, load_config
from evolm.llm.base import LLMBackend
from evolm.store import RunStore, StoreError, describe_db_error


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
    from evolm.coevolution import runner_for
    from evolm.llm.base import LLMError

    if config.llm.backend in ("llama_cpp", "hf", "vllm") and not quiet:
        console.print(f"[dim]loading the {config.llm.backend} model...[/]")
    try:
        view = _ProgressView(config, quiet)
        engine = runner_for(config, store, on_step=view, on_round=view.round)
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
        from evolm.evaluators.ray_cluster import RayUnavailable

        hint = (
            ""
            if isinstance(exc, (DomainStartError, RayUnavailable))
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
    evaluate_on: EvaluateOn = None,
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
        overrides["engine"] = _sandbox_overrides(sandbox, allow_weak_sandbox, evaluate_on)
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
    evaluate_on: EvaluateOn = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Continue a run after a crash, Ctrl-C or a spent budget (budgets may be raised)."""
    budget = _budget_overrides(
        budget_llm_calls, budget_tokens, budget_evals, budget_time, budget_cost, target_fitness
    )
    jail = _sandbox_overrides(sandbox, allow_weak_sandbox, evaluate_on)
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
