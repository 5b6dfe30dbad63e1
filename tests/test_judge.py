"""The judge: prompts with a fixed few-shot prefix, logprobs and rating methods, the audit's
numbers (hand-checked), and ``evolm judge-audit`` end to end on fake backends."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from evolm.cli import app
from evolm.judge import (
    Judge,
    Question,
    auc,
    load_labelled,
    parse_rating,
    resolve_labelled,
    run_audit,
    score_audit,
)
from evolm.llm.client import LLMCallFailed, LLMClient
from evolm.llm.fake import FakeLLM

SEA = Question("Is this text about the sea?", ("yes", "no"))


def last_text(prompt: str) -> str:
    """The text a judge prompt asks about (after the few-shot prefix)."""
    return prompt.rsplit("Text:\n", 1)[-1].split("\n\nQuestion:", 1)[0]


def sea_weight(prompt: str, option: str) -> float:
    """P(yes) = 0.75 for a text with "sea" in it, else 0.25."""
    sea = "sea" in last_text(prompt)
    return 3.0 if (option == " yes") == sea else 1.0


class SeaFake(FakeLLM):
    """``--llm tests.test_judge:SeaFake``: a fake judge that answers from :func:`sea_weight`."""

    def __init__(self, **kw: object) -> None:
        super().__init__(option_weight=sea_weight)


ITEMS = [
    ("the sea is blue", "yes"),  # P(yes) .75, right
    ("a dry desert", "no"),  # .25, right
    ("waves on the sea", "no"),  # .75, wrong
    ("mountain air", "yes"),  # .25, wrong
    ("sea shore", "yes"),  # .75, right
]


def write_items(path, items=ITEMS):
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in items))
    return path


def test_the_few_shot_prefix_is_the_same_for_every_text():
    q = Question(SEA.text, SEA.options, (("gulls and tides", "yes"), ("a quiet library", "no")))
    judge = Judge(LLMClient(FakeLLM()))
    prefix = judge.prefix(q)
    assert "gulls and tides" in prefix and prefix.count("Answer:") == 2
    for text in ("one text", "another, longer text"):
        prompt = judge.prompt(text, q)
        assert prompt.startswith(prefix) and last_text(prompt) == text
        assert prompt.endswith("Answer:")


def test_logprobs_asks_one_options_call_and_maps_the_options_back():
    llm = FakeLLM(option_weight=sea_weight)
    client = LLMClient(llm)
    probs = asyncio.run(Judge(client).probs("the sea is blue", SEA, seed=4))
    assert probs == pytest.approx({"yes": 0.75, "no": 0.25})
    ((request, completion),) = client.calls
    assert request.options == (" yes", " no") and request.seed == 4
    assert completion.text == " yes" and completion.extras["role"] == "judge"


def test_same_question_same_answer_whatever_was_asked_before():
    judge = Judge(LLMClient(FakeLLM()))
    first = asyncio.run(judge.probs("text A", SEA))
    asyncio.run(judge.probs("text B", SEA))
    assert asyncio.run(judge.probs("text A", SEA)) == first


def test_rating_averages_the_parsed_ratings_and_drops_the_rest():
    llm = FakeLLM(replies=["7", "no idea", "Rating: 9/10"])
    client = LLMClient(llm)
    probs = asyncio.run(Judge(client, method="rating", samples=3).probs("waves", SEA))
    assert probs == pytest.approx({"yes": 7 / 9, "no": 2 / 9})
    assert len(client.calls) == 3 and all(not r.options for r, _ in client.calls)
    assert all("'yes'" in r.messages[0]["content"] for r, _ in client.calls)


def test_rating_of_several_options_rates_each_one():
    genre = Question("Which genre is this story?", ("horror", "romance"))
    llm = FakeLLM(replies=["8", "8", "2", "2"])
    probs = asyncio.run(Judge(LLMClient(llm), method="rating", samples=2).probs("s", genre))
    assert probs == pytest.approx({"horror": 0.8, "romance": 0.2})


def test_rating_with_no_number_in_any_answer_fails():
    client = LLMClient(FakeLLM(replies=["great", "fine", "meh"]))
    with pytest.raises(LLMCallFailed, match="none of the 3 answers"):
        asyncio.run(Judge(client, method="rating").probs("x", SEA))
    assert len(client.calls) == 3


def test_a_backend_that_cannot_score_options_fails_the_call():
    client = LLMClient(FakeLLM(option_weight=lambda p, o: 0.0))
    with pytest.raises(LLMCallFailed, match="no option has a positive probability"):
        asyncio.run(Judge(client).probs("x", SEA))
    ((_, completion),) = client.calls
    assert completion.error and completion.extras["role"] == "judge"


@pytest.mark.parametrize(
    ("text", "value"), [("7", 7.0), ("Rating: 10/10", 10.0), ("I'd say 3.", 3.0), ("none", None)]
)
def test_parse_rating(text, value):
    assert parse_rating(text) == value


def test_bad_questions_are_refused():
    with pytest.raises(ValueError, match="two or more distinct"):
        Question("q", ("yes", "yes"))
    with pytest.raises(ValueError, match="not one of the options"):
        Question("q", ("yes", "no"), (("text", "maybe"),))


def test_auc_hand_checked():
    # positives .9 and .3, negatives .8 and .2: 3 of the 4 pairs ranked right
    assert auc([0.9, 0.8, 0.3, 0.2], [True, False, True, False]) == 0.75
    assert auc([0.5, 0.5], [True, False]) == 0.5  # a tie counts a half
    assert auc([0.1, 0.2], [True, True]) is None


def test_audit_numbers_hand_checked(tmp_path):
    result = run_audit(
        write_items(tmp_path / "items.jsonl"), SEA.text, SEA.options, backend=SeaFake()
    )
    assert result.n == 5
    assert result.accuracy == pytest.approx(3 / 5)
    # positives score .75, .25, .75 and negatives .25, .75: (1 + .5 + .5 + 0 + 1 + .5) / 6
    assert result.auc == pytest.approx(3.5 / 6)
    assert result.mean_true == pytest.approx((0.75 + 0.75 + 0.25 + 0.25 + 0.75) / 5)
    (low, high) = result.calibration
    assert low == pytest.approx((0.2, 0.4, 2, 0.25, 0.5))
    assert high == pytest.approx((0.6, 0.8, 3, 0.75, 2 / 3))


def test_audit_of_more_options_is_macro_one_vs_rest():
    probs = [
        {"a": 0.6, "b": 0.3, "c": 0.1},
        {"a": 0.2, "b": 0.7, "c": 0.1},
        {"a": 0.5, "b": 0.1, "c": 0.4},
    ]
    result = score_audit(probs, ["a", "b", "c"], ("a", "b", "c"))
    assert result.accuracy == pytest.approx(2 / 3)
    # a: .6 vs (.2, .5) -> 1; b: .7 vs (.3, .1) -> 1; c: .4 vs (.1, .1) -> 1
    assert result.auc == pytest.approx(1.0)


def test_examples_come_from_the_head_of_the_file_and_are_not_scored(tmp_path):
    llm = FakeLLM(option_weight=sea_weight)
    path = write_items(tmp_path / "items.jsonl")
    result = run_audit(path, SEA.text, SEA.options, examples=2, backend=llm)
    assert result.n == 3
    assert all(r.prompt.count("Text:\n") == 3 for r in llm.requests)
    assert all("the sea is blue" in r.prompt and "a dry desert" in r.prompt for r in llm.requests)


def test_bad_labelled_files_say_which_line_and_how_to_fix_it(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": "yes"}\n{"text": "b", "label": "maybe"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2 has label 'maybe'.*--options"):
        load_labelled(bad, ("yes", "no"))
    with pytest.raises(ValueError, match="leaves nothing to score"):
        run_audit(write_items(tmp_path / "i.jsonl"), "q", ("yes", "no"), examples=5, llm="fake")


def test_the_shipped_sea_poems_file_is_balanced():
    items = load_labelled(resolve_labelled("sea_poems"), ("yes", "no"))
    assert len(items) == 40 and sum(y == "yes" for _, y in items) == 20
    assert len({t for t, _ in items}) == 40


def test_judge_audit_command_end_to_end(tmp_path):
    path = write_items(tmp_path / "items.jsonl")
    out = CliRunner().invoke(
        app,
        ["judge-audit", str(path), "--question", SEA.text, "--options", "yes,no",
         "--llm", "tests.test_judge:SeaFake"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[:4] == ["n 5", "accuracy 0.600", "AUC 0.583", "mean P(true label) 0.550"]
    assert "  0.6-0.8: 3, 0.750, 0.667" in lines
    shipped = CliRunner().invoke(
        app,
        ["judge-audit", "sea_poems", "--question", SEA.text, "--llm", "fake", "--examples", "4"],
    )
    assert shipped.exit_code == 0, shipped.output
    assert shipped.output.splitlines()[0] == "n 36"


def test_judge_audit_refuses_a_label_the_options_lack(tmp_path):
    path = write_items(tmp_path / "items.jsonl")
    out = CliRunner().invoke(
        app, ["judge-audit", str(path), "--question", "q", "--options", "a,b", "--llm", "fake"]
    )
    assert out.exit_code == 2
    assert "error:" in out.output and "not one of the options" in out.output


class ChatFake(FakeLLM):
    """A fake whose model has a chat template (as llama_cpp's instruct models do)."""

    chat_template = True


def test_auto_style_asks_in_chat_form_when_the_model_has_a_chat_template():
    q = Question(SEA.text, SEA.options, (("gulls and tides", "yes"), ("a quiet library", "no")))
    client = LLMClient(ChatFake())
    judge = Judge(client)
    assert judge.style == "chat" and Judge(LLMClient(FakeLLM())).style == "completion"
    prefix = judge.prefix(q)
    assert [m["role"] for m in prefix] == ["user", "assistant", "user", "assistant"]
    assert [m["content"] for m in prefix[1::2]] == ["yes", "no"]
    assert (
        prefix[0]["content"] == "gulls and tides\n\nIs this text about the sea? Answer yes or no."
    )
    for text in ("one text", "another, longer text"):
        prompt = judge.prompt(text, q)
        assert prompt[: len(prefix)] == prefix and len(prompt) == len(prefix) + 1
        assert prompt[-1] == {"role": "user", "content": f"{text}\n\n{SEA.text} Answer yes or no."}
    asyncio.run(judge.probs("the sea", q, seed=2))
    ((request, _),) = client.calls
    assert request.kind == "chat" and request.options == ("yes", "no")  # no leading space
    three = Question("Which genre?", ("horror", "romance", "comedy"))
    assert judge.prompt("x", three)[-1]["content"].endswith("Answer horror, romance or comedy.")


def test_a_style_can_be_forced_and_a_bad_one_is_refused():
    assert Judge(LLMClient(ChatFake()), style="completion").style == "completion"
    assert Judge(LLMClient(FakeLLM()), style="chat").style == "chat"
    with pytest.raises(ValueError, match="style must be one of auto, chat, completion"):
        Judge(LLMClient(FakeLLM()), style="json")  # type: ignore[arg-type]


def biased_weight(prompt: str, option: str) -> float:
    """A judge biased to yes: P(yes) .75 on the content-free text, .9 on a sea text, .6 else."""
    text = last_text(prompt)
    p_yes = 0.75 if text == "N/A" else 0.9 if "sea" in text else 0.6
    return p_yes if option == " yes" else 1.0 - p_yes


def test_calibration_divides_by_the_content_free_answer_asked_once_per_question():
    client = LLMClient(FakeLLM(option_weight=biased_weight))
    judge = Judge(client, calibrate=True)
    sea = asyncio.run(judge.probs("the sea", SEA))
    land = asyncio.run(judge.probs("a field", SEA))
    # (0.9 / 0.75) / (0.9 / 0.75 + 0.1 / 0.25) = 1.2 / 1.6; (0.6 / 0.75) / (0.8 + 1.6) = 1 / 3
    assert sea == pytest.approx({"yes": 0.75, "no": 0.25})
    assert land == pytest.approx({"yes": 1 / 3, "no": 2 / 3})
    asked = [last_text(r.prompt) for r, _ in client.calls]
    assert asked == ["the sea", "N/A", "a field"]  # the baseline once, through the client
    plain = asyncio.run(
        Judge(LLMClient(FakeLLM(option_weight=biased_weight))).probs("a field", SEA)
    )
    assert plain == pytest.approx({"yes": 0.6, "no": 0.4})


def test_a_replayed_chat_judge_asks_in_chat_form_again(tmp_path):
    from evolm.llm.replay import ReplayLLM
    from evolm.store import RunStore

    recorded = LLMClient(ChatFake())
    first = asyncio.run(Judge(recorded).probs("the sea", SEA, seed=1))
    with RunStore(tmp_path / "chat.db") as store:
        for request, completion in recorded.calls:
            store.add_llm_call(0, request, completion)
    replay = ReplayLLM(tmp_path / "chat.db")
    assert replay.chat_template
    again = Judge(LLMClient(replay))
    assert again.style == "chat" and asyncio.run(again.probs("the sea", SEA, seed=1)) == first
    with RunStore(tmp_path / "plain.db") as store:
        plain = LLMClient(FakeLLM())
        asyncio.run(Judge(plain).probs("the sea", SEA))
        store.add_llm_call(0, *plain.calls[0])
    assert not ReplayLLM(tmp_path / "plain.db").chat_template
