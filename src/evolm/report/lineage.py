"""Lineage of elites: their ancestors as a tree, each step with a unified diff from its first
parent (the program the operator rewrote; crossover's other parents are listed, not diffed).

Ancestry can be long (generation in the hundreds) and wide (crossover), so the walk is bounded:
at most ``max_depth`` generations above each elite and ``max_nodes`` programs in the whole
report, elites taken in the order given (best first). A node whose parents were cut carries
``"cut": True`` so the page can say so.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from evolm.report.sampling import round_sig, truncate

__all__ = ["ProgramReader", "build_lineage", "unified_diff"]


def unified_diff(before: str, after: str, *, limit: int = 6000, context: int = 3) -> str:
    """The unified diff from ``before`` to ``after`` (headers ``parent`` / ``child``), cut to
    ``limit`` characters with a note; empty when the texts are equal."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        "parent",
        "child",
        n=context,
    )
    out = "".join(ln if ln.endswith("\n") else ln + "\n" for ln in lines)
    text, cut = truncate(out, limit)
    return text + (f"\n… [{cut} more characters of diff]\n" if cut else "")


class ProgramReader:
    """Programs of a run database by id (read-only; rows cached), for lineage and code."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._cache: dict[int, dict[str, Any] | None] = {}

    def get(self, pid: int) -> dict[str, Any] | None:
        """``{"id", "parents", "operator", "model", "generation", "batch", "code", "status",
        "fitness", "error"}`` of program ``pid``, or None when the database has no such row."""
        if pid in self._cache:
            return self._cache[pid]
        row = self._conn.execute(
            "SELECT p.id, p.parent_ids, p.operator, p.model, p.generation, p.batch, p.code,"
            " e.status, e.fitness, e.error FROM programs p"
            " LEFT JOIN evaluations e ON e.program_id = p.id WHERE p.id = ?",
            (pid,),
        ).fetchone()
        out: dict[str, Any] | None = None
        if row is not None:
            try:
                parents = [int(p) for p in json.loads(row[1])]
            except (TypeError, ValueError):
                parents = []
            out = {
                "id": row[0],
                "parents": parents,
                "operator": row[2],
                "model": row[3],
                "generation": row[4],
                "batch": row[5],
                "code": row[6] or "",
                "status": row[7] or "pending",
                "fitness": round_sig(row[8]),
                "error": row[9],
            }
        self._cache[pid] = out
        return out


def build_lineage(
    reader: ProgramReader,
    elite_ids: Sequence[int],
    *,
    max_depth: int = 40,
    max_nodes: int = 3000,
    diff_limit: int = 6000,
    code_limit: int = 4000,
) -> dict[int, dict[str, Any]]:
    """Nodes of the ancestry of ``elite_ids`` (themselves included), by program id.

    Each node: ``id``, ``parents``, ``operator``, ``model``, ``generation``, ``batch``,
    ``status``, ``fitness``, ``diff`` (from the first parent; None for a root), ``code`` (roots
    only: a seed has nothing to diff from), ``cut`` (its parents were left out by the bounds).
    """
    nodes: dict[int, dict[str, Any]] = {}
    for elite in elite_ids:
        if len(nodes) >= max_nodes:
            break
        stack: list[tuple[int, int]] = [(elite, 0)]
        while stack:
            pid, depth = stack.pop()
            if pid in nodes:
                continue
            if len(nodes) >= max_nodes:
                break
            prog = reader.get(pid)
            if prog is None:
                continue
            parents = prog["parents"]
            node = {k: prog[k] for k in ("id", "parents", "operator", "model", "generation")}
            node.update(batch=prog["batch"], status=prog["status"], fitness=prog["fitness"])
            first = reader.get(parents[0]) if parents else None
            if first is None:
                code, cut = truncate(prog["code"], code_limit)
                node["diff"] = None
                node["code"] = code + (f"\n… [{cut} more characters]" if cut else "")
            else:
                node["diff"] = unified_diff(first["code"], prog["code"], limit=diff_limit)
            node["cut"] = bool(parents) and depth >= max_depth
            nodes[pid] = node
            if depth < max_depth:
                stack.extend((p, depth + 1) for p in reversed(parents))
    for node in nodes.values():  # parents missing because the node budget ran out
        if any(p not in nodes for p in node["parents"]):
            node["cut"] = True
    return nodes
