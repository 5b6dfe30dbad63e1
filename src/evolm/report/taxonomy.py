"""The failure taxonomy of a run: failed candidates grouped by status and by a normalised reason.

Error texts of failed programs differ in details that do not matter for "why do candidates
fail": line numbers, the names a program chose, numbers in messages, memory addresses, file
paths. :func:`normalise_error` keeps the kind of the failure (usually the last line of a
traceback, ``NameError: name <…> is not defined``) and replaces those details, so the table
shows a few large groups instead of one row per program.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["group_failures", "normalise_error"]

_QUOTED = re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"")
_ADDR = re.compile(r"0x[0-9a-fA-F]+")
_LINE = re.compile(r"\bline \d+")
_PATH = re.compile(r"(?:/[\w.\-<>]+)+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_SPACE = re.compile(r"\s+")
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b")

MAX_REASON_CHARS = 160
"""The longest normalised reason kept (longer ones are cut; the example keeps the full text)."""


def _reason_line(error: str) -> str:
    """The line of an error text that says what went wrong: the last ``XxxError: ...`` line of
    a traceback, else the last non-empty line."""
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    for ln in reversed(lines):
        if _EXC_LINE.match(ln):
            return ln
    return lines[-1]


def normalise_error(error: str | None) -> str:
    """The group key of an error text: its telling line with quoted names, numbers, line
    numbers, addresses and paths replaced by placeholders.

    For example ``NameError: name 'foo' is not defined`` (at the end of a traceback) becomes
    ``NameError: name '…' is not defined``.
    """
    if not error or not error.strip():
        return "(no message)"
    line = _reason_line(error)
    line = _QUOTED.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[0], line)
    line = _ADDR.sub("0x…", line)
    line = _LINE.sub("line N", line)
    line = _PATH.sub("/…", line)
    line = _NUMBER.sub("N", line)
    line = _SPACE.sub(" ", line).strip()
    if len(line) > MAX_REASON_CHARS:
        line = line[: MAX_REASON_CHARS - 1] + "…"
    return line


def group_failures(
    rows: Iterable[tuple[str, str | None, int, int]], *, top: int = 15, example_chars: int = 1500
) -> dict[str, Any]:
    """Group failures for the report's table.

    Args:
        rows: ``(status, error, count, example program id)``, one per distinct error text (the
            SQL ``GROUP BY status, error``); statuses other than ``ok``.
        top: the most groups listed; the rest are summed into one "other" row per status.
        example_chars: the longest example error kept.

    Returns:
        ``{"total", "by_status": {status: count}, "groups": [{"status", "reason", "count",
        "example", "example_id"}], "other": [{"status", "count", "groups"}]}``, groups by
        decreasing count (ties by status, then reason).
    """
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    by_status: dict[str, int] = {}
    for status, error, count, example_id in rows:
        by_status[status] = by_status.get(status, 0) + count
        key = (status, normalise_error(error))
        g = groups.get(key)
        if g is None:
            example = (error or "").strip()
            if len(example) > example_chars:
                example = example[:example_chars] + f"… [{len(example) - example_chars} more]"
            groups[key] = {
                "status": status,
                "reason": key[1],
                "count": count,
                "example": example,
                "example_id": example_id,
            }
        else:
            g["count"] += count
    ordered = sorted(groups.values(), key=lambda g: (-g["count"], g["status"], g["reason"]))
    other: dict[str, dict[str, Any]] = {}
    for g in ordered[top:]:
        o = other.setdefault(g["status"], {"status": g["status"], "count": 0, "groups": 0})
        o["count"] += g["count"]
        o["groups"] += 1
    return {
        "total": sum(by_status.values()),
        "by_status": dict(sorted(by_status.items())),
        "groups": ordered[:top],
        "other": sorted(other.values(), key=lambda o: -o["count"]),
    }
