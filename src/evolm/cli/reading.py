"""The commands that read a run database: ``evolm status`` (summary, tables and a text
heatmap), ``evolm export`` and ``evolm show``. They import neither the runner nor the sandbox
pool nor an LLM client (tests/test_read_imports.py)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from evolm.cli.common import _fail, _guarded, console
from evolm.config import RunConfig
from evolm.store import RunStore, StoreError


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


def _task_summary(cfg: RunConfig) -> str:
    """A task run's name and fitness metric (read from its files, which may have moved)."""
    from evolm.domains.base import get_domain

    try:
        dom: Any = get_domain("task", cfg.domain.params)
    except Exception as exc:  # the task's files were moved or changed since the run
        return f"its files cannot be read now ({exc})"
    fitness = dom.spec.fitness or "fitness (or combined_score)"
    return f"{dom.task_name}: fitness metric {fitness}, evaluator {dom.evaluator_name}"


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
