"""The engine with LLM backends: the start-up prompt-size check, budgets in tokens and money on
the real embedded model, exact reruns, and several samples per prompt."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from evolm.config import RunConfig, load_config
from evolm.llm import FakeLLM, LlamaCppLLM, mutating_responder
from evolm.llm.base import LLMBackend
from evolm.runner import PromptTooLong, Runner
from evolm.store import RunStore, StoreError

TOY = "tests.toy_domain:ToyDomain"


def config(**over: Any) -> RunConfig:
    base: dict[str, Any] = {
        "seed": 3,
        "domain": {"name": TOY},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "llm": {"backend": "llama_cpp", "max_tokens": 40, "concurrency": 4},
        "engine": {"batch_size": 3, "pipeline_depth": 2, "workers": 1, "init_batches": 1},
        "budget": {"llm_calls": 6},
    }
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(overrides=base)


def run(cfg: RunConfig, path: Path, llm: LLMBackend | None = None) -> tuple[Runner, RunStore]:
    store = RunStore(path)
    engine = Runner(cfg, store, llm=llm)
    result = asyncio.run(engine.run())
    assert result.status == "completed", result
    return engine, store


@pytest.fixture(scope="module")
def embedded() -> LlamaCppLLM:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    return LlamaCppLLM()


def test_prompts_that_cannot_fit_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    cfg = config(
        domain={"name": "image"}, archive={"bins": 4}, llm={"n_ctx": 256, "max_tokens": 512}
    )
    store = RunStore(tmp_path / "r.db")
    engine = Runner(cfg, store)
    with pytest.raises(PromptTooLong) as info:
        asyncio.run(engine.run())
    message = str(info.value)
    match = re.match(
        r"prompt needs (\d+) tokens \+ max_tokens (\d+) > context 256 of smollm2-135m-instruct; "
        r"lower llm\.max_tokens or use a model with a longer context \(this model was trained "
        r"on 8192 tokens: raise llm\.n_ctx to (\d+) or more\)",
        message,
    )
    assert match, message
    need, answer = int(match.group(1)), int(match.group(2))
    # the answer limit is the request's: sized from the longest seed, at most llm.max_tokens
    assert 64 < answer <= 512
    assert need > 100 and int(match.group(3)) == need + answer
    with pytest.raises(StoreError, match="holds no run"):
        store.run_info()
    assert store.counts() == {}


def test_the_check_passes_with_room_and_is_skipped_without_a_tokenizer(
    tmp_path: Path, embedded: LlamaCppLLM
) -> None:
    Runner(config(), RunStore(tmp_path / "a.db"), llm=embedded).check_prompt_fits()
    fake = FakeLLM(responder=mutating_responder)
    tiny = config(llm={"backend": "fake", "max_tokens": 10**6})
    Runner(tiny, RunStore(tmp_path / "b.db"), llm=fake).check_prompt_fits()


def test_the_embedded_model_runs_an_evolution_and_every_call_is_recorded(
    tmp_path: Path, embedded: LlamaCppLLM
) -> None:
    _, store = run(config(), tmp_path / "r.db", embedded)
    rows = [call.completion for call in store.llm_calls()]
    assert len(rows) == 6
    for c in rows:
        assert c.model == "smollm2-135m-instruct" and c.error is None
        assert c.tokens_in > 50 and 0 < c.tokens_out <= 40 and c.latency > 0 and c.text
    assert sum(store.counts().values()) == 6 + 2  # the seeds, then one program per call


def test_the_same_seed_gives_the_same_run_on_the_embedded_model(
    tmp_path: Path, embedded: LlamaCppLLM
) -> None:
    _, a = run(config(), tmp_path / "a.db", embedded)
    _, b = run(config(), tmp_path / "b.db", embedded)
    assert [r["code"] for r in a.export_rows()] == [r["code"] for r in b.export_rows()]


@pytest.mark.parametrize(
    ("budget", "reason"),
    [({"llm_calls": 30, "tokens": 900}, "token budget"), ({"llm_calls": 30, "cost": 0.5}, "cost")],
)
def test_token_and_money_budgets_stop_the_run(
    tmp_path: Path, budget: dict[str, Any], reason: str
) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    cfg = config(budget=budget, llm={"prices": (1000.0, 1000.0)})  # $1 per 1,000 tokens
    store = RunStore(tmp_path / "r.db")
    result = asyncio.run(Runner(cfg, store).run())
    assert result.status == "completed" and reason in result.reason
    totals = store.llm_totals()
    assert 0 < totals["calls"] < 30
    assert totals["cost"] == pytest.approx((totals["tokens_in"] + totals["tokens_out"]) / 1000)


def test_several_samples_per_prompt_share_the_prompt_with_their_own_seeds(tmp_path: Path) -> None:
    llm = FakeLLM(responder=mutating_responder)
    cfg = config(
        llm={"backend": "fake", "samples_per_prompt": 3},
        engine={"batch_size": 6},
        budget={"llm_calls": 12},
    )
    run(cfg, tmp_path / "r.db", llm)
    assert len(llm.requests) == 12
    with RunStore(tmp_path / "r.db", readonly=True) as store:
        rows = [(c.batch, c.request_key, c.seed) for c in store.llm_calls()]
    for i in range(0, 12, 3):
        group = rows[i : i + 3]
        assert len({r[1] for r in group}) == 1 and len({r[2] for r in group}) == 3
    assert len({r[1] for r in rows}) > 1


def test_every_llm_operator_runs_on_the_embedded_model(
    tmp_path: Path, embedded: LlamaCppLLM
) -> None:
    kinds = ["elm_diff", "search_replace", "lmx", "prompt_mutation"]
    cfg = config(
        domain={"name": "parity", "params": {"bugs": 2}},
        archive={"bins": 9},
        llm={"max_tokens": 96},
        operators=[{"kind": k} for k in kinds] + [{"kind": "gp"}],
        bandit={"kind": "ucb1"},
        engine={"batch_size": 5},
        budget={"llm_calls": 8},
    )
    _, store = run(cfg, tmp_path / "r.db", llm=embedded)
    totals = store.arm_totals()
    model = embedded.model
    # UCB1 tries every untried arm first: the first batch holds one candidate of each.
    assert set(totals) == {f"{k}@{model}" for k in kinds} | {"gp"}
    rows = [r for r in store.export_rows() if r["batch"] > 0]
    assert sum(r["llm_call_id"] is not None for r in rows) == 8
    for r in rows:
        if r["operator"] == "gp":
            assert r["model"] is None
            continue
        assert r["model"] == model and r["llm_call_id"] is not None
        if r["status"] == "invalid":  # a small model's answer that gave no program says why
            assert r["error"]
    for label, t in totals.items():
        assert t["inserted"] <= t["valid"] <= t["parsed"] <= t["chosen"], label
