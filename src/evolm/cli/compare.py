"""``evolm compare``: configurations side by side over seeds at one equal budget, with the
built-in baselines, a table with 95 % intervals, and the report (see :mod:`evolm.experiment`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from evolm.cli.common import (
    AllowWeak,
    BudgetCalls,
    BudgetEvals,
    BudgetTokens,
    SandboxTier,
    Target,
    _fail,
    _sandbox_overrides,
    console,
    parse_llm_spec,
)
from evolm.config import ConfigError
from evolm.store import StoreError


def parse_seeds(text: str) -> list[int]:
    """``0,1,2``, ``0-4`` or a mix (``0-2,7``) -> the seeds, in order, without repeats.

    Raises:
        ConfigError: anything else (the message shows the forms).
    """
    seeds: list[int] = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        try:
            values = range(int(lo), int(hi) + 1) if dash else [int(lo)]
        except ValueError:
            values = []
        if not values or any(v < 0 for v in values):
            raise ConfigError(
                f"--seeds {text!r}: write seeds as 0,1,2 or a range 0-4 (non-negative integers)"
            )
        seeds += [v for v in values if v not in seeds]
    if not seeds:
        raise ConfigError(f"--seeds {text!r}: no seed given; write e.g. --seeds 0,1,2")
    return seeds


def parse_baselines(text: str | None) -> list[str]:
    """``best-of-n,ga,gp,random``, ``all`` or ``none`` -> the baselines asked for."""
    from evolm.experiment import BASELINES

    if text is None or text.strip() in ("", "none"):
        return []
    if text.strip() == "all":
        return list(BASELINES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    aliases = {"best_of_n": "best-of-n", "bestofn": "best-of-n", "best-of-N": "best-of-n"}
    names = [aliases.get(n, n) for n in names]
    for n in names:
        if n not in BASELINES:
            raise ConfigError(
                f"--baselines: unknown baseline {n!r}; choose from {', '.join(BASELINES)}, "
                "comma-separated, or all"
            )
    return list(dict.fromkeys(names))


def _budget(calls: int | None, evals: int | None, tokens: int | None) -> Any:
    from evolm.experiment import ExperimentBudget

    pairs = (("llm_calls", calls), ("evaluations", evals), ("tokens", tokens))
    given = [(k, v) for k, v in pairs if v is not None]
    if len(given) != 1:
        raise ConfigError(
            "give exactly one budget, the same for every run: --budget-llm-calls N (LLM arms, "
            "best-of-N), --budget-evals N or --budget-tokens N"
            + (f" (got {len(given)})" if given else "")
        )
    return ExperimentBudget(*given[0])


def _report(out: Path, dbs: list[Path]) -> None:
    """Build ``OUT/report.html`` with ``evolm report`` when this evolm has that command."""
    from evolm.cli import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    if "report" not in names:
        console.print(
            "note: --report: this evolm has no `evolm report` command yet; the table is in "
            f"{out / 'compare.md'}",
            markup=False,
            highlight=False,
        )
        return
    html = out / "report.html"
    cmd = [sys.executable, "-m", "evolm", "report", *map(str, dbs), "--out", str(html)]
    proc = subprocess.run(cmd, check=False)
    if proc.returncode == 0:
        console.print(f"report: {html}", markup=False, highlight=False)
    else:
        console.print(f"note: evolm report failed (exit {proc.returncode})", highlight=False)


def compare(
    domain: Annotated[
        str,
        typer.Argument(help="Domain to compare on (e.g. image, sodarace), or a task directory."),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Directory for the runs (ARM-seedN.db), compare.json and compare.md; a second "
            "call with the same directory skips finished runs and resumes interrupted ones."
        ),
    ],
    arm: Annotated[
        list[str] | None,
        typer.Option(
            "--arm",
            help="NAME=SPEC, repeatable; SPEC: preset:NAME, config:FILE.toml and KEY=VALUE items "
            "separated by ';' (e.g. 'rewrite=preset:embedded;operators=[{kind=\"rewrite\"}]'); "
            "NAME= alone is the common configuration. The first arm is the reference.",
        ),
    ] = None,
    baselines: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated built-in baselines derived from the first arm: best-of-n, ga, "
            "gp, random (or all)."
        ),
    ] = None,
    seeds: Annotated[str, typer.Option(help="Seeds of every arm: 0,1,2 or 0-4.")] = "0,1,2",
    budget_llm_calls: BudgetCalls = None,
    budget_evals: BudgetEvals = None,
    budget_tokens: BudgetTokens = None,
    target_fitness: Target = None,
    llm: Annotated[
        str | None,
        typer.Option(help="The model of every arm (as in `evolm run --llm`, e.g. fake)."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="Preset of arms that name none (default: the domain's own)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE for every arm (before the arms' own); repeatable."),
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Runs at once (worker processes).")] = 1,
    report: Annotated[
        bool, typer.Option("--report", help="Also build OUT/report.html with `evolm report`.")
    ] = False,
    sandbox: SandboxTier = None,
    allow_weak_sandbox: AllowWeak = False,
) -> None:
    """Run configurations side by side over seeds at an equal budget, with baselines, and
    print the table (mean and 95 % interval across seeds)."""
    from evolm.cli.running import _task_domain
    from evolm.experiment import Experiment, parse_arm, run_experiment

    try:
        table = _task_domain(domain, None, None, None) or {"name": domain}
        exp = Experiment(
            domain=table,
            arms=[parse_arm(a) for a in arm or []],
            seeds=parse_seeds(seeds),
            budget=_budget(budget_llm_calls, budget_evals, budget_tokens),
            out=out,
            baselines=parse_baselines(baselines),
            llm=parse_llm_spec(llm) if llm else None,
            preset=preset or ("task" if table["name"] == "task" else None),
            assignments=list(set_ or []),
            target_fitness=target_fitness,
            engine=_sandbox_overrides(sandbox, allow_weak_sandbox),
        )
        if not exp.arms:
            raise ConfigError(
                "no arm given: name at least one configuration with --arm NAME=SPEC, e.g. "
                f"--arm map-elites= (the {table['name']} preset) or --arm "
                "map-elites=preset:embedded"
            )

        def say(text: str) -> None:
            console.print(escape(text), highlight=False)

        result = run_experiment(exp, jobs=jobs, log=say)
    except (ConfigError, ValueError, StoreError) as exc:
        _fail(str(exc))
        return
    except KeyboardInterrupt:
        console.print(
            f"\ninterrupted: what ran is stored in {out}; run the same command again to go on "
            "(finished runs are skipped, the interrupted one is resumed)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(130) from None
    print(result["table"])
    console.print(
        f"written: {out / 'compare.json'}, {out / 'compare.md'}", markup=False, highlight=False
    )
    if result["warnings"]:
        console.print(
            f"{len(result['warnings'])} warning(s): see above and {out / 'compare.md'}",
            markup=False,
            highlight=False,
        )
    if report:
        dbs = [Path(r["path"]) for a in result["arms"] for r in a["runs"]]
        _report(out, dbs)
