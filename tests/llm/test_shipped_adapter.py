"""The LoRA adapter evolm ships for the bundled SmolLM2 (scripts/train_shipped_adapter.py): it
belongs to the bundled model, says how it was made, and makes the model write the edit format
it learnt, which the base model does not."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from evolm.domains.base import get_domain
from evolm.engine import resolve_adapter
from evolm.llm import LlamaCppLLM
from evolm.llm.models import default_gguf
from evolm.operators.search_replace import SearchReplace
from evolm.types import Evaluation, Individual, Program, Status

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

ADAPTER = resolve_adapter("shipped", "image")
pytestmark = pytest.mark.skipif(ADAPTER is None, reason="no image adapter ships in this tree")


def card() -> dict:
    assert ADAPTER is not None
    return json.loads(Path(ADAPTER).with_suffix(".json").read_text())


def test_the_card_names_the_bundled_base_model_its_data_and_its_recipe() -> None:
    c = card()
    digest = hashlib.sha256(default_gguf().read_bytes()).hexdigest()
    assert c["base_model"]["sha256"] == digest  # trained on exactly the model that ships
    assert c["format"] == "search_replace" and c["accept"] == "inserted"
    assert c["dataset"]["train"] > 100 and c["dataset"]["val"] > 0
    assert c["metrics"]["val_loss_after"] < c["metrics"]["val_loss_before"]
    assert c["recipe"].startswith("scripts/train_shipped_adapter.py --domain image")


@pytest.mark.slow
def test_the_adapter_makes_the_model_write_edit_blocks_that_apply() -> None:
    """Same prompts, same seeds: the base model writes no complete SEARCH/REPLACE block (0 of
    32 in a run, docs/self-improvement.md); with the adapter most answers are blocks."""
    domain = get_domain("image", {})
    op = SearchReplace(domain.context(), mode="completion")
    parents = [
        Individual(Program(id=i, code=code), Evaluation(Status.OK, -0.5, (0.5, 0.5, 0.5)))
        for i, code in enumerate(domain.seeds())
    ]
    rng = np.random.default_rng(0)
    proposals = [op.propose([parents[k % len(parents)]], rng) for k in range(8)]
    requests = [p.request for p in proposals]

    def blocks(llm: LlamaCppLLM) -> int:
        answers = asyncio.run(llm.generate(requests))
        results = [op.finish(p, a.text) for p, a in zip(proposals, answers, strict=True)]
        return sum("no complete SEARCH/REPLACE block" not in (r.error or "") for r in results)

    base, adapted = LlamaCppLLM(), LlamaCppLLM(lora_path=ADAPTER)
    try:
        with_adapter, without = blocks(adapted), blocks(base)
    finally:
        asyncio.run(adapted.aclose())
        asyncio.run(base.aclose())
    assert with_adapter >= 6 and with_adapter > without
