"""``evolm report``: one self-contained HTML page for one or more run databases (see
:mod:`evolm.report.html`). Like the other reading commands it imports neither the runner nor an
LLM client; the sandbox is used only to re-run a few Sodarace walkers for gait animations
(skip with ``--no-animations``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evolm.cli.common import _fail, _guarded, console


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def report(
    run_dbs: Annotated[list[Path], typer.Argument(help="Run database(s); several are compared.")],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    max_elites: Annotated[
        int, typer.Option(help="Elites that carry code and lineage (the best ones).", min=1)
    ] = 2000,
    animations: Annotated[
        bool,
        typer.Option(
            "--animations/--no-animations",
            help="Re-run a few Sodarace walkers in the sandbox for gait animations.",
        ),
    ] = True,
) -> None:
    """Write a self-contained HTML report (archive, curves, operators, failures, elites with
    lineage, runs side by side); it opens offline in any browser."""
    from evolm.report.data import ReportError, ReportLimits
    from evolm.report.html import build_report

    if out.is_dir():
        _fail(f"--out {out} is a directory; give a file name such as {out / 'report.html'}")
    if not out.parent.is_dir():
        _fail(
            f"the folder of --out {out} does not exist; create it (mkdir -p {out.parent}) or "
            "choose another path"
        )
    for db in run_dbs:
        if not db.exists():
            _fail(f"run database {db} does not exist; check the path (`evolm run` creates one)")
        if db.is_dir():
            _fail(f"{db} is a directory, not a run database")
    first = run_dbs[0] if run_dbs else None
    with _guarded(first, f"evolm report {' '.join(map(str, run_dbs))}"):
        try:
            path = build_report(
                run_dbs, out, limits=ReportLimits(max_elites=max_elites), animations=animations
            )
        except ReportError as exc:
            _fail(str(exc))
            return
    console.print(f"wrote {path} ({_size(path.stat().st_size)})", highlight=False)
