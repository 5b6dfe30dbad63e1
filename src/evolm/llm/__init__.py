"""Language-model backends behind one async protocol.

Backends: :class:`FakeLLM` (scripted, offline), :class:`ReplayLLM` (answers from an earlier
run's database), :class:`OpenAICompatLLM` (any OpenAI-compatible HTTP server).
:func:`make_backend` builds one from a command-line spec. Importing this package does not
import the ``openai`` SDK; building an :class:`OpenAICompatLLM` does.
"""

from __future__ import annotations

from typing import Any

from evolm.llm.base import Completion, LLMBackend, LLMError, Message, Request
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.llm.openai_compat import OpenAICompatLLM
from evolm.llm.replay import CassetteMiss, ReplayLLM

__all__ = [
    "CassetteMiss",
    "Completion",
    "FakeLLM",
    "LLMBackend",
    "LLMError",
    "Message",
    "OpenAICompatLLM",
    "ReplayLLM",
    "Request",
    "make_backend",
    "mutating_responder",
]

SPEC_FORMS = (
    "'fake' (offline fake mutations), 'replay:PATH' (answers recorded in a run database), "
    "'openai:MODEL' (OpenAI) or 'openai:MODEL@URL' (any OpenAI-compatible server, "
    "e.g. openai:qwen2.5-coder@http://127.0.0.1:8000/v1)"
)


def make_backend(spec: str, **options: Any) -> LLMBackend:
    """Build a backend from a command-line spec.

    Args:
        spec: ``"fake"``, ``"replay:PATH"``, ``"openai:MODEL"`` or ``"openai:MODEL@URL"``.
            The URL follows the last ``@`` and must start with ``http://`` or ``https://``.
        options: keyword arguments for the backend's constructor (unknown ones raise
            ``TypeError``).

    Raises:
        ValueError: the spec matches none of the forms.
    """
    kind, sep, rest = spec.partition(":")
    if kind == "fake" and not sep:
        options.setdefault("responder", mutating_responder)
        return FakeLLM(**options)
    if kind == "replay" and rest:
        return ReplayLLM(rest, **options)
    if kind == "openai" and rest:
        model, at, url = rest.rpartition("@")
        if not at:
            return OpenAICompatLLM(rest, **options)
        if model and url.startswith(("http://", "https://")):
            return OpenAICompatLLM(model, base_url=url, **options)
        raise ValueError(
            f"bad LLM spec {spec!r}: expected openai:MODEL@URL with a non-empty model and a "
            "URL starting with http:// or https://"
        )
    raise ValueError(f"unknown LLM spec {spec!r}; expected one of: {SPEC_FORMS}")
