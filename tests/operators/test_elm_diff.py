"""ElmDiff: ELM's commit-format prompt, chat prompt, message sampling, and diffs applied back."""

from __future__ import annotations

import difflib
import re
from collections import Counter

import numpy as np
import pytest

from evolm.domains.base import DomainContext
from evolm.domains.image import ImageDomain
from evolm.operators.base import Proposal
from evolm.operators.elm_diff import (
    DEFAULT_MESSAGE_WEIGHTS,
    DEFAULT_MESSAGES,
    DIFF_STOP,
    DIFF_SYSTEM_PROMPT,
    ElmDiff,
)
from evolm.types import Evaluation, Individual, Program, Status

DOMAIN = ImageDomain(target="circle", size=16)
CONTEXT = DOMAIN.context()
PARENT_CODE = DOMAIN.seeds()[1]
WALKER = DomainContext(
    description="Build a walking robot.",
    function_name="make_walker",
    api="def walker_creator():\n    ...\n",
    file_name="walker.py",
)
WALKER_CODE = "def make_walker():\n    w = walker_creator()\n    w.add_joint(0, 0)\n    return w\n"
EDITED = PARENT_CODE.replace("(0.2, 0.4, 0.8)", "(0.8, 0.2, 0.2)")


def individual(code: str = PARENT_CODE, pid: int = 7) -> Individual:
    return Individual(Program(id=pid, code=code), Evaluation(Status.OK, fitness=-0.3))


def unified(old: str, new: str, name: str = "image.py", context: int = 3) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            f"a/{name}",
            f"b/{name}",
            n=context,
        )
    )


def propose(op: ElmDiff, code: str = PARENT_CODE, seed: int = 0) -> Proposal:
    return op.propose([individual(code)], np.random.default_rng(seed))


def test_operator_attributes() -> None:
    op = ElmDiff(CONTEXT)
    assert (op.name, op.num_parents, op.uses_llm, op.mode) == ("elm_diff", 1, True, "chat")
    assert op.messages == (
        "Changed draw function.",
        "Changed parameters in draw function.",
        "Small change to draw function.",
    )
    assert op.weights == pytest.approx([0.4, 0.3, 0.3])
    assert DEFAULT_MESSAGE_WEIGHTS == (0.4, 0.3, 0.3) and len(DEFAULT_MESSAGES) == 3


def test_completion_prompt_is_the_elm_commit_format() -> None:
    op = ElmDiff(WALKER, "completion", messages=["Changed {fn} function."])
    proposal = op.propose([individual(WALKER_CODE, pid=3)], np.random.default_rng(0))
    request = proposal.request
    assert proposal.parent_ids == (3,) and proposal.code is None
    assert request is not None and request.kind == "completion" and request.messages == ()
    assert request.prompt == (
        "<NME> walker.py\n"
        "<BEF> def make_walker():\n"
        "    w = walker_creator()\n"
        "    w.add_joint(0, 0)\n"
        "    return w\n"
        "<MSG> Changed make_walker function.\n"
        "<DFF>"
    )
    assert request.stop == DIFF_STOP
    assert "<NME>" in request.stop and "<|endoftext|>" in request.stop
    assert len(request.stop) <= 4


def test_chat_prompt() -> None:
    op = ElmDiff(CONTEXT, "chat", messages=["Small change to {function} function."])
    request = propose(op).request
    assert request is not None and request.kind == "chat" and request.stop == ()
    assert request.messages[0] == {"role": "system", "content": DIFF_SYSTEM_PROMPT}
    assert [m["role"] for m in request.messages] == ["system", "user"]
    text = request.messages[1]["content"]
    assert CONTEXT.description in text and CONTEXT.api.strip() in text
    blocks = re.findall(r"```[^\n`]*\n(.*?)\n```", text, re.DOTALL)
    assert blocks[-1] == PARENT_CODE.rstrip()
    assert "Make this change to it: Small change to draw function." in text
    assert "unified diff" in text and "`--- a/image.py`" in text and "`@@`" in text
    assert text.index("```python\nimport numpy") < text.index("Make this change")


def test_sampling_parameters_and_seed() -> None:
    op = ElmDiff(
        CONTEXT, "completion", max_tokens=300, temperature=0.3, top_p=0.5, parent_sized=False
    )
    request = propose(op).request
    assert request is not None
    assert (request.max_tokens, request.temperature, request.top_p) == (300, 0.3, 0.5)
    rng = np.random.default_rng(0)
    seeds = {op.propose([individual()], rng).request.seed for _ in range(40)}  # type: ignore[union-attr]
    assert len(seeds) == 40 and all(0 <= s < 2**31 for s in seeds)  # type: ignore[operator]


def test_message_then_seed_drawn_like_prompt_mutation() -> None:
    op = ElmDiff(CONTEXT, "completion")
    request = propose(op, seed=11).request
    rng = np.random.default_rng(11)
    index = int(rng.choice(3, p=op.weights))
    assert request is not None
    assert f"<MSG> {op.messages[index]}\n" in request.prompt
    assert request.seed == int(rng.integers(2**31))


def test_same_rng_state_gives_same_request() -> None:
    for mode in ("chat", "completion"):
        op = ElmDiff(CONTEXT, mode)
        assert propose(op, seed=5).request == propose(op, seed=5).request


def test_default_message_frequencies() -> None:
    op = ElmDiff(CONTEXT, "completion")
    rng = np.random.default_rng(2024)
    n = 3000
    counts: Counter[str] = Counter()
    for _ in range(n):
        prompt = op.propose([individual()], rng).request.prompt  # type: ignore[union-attr]
        counts[prompt.split("<MSG> ", 1)[1].split("\n", 1)[0]] += 1
    assert sum(counts.values()) == n
    assert counts["Changed draw function."] / n == pytest.approx(0.4, abs=0.03)
    assert counts["Changed parameters in draw function."] / n == pytest.approx(0.3, abs=0.03)
    assert counts["Small change to draw function."] / n == pytest.approx(0.3, abs=0.03)


def test_custom_messages_and_weights() -> None:
    op = ElmDiff(CONTEXT, "completion", messages=["Fix   {fn}\nnow.", "Never."], weights=[1, 0])
    assert op.messages == ("Fix draw now.", "Never.")
    rng = np.random.default_rng(0)
    for _ in range(50):
        assert "<MSG> Fix draw now.\n<DFF>" in op.propose([individual()], rng).request.prompt  # type: ignore[union-attr]
    uniform = ElmDiff(CONTEXT, messages=["a", "b"])
    assert uniform.weights == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "diff"}, "mode must be 'chat' or 'completion'"),
        ({"messages": []}, "messages must not be empty"),
        ({"messages": "Changed it."}, "not one string"),
        ({"messages": ["ok", " "]}, "non-empty string"),
        ({"messages": ["ok", 3]}, "non-empty string"),
        ({"weights": [1.0, 1.0]}, r"one number per entry of messages \(3\)"),
        ({"messages": ["a", "b"], "weights": [1.0, -1.0]}, "finite, >= 0"),
        ({"messages": ["a", "b"], "weights": [0, 0]}, "not all zero"),
        ({"messages": ["a"], "weights": [float("inf")]}, "finite"),
        ({"messages": ["a"], "weights": ["x"]}, "list of numbers"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ElmDiff(CONTEXT, **kwargs)


def test_wrong_number_of_parents() -> None:
    with pytest.raises(ValueError, match="takes 1 parent, got 2"):
        ElmDiff(CONTEXT).propose([individual(), individual(pid=8)], np.random.default_rng(0))


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        # a parent holding backticks (its fence in the prompt is longer)
        ("chat", 'DOC = """```x```"""\n\n\ndef draw():\n    return None\n'),
        # a parent with a line of its own starting with "<MSG> "
        ("completion", 'DOC = """\n<MSG> x\n"""\n\n\ndef draw():\n    return DOC\n'),
    ],
)
def test_the_diff_applies_to_the_proposals_parent_whatever_it_holds(mode: str, code: str) -> None:
    op = ElmDiff(CONTEXT, mode)
    parent = individual(code)
    proposal = op.propose([parent], np.random.default_rng(0))
    assert proposal.parents == (parent,) and proposal.parent_ids == (7,)
    last = code.rstrip().split("\n")[-1]
    result = op.finish(proposal, f"@@ -5,1 +5,1 @@\n-{last}\n+    return 1\n")
    assert result.ok, result.error
    assert result.code == code.replace(last, "    return 1")


def test_completion_round_trip() -> None:
    op = ElmDiff(CONTEXT, "completion")
    proposal = propose(op)
    hunks = unified(PARENT_CODE, EDITED).split("\n", 2)[2]  # the model writes only the hunks
    result = op.finish(proposal, " " + hunks + "<NME> other.py\n")
    assert result.ok, result.error
    assert result.code == EDITED
    assert DOMAIN.evaluate(result.code).ok


def test_chat_round_trip_with_prose_and_fence() -> None:
    op = ElmDiff(CONTEXT, "chat")
    proposal = propose(op)
    reply = (
        "Here is the change, turning the square red:\n\n"
        f"```diff\n{unified(PARENT_CODE, EDITED)}```\n\n"
        "This keeps the rest of the program the same."
    )
    result = op.finish(proposal, reply)
    assert result.ok, result.error
    assert result.code == EDITED


def test_whitespace_sloppy_diff_from_a_chat_model() -> None:
    op = ElmDiff(CONTEXT, "chat")
    reply = (
        "```diff\n--- a/image.py\n+++ b/image.py\n@@\n"
        " def draw():\n"
        "-  img = np.full((16, 16, 3), 0.9)\n"  # two-space indentation
        "+  img = np.full((16, 16, 3), 0.1)\n"
        "+  img[0, 0] = (1, 1, 1)\n"
        "```"
    )
    result = op.finish(propose(op), reply)
    assert result.ok, result.error
    assert "    img = np.full((16, 16, 3), 0.1)\n    img[0, 0] = (1, 1, 1)\n" in result.code


def test_diff_that_does_not_apply_is_recorded() -> None:
    op = ElmDiff(CONTEXT, "completion")
    reply = "@@\n-    img = np.zeros((16, 16, 3))\n+    img = np.ones((16, 16, 3))\n"
    result = op.finish(propose(op), reply)
    assert not result.ok and result.code == ""
    assert result.error is not None
    assert result.error.startswith(
        "diff did not apply: hunk 1: its context/removed lines were not found in the parent"
    )


def test_no_hunks() -> None:
    whole = "```python\nimport numpy as np\n\n\ndef draw():\n    return np.zeros((16, 16, 3))\n```"
    # Chat models often answer with the whole program: accepted.
    chat = ElmDiff(CONTEXT, "chat")
    result = chat.finish(propose(chat), "I rewrote it instead:\n" + whole)
    assert result.ok and result.code.endswith("return np.zeros((16, 16, 3))\n")
    # ... but not in completion mode, and not when there is no program either.
    completion = ElmDiff(CONTEXT, "completion")
    result = completion.finish(propose(completion), whole)
    assert result.error == "diff did not apply: no hunks in completion"
    result = chat.finish(propose(chat), "Looks good to me.")
    assert result.error == "diff did not apply: no hunks in completion"


def test_result_must_parse_and_define_the_function() -> None:
    op = ElmDiff(CONTEXT, "completion")
    broken = "@@\n     lo, hi = 16 // 4, 16 - 16 // 4\n-    img[lo:hi, lo:hi] = (0.2, 0.4, 0.8)\n"
    broken += "+    img[lo:hi, lo:hi] = (0.2, 0.4, 0.8\n"
    result = op.finish(propose(op), broken)
    assert result.error is not None
    assert result.error.startswith("diff applied but the program does not parse: SyntaxError at")
    renamed = "@@\n-def draw():\n+def paint():\n"
    result = op.finish(propose(op), renamed)
    assert result.error == "diff applied but the program no longer defines draw() at top level"
    nothing = "@@\n def draw():\n-    return img\n+    return img\n"
    assert op.finish(propose(op), nothing).error == "diff did not apply: hunk 1 changes nothing"


def test_completion_cut_by_max_tokens() -> None:
    op = ElmDiff(CONTEXT, "completion")
    # The second added line was cut off: the answer is applied without it.
    reply = (
        "@@ -5,3 +5,4 @@\n"
        "     img = np.full((16, 16, 3), 0.9)\n"
        "+    img[0] = 0.5\n"
        "+    img[1] = np.array([0.1, 0."
    )
    result = op.finish(propose(op), reply)
    assert result.ok, result.error
    assert result.code == PARENT_CODE.replace("0.9)\n", "0.9)\n    img[0] = 0.5\n")
    # With an end-of-text token the answer is complete as written: nothing is dropped.
    result = op.finish(propose(op), reply + "<|endoftext|>")
    assert result.error is not None and "does not parse" in result.error


def test_finish_of_a_proposal_without_parents() -> None:
    op = ElmDiff(CONTEXT, "completion")
    # the prompt holds a parent, but finish reads only the proposal's parents
    request = propose(op).request
    proposal = Proposal(parent_ids=(1,), request=request)
    assert op.finish(proposal, "@@\n-a\n+b\n").error == "the proposal carries no parent program"
    assert op.finish(Proposal((1,), None), "").error == "the proposal carries no parent program"
