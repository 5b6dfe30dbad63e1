"""A run database read into plain, JSON-able data for the HTML report.

Everything here reads: the database is opened read-only (``RunStore(readonly=True)`` and, for a
few grouped queries, a ``mode=ro`` SQLite connection), so a run still being written, or one
that was killed, can be reported on while it stays untouched. Archive states come from
:func:`evolm.scheduler.rebuild.rebuild_archive`, the code the live run and ``evolm status``
use, never from re-derived rules.

Large runs stay usable because every part of the page is bounded (:class:`ReportLimits`):
series are downsampled, snapshots are few, only the best ``max_elites`` elites carry code,
lineage has a node budget, and long texts are cut with a note saying how much was cut.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evolm.report.lineage import ProgramReader, build_lineage
from evolm.report.sampling import downsample_indices, even_picks, round_sig, truncate, windows
from evolm.report.taxonomy import group_failures
from evolm.store import RunStore, StoreError

__all__ = ["ReportError", "ReportLimits", "config_label_key", "load_run"]


class ReportError(ValueError):
    """A run database cannot be reported on (no programs yet, a configuration this evolm cannot
    read); the message names the file and what to do."""


@dataclass(frozen=True)
class ReportLimits:
    """How much of a run goes into the page (the page must open in seconds for 10^5 programs).

    ``max_elites``: elites carrying code and details (the best ones); ``max_points``: points per
    time series; ``snapshots``: archive fill snapshots; ``windows``: time windows of the
    operator rates; ``code_chars``: longest code shown; ``max_views``: elites given a domain
    view (pictures); ``best``: rows of the best-elites table; ``lineage_depth`` and
    ``lineage_nodes``: bounds of the lineage walk; ``top_failures``: failure groups listed.
    """

    max_elites: int = 2000
    max_points: int = 500
    snapshots: int = 16
    windows: int = 30
    code_chars: int = 12000
    max_views: int = 60
    best: int = 20
    lineage_depth: int = 40
    lineage_nodes: int = 3000
    top_failures: int = 15
    animations: int = 4


def config_label_key(config: dict[str, Any]) -> str:
    """The configuration without its seed, as canonical JSON: runs with equal keys differ only
    in their seed and form one group when reports compare runs."""
    rest = {k: v for k, v in config.items() if k not in ("seed", "label")}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)


def _run_state(path: Path, stored: str) -> str:
    """``running`` only while a process holds the run's lock; a run stored as running whose
    writer is gone was interrupted (killed, or the machine stopped)."""
    from evolm.runlock import lock_holder

    if lock_holder(path) is not None:
        return stored
    return "interrupted" if stored == "running" else stored


EXPERIMENT_EVENT = "experiment"
"""The event ``evolm compare`` records in each of its runs: ``{"label", "spec", "seed", ...}``."""


def _experiment_label(store: RunStore) -> str | None:
    """The arm label ``evolm compare`` gave this run, or None for a run made otherwise."""
    event = store.last_event(EXPERIMENT_EVENT)
    label = event["payload"].get("label") if event else None
    return str(label) if label else None


def _connect_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def _archive_shape(archive: Any, space: Any) -> dict[str, Any]:
    """How the page draws the archive: ``grid`` (bins per descriptor; cells are row-major
    indices), ``cvt`` (centroids in descriptor units) or ``points`` (archives without cells:
    elites at their descriptors)."""
    from evolm.archives import CVTArchive

    shape: dict[str, Any] = {
        "names": list(space.names),
        "bounds": [list(b) for b in space.bounds],
        "kind": type(archive).name if hasattr(type(archive), "name") else "archive",
    }
    if hasattr(archive, "dims"):
        shape.update(mode="grid", dims=[int(d) for d in archive.dims], cells=int(archive.cells))
    elif isinstance(archive, CVTArchive):
        lo, hi = space.lower, space.upper
        cents = archive.centroids * (hi - lo) + lo
        shape.update(
            mode="cvt",
            cells=int(archive.cells),
            centroids=[[round_sig(float(v), 5) for v in c] for c in cents],
        )
    else:
        shape.update(mode="points", cells=None)
    return shape


def _snapshot(archive: Any, batch: int, step: Any, mode: str) -> dict[str, Any]:
    """The archive's elites after ``batch``: ids, fitness and cells (or descriptors)."""
    rows = archive.export()
    snap: dict[str, Any] = {
        "batch": batch,
        "evaluations": step.evaluations if step else None,
        "llm_calls": step.llm_calls if step else None,
        "ids": [r["id"] for r in rows],
        "fit": [round_sig(float(r["fitness"])) for r in rows],
    }
    if mode == "points":
        snap["desc"] = [[round_sig(float(v), 5) for v in r["descriptors"]] for r in rows]
    else:
        snap["cell"] = [int(r["cell"]) for r in rows]
    return snap


def _failures(conn: sqlite3.Connection, top: int) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT status, error, COUNT(*), MIN(program_id) FROM evaluations"
        " WHERE status != 'ok' GROUP BY status, error"
    ).fetchall()
    return group_failures(rows, top=top)


def _arm_windows(steps: list[Any], count: int) -> dict[str, Any]:
    """Per (operator@model) arm, candidates / parsed / valid / inserted / cost summed over
    windows of consecutive steps (the seed batch, which no operator made, is left out)."""
    told = [s for s in steps if s.batch > 0 and s.arms]
    spans = windows(len(told), count)
    labels = sorted({label for s in told for label in s.arms})
    keys = ("chosen", "parsed", "valid", "inserted", "cost")
    arms = {label: {k: [0.0] * len(spans) for k in keys} for label in labels}
    for w, (a, b) in enumerate(spans):
        for s in told[a:b]:
            for label, row in s.arms.items():
                for k in keys:
                    arms[label][k][w] += float(row.get(k, 0) or 0)
    ends = [told[b - 1] for _, b in spans]
    return {
        "batches": [[told[a].batch, told[b - 1].batch] for a, b in spans],
        "llm_calls": [s.llm_calls for s in ends],
        "evaluations": [s.evaluations for s in ends],
        "tokens": [s.tokens for s in ends],
        "elapsed": [round_sig(s.elapsed, 4) for s in ends],
        "arms": {
            label: {k: [round_sig(v) for v in vs] for k, vs in d.items()}
            for label, d in arms.items()
        },
    }


def _domain_views() -> Any:
    """The per-domain views module (pictures, texts, animations), or None where this evolm
    has none: the report then shows code only."""
    try:
        return importlib.import_module("evolm.report.domain_views")
    except ImportError:
        return None


def _views(
    domain: str, params: dict[str, Any], store: RunStore, elites: list[dict[str, Any]]
) -> tuple[dict[int, str], str | None]:
    """Domain views (pictures, texts) of the given elites, by id; and a note when the views
    module is missing or failed."""
    domain_views = _domain_views()
    if domain_views is None:
        return {}, None
    out: dict[int, str] = {}
    for e in elites:
        try:
            ind = store.program(e["id"])
            ev = getattr(ind, "evaluation", None)
            program = {
                "id": e["id"],
                "code": e["code"],
                "status": ev.status.value if ev else "pending",
                "fitness": e["fitness"],
                "descriptors": e["descriptors"],
                "extras": ev.extras if ev else {},
                "error": ev.error if ev else None,
            }
            html = domain_views.view(domain, params, program)
        except Exception as exc:  # a view must never stop the report
            return out, f"domain views failed: {type(exc).__name__}: {exc}"
        if html:
            out[e["id"]] = html
    return out, None


def _reruns(path: Path, domain: str, ids: list[int]) -> tuple[dict[int, str], str | None]:
    """Fragments that need the programs re-run in the sandbox (what the database does not
    store): Sodarace gait animations, image pictures. Other domains have none."""
    mod = _domain_views()
    name = {"sodarace": "animations", "image": "renders"}.get(domain)
    if mod is None or name is None or not hasattr(mod, name):
        return {}, None
    try:
        return dict(getattr(mod, name)(path, ids)), None
    except Exception as exc:  # the page is still worth having without them
        return {}, f"{name} failed: {type(exc).__name__}: {exc}"


def load_run(
    path: str | Path,
    limits: ReportLimits | None = None,
    *,
    views: bool = True,
    animations: bool = True,
) -> dict[str, Any]:
    """Read run database ``path`` into the data of one run's report (see the module docstring).

    Raises:
        evolm.store.StoreError: not a run database, unreadable, holding no run.
        ReportError: the run has no programs yet, or its configuration or domain cannot be read.
    """
    from evolm.config import RunConfig
    from evolm.domains.base import get_domain
    from evolm.scheduler.rebuild import build_archive, rebuild_archive

    lim = limits or ReportLimits()
    path = Path(path)
    with RunStore(path, readonly=True) as store:
        info = store.run_info()
        counts = store.counts()
        if sum(counts.values()) == 0:
            raise ReportError(
                f"{path} holds a run with no programs yet: there is nothing to report. Wait "
                f"until the run has told its first batch (`evolm status {path}`), or continue "
                f"it with `evolm resume {path}`"
            )
        try:
            cfg = RunConfig.model_validate(info["config"])
            domain = get_domain(cfg.domain.name, cfg.domain.params)
        except Exception as exc:
            raise ReportError(
                f"{path}: cannot read the run's configuration or load its domain "
                f"({type(exc).__name__}: {exc}); a run of a user domain needs that domain "
                "importable (run the report from the directory the run was started in)"
            ) from exc
        archive = build_archive(cfg, domain)
        space = domain.descriptor_space
        shape = _archive_shape(archive, space)
        steps = store.steps()
        by_batch = {s.batch: s for s in steps}
        resumes = store.resumes()
        resume_at = [
            next((j for j, s in enumerate(steps) if s.batch >= ev.from_batch), None)
            for ev in resumes
        ]
        idx = downsample_indices(
            len(steps), lim.max_points, keep=[j for j in resume_at if j is not None]
        )
        wanted = {steps[i].batch for i in idx}
        snap_batches = {steps[i].batch for i in even_picks(len(steps), lim.snapshots)}
        stats_at: dict[int, Any] = {}
        snapshots: list[dict[str, Any]] = []

        def after(k: int) -> None:
            if k in wanted:
                stats_at[k] = archive.stats
            if k in snap_batches:
                snapshots.append(_snapshot(archive, k, by_batch.get(k), shape["mode"]))

        rebuild_archive(archive, store, after_batch=after)
        last = steps[-1] if steps else None
        if not snapshots or (last is not None and snapshots[-1]["batch"] != last.batch):
            snapshots.append(_snapshot(archive, last.batch if last else 0, last, shape["mode"]))
        shape["snapshots"] = snapshots

        series: dict[str, list[Any]] = {
            k: []
            for k in (
                "batch", "llm_calls", "evaluations", "tokens", "elapsed", "cost",
                "qd_score", "coverage", "max_fitness", "mean_fitness", "elites",
            )
        }  # fmt: skip
        mean = None
        for i in idx:
            s = steps[i]
            st = stats_at.get(s.batch)
            if st is not None:
                mean = st.mean_fitness
            for key in ("batch", "llm_calls", "evaluations", "tokens", "elites"):
                series[key].append(getattr(s, key))
            series["elapsed"].append(round_sig(s.elapsed, 5))
            series["cost"].append(round_sig(s.cost))
            series["qd_score"].append(round_sig(s.qd_score))
            series["coverage"].append(round_sig(s.coverage))
            series["max_fitness"].append(round_sig(s.max_fitness))
            series["mean_fitness"].append(round_sig(mean))
        resume_marks = []
        for ev, j in zip(resumes, resume_at, strict=True):
            mark: dict[str, Any] = {
                "from_batch": ev.from_batch,
                "dropped_in_flight": ev.dropped_in_flight,
            }
            if j is not None:
                for key in ("llm_calls", "evaluations", "tokens"):
                    mark[key] = getattr(steps[j], key)
                mark["elapsed"] = round_sig(steps[j].elapsed, 5)
            resume_marks.append(mark)

        final = sorted(archive.export(), key=lambda r: (-float(r["fitness"]), r["id"]))
        conn = _connect_ro(path)
        try:
            reader = ProgramReader(conn)
            elites: dict[int, dict[str, Any]] = {}
            for rec in final[: lim.max_elites]:
                prog = reader.get(rec["id"])
                if prog is None:
                    continue
                code, cut = truncate(prog["code"], lim.code_chars)
                elites[rec["id"]] = {
                    "id": rec["id"],
                    "fitness": round_sig(float(rec["fitness"])),
                    "descriptors": [round_sig(float(v)) for v in rec["descriptors"]],
                    "cell": rec.get("cell"),
                    "operator": prog["operator"],
                    "model": prog["model"],
                    "generation": prog["generation"],
                    "batch": prog["batch"],
                    "parents": prog["parents"],
                    "code": code,
                    "code_cut": cut,
                }
            shown = list(elites)
            lineage = build_lineage(
                reader,
                shown,
                max_depth=lim.lineage_depth,
                max_nodes=lim.lineage_nodes,
            )
            failures = _failures(conn, lim.top_failures)
        finally:
            conn.close()

        notes: list[str] = []
        view_html: dict[int, str] = {}
        if views:
            view_html, note = _views(
                cfg.domain.name,
                cfg.domain.params,
                store,
                [elites[i] for i in shown[: lim.max_views]],
            )
            if note:
                notes.append(note)
        anim_html: dict[int, str] = {}
        if animations and lim.animations > 0 and shown:
            anim_html, note = _reruns(path, cfg.domain.name, shown[: lim.animations])
            if note:
                notes.append(note)
        for pid, html in view_html.items():
            elites[pid]["view"] = html
        for pid, html in anim_html.items():
            if pid in elites:
                elites[pid]["animation"] = html

        from evolm.finetune.loop import period_rows

        periods, rounds = period_rows(store)
        end = store.end_event()
        sandbox = store.sandbox_events()
        if len(final) > lim.max_elites:
            notes.append(
                f"{len(final)} elites; the best {lim.max_elites} carry code and lineage "
                "(raise --max-elites for more)"
            )
        if len(steps) > len(idx):
            notes.append(f"{len(steps)} steps, plotted at {len(idx)} points")
        lineage_cut = len(lineage) >= lim.lineage_nodes
        if lineage_cut:
            notes.append(f"lineage limited to {lim.lineage_nodes} programs (best elites first)")
        return {
            "path": str(path),
            "name": path.name,
            "info": {
                "status": info["status"],
                "state": _run_state(path, info["status"]),
                "domain": cfg.domain.name,
                "domain_params": cfg.domain.params,
                "seed": info["seed"],
                "archive": cfg.archive.kind,
                "archive_params": cfg.archive.params(),
                "operators": [o.name or o.kind for o in cfg.operator_list()],
                "models": [
                    m.name or getattr(m, "model", None) or m.backend for m in cfg.model_list()
                ],
                "bandit": cfg.bandit.kind,
                "created_at": info["created_at"],
                "updated_at": info["updated_at"],
                "versions": info["versions"],
                "config": info["config"],
                "label_key": config_label_key(info["config"]),
                "label": _experiment_label(store),
                "sandbox": sandbox[-1].to_payload() if sandbox else None,
            },
            "totals": {
                "programs": counts,
                "llm": store.llm_totals(),
                "evaluations": store.evaluation_totals(),
                "batches": (last.batch + 1) if last else 0,
                "elites": len(final),
            },
            "end": asdict(end) if end else None,
            "resumes": resume_marks,
            "series": series,
            "windows": _arm_windows(steps, lim.windows),
            "arm_totals": store.arm_totals(),
            "failures": failures,
            "archive": shape,
            "elites": elites,
            "best": shown[: lim.best],
            "lineage": lineage,
            "finetune": {"periods": periods, "rounds": rounds},
            "limits": asdict(lim),
            "notes": notes,
        }


__all__ += ["StoreError"]
