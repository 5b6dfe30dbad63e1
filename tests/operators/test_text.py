"""Text operators: prompt shapes on known parents, extraction edge cases, the fake's answers."""

from __future__ import annotations

import numpy as np
import pytest

from evolm.domains.base import DomainContext
from evolm.llm.fake import mutating_responder
from evolm.operators import OPERATORS, make_operator
from evolm.operators.text import (
    TEXT_SYSTEM_PROMPT,
    TextLMX,
    TextRewrite,
    extract_text,
    fake_answer,
    plural,
)
from evolm.types import Evaluation, Individual, Program, Status

CTX = DomainContext("Write a short poem about the sea.", "poem", language="text")
TEXTS = {
    1: "The sea is grey\nand waves roll in.\n",
    2: "Salt on my lips,\nthe tide goes out,\nI smile.\n",
    3: "Blue water\nsings.\n",
}
FIT = {1: 0.2, 2: 0.9, 3: 0.5}


def ind(pid: int) -> Individual:
    return Individual(Program(id=pid, code=TEXTS[pid]), Evaluation(Status.OK, FIT[pid], (0.5, 0.5)))


def test_registered_under_their_kinds() -> None:
    assert OPERATORS.get("text_rewrite") is TextRewrite
    assert OPERATORS.get("text_lmx") is TextLMX


def test_rewrite_chat_prompt_shape() -> None:
    op = make_operator("text_rewrite", CTX, "chat", instructions=["rhymes"])
    proposal = op.propose([ind(1)], np.random.default_rng(0))
    system, user = proposal.request.messages
    assert system == {"role": "system", "content": TEXT_SYSTEM_PROMPT}
    assert user["content"] == (
        "Write a short poem about the sea.\n\nHere is a poem:\n\n"
        "The sea is grey\nand waves roll in.\n\n"
        "Write a new poem that rhymes. Reply with the poem only."
    )
    assert proposal.parent_ids == (1,) and proposal.prefix == ""


def test_rewrite_completion_prompt_shape_and_stops() -> None:
    op = make_operator("text_rewrite", CTX, "completion", instructions=["is shorter."])
    request = op.propose([ind(1)], np.random.default_rng(0)).request
    assert request.kind == "completion"
    assert request.prompt == (
        "Write a short poem about the sea.\n\nPoem 1:\nThe sea is grey\nand waves roll in.\n\n"
        "Poem 2, a new poem that is shorter:\n"
    )
    assert request.stop == ("\nPoem 3", "\n\n\n")


def test_lmx_shows_k_parents_worst_first() -> None:
    op = make_operator("text_lmx", CTX, "completion", k=3)
    request = op.propose([ind(2), ind(1), ind(3)], np.random.default_rng(0)).request
    assert request.prompt == (
        "Write a short poem about the sea.\n\n"
        f"Poem 1:\n{TEXTS[1]}\nPoem 2:\n{TEXTS[3]}\nPoem 3:\n{TEXTS[2]}\nPoem 4:\n"
    )
    assert request.stop == ("\nPoem 5", "\n\n\n")
    chat = make_operator("text_lmx", CTX, "chat", k=2)
    body = chat.propose([ind(2), ind(3)], np.random.default_rng(0)).request.messages[-1]["content"]
    assert body.index("Poem 1:\nBlue water") < body.index("Poem 2:\nSalt on my lips")
    assert body.endswith(
        "Write Poem 3, one new poem in the spirit of the poems above. Reply with the poem only."
    )
    story = DomainContext("Write a story.", "story", language="text")
    assert (
        "Here are 2 stories:"
        in make_operator("text_lmx", story, "chat", k=2)
        .propose([ind(1), ind(3)], np.random.default_rng(0))
        .request.messages[-1]["content"]
    )


def test_lmx_k_must_be_2_to_5_and_max_chars_positive() -> None:
    with pytest.raises(ValueError, match="text_rewrite"):
        TextLMX(CTX, k=1)
    with pytest.raises(ValueError, match="1 to 5"):
        TextLMX(CTX, k=6)
    with pytest.raises(ValueError, match="max_chars"):
        TextRewrite(CTX, max_chars=0)
    with pytest.raises(ValueError, match="takes 3 parents"):
        TextLMX(CTX, k=3).propose([ind(1)], np.random.default_rng(0))


def test_requests_are_seeded_and_sized_from_the_parent() -> None:
    op = TextRewrite(CTX, max_tokens=512)
    a = op.propose([ind(1)], np.random.default_rng(7)).request
    b = op.propose([ind(1)], np.random.default_rng(7)).request
    assert a == b and a.seed is not None
    assert a.max_tokens == 64 + (len(TEXTS[1].strip()) + 1) // 2


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ("The tide comes in.\nThe gulls cry.", "The tide comes in.\nThe gulls cry.\n"),
        ('"The tide comes in.\nThe gulls cry."', "The tide comes in.\nThe gulls cry.\n"),
        ("\u201cQuiet water.\u201d", "Quiet water.\n"),
        ("Here is a new poem:\n\nQuiet water,\nslow light.", "Quiet water,\nslow light.\n"),
        ("**Poem 4:** Quiet water,\nslow light.", "Quiet water,\nslow light.\n"),
        ("New poem: Quiet water.", "Quiet water.\n"),
        (
            "```text\nQuiet water,\nslow light.\n```\nI hope you like it!",
            "Quiet water,\nslow light.\n",
        ),
        ("```\nQuiet water,\nslow light.", "Quiet water,\nslow light.\n"),  # cut: fence open
        ("Quiet water,\nslow light.\n\nPoem 5:\nAnother one.", "Quiet water,\nslow light.\n"),
        (
            "Quiet water.\n\nSlow light.\n\nI hope you enjoy this poem about the sea.",
            "Quiet water.\n\nSlow light.\n",
        ),
        (
            "Quiet water,\nslow light.\n\nNote: this poem uses imagery.",
            "Quiet water,\nslow light.\n",
        ),
        ("Quiet water<|im_end|>ignored", "Quiet water\n"),
        ('He said "go" and she said "stay"', 'He said "go" and she said "stay"\n'),
    ],
)
def test_extract_text(answer: str, text: str) -> None:
    result = extract_text(answer, "poem")
    assert result.ok, result.error
    assert result.code == text


@pytest.mark.parametrize("answer", ["", "   \n", '""', "```\n```", "Poem 4:", "<|im_end|>x"])
def test_extract_text_refuses_empty(answer: str) -> None:
    result = extract_text(answer, "poem")
    assert not result.ok and result.error == "empty poem" and result.code == ""


def test_extract_text_refuses_overlong() -> None:
    result = extract_text("word " * 100, "story", max_chars=50)
    assert result.error == "the story is 499 characters long, more than max_chars=50"
    assert (
        TextRewrite(CTX, max_chars=50)
        .finish(TextRewrite(CTX).propose([ind(1)], np.random.default_rng(0)), "x" * 51)
        .error
        == "the poem is 51 characters long, more than max_chars=50"
    )


def test_plural() -> None:
    assert [plural(n) for n in ("poem", "story", "instruction", "day", "box")] == [
        "poems",
        "stories",
        "instructions",
        "days",
        "boxes",
    ]


@pytest.mark.parametrize("mode", ["chat", "completion"])
@pytest.mark.parametrize("name", ["text_rewrite", "text_lmx"])
def test_fake_model_answers_text_prompts_with_a_changed_parent(name: str, mode: str) -> None:
    op = make_operator(name, CTX, mode, **({"k": 3} if name == "text_lmx" else {}))
    parents = [ind(1), ind(2), ind(3)][: op.num_parents]
    proposal = op.propose(parents, np.random.default_rng(1))
    answer = mutating_responder(proposal.request)
    assert answer == mutating_responder(proposal.request)  # deterministic
    result = op.finish(proposal, answer)
    assert result.ok, result.error
    parent_lines = {line for p in parents for line in p.program.code.splitlines()}
    child = result.code.splitlines()
    assert len(child) == len(sorted(parents, key=lambda p: p.fitness)[0].program.code.splitlines())
    assert sum(line not in parent_lines for line in child) <= 1  # one word replaced
    assert result.code not in {p.program.code for p in parents}


def test_fake_answer_leaves_other_prompts_alone() -> None:
    assert fake_answer("def draw():\n", 0) is None
    assert fake_answer("Reply with the complete new program in one fenced block.", 0) is None
