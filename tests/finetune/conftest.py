"""Fixtures for the fine-tuning tests: run databases (real tiny evolutions and hand-made ones),
a character-level tokenizer and tiny Llama models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import evolm
from evolm.llm.base import Completion, Request
from evolm.store import RunStore
from evolm.types import Evaluation, Program, Status

IMAGE = {"name": "image", "params": {"target": "circle", "size": 32, "metric": "l2"}}


@pytest.fixture(scope="session")
def gp_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 60-evaluation image run with the GP operator (no LLM)."""
    path = tmp_path_factory.mktemp("runs") / "gp.db"
    res = evolm.run(
        {
            "llm": {"backend": "fake"},
            "operator": {"kind": "gp"},
            "budget": {"evaluations": 60},
            "seed": 1,
        },
        preset="image",
        out=path,
    )
    assert res.status == "completed"
    return path


@pytest.fixture(scope="session")
def fake_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 60-evaluation image run with prompt mutation by the fake LLM (chat mode)."""
    path = tmp_path_factory.mktemp("runs") / "fake.db"
    res = evolm.run(
        {"llm": {"backend": "fake"}, "budget": {"evaluations": 60}, "seed": 1},
        preset="image",
        out=path,
    )
    assert res.status == "completed"
    return path


def make_db(
    path: Path,
    programs: Sequence[dict[str, Any]],
    calls: dict[int, tuple[Request, str]] | None = None,
) -> Path:
    """A run database of the image domain holding exactly ``programs``: dicts with ``id``,
    ``code``, ``parents`` and, for evaluated ones, ``status``, ``fitness``, ``add`` (and
    ``descriptors``, default zeros); ``calls``
    maps a program id to the LLM request and answer recorded for it."""
    calls = calls or {}
    with RunStore(path) as store:
        store.create_run(seed=0, domain="image", config={"domain": IMAGE}, versions={})
        for p in programs:
            call_id = None
            if p["id"] in calls:
                request, text = calls[p["id"]]
                call_id = store.add_llm_call(1, request, Completion(text=text, model="m"))
            store.add_programs(
                [
                    Program(
                        id=p["id"],
                        code=p["code"],
                        parent_ids=tuple(p["parents"]),
                        operator="test" if p["parents"] else "seed",
                        llm_call_id=call_id,
                    )
                ]
            )
            if "status" in p:
                status = Status(p["status"])
                ev = (
                    Evaluation(
                        status,
                        fitness=p["fitness"],
                        descriptors=tuple(p.get("descriptors", (0.0, 0.0, 0.0))),
                    )
                    if status is Status.OK
                    else Evaluation.failure(status, "boom")
                )
                store.add_evaluations([(p["id"], ev, p.get("add"))])
    return path


@pytest.fixture(scope="session")
def char_tokenizer() -> Any:
    """A character-level fast tokenizer with <s>, </s> and <unk> (and a chat template)."""
    pytest.importorskip("transformers")
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    chars = [chr(i) for i in range(32, 127)] + ["\n", "\t"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="</s>",
    )
    tok.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    return tok


def tiny_llama(vocab_size: int, seed: int = 0, initializer_range: float = 0.02) -> Any:
    """A randomly initialised 2-layer Llama (hidden 64, 4 heads, 2 key/value heads);
    ``initializer_range`` above the default 0.02 gives it peaked, non-uniform next-token
    distributions that a few RL steps can move."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=initializer_range,
    )
    return LlamaForCausalLM(config)


@pytest.fixture
def tiny_base(tmp_path: Path, char_tokenizer: Any) -> Path:
    """A model directory (config.json, weights, tokenizer) of a tiny random Llama."""
    pytest.importorskip("peft")
    path = tmp_path / "tiny-llama"
    tiny_llama(len(char_tokenizer)).save_pretrained(path)
    char_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def soda_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 40-evaluation Sodarace run with the GP operator (no LLM): valid walkers in a few
    niches, for ELM Stages 2 and 3."""
    path = tmp_path_factory.mktemp("runs") / "soda.db"
    res = evolm.run(
        {
            "llm": {"backend": "fake"},
            "operator": {"kind": "gp"},
            "budget": {"evaluations": 40},
            "seed": 1,
        },
        preset="sodarace",
        out=path,
    )
    assert res.status == "completed"
    return path


@pytest.fixture(scope="session")
def peaked_base(tmp_path_factory: pytest.TempPathFactory, char_tokenizer: Any) -> Path:
    """A tiny random Llama directory whose next-token distributions are peaked enough
    (``initializer_range`` 0.2) for a few RL steps to change what it writes."""
    pytest.importorskip("peft")
    path = tmp_path_factory.mktemp("models") / "peaked-llama"
    tiny_llama(len(char_tokenizer), initializer_range=0.2).save_pretrained(path)
    char_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def stage2_dir(tmp_path_factory: pytest.TempPathFactory, soda_db: Path, peaked_base: Path) -> Path:
    """A Stage-2 round (2 steps) of the peaked tiny Llama on the Sodarace run's elites."""
    from evolm.finetune.distill import distill
    from evolm.finetune.train import TrainConfig

    out = tmp_path_factory.mktemp("stage2") / "s2"
    distill(
        [soda_db],
        out,
        cut=0.5,
        base=peaked_base,
        config=TrainConfig(max_steps=2, max_len=4096, batch_size=2),
    )
    return out
