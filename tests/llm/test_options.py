"""Requests with ``options``: the probability of each answer option as the next tokens.

Fast: the request's key and JSON, the fake, replay and openai backends, the token boundary, and
the hf backend on a tiny random model (probabilities equal a softmax of its logits computed
here). Slow: the embedded llama.cpp model, against logits read directly from ``Llama.eval``.
"""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from evolm.llm.base import Request
from evolm.llm.fake import FakeLLM
from evolm.llm.options import split_at_boundary
from evolm.llm.replay import ReplayLLM
from evolm.store import RunStore


def ask(llm, request):
    (completion,) = asyncio.run(llm.generate([request]))
    return completion


def test_options_enter_the_key_only_when_given():
    plain = Request(kind="completion", prompt="p")
    assert "options" not in plain.payload()
    asked = Request(kind="completion", prompt="p", options=(" yes", " no"))
    assert asked.payload()["options"] == [" yes", " no"] and asked.key() != plain.key()
    back = Request.from_json(asked.to_json())
    assert back == asked and back.key() == asked.key()
    assert Request.from_json(plain.to_json()).options == ()


def test_the_fake_backend_answers_options_deterministically():
    llm = FakeLLM()
    request = Request(kind="completion", prompt="Is it?", options=("yes", "no", "maybe"))
    a, b = ask(llm, request), ask(llm, request)
    probs = a.extras["option_probs"]
    assert a.ok and probs == b.extras["option_probs"] and set(probs) == {"yes", "no", "maybe"}
    assert math.isclose(sum(probs.values()), 1.0) and a.text == max(probs, key=probs.get)
    other = ask(
        llm, Request(kind="completion", prompt="Is it not?", options=("yes", "no", "maybe"))
    )
    assert other.extras["option_probs"] != probs


def test_replay_answers_an_options_request_with_the_recorded_probabilities(tmp_path):
    request = Request(kind="chat", messages=({"role": "user", "content": "q"},), options=("a", "b"))
    recorded = ask(FakeLLM(option_weight=lambda p, o: 3.0 if o == "a" else 1.0), request)
    with RunStore(tmp_path / "r.db") as store:
        store.create_run(seed=0, domain="x", config={}, versions={})
        store.add_llm_call(0, request, recorded)
    replayed = ask(ReplayLLM(tmp_path / "r.db"), request)
    assert replayed.text == "a" and replayed.extras["option_probs"] == {"a": 0.75, "b": 0.25}


def test_openai_refuses_options_and_names_the_rating_method():
    from evolm.llm.openai_compat import OpenAICompatLLM

    llm = OpenAICompatLLM("m", base_url="http://127.0.0.1:9/v1")
    completion = ask(llm, Request(kind="completion", prompt="p", options=("a", "b")))
    assert not completion.ok and 'method = "rating"' in (completion.error or "")


def test_split_at_boundary():
    assert split_at_boundary([1, 2, 3], [[1, 2, 3, 4], [1, 2, 3, 5, 6]]) == (3, [[4], [5, 6]])
    # the tokenizer merged the prompt's last token with an option: score from before it
    assert split_at_boundary([1, 2, 3], [[1, 2, 3, 4], [1, 2, 9]]) == (2, [[3, 4], [9]])
    with pytest.raises(ValueError, match="adds no token"):
        split_at_boundary([1, 2], [[1, 2], [1, 2, 3]])


# -- hf on a tiny random model ----------------------------------------------------------------
def test_hf_option_probabilities_are_a_softmax_of_the_logits(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from evolm.llm.hf import HFLLM

    from .test_hf import tiny_model

    llm = HFLLM(tiny_model(tmp_path / "tiny"), device="cpu")
    prompt = "the a red"
    request = Request(kind="completion", prompt=prompt, options=(" blue", " disk square"))
    got = ask(llm, request)
    assert got.ok, got.error
    tok = llm.tokenizer
    ids = tok(prompt)["input_ids"]
    blue, disk, square = (tok.convert_tokens_to_ids(w) for w in ("blue", "disk", "square"))
    with torch.no_grad():
        first = torch.log_softmax(llm.lm(input_ids=torch.tensor([ids])).logits[0, -1], -1)
        after = llm.lm(input_ids=torch.tensor([[*ids, disk]])).logits[0, -1]
        second = torch.log_softmax(after, -1)
    lp_blue = float(first[blue])
    lp_two = float(first[disk] + second[square])
    p_blue = math.exp(lp_blue) / (math.exp(lp_blue) + math.exp(lp_two))
    probs = got.extras["option_probs"]
    assert probs[" blue"] == pytest.approx(p_blue, abs=1e-5)
    assert probs[" disk square"] == pytest.approx(1 - p_blue, abs=1e-5)


# -- the embedded llama.cpp model (slow) ------------------------------------------------------
@pytest.fixture(scope="module")
def smol():
    pytest.importorskip("llama_cpp")
    from evolm.llm.llama_cpp import LlamaCppLLM

    return LlamaCppLLM()


def _direct_logprobs(llm, tokens):
    """log-softmax of the logits after ``tokens``, evaluated from an empty context."""
    import llama_cpp
    import numpy as np

    raw = llm._loaded.llm
    raw.reset()
    raw.eval(tokens)
    logits = np.ctypeslib.as_array(
        llama_cpp.llama_get_logits_ith(raw.ctx, -1), shape=(raw.n_vocab(),)
    ).astype(np.float64)
    top = logits.max()
    return logits - top - math.log(np.exp(logits - top).sum())


@pytest.mark.slow
def test_llama_cpp_option_probabilities_match_a_softmax_of_the_raw_logits(smol):
    prompt = "Question: Is the sea salty? Answer:"
    request = Request(kind="completion", prompt=prompt, options=(" yes", " no"))
    got = ask(smol, request)
    assert got.ok, got.error
    text, bos = smol._prompt_text(request)
    tokens = smol._tokenize(text, bos)
    yes = smol._tokenize(text + " yes", bos)[len(tokens) :]
    no = smol._tokenize(text + " no", bos)[len(tokens) :]
    assert len(yes) == 1 and len(no) == 1
    lp = _direct_logprobs(smol, tokens)
    p_yes = math.exp(lp[yes[0]]) / (math.exp(lp[yes[0]]) + math.exp(lp[no[0]]))
    assert got.extras["option_probs"][" yes"] == pytest.approx(p_yes, abs=1e-5)
    # a warm cache (the prompt just evaluated) and a fresh one give the same answer
    again = ask(smol, request)
    assert again.extras["option_probs"] == pytest.approx(got.extras["option_probs"], abs=1e-6)


@pytest.mark.slow
def test_llama_cpp_ranks_a_fluent_sentence_above_its_words_scrambled(smol):
    fluent = " the cat sat on the mat and looked out of the window."
    scrambled = " window the of mat out cat on looked sat the and the."
    request = Request(kind="completion", prompt="A short story:", options=(fluent, scrambled))
    got = ask(smol, request)
    logps = got.extras["option_logprobs"]
    assert logps[fluent] > logps[scrambled] + 5
    assert got.text == fluent


@pytest.mark.slow
def test_llama_cpp_judge_answers_the_same_with_and_without_a_warm_prefix(smol):
    from evolm.judge import Judge, Question
    from evolm.llm.client import LLMClient

    q = Question(
        "Is this text about the sea?",
        ("yes", "no"),
        (("Waves break on the shore.", "yes"), ("The train left at noon.", "no")),
    )
    judge = Judge(LLMClient(smol))
    cold = asyncio.run(judge.probs("Gulls over the salt water.", q))
    asyncio.run(judge.probs("A quiet library in winter.", q))  # shares the few-shot prefix
    warm = asyncio.run(judge.probs("Gulls over the salt water.", q))
    assert warm == pytest.approx(cold, abs=1e-6)
    stats = smol.reuse_stats
    assert stats["tokens_reused"] > 0


def test_options_requests_store_and_load_with_their_json(tmp_path):
    request = Request(kind="completion", prompt="p", options=("x", "y"))
    with RunStore(tmp_path / "r.db") as store:
        store.create_run(seed=0, domain="x", config={}, versions={})
        store.add_llm_call(0, request, ask(FakeLLM(), request))
        (call,) = store.llm_calls()
    assert json.loads(call.request_json)["options"] == ["x", "y"]
    assert call.request.options == ("x", "y")
