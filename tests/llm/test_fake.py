from __future__ import annotations

import asyncio
import re
import time

import pytest

from evolm.llm import FakeLLM, LLMError, Request, make_backend, mutating_responder


def chat(text: str, seed: int | None = None) -> Request:
    return Request(messages=({"role": "user", "content": text},), seed=seed)


PROGRAM = "def f(x):\n    return 3 * x + 0.5\n"
PROMPT = f"Improve this program.\n```python\n{PROGRAM}```\nAnswer with code."


def code_of(answer: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", answer, re.DOTALL)
    assert len(blocks) == 1, answer
    return blocks[0]


def test_scripted_replies_come_back_in_order_and_requests_are_recorded() -> None:
    llm = FakeLLM(["one", "two", "three"])
    reqs = [chat(f"prompt {i}", seed=i) for i in range(3)]
    out = asyncio.run(llm.generate(reqs))
    assert [c.text for c in out] == ["one", "two", "three"]
    assert all(c.ok and c.model == "fake" and c.finish_reason == "stop" for c in out)
    assert llm.requests == reqs
    assert llm.pending == 0


def test_token_counts_are_estimated_from_text_length() -> None:
    llm = FakeLLM(["x" * 40], tokens_per_char=0.5)
    (c,) = asyncio.run(llm.generate([Request(kind="completion", prompt="y" * 11)]))
    assert (c.tokens_in, c.tokens_out) == (6, 20)


def test_responder_answers_once_the_script_is_used_up() -> None:
    llm = FakeLLM(["scripted"], responder=lambda r: f"echo {r.messages[-1]['content']}")
    out = asyncio.run(llm.generate([chat("a"), chat("b")]))
    assert [c.text for c in out] == ["scripted", "echo b"]
    llm.enqueue(["again"])
    (c,) = asyncio.run(llm.generate([chat("c")]))
    assert c.text == "again"


def test_exhausted_script_without_responder_is_an_error_completion() -> None:
    llm = FakeLLM(["only"])
    first, second = asyncio.run(llm.generate([chat("a"), chat("b")]))
    assert first.text == "only"
    assert not second.ok
    assert "no scripted replies left" in (second.error or "")
    assert len(llm.requests) == 2


def test_exhaustion_raises_llm_error_from_the_backend_method() -> None:
    with pytest.raises(LLMError, match="no scripted replies left"):
        asyncio.run(FakeLLM()._generate_one(chat("a")))


def test_latency_overlaps_up_to_the_concurrency_limit() -> None:
    llm = FakeLLM(responder=lambda r: "x", latency=0.1, concurrency=10)
    t0 = time.perf_counter()
    out = asyncio.run(llm.generate([chat(str(i)) for i in range(10)]))
    elapsed = time.perf_counter() - t0
    assert len(out) == 10 and all(c.ok for c in out)
    assert elapsed < 0.5, f"10 overlapping 0.1 s requests took {elapsed:.2f} s"


def test_concurrency_one_serialises_requests() -> None:
    llm = FakeLLM(responder=lambda r: "x", latency=0.05, concurrency=1)
    t0 = time.perf_counter()
    asyncio.run(llm.generate([chat(str(i)) for i in range(4)]))
    assert time.perf_counter() - t0 >= 0.2


def test_bad_arguments_fail_loudly() -> None:
    with pytest.raises(ValueError, match="latency"):
        FakeLLM(latency=-1)
    with pytest.raises(ValueError, match="concurrency"):
        FakeLLM(concurrency=0)


def test_mutating_responder_is_deterministic_per_seed_and_request() -> None:
    assert mutating_responder(chat(PROMPT, seed=7)) == mutating_responder(chat(PROMPT, seed=7))
    assert mutating_responder(chat(PROMPT, seed=None)) == mutating_responder(chat(PROMPT))


def test_mutating_responder_changes_exactly_one_number() -> None:
    for seed in range(20):
        answer = mutating_responder(chat(PROMPT, seed=seed))
        assert answer.count("\n```python\n") == 1 and not answer.startswith("```")
        code = code_of(answer)
        assert code != PROGRAM
        before = re.findall(r"\d+(?:\.\d+)?", PROGRAM)
        after = re.findall(r"\d+(?:\.\d+)?", code)
        assert len(after) == len(before)
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert len(changed) == 1
        old, new = changed[0]
        assert ("." in old) == ("." in new), "ints stay ints, floats stay floats"
        compile(code, "<mutant>", "exec")


def test_mutating_responder_gives_different_outputs_for_different_seeds() -> None:
    answers = {mutating_responder(chat(PROMPT, seed=s)) for s in range(20)}
    assert len(answers) >= 10


def test_mutating_responder_uses_the_last_code_block_of_the_last_user_message() -> None:
    old = "```python\nx = 1000\n```"
    new = "```python\ny = 2000\n```"
    req = Request(
        messages=(
            {"role": "system", "content": "```python\nz = 5\n```"},
            {"role": "user", "content": f"{old}\nthen\n{new}"},
            {"role": "assistant", "content": "```python\nw = 7\n```"},
        ),
        seed=3,
    )
    code = code_of(mutating_responder(req))
    assert code.startswith("y = ") and code != "y = 2000\n"
    completion = Request(kind="completion", prompt=f"{old}\n{new}\n", seed=3)
    assert code_of(mutating_responder(completion)).startswith("y = ")


def test_mutating_responder_leaves_identifiers_and_odd_literals_alone() -> None:
    program = "x1 = 0x1F + 1_000 + 1e3 + a.b2\n"
    code = code_of(mutating_responder(chat(f"```\n{program}```", seed=0)))
    assert code.startswith("x1 = 0x1F + 1_000 + ") and code.endswith(" + a.b2\n")
    assert code != program  # only 1e3 is a number it may change


def test_mutating_responder_without_code_block_returns_an_empty_block() -> None:
    assert mutating_responder(chat("no code here", seed=1)) == "```python\n```"


def test_make_backend_fake_uses_the_mutating_responder() -> None:
    llm = make_backend("fake", latency=0.0, concurrency=3)
    assert isinstance(llm, FakeLLM) and llm.concurrency == 3
    (c,) = asyncio.run(llm.generate([chat(PROMPT, seed=1)]))
    assert c.text == mutating_responder(chat(PROMPT, seed=1))


def test_one_backend_serves_several_event_loops() -> None:
    from evolm.llm.base import Request
    from evolm.llm.fake import FakeLLM

    llm = FakeLLM(replies=["a", "b"], concurrency=1)
    req = Request(messages=({"role": "user", "content": "x"},))
    assert asyncio.run(llm.generate([req]))[0].text == "a"
    assert asyncio.run(llm.generate([req]))[0].text == "b"
