"""The vLLM backend.

vLLM runs only on a CUDA GPU, so the tests against the real library skip cleanly without vllm or
without a GPU, saying which. The rest checks, without vLLM, what evolm adds around it: requests
grouped into ``SamplingParams(n=...)``, samples handed back in order, context overflow as an
error, and the refusals when vLLM or a GPU is missing. Those use a stand-in module that records
what it is asked and answers like ``vllm.LLM``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from evolm.llm import VLLMLLM, LLMError, Request, make_backend
from evolm.llm import vllm as vllm_module
from evolm.llm.vllm import group_samples


def chat(text: str, seed: int, **kw: Any) -> Request:
    return Request(messages=({"role": "user", "content": text},), seed=seed, **kw)


# -- a stand-in for the vllm module ---------------------------------------------------------
class WordTokenizer:
    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages: list[dict[str, str]], **kw: Any) -> str:
        return " ".join(f"<{m['role']}> {m['content']}" for m in messages) + " <assistant>"

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [len(w) for w in text.split()]}


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    stop: list[str] | None = None
    seed: int | None = None


@dataclass
class Choice:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class Output:
    prompt_token_ids: list[int]
    outputs: list[Choice]


@dataclass
class StubLLM:
    model: str
    options: dict[str, Any]
    calls: list[tuple[list[Any], list[SamplingParams]]] = field(default_factory=list)

    def get_tokenizer(self) -> WordTokenizer:
        return WordTokenizer()

    @property
    def llm_engine(self) -> Any:
        return types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=64))

    def generate(self, prompts: list[Any], params: list[SamplingParams], use_tqdm: bool) -> Any:
        self.calls.append((prompts, params))
        return [
            Output(
                p["prompt_token_ids"],
                [
                    Choice(f"sample {i} of seed {sp.seed}", [7] * (i + 1), "stop")
                    for i in range(sp.n)
                ],
            )
            for p, sp in zip(prompts, params, strict=True)
        ]


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    module.LLM = lambda model, **options: StubLLM(model, options)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(vllm_module, "_cuda_available", lambda: True)
    return module


def test_equal_prompts_become_one_request_with_n_samples(stub: types.ModuleType) -> None:
    llm = VLLMLLM("/models/qwen", concurrency=16, seed=3)
    assert llm.model == "qwen" and llm.context_length == 64
    assert llm.engine.options["enable_prefix_caching"] is True and llm.engine.options["seed"] == 3
    reqs = [chat("a b", 1), chat("c d e", 2), chat("a b", 3), chat("a b", 4, temperature=0.1)]

    async def main() -> Any:
        return await llm.generate(reqs)

    out = asyncio.run(main())
    assert llm.batch_sizes == [4]
    ((prompts, params),) = llm.engine.calls
    assert [p.n for p in params] == [2, 1, 1] and [p.seed for p in params] == [1, 2, 4]
    assert [c.text for c in out] == [
        "sample 0 of seed 1",
        "sample 0 of seed 2",
        "sample 1 of seed 1",
        "sample 0 of seed 4",
    ]
    assert out[0].tokens_in == len(prompts[0]["prompt_token_ids"]) == llm.count_tokens(reqs[0])
    assert (out[2].tokens_out, out[2].extras["n"], out[2].extras["sample"]) == (2, 2, 1)


def test_context_overflow_is_an_error_for_that_prompt_only(stub: types.ModuleType) -> None:
    llm = VLLMLLM("/models/qwen")
    long = chat(" ".join(["w"] * 80), 1)
    bad, good = asyncio.run(llm.generate([long, chat("short", 2, max_tokens=500)]))
    assert not bad.ok and "context overflow" in (bad.error or "")
    assert good.ok
    ((_, params),) = llm.engine.calls
    assert params[0].max_tokens == 64 - llm.count_tokens(chat("short", 2))


def test_group_samples_keeps_first_appearance_order() -> None:
    reqs = [chat("x", 1), chat("y", 1), chat("x", 2), chat("x", 3), chat("y", 9)]
    assert group_samples(reqs) == [[0, 2, 3], [1, 4]]


def test_without_vllm_the_backend_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(LLMError, match=r"pip install 'evolm\[vllm\]'"):
        make_backend("vllm:/models/qwen")


def test_without_a_gpu_the_backend_refuses_with_the_reason(
    stub: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm_module, "_cuda_available", lambda: False)
    with pytest.raises(LLMError, match="needs a CUDA GPU and none is visible"):
        VLLMLLM("/models/qwen")


# -- the real library ----------------------------------------------------------------------
def _why_no_vllm() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed (pip install 'evolm[vllm]'; it needs a CUDA GPU)"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible; vLLM runs only on a GPU"
    if not os.environ.get("EVOLM_VLLM_MODEL"):
        return "set EVOLM_VLLM_MODEL to a local model directory to test vLLM"
    return None


needs_vllm = pytest.mark.skipif(_why_no_vllm() is not None, reason=str(_why_no_vllm()))


@needs_vllm
def test_real_vllm_samples_many_per_prompt_with_seeds() -> None:
    llm = VLLMLLM(os.environ["EVOLM_VLLM_MODEL"], gpu_memory_utilization=0.5, seed=0)
    prompt = "Write a Python function that returns the square of x."
    reqs: Sequence[Request] = [chat(prompt, seed, max_tokens=48) for seed in (1, 2, 3, 4)]
    out = asyncio.run(llm.generate(reqs))
    assert all(c.ok and c.text for c in out)
    assert {c.extras["n"] for c in out} == {4}
    assert out[0].tokens_in == llm.count_tokens(reqs[0])
    again = asyncio.run(llm.generate(reqs))
    assert [c.text for c in again] == [c.text for c in out]  # seeded: reproducible
