"""Operators: parents in, LLM requests out, candidate programs back."""

from __future__ import annotations

from typing import Any

from evolm.domains.base import DomainContext
from evolm.operators.bandit import SELECTORS, Selector, make_selector
from evolm.operators.base import Operator, Proposal, Result
from evolm.operators.elm_diff import ElmDiff
from evolm.operators.extract import extract_code
from evolm.operators.gp import GPMutation
from evolm.operators.line_edit import LineEdit
from evolm.operators.lmx import LMXCrossover
from evolm.operators.prompt import INSTRUCTION_SETS, FullRewrite, PromptMutation
from evolm.operators.random_search import RandomSearch
from evolm.operators.search_replace import SearchReplace
from evolm.registry import Registry

__all__ = [
    "INSTRUCTION_SETS",
    "OPERATORS",
    "SELECTORS",
    "ElmDiff",
    "FullRewrite",
    "GPMutation",
    "LMXCrossover",
    "LineEdit",
    "Operator",
    "PromptMutation",
    "Proposal",
    "RandomSearch",
    "Result",
    "SearchReplace",
    "Selector",
    "extract_code",
    "make_operator",
    "make_selector",
]

OPERATORS: Registry[type[Operator]] = Registry(
    "operator",
    {
        "prompt_mutation": "evolm.operators.prompt:PromptMutation",
        "rewrite": "evolm.operators.prompt:FullRewrite",
        "lmx": "evolm.operators.lmx:LMXCrossover",
        "search_replace": "evolm.operators.search_replace:SearchReplace",
        "elm_diff": "evolm.operators.elm_diff:ElmDiff",
        "line_edit": "evolm.operators.line_edit:LineEdit",
        "gp": "evolm.operators.gp:GPMutation",
        "random": "evolm.operators.random_search:RandomSearch",
        "text_rewrite": "evolm.operators.text:TextRewrite",
        "text_lmx": "evolm.operators.text:TextLMX",
    },
    base=Operator,
    skip=("context", "mode"),
)
"""Operator classes by kind name (a :class:`~evolm.registry.Registry`); a user operator is named
``package.module:Class`` (a subclass of :class:`Operator`)."""


def make_operator(name: str, context: DomainContext, mode: str = "chat", **params: Any) -> Operator:
    """Build the operator registered as ``name`` (or ``package.module:Class``) for a domain's
    ``context``.

    Raises:
        ValueError: no operator has that name (the message lists the known ones), or the
            parameters are wrong for it.
    """
    cls = OPERATORS.get(name)
    try:
        return cls(context, mode, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for operator {name!r}: {exc}") from exc
