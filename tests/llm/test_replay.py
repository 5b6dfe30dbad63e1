from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from evolm.llm import CassetteMiss, Completion, LLMError, ReplayLLM, Request, make_backend
from evolm.store import RunStore


def chat(text: str, seed: int | None = None) -> Request:
    return Request(messages=({"role": "user", "content": text},), seed=seed)


def record(path: Path, calls: Sequence[tuple[Request, str, str | None]]) -> Path:
    """Write a cassette with the real run-database schema: one llm_calls row per call."""
    with RunStore(path) as store:
        for i, (req, response, error) in enumerate(calls):
            completion = Completion(
                text="" if error else response,
                model="recorded-model",
                tokens_in=10 + i,
                tokens_out=20 + i,
                latency=1.5,
                cost=0.001,
                error=error,
                finish_reason="stop",
            )
            store.add_llm_call(0, req, completion)
    return path


def generate(llm: ReplayLLM, reqs: list[Request]) -> list[str]:
    return [c.text for c in asyncio.run(llm.generate(reqs))]


def test_same_prompts_get_the_recorded_answers_in_order(tmp_path: Path) -> None:
    a, b = chat("prompt a"), chat("prompt b")
    db = record(tmp_path / "run.db", [(a, "a1", None), (b, "b1", None), (a, "a2", None)])
    llm = ReplayLLM(db)
    assert llm.model == "recorded-model"
    out = asyncio.run(llm.generate([a, b, a]))
    assert [c.text for c in out] == ["a1", "b1", "a2"]
    first = out[0]
    assert (first.model, first.tokens_in, first.tokens_out) == ("recorded-model", 10, 20)
    assert (first.latency, first.finish_reason, first.cost) == (0.0, "stop", 0.001)
    assert first.extras["recorded_latency"] == 1.5
    assert len(llm) == 0


def test_a_recorded_answer_with_the_request_seed_is_preferred(tmp_path: Path) -> None:
    calls = [(chat("p", seed=s), f"answer {s}", None) for s in (1, 2, 3)]
    llm = ReplayLLM(record(tmp_path / "run.db", calls))
    assert generate(llm, [chat("p", seed=3)]) == ["answer 3"]
    assert generate(llm, [chat("p", seed=99)]) == ["answer 1"]  # no seed match: earliest
    assert generate(llm, [chat("p", seed=3)]) == ["answer 2"]  # seed 3 used; earliest left


def test_a_prompt_not_in_the_cassette_stops_the_run(tmp_path: Path) -> None:
    db = record(tmp_path / "run.db", [(chat("recorded"), "r", None)])
    llm = ReplayLLM(db)
    novel = "a prompt the recorded run never sent " + "x" * 200
    with pytest.raises(CassetteMiss) as info:
        asyncio.run(llm.generate([chat(novel)]))
    msg = str(info.value)
    assert str(db) in msg
    assert novel[:120] in msg and novel[:121] not in msg
    assert "same config and seed" in msg
    assert isinstance(info.value, LLMError)


def test_each_recorded_answer_is_used_at_most_once(tmp_path: Path) -> None:
    llm = ReplayLLM(record(tmp_path / "run.db", [(chat("p"), "only", None)]))
    assert generate(llm, [chat("p")]) == ["only"]
    with pytest.raises(CassetteMiss, match="already used"):
        asyncio.run(llm.generate([chat("p")]))


def test_sampling_settings_are_part_of_the_match(tmp_path: Path) -> None:
    llm = ReplayLLM(record(tmp_path / "run.db", [(chat("p"), "hot", None)]))
    cold = Request(messages=chat("p").messages, temperature=0.1)
    with pytest.raises(CassetteMiss):
        asyncio.run(llm.generate([cold]))


def test_completion_prompts_replay_too(tmp_path: Path) -> None:
    req = Request(kind="completion", prompt="def f(", seed=5)
    llm = ReplayLLM(record(tmp_path / "run.db", [(req, "x): pass", None)]))
    assert generate(llm, [req]) == ["x): pass"]


def test_failed_calls_replay_as_the_same_failure_in_order(tmp_path: Path) -> None:
    calls = [(chat("p"), "", "HTTP 500: boom"), (chat("p"), "good", None)]
    llm = ReplayLLM(record(tmp_path / "run.db", calls))
    first, second = asyncio.run(llm.generate([chat("p"), chat("p")]))
    assert first.error == "HTTP 500: boom" and not first.ok
    assert second.text == "good" and second.ok
    with pytest.raises(CassetteMiss):
        asyncio.run(llm.generate([chat("p")]))


def test_concurrent_batches_never_share_a_row(tmp_path: Path) -> None:
    calls = [(chat("p", seed=s), f"answer {s}", None) for s in range(50)]
    llm = ReplayLLM(record(tmp_path / "run.db", calls))

    async def main() -> list[str]:
        batches = await asyncio.gather(*(llm.generate([chat("p")]) for _ in range(50)))
        return [c.text for (c,) in batches]

    assert sorted(asyncio.run(main())) == sorted(f"answer {s}" for s in range(50))


def test_the_cassette_is_opened_read_only(tmp_path: Path) -> None:
    db = record(tmp_path / "run.db", [(chat("p"), "a", None)])
    before = db.read_bytes()
    asyncio.run(ReplayLLM(db).generate([chat("p")]))
    assert db.read_bytes() == before
    # a WAL database read by anyone gets SQLite's -shm/-wal side files; nothing is written to them
    wal = tmp_path / "run.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_missing_cassette_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(LLMError, match="does not exist") as info:
        ReplayLLM(missing)
    assert str(missing) in str(info.value)
    assert not missing.exists()


def test_a_database_without_llm_calls_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(LLMError, match="llm_calls") as info:
        ReplayLLM(db)
    assert str(db) in str(info.value)
    junk = tmp_path / "junk.db"
    junk.write_text("not a database " * 100)
    with pytest.raises(LLMError, match=str(junk)):
        ReplayLLM(junk)


def test_make_backend_replay(tmp_path: Path) -> None:
    db = record(tmp_path / "with space.db", [(chat("p"), "a", None)])
    llm = make_backend(f"replay:{db}")
    assert isinstance(llm, ReplayLLM)
    assert generate(llm, [chat("p")]) == ["a"]
