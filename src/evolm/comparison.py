"""Measuring the runs of an experiment (``evolm compare``) on one yardstick, and the table that
compares its arms: mean and 95 % Student-t interval across seeds, and ratios to a reference arm.

Each arm keeps its own archive while it runs (a grid, a GA population, best-of-N's champion),
and the archives' own QD scores are not comparable: best-of-N's "archive" is one cell. So QD score
and coverage here are those of one *reference grid* per comparison (the first arm's grid bins,
else 10 per descriptor, and one QD offset), into which every valid program a run evaluated is
inserted: what the run found, measured the same way for every arm. Best fitness is the best valid
program's; insertions count the candidates (seeds excluded) that entered the run's *own* archive
(NEW or IMPROVED); valid share is the share of evaluated candidates (seeds excluded) that ran and
were scored. This module only reads run databases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolm.stats import t_interval

__all__ = [
    "METRICS",
    "USAGE",
    "ReferenceGrid",
    "format_table",
    "interval",
    "measure_run",
    "ratios",
    "summarise",
]

METRICS: tuple[tuple[str, str], ...] = (
    ("qd_score", "QD score"),
    ("coverage", "coverage"),
    ("best_fitness", "best fitness"),
    ("insertions", "insertions"),
    ("valid_share", "valid share"),
)
"""The search-quality figures of a run: key and column title."""

USAGE: tuple[tuple[str, str], ...] = (
    ("llm_calls", "LLM calls"),
    ("evaluations", "evaluations"),
    ("tokens", "tokens"),
)
"""What a run spent (the budgets' units): key and column title."""


@dataclass(frozen=True)
class ReferenceGrid:
    """The grid every run of a comparison is measured on.

    Args:
        bins: one bin count for every descriptor, or one per descriptor.
        qd_offset: subtracted from every fitness in the QD score; None: each run's own (its
            ``archive.qd_offset``, else its domain's).
    """

    bins: int | tuple[int, ...] = 10
    qd_offset: float | None = None

    def to_json(self) -> dict[str, Any]:
        bins = self.bins if isinstance(self.bins, int) else list(self.bins)
        return {"bins": bins, "qd_offset": self.qd_offset}


def measure_run(path: str | Path, grid: ReferenceGrid) -> dict[str, Any]:
    """The figures of the run stored in ``path``: how it ended, what it spent (``USAGE``) and
    the search-quality figures (``METRICS``) on ``grid``.

    Raises:
        evolm.store.StoreError: ``path`` is not a run database or holds no run.
        evolm.config.ConfigError: its stored configuration no longer validates.
    """
    from evolm.archives import make_archive
    from evolm.config import load_config
    from evolm.domains.base import get_domain
    from evolm.store import RunStore

    with RunStore(path, readonly=True) as store:
        info = store.run_info()
        cfg = load_config(overrides=info["config"])
        domain = get_domain(cfg.domain.name, cfg.domain.params)
        offset = grid.qd_offset
        if offset is None:
            offset = cfg.archive.qd_offset
        if offset is None:
            offset = domain.qd_offset
        bins = grid.bins if isinstance(grid.bins, int) else list(grid.bins)
        archive = make_archive("grid", domain.descriptor_space, qd_offset=offset, bins=bins)
        chunk = []
        for ind in store.evaluated():
            if ind.evaluation.ok:
                chunk.append(ind)
            if len(chunk) >= 256:
                archive.add(chunk)
                chunk = []
        if chunk:
            archive.add(chunk)
        stats = archive.stats
        candidates = valid = inserted = 0
        for row in store.export_rows():
            if row["batch"] == 0 or row["status"] is None:
                continue
            candidates += 1
            valid += row["status"] == "ok"
            inserted += bool(row["add_status"])
        totals = store.llm_totals()
        tail = _tokens_before_tail(store, cfg.engine.pipeline_depth)
        evaluations = int(store.evaluation_totals()["evaluations"])
        end = store.end_event()
        last = store.last_step()
    return {
        "path": str(path),
        "status": info["status"],
        "reason": end.reason if end is not None else "",
        "llm_calls": int(totals["calls"]),
        "evaluations": evaluations,
        "tokens": int(totals["tokens_in"] + totals["tokens_out"]),
        "tokens_before_tail": tail,
        "qd_score": float(stats.qd_score),
        "coverage": float(stats.coverage),
        "best_fitness": None if stats.max_fitness is None else float(stats.max_fitness),
        "insertions": inserted,
        "valid_share": valid / candidates if candidates else None,
        "archive": {
            "kind": cfg.archive.kind,
            "qd_score": None if last is None else last.qd_score,
            "coverage": None if last is None else last.coverage,
            "elites": None if last is None else last.num_elites,
        },
    }


def _tokens_before_tail(store: Any, depth: int) -> int:
    """Tokens of the calls before the run's last ``depth`` batches: a run under a token budget
    stops asking once it is spent, but the batches already asked (at most ``depth``) finish, so
    a run that stopped in time has spent less than its budget before them."""
    calls = list(store.llm_calls())
    if not calls:
        return 0
    last = max(c.batch or 0 for c in calls)
    return sum(
        c.completion.tokens_in + c.completion.tokens_out
        for c in calls
        if (c.batch or 0) <= last - depth
    )


def interval(values: Sequence[float | None]) -> dict[str, Any] | None:
    """``{"mean", "half", "n"}`` of the given values (None values left out): the mean and the
    half-width of its 95 % Student-t interval (None for a single value); None when no value."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    mean, half = t_interval(kept)
    return {"mean": mean, "half": half, "n": len(kept)}


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any] | None]:
    """The interval of every metric and usage figure over one arm's runs (one per seed)."""
    keys = [k for k, _ in METRICS] + [k for k, _ in USAGE]
    return {k: interval([r.get(k) for r in runs]) for k in keys}


def ratios(
    summary: Mapping[str, dict[str, Any] | None], reference: Mapping[str, dict[str, Any] | None]
) -> dict[str, float | None]:
    """Each metric's mean divided by the reference arm's mean; None where a ratio means
    nothing (no value, a reference mean of 0 or less, or a negative mean: fitness can be
    negative, and a ratio of negative numbers reads the wrong way round)."""
    out: dict[str, float | None] = {}
    for key, _ in METRICS:
        mine, ref = summary.get(key), reference.get(key)
        if mine is None or ref is None or ref["mean"] <= 0 or mine["mean"] < 0:
            out[key] = None
        else:
            out[key] = mine["mean"] / ref["mean"]
    return out


def _num(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1e4:
        return f"{x:.0f}"  # token counts: whole numbers read better than 1.254e+04
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}"


def format_interval(iv: Mapping[str, Any] | None) -> str:
    """``mean ± half`` (``mean`` alone for one run, ``-`` for none)."""
    if iv is None:
        return "-"
    if iv["half"] is None:
        return _num(iv["mean"])
    return f"{_num(iv['mean'])} ± {_num(iv['half'])}"


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}x"


def format_table(arms: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as a Markdown table, one row per arm, widths independent of the terminal.

    Each arm is ``{"label", "runs": [measures], "summary", "ratio_first", "ratio_best_of_n"}``
    (see :func:`summarise` and :func:`ratios`; the ratio columns show the QD score's ratio)."""
    head = ["arm", "runs"] + [t for _, t in METRICS] + [t for _, t in USAGE]
    head += ["QD / first", "QD / best-of-n"]
    rows = [head]
    for arm in arms:
        summary = arm["summary"]
        row = [str(arm["label"]), str(len(arm["runs"]))]
        row += [format_interval(summary.get(k)) for k, _ in METRICS]
        row += [format_interval(summary.get(k)) for k, _ in USAGE]
        first = arm.get("ratio_first") or {}
        best = arm.get("ratio_best_of_n") or {}
        row += [_ratio(first.get("qd_score")), _ratio(best.get("qd_score"))]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(rows[0]), sep, *(line(r) for r in rows[1:])])
