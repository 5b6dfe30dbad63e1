"""Language-model backends behind one async protocol.

Backends: :class:`LlamaCppLLM` (a GGUF model in-process through llama.cpp; the embedded
default), :class:`OpenAICompatLLM` (any OpenAI-compatible HTTP server), :class:`HFLLM` (local
Hugging Face ``transformers`` models, batched), :class:`VLLMLLM` (vLLM offline batching on a
GPU), :class:`ReplayLLM` (answers from an earlier run's database) and :class:`FakeLLM`
(scripted, offline); :data:`~evolm.llm.build.BACKENDS` names them, and a user backend is
``package.module:Class``. :func:`make_backend` builds one from a command-line spec,
:func:`build_backend` from a configuration. Importing this
package imports none of the heavy libraries (``openai``, ``llama_cpp``, ``torch``,
``transformers``, ``vllm``); building a backend imports the one it needs.
"""

from __future__ import annotations

from evolm.llm.base import Completion, LLMBackend, LLMError, Message, Request
from evolm.llm.build import BACKENDS, build_backend, make_backend, parse_llm_spec, spec_forms
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.llm.hf import HFLLM
from evolm.llm.llama_cpp import LlamaCppLLM
from evolm.llm.local import TokenCounter
from evolm.llm.openai_compat import OpenAICompatLLM
from evolm.llm.replay import CassetteMiss, ReplayLLM
from evolm.llm.vllm import VLLMLLM

__all__ = [
    "BACKENDS",
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
    "build_backend",
    "make_backend",
    "mutating_responder",
    "parse_llm_spec",
    "spec_forms",
]
