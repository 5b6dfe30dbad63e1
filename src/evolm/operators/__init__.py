"""Operators: parents in, LLM requests out, candidate programs back."""

from __future__ import annotations

from typing import Any

from evolm.domains.base import DomainContext
from evolm.operators.bandit import SELECTORS, Selector, make_selector
from evolm.operators.base import Operator, Proposal, Result
from evolm.operators.elm_diff import ElmDiff
from evolm.operators.extract import extract_code
from evolm.operators.gp import GPMutation
from evolm.operators.lmx import LMXCrossover
from evolm.operators.prompt import INSTRUCTION_SETS, FullRewrite, PromptMutation
from evolm.operators.search_replace import SearchReplace

__all__ = [
    "INSTRUCTION_SETS",
    "OPERATORS",
    "SELECTORS",
    "ElmDiff",
    "FullRewrite",
    "GPMutation",
    "LMXCrossover",
    "Operator",
    "PromptMutation",
    "Proposal",
    "Result",
    "SearchReplace",
    "Selector",
    "extract_code",
    "make_operator",
    "make_selector",
]

OPERATORS: dict[str, type[Operator]] = {
    PromptMutation.name: PromptMutation,
    FullRewrite.name: FullRewrite,
    LMXCrossover.name: LMXCrossover,
    SearchReplace.name: SearchReplace,
    ElmDiff.name: ElmDiff,
    GPMutation.name: GPMutation,
}


def make_operator(name: str, context: DomainContext, mode: str = "chat", **params: Any) -> Operator:
    """Build the operator registered as ``name`` for a domain's ``context``.

    Raises:
        ValueError: no operator has that name (the message lists the known ones), or the
            parameters are wrong for it.
    """
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {name!r}; known operators: {', '.join(OPERATORS)}")
    try:
        return OPERATORS[name](context, mode, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for operator {name!r}: {exc}") from exc
