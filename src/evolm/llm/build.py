"""Building LLM backends: the backend registry, the one ``--llm`` spec parser and the one
builder from a configuration.

:data:`BACKENDS` maps each backend name to its class, imported on first use (building a
``vllm`` backend imports vLLM, nothing else does). A user backend is ``package.module:Class``, an
:class:`~evolm.llm.base.LLMBackend` subclass, in a config (``backend = "my.mod:MyLLM"``) or on
the command line (``--llm my.mod:MyLLM``).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from evolm.llm.base import LLMBackend
from evolm.registry import Registry, is_import_path

if TYPE_CHECKING:
    from evolm.config import LLMConfig, RunConfig

__all__ = [
    "BACKENDS",
    "SHIPPED",
    "build_backend",
    "make_backend",
    "parse_llm_spec",
    "resolve_adapter",
    "resolve_cassette",
    "spec_forms",
]

BACKENDS: Registry[type[LLMBackend]] = Registry("LLM backend", base=LLMBackend, skip=("seed",))
"""LLM backend classes by name; ``package.module:Class`` names a user's."""

for _name, _target, _forms in (
    (
        "llama_cpp",
        "evolm.llm.llama_cpp:LlamaCppLLM",
        "'llama_cpp' (the embedded SmolLM2-135M-Instruct), 'llama_cpp:FILE.gguf' (any GGUF model)",
    ),
    (
        "openai",
        "evolm.llm.openai_compat:OpenAICompatLLM",
        "'openai:MODEL' (OpenAI) or 'openai:MODEL@URL' (any OpenAI-compatible server, "
        "e.g. openai:qwen2.5-coder@http://127.0.0.1:8000/v1; the URL follows the last '@'; "
        "several servers of the model: MODEL@URL,URL,...)",
    ),
    (
        "hf",
        "evolm.llm.hf:HFLLM",
        "'hf' or 'hf:PATH' (a transformers model directory or GGUF file)",
    ),
    ("vllm", "evolm.llm.vllm:VLLMLLM", "'vllm:MODEL' (vLLM on a GPU)"),
    ("replay", "evolm.llm.replay:ReplayLLM", "'replay:PATH' (answers recorded in a run database)"),
    ("fake", "evolm.llm.fake:FakeLLM", "'fake' (offline fake mutations, for tests and demos)"),
):
    BACKENDS.register(_name, _target, summary=_forms)


def spec_forms() -> str:
    """The ``--llm`` forms, one per registered backend, for help and error text."""
    forms = [BACKENDS.summary(n) or repr(n) for n in BACKENDS.names()]
    return ", ".join(forms) + ", 'package.module:Class' (your own LLMBackend subclass)"


def _bad_spec(spec: str, why: str = "") -> ValueError:
    from evolm.config import ConfigError

    return ConfigError(f"--llm {spec!r} is not understood{why}; use one of: {spec_forms()}")


def parse_llm_spec(spec: str) -> dict[str, Any]:
    """The ``[llm]`` settings an ``--llm`` spec stands for (the only parser of these specs).

    Forms: ``llama_cpp[:FILE.gguf]``, ``openai:MODEL[@URL[,URL...]]`` (the URLs follow the last
    ``@``, each starts with ``http://`` or ``https://``; several are servers of one model),
    ``hf[:PATH]``, ``vllm:MODEL``, ``replay:RUN.db``, ``fake``, or ``package.module:Class`` (a
    user backend).

    Raises:
        evolm.config.ConfigError: the spec matches none of the forms (the message lists them).
    """
    kind, sep, rest = spec.partition(":")
    if kind == "fake" and not sep:
        return {"backend": "fake", "model": "fake"}
    if kind == "replay" and rest:
        return {"backend": "replay", "cassette": rest}
    if kind in ("llama_cpp", "hf") and (rest or not sep):
        return {"backend": kind, "model": None, "model_path": rest or None}
    if kind == "vllm" and rest:
        return {"backend": "vllm", "model": None, "model_path": rest}
    if kind == "openai" and rest:
        model, at, url = rest.rpartition("@")
        if not at:
            return {"backend": "openai", "model": rest, "base_url": None}
        urls = url.split(",")
        if model and all(u.startswith(("http://", "https://")) for u in urls):
            if len(set(urls)) != len(urls):
                raise _bad_spec(spec, ": a server URL repeats; list each once")
            base_url = urls[0] if len(urls) == 1 else urls
            return {"backend": "openai", "model": model, "base_url": base_url}
        raise _bad_spec(
            spec,
            ": expected openai:MODEL@URL (or MODEL@URL,URL,... for several servers of the "
            "model) with a non-empty model and URLs starting with http:// or https://",
        )
    if kind not in BACKENDS and is_import_path(spec):
        try:
            BACKENDS.get(spec)
        except ValueError as exc:
            raise _bad_spec(spec, f" ({exc})") from None
        return {"backend": spec}
    raise _bad_spec(spec)


def make_backend(spec: str, **options: Any) -> LLMBackend:
    """Build a backend from an ``--llm`` spec (see :func:`parse_llm_spec`).

    Args:
        spec: the spec; ``llama_cpp`` and ``hf`` without a path load the bundled
            SmolLM2-135M-Instruct GGUF.
        options: keyword arguments for the backend's constructor (unknown ones raise
            ``TypeError``).

    Raises:
        ValueError: the spec matches none of the forms, or names a class that does not load.
    """
    s = parse_llm_spec(spec)
    name = s["backend"]
    cls = BACKENDS.get(name)
    if name == "fake":
        from evolm.llm.fake import mutating_responder

        options.setdefault("responder", mutating_responder)
        return cls(**options)
    if name == "replay":
        return cls(s["cassette"], **options)
    if name in ("llama_cpp", "hf", "vllm"):
        return cls(s["model_path"], **options)
    if name == "openai":
        if s["base_url"] is not None:
            options = {**options, "base_url": s["base_url"]}
        return cls(s["model"], **options)
    return cls(**options)


def _common(cls: type[LLMBackend], offered: dict[str, Any]) -> dict[str, Any]:
    """The run-wide settings ``cls``'s constructor takes (all of them for a subclass that keeps
    the base constructor or takes ``**kwargs``)."""
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return offered
    return {k: v for k, v in offered.items() if k in params}


def build_backend(config: RunConfig, llm_config: LLMConfig | None = None) -> LLMBackend:
    """The LLM backend a configuration names (``llm_config``, default ``config.llm``).

    The caller owns the backend and closes it (``await backend.aclose()``).

    Raises:
        evolm.config.ConfigError: a shipped adapter or cassette that does not exist.
        evolm.llm.LLMError: the backend cannot be set up (a package or model file is missing).
        ValueError: a user backend that does not load or rejects its parameters.
    """
    from evolm import config as cf

    c = llm_config if llm_config is not None else config.llm
    seed = config.seed
    if isinstance(c, cf.FakeLLMConfig):
        return make_backend(
            "fake", model=c.model or "fake", latency=c.latency, concurrency=c.concurrency
        )
    if isinstance(c, cf.ReplayLLMConfig):
        assert c.cassette is not None  # the config requires it
        from evolm.llm.replay import ReplayLLM

        return ReplayLLM(resolve_cassette(c.cassette))
    if isinstance(c, cf.LlamaCppLLMConfig):
        from evolm.llm.llama_cpp import LlamaCppLLM

        return LlamaCppLLM(
            c.model_path,
            model=c.model,
            n_ctx=c.n_ctx,
            n_threads=c.n_threads,
            concurrency=c.concurrency,
            prices=c.prices,
            lora_path=resolve_adapter(
                c.lora,
                config.domain.name,
                c.model_path,
                operators=[op.kind for op in config.operator_list()],
            ),
            lora_scale=c.lora_scale,
            token_healing=c.token_healing,
            prefix_cache_mb=c.prefix_cache_mb,
            seed=seed,
        )
    if isinstance(c, cf.HFLLMConfig):
        from evolm.llm.hf import HFLLM

        return HFLLM(
            c.model_path,
            model=c.model,
            device=c.device,
            dtype=c.dtype,
            quantization=c.quantization,
            concurrency=c.concurrency,
            prices=c.prices,
            lora_path=c.lora if c.lora not in (None, SHIPPED) else None,
            seed=seed,
        )
    if isinstance(c, cf.VLLMLLMConfig):
        from evolm.llm.vllm import VLLMLLM

        assert c.model_path is not None  # the config requires it
        return VLLMLLM(
            c.model_path,
            model=c.model,
            dtype=c.dtype,
            gpu_memory_utilization=c.gpu_memory_utilization,
            tensor_parallel_size=c.tensor_parallel_size,
            concurrency=c.concurrency,
            prices=c.prices,
            seed=seed,
        )
    if isinstance(c, cf.OpenAILLMConfig):
        assert c.model is not None  # the config requires it
        from evolm.llm.openai_compat import OpenAICompatLLM

        return OpenAICompatLLM(
            c.model,
            base_url=c.base_url,
            api_key_env=c.api_key_env,
            concurrency=c.concurrency,
            timeout=c.timeout,
            max_retries=c.max_retries,
            deadline=c.deadline,
            max_retry_wait=c.max_retry_wait,
            endpoint_backoff=c.endpoint_backoff,
            prices=c.prices,
            seed=seed,
        )
    if isinstance(c, cf.CustomLLMConfig):
        cls = BACKENDS.get(c.backend)
        offered: dict[str, Any] = {"concurrency": c.concurrency, "prices": c.prices, "seed": seed}
        if c.model is not None:
            offered["model"] = c.model
        try:
            return cls(**_common(cls, offered), **c.params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for LLM backend {c.backend!r}: {exc}") from exc
    raise ValueError(f"no builder for LLM backend {c.backend!r}")


SHIPPED = "shipped"
"""``llm.lora`` value for the adapter evolm ships for the bundled model and the run's domain."""


#: the operator whose prompts an adapter's training format renders (its card's ``format``)
FORMAT_OPERATORS = {
    "full": "prompt_mutation",
    "elm_diff": "elm_diff",
    "search_replace": "search_replace",
    "line": "line_edit",
}


def _shipped_for(domain: str, operators: Sequence[str]) -> str | None:
    """The shipped SmolLM2 adapter of ``domain`` for the first of ``operators`` that one was
    trained for (``smollm2-<domain>.gguf`` or ``smollm2-<domain>-<tag>.gguf``, by the
    ``format`` of its card); with no ``operators`` given, ``smollm2-<domain>.gguf`` if it
    exists; else None (no shipped adapter was trained for any of the run's operators)."""
    root = resources.files("evolm.adapters")
    by_operator: dict[str, str] = {}
    for f in sorted(root.iterdir(), key=lambda f: f.name):
        name = f.name
        if not name.endswith(".gguf"):
            continue
        stem = name.removesuffix(".gguf")
        if stem != f"smollm2-{domain}" and not stem.startswith(f"smollm2-{domain}-"):
            continue
        card = root.joinpath(stem + ".json")
        fmt = json.loads(card.read_text()).get("format", "") if card.is_file() else ""
        by_operator.setdefault(FORMAT_OPERATORS.get(fmt, ""), str(f))
    for op in operators:
        if op in by_operator:
            return by_operator[op]
    default = root.joinpath(f"smollm2-{domain}.gguf")
    return str(default) if default.is_file() and not operators else None


def resolve_adapter(
    spec: str | None,
    domain: str,
    model_path: str | None = None,
    operators: Sequence[str] = (),
) -> str | None:
    """The LoRA adapter file an ``llm.lora`` value names, or None.

    ``"shipped"`` is an adapter trained for the bundled SmolLM2 model and ``domain``: of the
    ones evolm ships (``evolm/adapters/smollm2-<domain>[-<tag>].gguf``), the one trained in the
    format of the first of the run's ``operators`` that has one (``line_edit`` takes the
    ``line`` adapter; ``operators`` not given: ``smollm2-<domain>.gguf``). With another model,
    a domain without one, or operators none was trained for, it is no adapter.
    ``package:NAME`` names a shipped adapter; anything else is a path.

    Raises:
        evolm.config.ConfigError: no shipped adapter has that name.
    """
    if spec is None:
        return None
    root = resources.files("evolm.adapters")
    if spec == SHIPPED:
        return _shipped_for(domain, operators) if model_path is None else None
    if spec.startswith("package:"):
        from evolm.config import ConfigError

        name = spec.split(":", 1)[1]
        res = root.joinpath(f"{name}.gguf")
        if not res.is_file():
            shipped = sorted(
                f.name.removesuffix(".gguf") for f in root.iterdir() if f.name.endswith(".gguf")
            )
            raise ConfigError(
                f"llm.lora: no adapter named {name!r} ships with evolm; shipped: "
                f"{', '.join(shipped) or 'none'}"
            )
        return str(res)
    return spec


def resolve_cassette(spec: str) -> str:
    """A cassette path; ``package:NAME`` names one shipped in ``evolm/cassettes``.

    Raises:
        evolm.store.StoreError: no shipped cassette has that name.
    """
    if spec.startswith("package:"):
        from evolm.store import StoreError

        name = spec.split(":", 1)[1]
        res = resources.files("evolm.cassettes").joinpath(f"{name}.db")
        if not res.is_file():
            raise StoreError(f"no cassette named {name!r} ships with evolm")
        return str(res)
    return spec
