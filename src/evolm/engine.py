"""Compatibility names: the run loop now lives in :mod:`evolm.runner` (the asyncio runner)
and :mod:`evolm.scheduler` (ask / tell, budgets, archive rebuilding).

``Engine`` is :class:`evolm.runner.Runner`. This module also holds the backend builder used by
both.
"""

from __future__ import annotations

from evolm.config import ConfigError, LLMConfig, RunConfig
from evolm.llm.base import LLMBackend
from evolm.runner import PromptTooLong, Runner, RunResult, dependency_versions
from evolm.scheduler import Arm, Snapshot, apply_batch, build_archive, rebuild_archive
from evolm.store import StoreError

Engine = Runner

__all__ = [
    "Arm",
    "Engine",
    "PromptTooLong",
    "RunResult",
    "Snapshot",
    "apply_batch",
    "build_archive",
    "build_backend",
    "dependency_versions",
    "rebuild_archive",
    "resolve_adapter",
    "resolve_cassette",
]


def build_backend(config: RunConfig, llm_config: LLMConfig | None = None) -> LLMBackend:
    """The LLM backend a configuration names (``llm_config``, default ``config.llm``).

    Raises:
        ValueError: a setting the backend needs is missing.
        evolm.llm.LLMError: the backend cannot be set up (a package or model file is missing).
    """
    from evolm.llm import make_backend

    c = llm_config if llm_config is not None else config.llm
    if c.backend == "fake":
        return make_backend(
            "fake", model=c.model or "fake", latency=c.latency, concurrency=c.concurrency
        )
    if c.backend == "replay":
        if not c.cassette:
            raise ValueError(
                "llm.backend = 'replay' needs llm.cassette (a run database path, "
                "or 'package:NAME' for a shipped cassette)"
            )
        return make_backend(f"replay:{resolve_cassette(c.cassette)}")
    path = f":{c.model_path}" if c.model_path else ""
    if c.backend == "llama_cpp":
        return make_backend(
            f"llama_cpp{path}",
            model=c.model,
            n_ctx=c.n_ctx,
            n_threads=c.n_threads,
            concurrency=c.concurrency,
            prices=c.prices,
            lora_path=resolve_adapter(c.lora, config.domain.name, c.model_path),
            lora_scale=c.lora_scale,
            token_healing=c.token_healing,
            seed=config.seed,
        )
    if c.backend == "hf":
        return make_backend(
            f"hf{path}",
            model=c.model,
            device=c.device,
            dtype=c.dtype,
            quantization=c.quantization,
            concurrency=c.concurrency,
            prices=c.prices,
            lora_path=c.lora if c.lora not in (None, SHIPPED) else None,
            seed=config.seed,
        )
    if c.backend == "vllm":
        if not c.model_path:
            raise ValueError(
                "llm.backend = 'vllm' needs llm.model_path (a model directory, or a hub id "
                "already in the local cache)"
            )
        return make_backend(
            f"vllm{path}",
            model=c.model,
            dtype=c.dtype,
            gpu_memory_utilization=c.gpu_memory_utilization,
            tensor_parallel_size=c.tensor_parallel_size,
            concurrency=c.concurrency,
            prices=c.prices,
            seed=config.seed,
        )
    if not c.model:
        raise ValueError("llm.backend = 'openai' needs llm.model (the model name to request)")
    return make_backend(
        f"openai:{c.model}" + (f"@{c.base_url}" if c.base_url else ""),
        api_key_env=c.api_key_env,
        concurrency=c.concurrency,
        timeout=c.timeout,
        max_retries=c.max_retries,
        prices=c.prices,
        seed=config.seed,
    )


SHIPPED = "shipped"
"""``llm.lora`` value for the adapter evolm ships for the bundled model and the run's domain."""


def resolve_adapter(spec: str | None, domain: str, model_path: str | None = None) -> str | None:
    """The LoRA adapter file an ``llm.lora`` value names, or None.

    ``"shipped"`` is the adapter trained for the bundled SmolLM2 model and ``domain``
    (``evolm/adapters/smollm2-<domain>.gguf``); with another model, or a domain without one, it
    is no adapter. ``package:NAME`` names a shipped adapter; anything else is a path.

    Raises:
        ConfigError: no shipped adapter has that name.
    """
    from importlib import resources

    if spec is None:
        return None
    root = resources.files("evolm.adapters")
    if spec == SHIPPED:
        res = root.joinpath(f"smollm2-{domain}.gguf")
        return str(res) if model_path is None and res.is_file() else None
    if spec.startswith("package:"):
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
    """A cassette path; ``package:NAME`` names one shipped in ``evolm/cassettes``."""
    if spec.startswith("package:"):
        from importlib import resources

        name = spec.split(":", 1)[1]
        res = resources.files("evolm.cassettes").joinpath(f"{name}.db")
        if not res.is_file():
            raise StoreError(f"no cassette named {name!r} ships with evolm")
        return str(res)
    return spec
