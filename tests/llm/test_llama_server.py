"""The OpenAI-compatible backend end to end against the real llama.cpp HTTP server
(``python -m evolm.llm.llama_server``: ``llama_cpp.server`` from ``llama-cpp-python[server]``)
serving the bundled SmolLM2-135M-Instruct on loopback: chat and completion endpoints, and the
server going away in the middle of a run."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolm.config import load_config
from evolm.llm import Completion, LlamaCppLLM, OpenAICompatLLM, Request
from evolm.llm.models import default_gguf
from evolm.runner import Runner
from evolm.scheduler import Snapshot
from evolm.store import RunStore

_SERVER_DEPS = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")
_MISSING = [m for m in _SERVER_DEPS if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the llama.cpp server needs {', '.join(_MISSING)}: pip install 'evolm[server]'",
)
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
ALIAS = "smollm2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """``python -m evolm.llm.llama_server`` in its own process group on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evolm.llm.llama_server", "--model", str(default_gguf()),
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048",
             "--n_threads", "1", "--model_alias", ALIAS, "--verbose", "False"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.log = log
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"llama.cpp server did not start:\n{log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def no_proxy() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for var in (*_PROXY_VARS, "OPENAI_API_KEY", "OPENAI_BASE_URL"):
            mp.delenv(var, raising=False)
        yield


@pytest.fixture(scope="module")
def server(no_proxy: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    srv = LlamaServer(tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield srv
    finally:
        srv.kill()


def ask(url: str, requests: list[Request], **options: object) -> list[Completion]:
    async def main() -> list[Completion]:
        llm = OpenAICompatLLM(ALIAS, base_url=url, **options)  # type: ignore[arg-type]
        try:
            return await llm.generate(requests)
        finally:
            await llm.aclose()

    return asyncio.run(main())


def test_chat_endpoint(server: LlamaServer) -> None:
    req = Request(
        messages=(
            {"role": "system", "content": "You are an expert Python programmer."},
            {"role": "user", "content": "Write a Python function that adds two numbers."},
        ),
        max_tokens=24,
        seed=1,
    )
    (c,) = ask(server.url, [req])
    assert c.ok, c.error
    assert c.text.strip() and 0 < c.tokens_out <= 24 and c.model == ALIAS
    assert c.finish_reason in ("stop", "length") and c.extras["attempts"] == 1
    # the server applies the GGUF's chat template, as the embedded backend does
    assert c.tokens_in == LlamaCppLLM().count_tokens(req)


def test_completion_endpoint(server: LlamaServer) -> None:
    req = Request(
        kind="completion",
        prompt="# Return the sum of a and b\ndef add(a, b):\n",
        max_tokens=32,
        stop=("\n\n",),
        seed=2,
    )
    (c,) = ask(server.url, [req])
    assert c.ok, c.error
    assert "\n\n" not in c.text and 0 < c.tokens_out <= 32
    assert c.tokens_in == LlamaCppLLM().count_tokens(req)


def test_the_server_going_away_mid_run_retries_then_fails_clearly_and_loses_nothing(
    no_proxy: None, tmp_path: Path
) -> None:
    srv = LlamaServer(tmp_path / "server.log")
    cfg = load_config(
        overrides={
            "seed": 1,
            "domain": {"name": "tests.toy_domain:ToyDomain"},
            "archive": {"kind": "grid", "bins": [5, 5]},
            "llm": {"backend": "openai", "model": ALIAS, "base_url": srv.url, "max_tokens": 24},
            "engine": {"batch_size": 2, "pipeline_depth": 1, "workers": 1, "init_batches": 1},
            "budget": {"llm_calls": 8},
        }
    )
    store = RunStore(tmp_path / "run.db")
    before_kill: list[tuple[object, ...]] = []

    def on_step(snap: Snapshot) -> None:
        if snap.batch == 1:  # one batch answered by the live server: now it goes away
            before_kill.extend(store.llm_calls())
            srv.kill()

    llm = OpenAICompatLLM(ALIAS, base_url=srv.url, max_retries=2, backoff_base=0.05, timeout=20)
    try:
        result = asyncio.run(Runner(cfg, store, llm=llm, on_step=on_step).run())
    finally:
        srv.kill()
    assert result.status == "completed" and "LLM-call budget 8 spent" in result.reason
    rows = list(store.llm_calls())
    assert len(before_kill) == 2 and rows[:2] == before_kill
    assert all(r.completion.error is None and r.completion.text for r in rows[:2])
    assert len(rows) == 8
    for r in rows[2:]:
        assert "gave up after 3 attempts" in (r.completion.error or "")
        assert f"cannot connect to {srv.url}" in (r.completion.error or "")
    assert sum(store.counts().values()) == 2 + 8  # the seeds and every candidate
    failed = {r.id for r in rows[2:]}
    programs = [p for p in store.export_rows() if p["llm_call_id"] in failed]
    assert len(programs) == 6
    assert all(p["status"] == "invalid" for p in programs)
    assert all(p["error"].startswith("LLM call failed: gave up after 3") for p in programs)
    assert store.run_info()["status"] == "completed"
