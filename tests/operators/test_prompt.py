"""PromptMutation and FullRewrite: prompt contents, instruction sampling, seeds, round trips."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from evolm.domains.base import DomainContext
from evolm.domains.image import ImageDomain
from evolm.llm.base import Request
from evolm.llm.fake import mutating_responder
from evolm.operators import OPERATORS, FullRewrite, PromptMutation, make_operator
from evolm.operators.prompt import (
    COMPLETION_STOP,
    DEFAULT_INSTRUCTIONS,
    completion_prefix,
    parent_token_budget,
    restore_return,
)
from evolm.types import Evaluation, Individual, Program, Status

DOMAIN = ImageDomain(target="circle", size=16)
CONTEXT = DOMAIN.context()
PARENT_CODE = DOMAIN.seeds()[1]
FENCED = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


def individual(code: str = PARENT_CODE, pid: int = 7, fitness: float | None = -0.25) -> Individual:
    if fitness is None:
        ev = Evaluation.failure(Status.ERROR, "ZeroDivisionError: division by zero (line 3)")
    else:
        ev = Evaluation(Status.OK, fitness=fitness, descriptors=(0.1, 0.2, 0.3))
    return Individual(Program(id=pid, code=code), ev)


def user_message(op: PromptMutation | FullRewrite, parent: Individual, seed: int = 0) -> str:
    request = op.propose([parent], np.random.default_rng(seed)).request
    assert request is not None and request.kind == "chat"
    assert [m["role"] for m in request.messages] == ["system", "user"]
    return request.messages[1]["content"]


def test_chat_prompt_has_parent_in_last_fence_and_instruction() -> None:
    op = PromptMutation(CONTEXT, "chat", instructions=["Make the disk bigger."])
    proposal = op.propose([individual()], np.random.default_rng(0))
    assert proposal.parent_ids == (7,)
    assert proposal.code is None
    text = user_message(op, individual())
    assert f"```python\n{PARENT_CODE.rstrip()}\n```" in text
    assert FENCED.findall(text)[-1].rstrip() == PARENT_CODE.rstrip()
    assert "Make the disk bigger." in text
    assert CONTEXT.description in text
    assert CONTEXT.api.strip() in text
    assert "`draw()`" in text
    assert text.index("Here is the current program") < text.index("Make the disk bigger.")


def test_request_uses_sampling_parameters() -> None:
    op = PromptMutation(
        CONTEXT,
        "chat",
        max_tokens=300,
        temperature=0.3,
        top_p=0.5,
        repeat_penalty=1.1,
        parent_sized=False,
    )
    request = op.propose([individual()], np.random.default_rng(0)).request
    assert request is not None
    assert (request.max_tokens, request.temperature, request.top_p) == (300, 0.3, 0.5)
    assert request.repeat_penalty == 1.1
    assert request.stop == ()


@pytest.mark.parametrize(
    "kind", ["prompt_mutation", "rewrite", "elm_diff", "search_replace", "lmx"]
)
def test_max_tokens_follow_the_parents_size(kind: str) -> None:
    short = "import numpy as np\n\n\ndef draw():\n    return np.zeros((8, 8, 3))\n"
    long = short + "".join(f"\n\ndef helper_{i}(x):\n    return x * {i} + 1\n" for i in range(80))
    op = make_operator(kind, CONTEXT, "completion", max_tokens=1024)
    rng = np.random.default_rng(0)
    parents = [individual(short)] * op.num_parents
    small = op.propose(parents, rng).request
    big = op.propose([individual(long)] * op.num_parents, rng).request
    assert small is not None and big is not None
    assert small.max_tokens == parent_token_budget(short) < 200
    assert big.max_tokens == 1024  # the configured cap still holds
    unsized = make_operator(kind, CONTEXT, "completion", max_tokens=1024, parent_sized=False)
    assert unsized.propose(parents, rng).request.max_tokens == 1024  # type: ignore[union-attr]


def test_a_repeat_penalty_changes_the_replay_key_only_when_on() -> None:
    plain = Request(kind="completion", prompt="x")
    assert "repeat_penalty" not in plain.payload()  # keys recorded before it existed still match
    on = Request(kind="completion", prompt="x", repeat_penalty=1.2)
    assert on.key() != plain.key()
    assert Request.from_json(on.to_json()) == on
    with pytest.raises(ValueError, match="repeat_penalty"):
        PromptMutation(CONTEXT, repeat_penalty=0.0)


def test_default_instructions_are_used() -> None:
    op = PromptMutation(CONTEXT)
    assert op.instructions == DEFAULT_INSTRUCTIONS
    assert len(DEFAULT_INSTRUCTIONS) == 4
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(60):
        text = op.propose([individual()], rng).request.messages[1]["content"]  # type: ignore[union-attr]
        seen |= {ins for ins in DEFAULT_INSTRUCTIONS if ins in text}
    assert seen == set(DEFAULT_INSTRUCTIONS)


def test_instruction_distribution_follows_weights() -> None:
    instructions = ["AAA do one thing.", "BBB do another.", "CCC never."]
    op = PromptMutation(CONTEXT, instructions=instructions, weights=[3, 1, 0])
    rng = np.random.default_rng(123)
    counts: Counter[str] = Counter()
    n = 2000
    for _ in range(n):
        text = op.propose([individual()], rng).request.messages[1]["content"]  # type: ignore[union-attr]
        counts.update(ins[:3] for ins in instructions if ins in text)
    assert sum(counts.values()) == n
    assert counts["CCC"] == 0
    assert counts["AAA"] / n == pytest.approx(0.75, abs=0.04)


def test_same_rng_state_gives_same_request() -> None:
    op = PromptMutation(CONTEXT)
    a = op.propose([individual()], np.random.default_rng(5)).request
    b = op.propose([individual()], np.random.default_rng(5)).request
    assert a == b


def test_seed_differs_per_proposal() -> None:
    op = PromptMutation(CONTEXT, instructions=["Change it."])
    rng = np.random.default_rng(0)
    seeds = [op.propose([individual()], rng).request.seed for _ in range(50)]  # type: ignore[union-attr]
    assert len(set(seeds)) == 50
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)
    # Equal prompts still share a replay key: the seed is not part of it.
    first = op.propose([individual()], np.random.default_rng(1)).request
    second = op.propose([individual()], np.random.default_rng(2)).request
    assert first.key() == second.key() and first.seed != second.seed  # type: ignore[union-attr]


def test_chat_round_trip_with_fake_mutation() -> None:
    op = PromptMutation(CONTEXT, "chat", parent_sized=False)
    rng = np.random.default_rng(0)
    for _ in range(10):
        proposal = op.propose([individual()], rng)
        reply = mutating_responder(proposal.request)  # type: ignore[arg-type]
        result = op.finish(proposal, reply)
        assert result.ok, result.error
        assert result.code != PARENT_CODE
        ev = DOMAIN.evaluate(result.code)
        assert ev.status in (Status.OK, Status.INVALID), ev.error


def test_completion_prompt_and_round_trip() -> None:
    parent_code = (
        "import numpy as np\n\nSCALE = 0.5\n\n\ndef draw():\n"
        "    return np.full((16, 16, 3), SCALE)\n"
    )
    op = PromptMutation(CONTEXT, "completion", instructions=["Use a brighter colour."])
    proposal = op.propose([individual(parent_code)], np.random.default_rng(0))
    request = proposal.request
    assert request is not None and request.kind == "completion"
    assert request.messages == ()
    assert request.stop == COMPLETION_STOP
    prompt = request.prompt
    assert prompt.startswith(CONTEXT.api)
    assert "# Previous version of draw()\n" + parent_code.rstrip() in prompt
    assert "# New version of draw(). Use a brighter colour.\n" in prompt
    head = "import numpy as np\n\nSCALE = 0.5\n\n\ndef draw():\n"
    assert prompt.endswith("\n" + head)
    assert completion_prefix(prompt, "draw") == head
    assert proposal.prefix == head  # finish takes the head from here, not from the prompt
    reply = "    return np.full((16, 16, 3), SCALE * 1.5)\n\n\nprint(draw())\n"
    result = op.finish(proposal, reply)
    assert result.ok, result.error
    assert result.code == head + "    return np.full((16, 16, 3), SCALE * 1.5)\n"
    assert DOMAIN.evaluate(result.code).ok


WALKER = (
    "def make_walker():\n"
    "    wc = walker_creator()\n"
    "    a = wc.add_joint(0, 0)\n"
    "    b = wc.add_joint(1, 0)\n"
    "    wc.add_muscle(a, b, 0.3, 0.0)\n"
    "    return wc.get_walker()\n"
)


def test_a_body_cut_before_its_return_gets_the_parents_closing_line() -> None:
    op = PromptMutation(
        CONTEXT.__class__(**{**CONTEXT.__dict__, "function_name": "make_walker"}),
        "completion",
        instructions=["Add a joint."],
    )
    proposal = op.propose([individual(WALKER)], np.random.default_rng(0))
    assert proposal.request is not None
    assert [p.program.code for p in proposal.parents] == [WALKER]
    # the model added a joint and a muscle, then stopped (or ran out of tokens mid-line)
    reply = (
        "    wc = walker_creator()\n    a = wc.add_joint(0, 0)\n    b = wc.add_joint(1, 0)\n"
        "    c = wc.add_joint(2, 1)\n    wc.add_muscle(b, c, 0.2, 1.0)\n    wc.add_muscle(a, "
    )
    result = op.finish(proposal, reply)
    assert result.ok, result.error
    assert result.code.endswith("    wc.add_muscle(b, c, 0.2, 1.0)\n    return wc.get_walker()\n")
    # off: the program stays as the model left it
    off = PromptMutation(
        op.context, "completion", instructions=["Add a joint."], restore_return=False
    )
    assert "return" not in off.finish(proposal, reply).code


def test_restore_return_leaves_programs_with_a_return_or_odd_parents_alone() -> None:
    body = "def make_walker():\n    wc = walker_creator()\n"
    # a return anywhere in the function's own body counts; a nested function's does not
    branchy = body + "    if wc:\n        return wc.get_walker()\n"
    assert restore_return(branchy, WALKER, "make_walker") == branchy
    nested = body + "    def f():\n        return 1\n"
    assert restore_return(nested, WALKER, "make_walker").endswith(
        "        return 1\n    return wc.get_walker()\n"
    )
    # the closing line goes inside the function, before code that follows it at top level
    trailing = body + "\n\nX = 1\n"
    made = restore_return(trailing, WALKER, "make_walker")
    assert made == body + "    return wc.get_walker()\n\n\nX = 1\n"
    # a parent that does not end in a return, or does not parse, gives nothing to copy
    assert restore_return(body, WALKER.replace("return ", "print("), "make_walker") == body
    assert restore_return(body, "def make_walker(:\n", "make_walker") == body


def test_completion_prompt_comments_multiline_instruction() -> None:
    op = PromptMutation(CONTEXT, "completion", instructions=["Line one.\nLine two."])
    prompt = op.propose([individual()], np.random.default_rng(0)).request.prompt  # type: ignore[union-attr]
    assert "# New version of draw(). Line one. Line two.\n" in prompt
    assert "\nLine two." not in prompt


def test_completion_head_without_one_line_def() -> None:
    parent_code = "import math\nimport numpy as np\n\ndef draw(): return np.zeros((16, 16, 3))\n"
    op = PromptMutation(CONTEXT, "completion")
    prompt = op.propose([individual(parent_code)], np.random.default_rng(0)).request.prompt  # type: ignore[union-attr]
    assert prompt.endswith("\nimport math\nimport numpy as np\n\n\ndef draw():\n")


def test_rewrite_chat_prompt() -> None:
    op = FullRewrite(CONTEXT, "chat")
    assert (op.name, op.num_parents) == ("rewrite", 1)
    text = user_message(op, individual(fitness=-0.25))
    assert "it scored -0.25" in text
    assert "from scratch" in text
    assert FENCED.findall(text)[-1].rstrip() == PARENT_CODE.rstrip()
    failed = user_message(op, individual(fitness=None))
    assert "it was not scored: error" in failed


def test_rewrite_completion_round_trip() -> None:
    parent_code = "import numpy as np\n\nK = 3\n\n\ndef draw():\n    return np.zeros((16, 16, 3))\n"
    op = FullRewrite(CONTEXT, "completion")
    proposal = op.propose([individual(parent_code)], np.random.default_rng(0))
    prompt = proposal.request.prompt  # type: ignore[union-attr]
    assert "rewritten from scratch" in prompt
    assert prompt.endswith(
        "from scratch with a different approach\nimport numpy as np\n\n\ndef draw():\n"
    )
    result = op.finish(proposal, "    return np.ones((16, 16, 3)) * 0.2\n")
    assert result.ok and "K = 3" not in result.code
    assert DOMAIN.evaluate(result.code).ok


def test_finish_reports_extraction_failure() -> None:
    op = PromptMutation(CONTEXT)
    proposal = op.propose([individual()], np.random.default_rng(0))
    result = op.finish(proposal, "I'd rather not.")
    assert not result.ok and result.error == "no function draw() in completion"


def test_other_function_name_and_language() -> None:
    ctx = DomainContext(description="Return 3.", function_name="f", language="py")
    op = PromptMutation(ctx, "chat")
    parent = individual("def f():\n    return 2\n")
    text = user_message(op, parent)
    assert "```py\ndef f():\n    return 2\n```" in text
    assert "`f()`" in text and "Helper code" not in text
    proposal = op.propose([parent], np.random.default_rng(0))
    assert (
        op.finish(proposal, "```py\ndef f():\n    return 3\n```").code == "def f():\n    return 3\n"
    )


def test_parent_with_backticks_gets_a_longer_fence() -> None:
    code = 'DOC = """```"""\n\n\ndef draw():\n    return None\n'
    text = user_message(PromptMutation(CONTEXT), individual(code))
    assert f"````python\n{code.rstrip()}\n````" in text


def test_wrong_number_of_parents() -> None:
    op = PromptMutation(CONTEXT)
    with pytest.raises(ValueError, match="takes 1 parent, got 2"):
        op.propose([individual(), individual(pid=8)], np.random.default_rng(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "instruct"}, "mode must be 'chat' or 'completion'"),
        ({"instructions": []}, "must not be empty"),
        ({"instructions": "Improve it."}, "not one string"),
        ({"instructions": ["ok", "  "]}, "non-empty string"),
        ({"instructions": ["a", "b"], "weights": [1.0]}, "one number per instruction"),
        ({"instructions": ["a", "b"], "weights": [1.0, -0.5]}, "finite, >= 0"),
        ({"instructions": ["a", "b"], "weights": [0, 0]}, "not all zero"),
        ({"instructions": ["a"], "weights": [float("nan")]}, "finite"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PromptMutation(CONTEXT, **kwargs)


def test_registry_and_make_operator() -> None:
    assert OPERATORS["prompt_mutation"] is PromptMutation
    assert OPERATORS["rewrite"] is FullRewrite
    op = make_operator("prompt_mutation", CONTEXT, "completion", instructions=["x"], top_p=0.9)
    assert isinstance(op, PromptMutation) and op.mode == "completion" and op.top_p == 0.9
    assert isinstance(make_operator("rewrite", CONTEXT), FullRewrite)
    with pytest.raises(
        ValueError, match=r"unknown operator 'nope'; known operators: .*prompt_mutation"
    ):
        make_operator("nope", CONTEXT)
    with pytest.raises(ValueError, match="bad parameters for operator 'rewrite'"):
        make_operator("rewrite", CONTEXT, instructions=["x"])
