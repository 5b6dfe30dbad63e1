"""Language-model backends behind one async protocol.

Backends: :class:`LlamaCppLLM` (a GGUF model in-process through llama.cpp; the embedded
default), :class:`OpenAICompatLLM` (any OpenAI-compatible HTTP server), :class:`HFLLM` (local
Hugging Face ``transformers`` models, batched), :class:`VLLMLLM` (vLLM offline batching on a
GPU), :class:`ReplayLLM` (answers from an earlier run's database) and :class:`FakeLLM`
(scripted, offline). :func:`make_backend` builds one from a command-line spec. Importing this
package imports none of the heavy libraries (``openai``, ``llama_cpp``, ``torch``,
``transformers``, ``vllm``); building a backend imports the one it needs.
"""

from __future__ import annotations

from typing import Any

from evolm.llm.base import Completion, LLMBackend, LLMError, Message, Request
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.llm.hf import HFLLM
from evolm.llm.llama_cpp import LlamaCppLLM
from evolm.llm.local import TokenCounter
from evolm.llm.openai_compat import OpenAICompatLLM
from evolm.llm.replay import CassetteMiss, ReplayLLM
from evolm.llm.vllm import VLLMLLM

__all__ = [
    "HFLLM",
    "VLLMLLM",
    "CassetteMiss",
    "Completion",
    "FakeLLM",
    "LLMBackend",
    "LLMError",
    "LlamaCppLLM",
    "Message",
    "OpenAICompatLLM",
    "ReplayLLM",
    "Request",
    "TokenCounter",
    "make_backend",
    "mutating_responder",
]

SPEC_FORMS = (
    "'llama_cpp' (the embedded SmolLM2-135M-Instruct), 'llama_cpp:PATH.gguf' (any GGUF model), "
    "'openai:MODEL' (OpenAI) or 'openai:MODEL@URL' (any OpenAI-compatible server, "
    "e.g. openai:qwen2.5-coder@http://127.0.0.1:8000/v1), 'hf' or 'hf:PATH' (a transformers "
    "model directory or GGUF file), 'vllm:MODEL' (vLLM on a GPU), "
    "'replay:PATH' (answers recorded in a run database), 'fake' (offline fake mutations)"
)


def make_backend(spec: str, **options: Any) -> LLMBackend:
    """Build a backend from a command-line spec.

    Args:
        spec: ``"llama_cpp"``, ``"llama_cpp:PATH.gguf"``, ``"openai:MODEL"``,
            ``"openai:MODEL@URL"``, ``"hf"``, ``"hf:PATH"``, ``"vllm:MODEL"``,
            ``"replay:PATH"`` or ``"fake"``. An OpenAI URL follows the last ``@`` and must start
            with ``http://`` or ``https://``. ``llama_cpp`` and ``hf`` without a path load the
            bundled SmolLM2-135M-Instruct GGUF.
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
    if kind == "llama_cpp" and (rest or not sep):
        return LlamaCppLLM(rest or None, **options)
    if kind == "hf" and (rest or not sep):
        return HFLLM(rest or None, **options)
    if kind == "vllm" and rest:
        return VLLMLLM(rest, **options)
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
