"""Several OpenAI-compatible servers of one model: the choice rules of the endpoint pool with a
fake clock, then the real backend against two loopback HTTP servers, one of them killed in the
middle of a real `evolm run`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolm.config import ConfigError, load_config
from evolm.llm import Completion, OpenAICompatLLM, Request
from evolm.llm.build import build_backend, parse_llm_spec
from evolm.llm.endpoints import EndpointPool
from evolm.store import RunStore

from .openai_server import OpenAIServer, Reply, error_reply

ROOT = Path(__file__).resolve().parents[2]
FAST = {"backoff_base": 0.001, "backoff_max": 0.01, "timeout": 5.0}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pool(n: int = 2, **kw: float) -> tuple[EndpointPool[str], Clock]:
    clock = Clock()
    return EndpointPool([f"u{i}" for i in range(n)], str.upper, clock=clock, **kw), clock


def test_the_least_loaded_server_takes_the_next_request() -> None:
    p, _ = pool(3)
    a, b, c = (p.pick() for _ in range(3))  # one each
    assert [a.url, b.url, c.url] == ["u0", "u1", "u2"] and a.client == "U0"
    p.done(b, ok=True)
    assert p.pick() is b  # b has nothing outstanding now
    p.done(a, ok=True)
    p.done(c, ok=True)
    assert p.pick() is a  # a and c idle and sent one each: the first listed
    assert [e.outstanding for e in p.endpoints] == [1, 1, 0]


def test_a_failed_server_is_out_for_its_backoff_doubling_then_back() -> None:
    p, clock = pool(2, backoff=5.0, backoff_max=12.0)
    a = p.pick()
    p.done(a, ok=False)
    assert not p.any_up(besides=p.endpoints[1]) and p.any_up(besides=a)
    for _ in range(3):  # u0 is out: everything goes to u1
        e = p.pick()
        assert e.url == "u1"
        p.done(e, ok=True)
    clock.now += 5.0
    assert p.pick() is a  # back after 5 s (and it is the least sent)
    p.done(a, ok=False)  # the second failure in a row: out for 10 s
    clock.now += 9.0
    assert p.pick().url == "u1"
    clock.now += 1.0
    e = p.pick()
    assert e is a
    p.done(e, ok=False)  # the third: 20 s capped at 12
    assert a.down_until == clock.now + 12.0
    clock.now += 12.0
    p.done(p.pick(), ok=True)  # a success resets it
    assert a.failures == 0 and a.down_until == 0.0


def test_a_retry_after_longer_than_the_backoff_keeps_a_server_out_longer() -> None:
    p, clock = pool(2, backoff=1.0)
    a = p.pick()
    p.done(a, ok=False, retry_after=30.0)
    assert a.down_until == clock.now + 30.0


def test_with_every_server_out_the_one_back_soonest_is_tried() -> None:
    p, clock = pool(2, backoff=5.0)
    a, b = p.pick(), p.pick()
    p.done(b, ok=False)
    clock.now += 1.0
    p.done(a, ok=False)
    assert p.pick() is b  # both out; b is due back first


def test_bad_server_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        EndpointPool([], str)
    with pytest.raises(ValueError, match="repeat: u"):
        EndpointPool(["u", "u"], str)
    with pytest.raises(ConfigError, match="a server URL repeats"):
        parse_llm_spec("openai:m@http://a/v1,http://a/v1")
    with pytest.raises(ConfigError, match="MODEL@URL,URL"):
        parse_llm_spec("openai:m@http://a/v1,ftp://b")
    with pytest.raises(ConfigError, match="base_url"):
        load_config(overrides={"llm": {"backend": "openai", "model": "m", "base_url": []}})


@pytest.fixture
def servers(server: OpenAIServer) -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    other = OpenAIServer()
    other.start()
    try:
        yield server, other
    finally:
        other.stop()


def chat(i: int) -> Request:
    return Request(messages=({"role": "user", "content": f"task {i}"},), seed=i)


def run(llm: OpenAICompatLLM, coro_fn) -> list[Completion]:
    async def main() -> list[Completion]:
        try:
            return await coro_fn()
        finally:
            await llm.aclose()

    return asyncio.run(main())


def test_the_spec_and_the_config_build_a_backend_over_both_servers(servers) -> None:
    a, b = servers
    spec = parse_llm_spec(f"openai:m@{a.url},{b.url}")
    assert spec["base_url"] == [a.url, b.url]
    cfg = load_config(overrides={"llm": {**spec, "endpoint_backoff": 0.5}})
    llm = build_backend(cfg)
    assert isinstance(llm, OpenAICompatLLM)
    assert [e.url for e in llm.endpoints.endpoints] == [a.url, b.url]
    assert llm.endpoints.backoff == 0.5
    asyncio.run(llm.aclose())


def test_requests_spread_over_the_servers_by_load(servers) -> None:
    a, b = servers
    a.default = Reply(delay=0.3, text="slow")  # a slow server gets fewer requests
    b.default = Reply(delay=0.02, text="fast")
    llm = OpenAICompatLLM("m", base_url=[a.url, b.url], concurrency=4, **FAST)
    out = run(llm, lambda: llm.generate([chat(i) for i in range(24)]))
    assert all(c.ok for c in out)
    assert len(a.hits) + len(b.hits) == 24
    assert 0 < len(a.hits) < len(b.hits)
    assert {c.extras["server"] for c in out} == {a.url, b.url}
    assert [c.text for c in out].count("fast") == len(b.hits)


def test_a_failing_server_is_taken_out_and_its_calls_go_to_the_other(servers) -> None:
    a, b = servers
    a.default = error_reply(503, "overloaded")
    llm = OpenAICompatLLM(
        "m", base_url=[a.url, b.url], endpoint_backoff=60.0, concurrency=1, **FAST
    )  # one call at a time: the first finds out, the rest never go to a
    out = run(llm, lambda: llm.generate([chat(i) for i in range(10)]))
    assert all(c.ok for c in out)
    assert len(a.hits) == 1 and len(b.hits) == 10  # a failed once, then stayed out
    assert out[0].extras == {"attempts": 2, "server": b.url}


def test_a_server_is_tried_again_after_its_backoff(servers) -> None:
    a, b = servers
    a.push(error_reply(503, "restarting"))  # one failure, then healthy

    async def calls() -> list[Completion]:
        first = await llm.generate([chat(0)])
        during = await llm.generate([chat(i) for i in range(1, 4)])
        await asyncio.sleep(0.3)
        after = await llm.generate([chat(i) for i in range(4, 8)])
        return [*first, *during, *after]

    llm = OpenAICompatLLM("m", base_url=[a.url, b.url], endpoint_backoff=0.2, **FAST)
    out = run(llm, calls)
    assert all(c.ok for c in out)
    servers_used = [c.extras["server"] for c in out]
    assert a.url not in servers_used[:4]  # out for 0.2 s after its failure
    assert a.url in servers_used[4:]  # back afterwards


def test_a_run_survives_one_of_two_servers_killed_mid_run(servers, tmp_path: Path) -> None:
    """A real `evolm run` on two servers; one is stopped after 10 requests. Every LLM call of
    the run succeeds and the run completes."""
    a, b = servers
    answer = "```python\ndef f():\n    return 2.5\n```"
    a.default = b.default = Reply(delay=0.05, text=answer)
    stopped = threading.Event()

    def stop_a_after_ten() -> None:
        while len(a.hits) + len(b.hits) < 10:
            if stopped.wait(0.01):
                return
        a.stop()
        stopped.set()

    watcher = threading.Thread(target=stop_a_after_ten, daemon=True)
    watcher.start()
    db = tmp_path / "r.db"
    proc = subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", "run",
         "tests.toy_domain:ToyDomain", "--llm", f"openai:m@{a.url},{b.url}",
         "--budget-llm-calls", "40", "--set", "engine.workers=1", "--out", str(db), "-q"],
        cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    stopped.set()
    watcher.join(5)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert len(a.hits) >= 1 and len(b.hits) > len(a.hits)  # both served, then only b
    with RunStore(db, readonly=True) as store:
        assert store.run_info()["status"] == "completed"
        totals = store.llm_totals()
        assert totals["calls"] == 40
        assert "run completed" in out and "40 LLM calls" in out
    assert not a._running
