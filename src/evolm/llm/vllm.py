"""vLLM offline batched generation on a GPU (``pip install 'evolm[vllm]'``).

The backend drives vLLM's offline API: one ``vllm.LLM`` with prefix caching on
(``enable_prefix_caching=True``), so prompts that share a prefix (the task description, the
helper code) share its KV blocks. Each model call is ``LLM.generate`` over a batch of token
prompts, each with its own ``SamplingParams``.

- **Batches.** The engine sends one request per candidate, concurrently; a
  :class:`~evolm.llm.local.MicroBatcher` collects the waiting ones (up to ``concurrency``) into
  one ``generate`` call.
- **Many samples per prompt.** Requests in a batch that have the same prompt and sampling
  settings (what ``llm.samples_per_prompt = k`` produces) become one vLLM request with
  ``SamplingParams(n=k, seed=...)``. Its seed is the first request's seed, and the k samples go
  to the k requests in order.
- **Prompts.** They are tokenized here (the chat template for chat requests), so the
  prompt-size check counts exactly what vLLM sees.

vLLM runs only on a CUDA GPU: without one, the backend refuses to start, with the reason.
``vllm`` is imported when a backend is built, never when this module is imported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from evolm.llm.base import Completion, LLMBackend, LLMError, Request
from evolm.llm.hf import encode_request
from evolm.llm.local import MicroBatcher, ModelWorker

__all__ = ["VLLMLLM", "group_samples"]

_INSTALL = "pip install 'evolm[vllm]'"


def group_samples(requests: Sequence[Request]) -> list[list[int]]:
    """Indices of ``requests`` grouped by equal prompt and sampling settings
    (:meth:`Request.key`), in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(r.key(), []).append(i)
    return list(groups.values())


class VLLMLLM(LLMBackend):
    """A model served in-process by vLLM's offline engine, on a GPU.

    Args:
        model_path: what ``vllm.LLM(model=...)`` takes: a model directory, or a hub id already
            in the local cache (nothing is downloaded when ``HF_HUB_OFFLINE=1``).
        model: the name recorded with each completion (default: ``model_path``'s last part).
        dtype: ``auto``, ``float32``, ``float16`` or ``bfloat16``.
        gpu_memory_utilization: the share of GPU memory vLLM may take.
        tensor_parallel_size: GPUs per model.
        max_model_len: context length (default: the model's).
        enable_prefix_caching: share KV blocks across prompts with a common prefix.
        concurrency: the largest batch (and the most requests in flight).
        prices: USD per million (input, output) tokens; default: cost 0.
        seed: vLLM's engine seed, and the seeds of requests that carry none.

    Raises:
        LLMError: vllm is not installed, no CUDA GPU is visible, or the model cannot be loaded.
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        *,
        model: str | None = None,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
        concurrency: int = 256,
        prices: tuple[float, float] | None = None,
        seed: int = 0,
    ) -> None:
        path = str(model_path)
        super().__init__(
            model or Path(path.rstrip("/")).name or path, concurrency, prices=prices, seed=seed
        )
        self.model_path = path
        try:
            import vllm
        except ImportError as exc:
            raise LLMError(
                f"the vllm backend needs vLLM and a CUDA GPU: {_INSTALL}; on CPU use "
                "llama_cpp or hf"
            ) from exc
        self._vllm = vllm
        if not _cuda_available():
            raise LLMError(
                "the vllm backend needs a CUDA GPU and none is visible; on CPU use llama_cpp "
                "(the embedded default) or hf"
            )
        options: dict[str, Any] = {
            "model": path,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "enable_prefix_caching": enable_prefix_caching,
            "seed": seed,
        }
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        try:
            self.engine = vllm.LLM(**options)
        except Exception as exc:  # vLLM raises many types while loading
            raise LLMError(f"vLLM cannot load {path}: {type(exc).__name__}: {exc}") from exc
        self.tokenizer = self.engine.get_tokenizer()
        self._worker = ModelWorker(f"vllm-{self.model}")
        self._batcher = MicroBatcher(self._generate_batch, self._worker, max_batch=concurrency)

    def __repr__(self) -> str:
        return f"VLLMLLM(model={self.model!r}, model_path={self.model_path!r})"

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every batch generated so far (in requests, before grouping)."""
        return self._batcher.batch_sizes

    @property
    def context_length(self) -> int:
        """The engine's ``max_model_len``."""
        return int(self.engine.llm_engine.model_config.max_model_len)

    def count_tokens(self, request: Request) -> int:
        """Prompt tokens of ``request`` exactly as vLLM will see them."""
        return len(self._encode(request))

    def _encode(self, request: Request) -> list[int]:
        return encode_request(self.tokenizer, request)

    async def _generate_one(self, request: Request) -> Completion:
        if request.options:
            raise LLMError(
                "the vllm backend does not score answer options yet; use the judge's "
                'method = "rating", or a llama_cpp or hf judge model'
            )
        if request.seed is None:
            request = replace(request, seed=self.request_seed(request))
        return await self._batcher.submit(request)

    def _generate_batch(
        self, requests: Sequence[Request], cancels: Sequence[threading.Event]
    ) -> list[Completion]:
        t0 = time.perf_counter()
        context = self.context_length
        result: list[Completion | None] = [None] * len(requests)
        groups, prompts, params = [], [], []
        for group in group_samples(requests):
            first = requests[group[0]]
            ids = self._encode(first)
            if len(ids) >= context:
                for index in group:
                    result[index] = Completion(
                        text="",
                        model=self.model,
                        error=f"context overflow: the prompt needs {len(ids)} tokens but the "
                        f"context of {self.model} is {context}",
                    )
                continue
            groups.append(group)
            prompts.append({"prompt_token_ids": ids})
            params.append(
                self._vllm.SamplingParams(
                    n=len(group),
                    temperature=first.temperature,
                    top_p=first.top_p,
                    max_tokens=min(first.max_tokens, context - len(ids)),
                    stop=list(first.stop) or None,
                    seed=first.seed,
                )
            )
        if not groups:
            return [c for c in result if c is not None]
        outputs = self.engine.generate(prompts, params, use_tqdm=False)
        elapsed = time.perf_counter() - t0
        for group, output in zip(groups, outputs, strict=True):
            tokens_in = len(output.prompt_token_ids or ())
            seed = requests[group[0]].seed
            for sample, (index, choice) in enumerate(zip(group, output.outputs, strict=True)):
                tokens_out = len(choice.token_ids)
                result[index] = Completion(
                    text=choice.text,
                    model=self.model,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    latency=elapsed,
                    finish_reason=choice.finish_reason,
                    cost=self.cost(tokens_in, tokens_out),
                    extras={"seed": seed, "sample": sample, "n": len(group)},
                )
        return [c for c in result if c is not None]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
