"""A user domain that draws its own report view (``report_view``), for the domain-view tests.

Importable by worker processes as ``tests.report.viewed_domain:ViewedDomain``. Its view is a
paragraph naming the program; it returns None for programs whose id is odd (the built-in
generic view is used then) and raises for a program whose code asks it to.
"""

from __future__ import annotations

from typing import Any

from tests.toy_domain import ToyDomain


class ViewedDomain(ToyDomain):
    """The toy domain with its own report view."""

    def report_view(self, program: dict[str, Any]) -> str | None:
        if "raise in report_view" in str(program.get("code")):
            raise RuntimeError("this view is broken")
        if int(program["id"]) % 2:
            return None
        return f'<p class="viewed">program {int(program["id"])} by ViewedDomain</p>'
