"""Domain views for the HTML report: one program's result as a self-contained HTML fragment.

:func:`view` draws from what the run database stores and never runs a program: a Sodarace
walker's body, the image target and mean colour, a parity truth table, a puzzle beside its
solution, a text with its judge scores or accuracy, a task's metrics (and a circle packing
when the metrics hold ``centers`` and ``radii``), and for any other domain a table of the
extras' scalar values. A domain class may draw its own: a method ``report_view(program) ->
str | None`` on the domain is used first (docs/domains.md).

:func:`animations` (Sodarace gaits) and :func:`renders` (image pictures) re-run programs in a
sandbox worker, since what they show is not stored (:mod:`evolm.report.views.rerun`).

Fragments hold inline SVG or ``data:`` URI images and no script or external reference, so the
report stays one offline file. Odd extras (missing keys, values of other types, NaN, extras the
store cut to ``{"truncated": n}``) give a short note, never an exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from evolm.report.views.builtin import BUILTIN_VIEWS, generic_view, summary
from evolm.report.views.common import esc, note, wrap
from evolm.report.views.rerun import animations, renders

__all__ = ["animations", "domain_report_view", "renders", "view"]


def _clean(value: Any, depth: int = 0) -> Any:
    """``value`` with NaN and infinities as their names (so every view sees finite numbers or
    strings) and containers nested deeper than 32 levels cut."""
    if depth > 32:
        return "<nested too deep>"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, depth + 1) for v in value]
    return value


@lru_cache(maxsize=16)
def _domain(name: str, params_json: str) -> Any:
    """The domain built from the run's name and parameters, when its class (or what its
    factory builds) has ``report_view``; None otherwise or when it cannot be built here."""
    from evolm.domains.base import DOMAINS, get_domain

    try:
        factory = DOMAINS.get(name)
    except ValueError:
        return None
    if isinstance(factory, type) and not callable(getattr(factory, "report_view", None)):
        return None  # the class says it all: no need to build it
    if not isinstance(factory, type) and name in BUILTIN_VIEWS:
        return None  # a built-in factory (puzzles, task): built-in views
    try:
        dom = get_domain(name, json.loads(params_json))
    except Exception:  # a user domain that cannot be built here: use the built-in views
        return None
    return dom if callable(getattr(dom, "report_view", None)) else None


def domain_report_view(domain: str, params: Mapping[str, Any], program: dict[str, Any]) -> Any:
    """What the domain's own ``report_view(program)`` returns, or None when it has none (or
    it cannot be built here). Exceptions it raises propagate."""
    try:
        key = json.dumps(dict(params), sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    dom = _domain(str(domain), key)
    if dom is None:
        return None
    return dom.report_view(program)


def view(domain: str, params: dict[str, Any], program: dict[str, Any]) -> str | None:
    """A self-contained HTML fragment showing one program's result, or None when the domain
    has no view (never for now: unknown domains get the generic table).

    Args:
        domain: the run's domain name (``config.domain.name``).
        params: the run's domain parameters (``config.domain.params``).
        program: ``{"id", "code", "status", "fitness", "descriptors", "extras"}`` with
            ``extras`` as stored in the run database (and optionally ``"error"``, the stored
            error text, shown for failed programs).

    Never raises for odd programs or extras: a view that cannot be drawn becomes a note.
    Never runs the program (see :func:`animations` and :func:`renders` for that).
    """
    if not isinstance(program, Mapping):
        return wrap(str(domain), note(f"not a program record: {type(program).__name__}"))
    params = dict(params) if isinstance(params, Mapping) else {}
    prog = dict(program)
    raw = prog.get("extras")
    prog["extras"] = _clean(raw) if isinstance(raw, Mapping) else {}
    head = summary(prog)
    notes = []
    if raw is not None and not isinstance(raw, Mapping):
        notes.append(note(f"the stored extras are a {type(raw).__name__}, not a map"))
    elif isinstance(raw, Mapping) and "truncated" in raw and len(raw) <= 2:
        notes.append(
            note(
                f"the extras were too large to store ({raw.get('truncated')} characters); "
                "only the program is shown"
            )
        )
    try:
        own = domain_report_view(domain, params, prog)
    except Exception as exc:
        own = None
        notes.append(note(f"the domain's report_view failed: {type(exc).__name__}: {exc}"))
    if isinstance(own, str):
        return wrap(str(domain), head + "".join(notes) + own)
    name = str(domain)
    draw = BUILTIN_VIEWS.get(name, generic_view)
    try:
        body = draw(params, prog)
    except Exception as exc:  # a view must never take the report down
        body = note(f"cannot draw this {name} program: {type(exc).__name__}: {exc}")
    if prog.get("status") not in (None, "ok") and prog.get("error"):
        notes.append(f"<p>error: {esc(str(prog['error'])[:500])}</p>")
    return wrap(name, head + "".join(notes) + body)
