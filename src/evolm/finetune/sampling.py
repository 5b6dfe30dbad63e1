"""Sample programs from a trained model and score them in the sandbox: what Stages 2 and 3 share.

ELM's Stage 2 and Stage 3 (Lehman et al. 2022, sections 5 and 6) judge a model by what it writes
from a short prompt: the share of valid programs, the niches they fall in, their fitness, and in
Stage 3 the distance a walker covers on a given terrain. Two pieces do that here:

* :func:`sample_programs` asks a model for ``k`` completions of each prompt through evolm's own
  LLM backends (``llama_cpp`` with a GGUF adapter, ``hf`` with a peft adapter directory), so a
  trained model is measured the way a run would use it, and cuts each answer at the stage
  prompt's end marker (:data:`END`).
* :class:`Scorer` evaluates programs in :class:`~evolm.sandbox.SandboxPool` jails, one pool per
  set of domain parameters (a Sodarace terrain, say), from synchronous code: the pools live on an
  event loop of their own in a daemon thread. It is what the Stage-3 reward calls from trl's
  reward callback, so a program never runs in the training process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolm.types import Evaluation

__all__ = ["END", "ModelSpec", "Scorer", "adapter_for", "extract_program", "sample_programs"]

END = "# End of program"
"""The line every Stage-2 training completion ends with; generation stops there."""


def extract_program(text: str) -> str:
    """The program in a completion: the text before the :data:`END` line (all of it when the
    model stopped without writing one, at its end-of-sequence token or its token limit)."""
    cut = text.find(END)
    body = text[:cut] if cut >= 0 else text
    return body.rstrip() + "\n"


@dataclass(frozen=True)
class ModelSpec:
    """A model to sample from, as ``--llm`` names it, with an optional adapter.

    Attributes:
        llm: ``llama_cpp[:FILE.gguf]`` or ``hf[:PATH]`` (no path: the bundled SmolLM2 GGUF).
        lora: a GGUF adapter (``llama_cpp``) or a peft adapter directory (``hf``), or None.
        label: how reports name it (``base``, ``stage2``, ``stage3``).
    """

    llm: str
    lora: str | None = None
    label: str = "model"

    def to_dict(self) -> dict[str, Any]:
        return {"llm": self.llm, "lora": self.lora, "label": self.label}


def sample_programs(
    model: ModelSpec,
    prompts: Sequence[str],
    k: int,
    *,
    max_tokens: int = 512,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
) -> list[list[str]]:
    """``k`` programs per prompt from ``model`` (completion mode, stop at :data:`END`).

    Request ``j`` of prompt ``i`` has seed ``seed * 1_000_003 + i * k + j``, so a sample is
    reproducible wherever it is drawn. A failed call gives an empty program (invalid when scored).

    Raises:
        evolm.llm.LLMError: the backend cannot be built (a missing package or model file).
    """
    from evolm.llm.base import Request
    from evolm.llm.build import make_backend

    options: dict[str, Any] = {"seed": seed}
    if model.lora is not None:
        options["lora_path"] = model.lora
    backend = make_backend(model.llm, **options)
    requests = [
        Request(
            kind="completion",
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stop=("\n" + END,),
            seed=seed * 1_000_003 + i * k + j,
        )
        for i, prompt in enumerate(prompts)
        for j in range(k)
    ]

    async def run() -> list[str]:
        try:
            answers = await backend.generate(requests)
        finally:
            await backend.aclose()
        return [extract_program(a.text) if a.ok else "" for a in answers]

    flat = asyncio.run(run())
    return [flat[i * k : (i + 1) * k] for i in range(len(prompts))]


class Scorer:
    """Evaluate programs of one domain in sandbox pools, one pool per named parameter set.

    Args:
        domain: the registered domain name (``"sodarace"``).
        variants: name -> domain parameters, e.g. ``{"flat": {"terrain": "flat"}, ...}``.
        workers: zygotes per pool.
        tier, allow_weak: the sandbox tier, as ``evolm run`` takes them.

    Pools start on first use. :meth:`evaluate` blocks until every program of the batch is
    scored (they run concurrently, up to ``workers`` per pool). Close the scorer (or use it as a
    context manager) to stop the workers.

    Raises:
        ValueError: an unknown domain or bad parameters (raised here, before any process starts).
    """

    def __init__(
        self,
        domain: str,
        variants: Mapping[str, Mapping[str, Any]],
        *,
        workers: int = 2,
        tier: str = "auto",
        allow_weak: bool = False,
    ) -> None:
        from evolm.domains.base import get_domain

        if not variants:
            raise ValueError("name at least one parameter set to score programs with")
        self.domain = domain
        self.variants = {name: dict(params) for name, params in variants.items()}
        self._timeouts = {
            name: float(get_domain(domain, params).eval_timeout)
            for name, params in self.variants.items()
        }
        self.workers = workers
        self.tier = tier
        self.allow_weak = allow_weak
        self._pools: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._closed = False

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _pool(self, name: str) -> Any:
        from evolm.sandbox import SandboxPool

        pool = self._pools.get(name)
        if pool is None:
            pool = SandboxPool(
                self.domain,
                self.variants[name],
                workers=self.workers,
                timeout=self._timeouts[name],
                tier=self.tier,
                allow_weak=self.allow_weak,
            )
            await pool.start()
            self._pools[name] = pool
        return pool

    async def _evaluate(
        self, codes: Sequence[str], names: Sequence[str], seed: int
    ) -> list[Evaluation]:
        pools = {name: await self._pool(name) for name in dict.fromkeys(names)}
        return list(
            await asyncio.gather(
                *(pools[n].evaluate(code, seed) for code, n in zip(codes, names, strict=True))
            )
        )

    def evaluate(
        self, codes: Sequence[str], names: Sequence[str] | str, seed: int = 0
    ) -> list[Evaluation]:
        """Score ``codes[i]`` with parameter set ``names[i]`` (or one name for all).

        Raises:
            KeyError: a name that is not one of the variants.
            evolm.sandbox.SandboxUnavailable: no jail works on this machine.
        """
        if self._closed:
            raise RuntimeError("the scorer is closed")
        if isinstance(names, str):
            names = [names] * len(codes)
        unknown = sorted(set(names) - set(self.variants))
        if unknown:
            raise KeyError(
                f"unknown parameter set(s) {', '.join(unknown)}; known: {', '.join(self.variants)}"
            )
        if not codes:
            return []
        future: Future[list[Evaluation]] = asyncio.run_coroutine_threadsafe(
            self._evaluate(codes, names, seed), self._loop
        )
        return future.result()

    def close(self) -> None:
        """Stop every pool's workers and the event loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for pool in self._pools.values():
            self._loop.call_soon_threadsafe(pool.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()


def adapter_for(out_dir: str | Path, llm: str) -> str | None:
    """The adapter a training directory holds for a backend: ``adapter.gguf`` for
    ``llama_cpp``, the peft ``adapter/`` directory for ``hf`` (None when it is missing)."""
    out = Path(out_dir)
    path = out / "adapter.gguf" if llm.split(":", 1)[0] == "llama_cpp" else out / "adapter"
    return str(path) if path.exists() else None
