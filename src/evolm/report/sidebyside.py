"""Several runs side by side: runs grouped by configuration, curves as a mean with a 95 %
Student-t band across the group's seeds, and a final table with intervals.

Runs whose configurations are equal except for the seed form one group (or share the
``label`` a run's configuration carries, as ``evolm compare`` writes it). Curves are put on a
common axis per group (LLM calls, evaluations, tokens or seconds) by carrying each run's last
value forward, only up to where every run of the group still has data, so a mean never mixes
finished and unfinished seeds. Where :func:`evolm.report.html.build_report` measured the runs on
a reference grid (``run["reference"]``), QD score, coverage, best and mean fitness are those.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from evolm.report.sampling import round_sig
from evolm.stats import t_interval

__all__ = ["AXES", "METRICS", "compare_runs", "group_runs", "step_value", "summarise"]

AXES = ("llm_calls", "evaluations", "tokens", "elapsed")
METRICS = ("qd_score", "coverage", "max_fitness", "mean_fitness")
FINAL = (*METRICS, "elites", "evaluations", "llm_calls", "tokens", "elapsed")


def step_value(xs: Sequence[float], ys: Sequence[Any], x: float) -> Any:
    """The value of a step curve at ``x``: ``ys[i]`` of the last ``xs[i] <= x`` (None before
    the first point). ``xs`` is non-decreasing."""
    lo, hi = 0, len(xs)
    while lo < hi:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return ys[lo - 1] if lo else None


def summarise(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "half", "n"}`` over the values that are not None: the mean and the half-width
    of its 95 % t interval (None with fewer than two values, or with no values at all)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "half": None, "n": 0}
    mean, half = t_interval(vals)
    return {"mean": round_sig(mean), "half": round_sig(half), "n": len(vals)}


def _flatten(d: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(d, dict):
        out: dict[str, str] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(d, sort_keys=True, default=str)}


def group_runs(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups of runs, in order of first appearance: ``{"label", "key", "members": [index]}``.

    Runs sharing a ``label`` form one group; otherwise runs sharing their configuration minus
    the seed. A group without a label is named by the settings that tell it from the other
    groups (e.g. ``archive.kind=cvt``), or by its domain when there is one group.
    """
    groups: dict[str, dict[str, Any]] = {}
    for i, run in enumerate(runs):
        label = run["info"].get("label")
        key = f"label:{label}" if label else run["info"]["label_key"]
        g = groups.setdefault(key, {"label": label, "key": key, "members": []})
        g["members"].append(i)
    unnamed = [g for g in groups.values() if not g["label"]]
    if unnamed:
        flats = [_flatten(json.loads(g["key"])) for g in unnamed]
        keys = sorted(set().union(*flats))
        differing = [k for k in keys if len({f.get(k) for f in flats}) > 1]
        # settings every group has first (archive.kind before a kind's own parameters)
        differing.sort(key=lambda k: not all(k in f for f in flats))
        for g, flat in zip(unnamed, flats, strict=True):
            parts = [f"{k}={json.loads(flat[k])}" for k in differing[:3] if k in flat]
            first = runs[g["members"][0]]["info"]
            g["label"] = ", ".join(parts) or f"{first['domain']} ({first['archive']})"
    return list(groups.values())


def _series(run: dict[str, Any]) -> dict[str, list[Any]]:
    """The run's curves, with the search-quality metrics measured on the comparison's reference
    grid when there is one (:mod:`evolm.report.reference`)."""
    ref = run.get("reference")
    return {**run["series"], **ref["series"]} if ref else run["series"]


def _curves(runs: Sequence[dict[str, Any]], points: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    series = [_series(r) for r in runs]
    for axis in AXES:
        finals = [s[axis][-1] for s in series if s[axis]]
        firsts = [s[axis][0] for s in series if s[axis]]
        if len(finals) < len(runs) or not finals:
            continue
        lo, hi = min(firsts), min(finals)
        grid = [lo + (hi - lo) * i / (points - 1) for i in range(points)] if hi > lo else [hi]
        per_metric: dict[str, Any] = {}
        for metric in METRICS:
            stats = [
                summarise([step_value(r["series"][axis], r["series"][metric], x) for r in runs])
                for x in grid
            ]
            per_metric[metric] = {
                "mean": [s["mean"] for s in stats],
                "half": [s["half"] for s in stats],
            }
        out[axis] = {"x": [round_sig(x) for x in grid], "metrics": per_metric}
    return out


def _final(run: dict[str, Any]) -> dict[str, Any]:
    s = _series(run)
    return {k: (s[k][-1] if s.get(k) else None) for k in FINAL}


def compare_runs(runs: Sequence[dict[str, Any]], *, points: int = 120) -> dict[str, Any]:
    """The side-by-side data: groups with their curves (mean and half-width per point, per
    axis and metric) and final values with intervals, and one row per run."""
    groups = []
    for g in group_runs(runs):
        members = [runs[i] for i in g["members"]]
        finals = [_final(r) for r in members]
        groups.append(
            {
                "label": g["label"],
                "members": g["members"],
                "seeds": [r["info"]["seed"] for r in members],
                "curves": _curves(members, points),
                "final": {k: summarise([f[k] for f in finals]) for k in FINAL},
            }
        )
    rows = [
        {"index": i, "name": r["name"], "seed": r["info"]["seed"], "state": r["info"]["state"],
         **_final(r)}
        for i, r in enumerate(runs)
    ]  # fmt: skip
    measured = [r["reference"]["bins"] for r in runs if r.get("reference")]
    return {
        "groups": groups,
        "runs": rows,
        "axes": list(AXES),
        "metrics": list(METRICS),
        "reference_bins": measured[0] if len(measured) == len(runs) and runs else None,
    }
