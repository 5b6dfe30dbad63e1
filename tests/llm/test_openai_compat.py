"""The OpenAI-compatible backend against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import pytest

from evolm.llm import Completion, LLMError, OpenAICompatLLM, Request, make_backend

from .openai_server import OpenAIServer, Reply, error_reply

FAST = {"backoff_base": 0.001, "backoff_max": 0.01, "timeout": 5.0}


def chat(text: str = "write a function", seed: int | None = 1) -> Request:
    return Request(messages=({"role": "user", "content": text},), seed=seed)


def backend(server: OpenAIServer, **options: Any) -> OpenAICompatLLM:
    return OpenAICompatLLM("test-model", base_url=server.url, **{**FAST, **options})


def generate(llm: OpenAICompatLLM, reqs: Sequence[Request]) -> list[Completion]:
    async def main() -> list[Completion]:
        try:
            return await llm.generate(reqs)
        finally:
            await llm.aclose()

    return asyncio.run(main())


def test_chat_happy_path_sends_the_request_and_counts_tokens(server: OpenAIServer) -> None:
    server.push(Reply(text="def f(): return 1", usage=(12, 7)))
    req = Request(
        messages=({"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}),
        max_tokens=64,
        temperature=0.3,
        top_p=0.9,
        stop=("\n\n",),
        seed=42,
    )
    (c,) = generate(backend(server), [req])
    assert c.ok, c.error
    assert c.text == "def f(): return 1"
    assert (c.tokens_in, c.tokens_out, c.finish_reason) == (12, 7, "stop")
    assert c.model == "test-model" and c.latency > 0 and c.cost == 0.0
    assert c.extras["attempts"] == 1
    (hit,) = server.hits
    assert hit.path == "/v1/chat/completions"
    sent = hit.body
    assert sent["model"] == "test-model"
    assert sent["messages"] == [dict(m) for m in req.messages]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (64, 0.3, 0.9)
    assert (sent["stop"], sent["seed"]) == (["\n\n"], 42)


def test_completion_happy_path(server: OpenAIServer) -> None:
    server.push(Reply(text="x): return x"))
    req = Request(kind="completion", prompt="def f(a b c", seed=None)
    (c,) = generate(backend(server), [req])
    assert c.ok, c.error
    assert (c.text, c.tokens_in, c.tokens_out, c.finish_reason) == ("x): return x", 4, 3, "length")
    (hit,) = server.hits
    assert hit.path == "/v1/completions"
    assert hit.body["prompt"] == "def f(a b c"
    assert "seed" not in hit.body and "stop" not in hit.body


def test_cost_is_computed_from_prices(server: OpenAIServer) -> None:
    server.push(Reply(usage=(1000, 500)))
    (c,) = generate(backend(server, prices=(2.0, 8.0)), [chat()])
    assert c.cost == pytest.approx(1000 * 2.0 / 1e6 + 500 * 8.0 / 1e6)


def test_the_key_comes_from_the_named_env_var(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVOLM_TEST_KEY", "sk-test-secret-123")
    llm = backend(server, api_key_env="EVOLM_TEST_KEY")
    assert "sk-test-secret-123" not in repr(llm)
    assert "sk-test-secret-123" not in repr(vars(llm))
    generate(llm, [chat()])
    assert server.hits[0].headers["authorization"] == "Bearer sk-test-secret-123"


def test_a_loopback_server_needs_no_key(server: OpenAIServer) -> None:
    (c,) = generate(backend(server), [chat()])
    assert c.ok
    assert server.hits[0].headers["authorization"] == "Bearer sk-no-key-required"


@pytest.mark.parametrize("base_url", ["https://api.example.com/v1", None])
def test_a_missing_key_for_a_remote_server_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch, base_url: str | None
) -> None:
    monkeypatch.delenv("MY_PROVIDER_KEY", raising=False)
    with pytest.raises(LLMError, match="MY_PROVIDER_KEY") as info:
        OpenAICompatLLM("gpt-x", base_url=base_url, api_key_env="MY_PROVIDER_KEY")
    assert "export MY_PROVIDER_KEY=" in str(info.value)
    assert "api_key_env" in str(info.value)


def test_rate_limits_are_retried(server: OpenAIServer) -> None:
    server.push(error_reply(429, "slow down"), error_reply(429, "slow down"), Reply(text="done"))
    (c,) = generate(backend(server, max_retries=5), [chat()])
    assert c.ok and c.text == "done"
    assert c.extras["attempts"] == 3
    assert len(server.hits) == 3


def test_retry_after_is_honoured(server: OpenAIServer) -> None:
    server.push(error_reply(429, "wait", headers={"Retry-After": "0.3"}), Reply())
    (c,) = generate(backend(server, backoff_max=5.0), [chat()])
    assert c.ok
    first, second = server.hits
    assert second.at - first.at >= 0.3


def test_a_retry_after_beyond_max_retry_wait_fails_the_call_at_once(server: OpenAIServer) -> None:
    server.default = error_reply(429, "rate limited", headers={"Retry-After": "3600"})
    (c,) = generate(backend(server, max_retries=5, max_retry_wait=10.0), [chat()])
    assert not c.ok and len(server.hits) == 1
    error = c.error or ""
    assert "429" in error and "rate limited" in error
    assert "retry after 3600 s (Retry-After)" in error and "llm.max_retry_wait = 10 s" in error
    assert c.extras["attempts"] == 1


def test_a_retry_after_past_the_deadline_fails_the_call_at_once(server: OpenAIServer) -> None:
    server.default = error_reply(503, "busy", headers={"Retry-After": "30"})
    (c,) = generate(backend(server, max_retry_wait=60.0, deadline=2.0), [chat()])
    assert not c.ok and len(server.hits) == 1
    assert "deadline of 2 s (llm.deadline) passed" in (c.error or "")
    assert "503" in (c.error or "")


def test_a_dripping_answer_cannot_outlast_the_attempt_timeout(server: OpenAIServer) -> None:
    # one byte every 50 ms: never idle long enough for a read timeout, ~15 s for the whole body
    server.default = Reply(drip=0.05)
    (c,) = generate(backend(server, timeout=0.3, max_retries=1), [chat()])
    assert not c.ok
    assert "2 attempts" in (c.error or "")
    assert "no complete answer within 0.3 s (llm.timeout)" in (c.error or "")
    assert len(server.hits) == 2


def test_a_dripping_answer_cannot_outlast_the_call_deadline(server: OpenAIServer) -> None:
    server.default = Reply(drip=0.05)
    (c,) = generate(backend(server, timeout=0.4, max_retries=100, deadline=1.0), [chat()])
    assert not c.ok
    assert "deadline of 1 s (llm.deadline) passed" in (c.error or "")
    assert "no complete answer within 0.4 s" in (c.error or "")  # the last attempt's error
    assert 2 <= len(server.hits) <= 3  # the retries stopped at the deadline


def test_a_silent_server_fails_at_the_call_deadline(server: OpenAIServer) -> None:
    server.default = Reply(delay=60.0)
    (c,) = generate(backend(server, timeout=5.0, max_retries=100, deadline=0.5), [chat()])
    assert not c.ok and len(server.hits) == 1
    error = c.error or ""
    assert "gave up after 1 attempt: the call's deadline of 0.5 s (llm.deadline) passed" in error


def test_server_errors_until_retries_run_out(server: OpenAIServer) -> None:
    server.default = error_reply(500, "the model crashed")
    (c,) = generate(backend(server, max_retries=2), [chat()])
    assert not c.ok and c.text == ""
    assert "3 attempts" in (c.error or "")
    assert "500" in (c.error or "") and "the model crashed" in (c.error or "")
    assert len(server.hits) == 3


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(server: OpenAIServer, status: int) -> None:
    server.default = error_reply(status, "bad thing in the request")
    (c,) = generate(backend(server, max_retries=5), [chat()])
    assert not c.ok
    assert str(status) in (c.error or "") and "bad thing in the request" in (c.error or "")
    assert len(server.hits) == 1


def test_timeouts_are_retried_then_reported(server: OpenAIServer) -> None:
    server.default = Reply(delay=2.0)
    t0 = time.perf_counter()
    (c,) = generate(backend(server, timeout=0.2, max_retries=1), [chat()])
    assert not c.ok
    assert "2 attempts" in (c.error or "") and "timed out" in (c.error or "")
    assert len(server.hits) == 2
    assert time.perf_counter() - t0 < 1.5


def test_a_timeout_then_success(server: OpenAIServer) -> None:
    server.push(Reply(delay=2.0), Reply(text="late but fine"))
    (c,) = generate(backend(server, timeout=0.2, max_retries=1), [chat()])
    assert c.ok and c.text == "late but fine"


def test_server_gone_mid_run_is_an_error_completion(server: OpenAIServer) -> None:
    llm = backend(server, max_retries=2)

    async def main() -> tuple[Completion, Completion]:
        try:
            (before,) = await llm.generate([chat()])
            server.stop()
            (after,) = await llm.generate([chat()])
            return before, after
        finally:
            await llm.aclose()

    before, after = asyncio.run(main())
    assert before.ok
    assert not after.ok
    error = after.error or ""
    assert "3 attempts" in error and "cannot connect to http://127.0.0.1" in error


def test_concurrency_limit_is_respected(server: OpenAIServer) -> None:
    server.default = Reply(delay=0.1)
    t0 = time.perf_counter()
    out = generate(backend(server, concurrency=3), [chat(str(i)) for i in range(9)])
    elapsed = time.perf_counter() - t0
    assert all(c.ok for c in out)
    assert len(server.hits) == 9
    assert server.max_inflight == 3
    assert 0.3 <= elapsed < 0.9  # three waves of three, not nine in a row


def test_results_keep_request_order(server: OpenAIServer) -> None:
    server.push(Reply(text="slow", delay=0.2), Reply(text="fast"))
    out = generate(backend(server, concurrency=2), [chat("a"), chat("b")])
    assert sorted(c.text for c in out) == ["fast", "slow"]
    by_prompt = {h.body["messages"][0]["content"]: h for h in server.hits}
    assert set(by_prompt) == {"a", "b"}


def test_bad_arguments_fail_loudly(server: OpenAIServer) -> None:
    for bad in (
        {"timeout": 0},
        {"timeout": float("inf")},
        {"deadline": 0},
        {"max_retry_wait": -1},
        {"max_retries": -1},
        {"prices": (1.0, -1.0)},
    ):
        with pytest.raises(ValueError):
            backend(server, **bad)


def test_make_backend_openai_specs(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    llm = make_backend(f"openai:my/model@{server.url}", concurrency=2)
    assert isinstance(llm, OpenAICompatLLM)
    assert (llm.model, llm.base_url, llm.concurrency) == ("my/model", server.url, 2)
    at_model = make_backend(f"openai:claude@2024@{server.url}")
    assert isinstance(at_model, OpenAICompatLLM) and at_model.model == "claude@2024"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    default = make_backend("openai:gpt-4o-mini")
    assert isinstance(default, OpenAICompatLLM)
    assert (default.model, default.base_url) == ("gpt-4o-mini", None)
    with pytest.raises(ValueError, match="http"):
        make_backend("openai:model@localhost:8000/v1")
    with pytest.raises(TypeError):
        make_backend("openai:m", temprature=0.1)


@pytest.mark.parametrize("spec", ["", "gpt-4", "openai", "openai:", "replay:", "fake:x"])
def test_make_backend_rejects_unknown_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="replay:PATH") as info:
        make_backend(spec)
    assert "openai:MODEL@URL" in str(info.value) and "'fake'" in str(info.value)


def test_importing_evolm_llm_does_not_import_the_sdk() -> None:
    code = "import sys, evolm.llm; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_config_sets_the_deadline_and_the_retry_wait(server: OpenAIServer) -> None:
    from evolm.config import ConfigError, load_config
    from evolm.llm.build import build_backend

    llm = {"backend": "openai", "model": "m", "base_url": server.url}
    cfg = load_config(overrides={"llm": {**llm, "deadline": 7, "max_retry_wait": 2.5}})
    built = build_backend(cfg)
    assert isinstance(built, OpenAICompatLLM)
    assert (built.timeout, built.deadline, built.max_retry_wait) == (120.0, 7.0, 2.5)
    for bad in ({"deadline": 0}, {"timeout": "inf"}, {"max_retry_wait": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_config(overrides={"llm": {**llm, **bad}})


def test_a_stored_flat_llm_section_still_loads_with_the_new_keys() -> None:
    """The shipped cassette stores ``[llm]`` in the old flat form (every backend's keys, from
    before ``deadline`` and ``max_retry_wait``); it must still be recognised and cut to its
    backend's keys."""
    from evolm.config import RunConfig
    from evolm.llm.build import resolve_cassette
    from evolm.store import RunStore

    with RunStore(resolve_cassette("package:quickstart-image"), readonly=True) as store:
        stored = store.run_info()["config"]
    assert "api_key_env" in stored["llm"] and "deadline" not in stored["llm"]  # the flat form
    assert RunConfig.model_validate(stored).llm.backend == "llama_cpp"
