"""Operators: parents in, LLM requests out, candidate programs back."""

from __future__ import annotations

from typing import Any

from evolm.domains.base import DomainContext
from evolm.operators.base import Operator, Proposal, Result
from evolm.operators.extract import extract_code
from evolm.operators.prompt import FullRewrite, PromptMutation

__all__ = [
    "OPERATORS",
    "FullRewrite",
    "Operator",
    "PromptMutation",
    "Proposal",
    "Result",
    "extract_code",
    "make_operator",
]

OPERATORS: dict[str, type[Operator]] = {
    PromptMutation.name: PromptMutation,
    FullRewrite.name: FullRewrite,
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
