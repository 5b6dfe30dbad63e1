"""SearchReplace: block parsing, matching levels, application rules, prompts and round trips."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolm.domains.base import DomainContext
from evolm.domains.image import ImageDomain
from evolm.llm.fake import mutating_responder
from evolm.operators.base import Proposal
from evolm.operators.prompt import DEFAULT_INSTRUCTIONS
from evolm.operators.search_replace import (
    COMPLETION_STOP,
    SYSTEM_PROMPT,
    EditBlock,
    EditError,
    SearchReplace,
    apply_blocks,
    parse_blocks,
)
from evolm.types import Evaluation, Individual, Program, Status

DOMAIN = ImageDomain(target="circle", size=16)
CONTEXT = DOMAIN.context()
PARENT_CODE = DOMAIN.seeds()[1]
FENCED = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
S, D, R = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"

PROGRAM = textwrap.dedent(
    """\
    import numpy as np

    SIZE = 16


    def draw():
        img = np.zeros((SIZE, SIZE, 3))
        for i in range(SIZE):
            img[i, :, 0] = i / SIZE
        return img
    """
)


def block(search: str, replace: str) -> str:
    return f"{S}\n{search}{D}\n{replace}{R}\n"


def individual(code: str = PARENT_CODE, pid: int = 7) -> Individual:
    return Individual(Program(id=pid, code=code), Evaluation(Status.OK, fitness=-0.25))


def user_message(op: SearchReplace, parent: Individual, seed: int = 0) -> str:
    request = op.propose([parent], np.random.default_rng(seed)).request
    assert request is not None and request.kind == "chat"
    assert [m["role"] for m in request.messages] == ["system", "user"]
    return request.messages[1]["content"]


# --------------------------------------------------------------------------- parse_blocks


def test_parse_several_blocks_with_prose_and_fences() -> None:
    text = (
        "I will make two changes.\n\n```python\n"
        + block("SIZE = 16\n", "SIZE = 32\n")
        + "```\n\nAnd then:\n\n```\n"
        + block("    return img\n", "    return img * 0.5\n")
        + "```\nThat's all."
    )
    assert parse_blocks(text) == [
        EditBlock("SIZE = 16\n", "SIZE = 32\n"),
        EditBlock("    return img\n", "    return img * 0.5\n"),
    ]


@pytest.mark.parametrize(
    ("opening", "divider", "closing"),
    [
        ("<<<<< SEARCH", "=====", ">>>>> REPLACE"),
        ("<<<<<<<SEARCH", "=======", ">>>>>>>REPLACE"),
        ("<<<<<<<<< SEARCH", "=========", ">>>>>>>>> REPLACE"),
        ("  <<<<<<< search  ", "  =======  ", "  >>>>>>> Replace\t"),
    ],
)
def test_marker_variants(opening: str, divider: str, closing: str) -> None:
    text = f"{opening}\nSIZE = 16\n{divider}\nSIZE = 8\n{closing}\n"
    assert parse_blocks(text) == [EditBlock("SIZE = 16\n", "SIZE = 8\n")]


@pytest.mark.parametrize(
    "text",
    [
        "<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n",  # 4 characters: not a marker
        "<<<<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n",  # 10 characters
        "<<<<<<< SEARCH a\na\n=======\nb\n>>>>>>> REPLACE\n",  # text after the word
        "Here is the fix.",
        "",
    ],
)
def test_not_a_block(text: str) -> None:
    notes: list[str] = []
    assert parse_blocks(text, notes) == []


def test_crlf_and_end_token() -> None:
    text = block("SIZE = 16\n", "SIZE = 8\n").replace("\n", "\r\n")
    text += "<|im_end|>\n" + block("SIZE = 8\n", "SIZE = 4\n")
    assert parse_blocks(text) == [EditBlock("SIZE = 16\n", "SIZE = 8\n")]


def test_think_section_is_ignored() -> None:
    text = "<think>\n" + block("a\n", "b\n") + "</think>\n" + block("c\n", "d\n")
    assert parse_blocks(text) == [EditBlock("c\n", "d\n")]


def test_fence_inside_parts_is_removed() -> None:
    text = f"{S}\n```python\nSIZE = 16\n```\n{D}\n```python\nSIZE = 8\n```\n{R}\n"
    assert parse_blocks(text) == [EditBlock("SIZE = 16\n", "SIZE = 8\n")]


def test_empty_parts() -> None:
    assert parse_blocks(f"{S}\n{D}\nx = 1\n{R}\n{S}\ny = 2\n{D}\n{R}") == [
        EditBlock("", "x = 1\n"),
        EditBlock("y = 2\n", ""),
    ]


def test_unclosed_last_block_is_dropped_and_noted() -> None:
    text = block("SIZE = 16\n", "SIZE = 8\n") + f"{S}\n    return img\n{D}\n    return im"
    notes: list[str] = []
    assert parse_blocks(text, notes) == [EditBlock("SIZE = 16\n", "SIZE = 8\n")]
    assert notes == ["block 2 has no >>>>>>> REPLACE line (cut off by max_tokens?); dropped"]


def test_malformed_blocks_are_noted() -> None:
    text = (
        f"{S}\na\n{R}\n"  # no divider
        f"{S}\nb\n{D}\nc\n"  # interrupted by the next block
        f"{S}\n{S}\nd\n{D}\ne\n{R}\n"  # the opening marker written twice
    )
    notes: list[str] = []
    assert parse_blocks(text, notes) == [EditBlock("d\n", "e\n")]
    assert notes == [
        "block 1 has no ======= line; dropped",
        "block 2 is interrupted by the next block; dropped",
    ]


def test_second_divider_belongs_to_the_replacement() -> None:
    assert parse_blocks(f"{S}\na\n{D}\nb\n{D}\nc\n{R}\n") == [EditBlock("a\n", f"b\n{D}\nc\n")]


# --------------------------------------------------------------------------- apply_blocks


def test_apply_exact_and_in_sequence() -> None:
    blocks = [
        EditBlock("SIZE = 16\n", "SIZE = 8\n"),
        EditBlock("SIZE = 8\n", "SIZE = 4\n"),  # sees the result of block 1
        EditBlock("        img[i, :, 0] = i / SIZE\n", "        img[i, :, 1] = 1.0\n"),
    ]
    assert apply_blocks(PROGRAM, blocks) == PROGRAM.replace("SIZE = 16", "SIZE = 4").replace(
        "img[i, :, 0] = i / SIZE", "img[i, :, 1] = 1.0"
    )


def test_search_matches_whole_lines_only() -> None:
    source = "max_x = 1\nx = 1\n"
    assert apply_blocks(source, [EditBlock("x = 1\n", "x = 2\n")]) == "max_x = 1\nx = 2\n"


def test_trailing_whitespace_is_ignored() -> None:
    source = PROGRAM.replace("SIZE = 16\n", "SIZE = 16   \n")
    out = apply_blocks(source, [EditBlock("SIZE = 16\n", "SIZE = 8\n")])
    assert out == PROGRAM.replace("SIZE = 16", "SIZE = 8")
    # and trailing whitespace in the SEARCH text
    out = apply_blocks(PROGRAM, [EditBlock("SIZE = 16 \t\n", "SIZE = 8\n")])
    assert out == PROGRAM.replace("SIZE = 16", "SIZE = 8")


def test_dedented_block_is_reindented() -> None:
    search = "for i in range(SIZE):\n    img[i, :, 0] = i / SIZE\n"
    replace = "for i in range(SIZE):\n    if i % 2:\n        img[i, :, 0] = 1.0\n"
    out = apply_blocks(PROGRAM, [EditBlock(search, replace)])
    assert out == PROGRAM.replace(
        "    for i in range(SIZE):\n        img[i, :, 0] = i / SIZE\n",
        "    for i in range(SIZE):\n        if i % 2:\n            img[i, :, 0] = 1.0\n",
    )


def test_over_indented_block_is_reindented() -> None:
    search = "            return img\n"
    replace = "            img = img[::-1]\n            return img\n"
    out = apply_blocks(PROGRAM, [EditBlock(search, replace)])
    assert out == PROGRAM.replace("    return img\n", "    img = img[::-1]\n    return img\n")


def test_tabs_in_block_become_the_programs_spaces() -> None:
    search = "def draw():\n\timg = np.zeros((SIZE, SIZE, 3))\n"
    replace = "def draw():\n\timg = np.ones((SIZE, SIZE, 3))\n\timg[0] = 0\n"
    out = apply_blocks(PROGRAM, [EditBlock(search, replace)])
    assert out == PROGRAM.replace(
        "    img = np.zeros((SIZE, SIZE, 3))\n",
        "    img = np.ones((SIZE, SIZE, 3))\n    img[0] = 0\n",
    )
    assert "\t" not in out


def test_spaces_in_block_become_the_programs_tabs() -> None:
    source = "def f():\n\tif x:\n\t\treturn 1\n\treturn 2\n"
    out = apply_blocks(source, [EditBlock("    if x:\n", "    if x and y:\n        pass\n")])
    assert out == "def f():\n\tif x and y:\n\t\tpass\n\t\treturn 1\n\treturn 2\n"


def test_blank_lines_are_ignored_last() -> None:
    search = "SIZE = 16\n\ndef draw():\n"  # the program has two blank lines between them
    out = apply_blocks(PROGRAM, [EditBlock(search, "SIZE = 8\n\n\ndef draw():\n")])
    assert out == PROGRAM.replace("SIZE = 16", "SIZE = 8")
    search = "import numpy as np\nSIZE = 16\n"  # missing the blank line
    out = apply_blocks(PROGRAM, [EditBlock(search, "import math\nSIZE = 8\n")])
    assert out.startswith("import math\nSIZE = 8\n\n\ndef draw():\n")


def test_exact_match_wins_over_an_earlier_loose_one() -> None:
    source = "def f():\n    x = 1\nx = 1\n"
    assert apply_blocks(source, [EditBlock("x = 1\n", "x = 2\n")]) == "def f():\n    x = 1\nx = 2\n"


def test_duplicate_matches_change_the_first() -> None:
    source = "a = 0\nb = 1\na = 0\n"
    assert apply_blocks(source, [EditBlock("a = 0\n", "a = 5\n")]) == "a = 5\nb = 1\na = 0\n"


def test_empty_search_appends() -> None:
    out = apply_blocks(PROGRAM, [EditBlock(" \n", "def helper():\n    return 1\n")])
    assert out == PROGRAM + "\ndef helper():\n    return 1\n"


def test_empty_replace_deletes() -> None:
    out = apply_blocks(PROGRAM, [EditBlock("SIZE = 16\n\n", "")])
    assert out == PROGRAM.replace("SIZE = 16\n\n", "")


def test_not_found_names_the_block() -> None:
    blocks = [EditBlock("SIZE = 16\n", "SIZE = 8\n"), EditBlock("    return image\n", "")]
    with pytest.raises(EditError, match=r"^block 2: SEARCH text not found in the program") as e:
        apply_blocks(PROGRAM, blocks)
    assert "'return image'" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_no_blocks() -> None:
    with pytest.raises(EditError, match=r"^no SEARCH/REPLACE blocks in completion$"):
        apply_blocks(PROGRAM, [])


def test_no_op_edits() -> None:
    with pytest.raises(EditError, match=r"^the edit changes nothing$"):
        apply_blocks(PROGRAM, [EditBlock("SIZE = 16\n", "SIZE = 16\n")])
    with pytest.raises(EditError, match=r"^the edit changes nothing$"):
        undo = [EditBlock("SIZE = 16\n", "SIZE = 8\n"), EditBlock("SIZE = 8\n", "SIZE = 16\n")]
        apply_blocks(PROGRAM, undo)
    # a no-op block beside a real one is skipped, even if its text is not in the program
    blocks = [EditBlock("nowhere\n", "nowhere\n"), EditBlock("SIZE = 16\n", "SIZE = 8\n")]
    assert apply_blocks(PROGRAM, blocks) == PROGRAM.replace("SIZE = 16", "SIZE = 8")


# --------------------------------------------------------------------------- properties

_LINE = st.tuples(st.integers(0, 3), st.integers(0, 99))


@st.composite
def _edit(draw: st.DrawFn, min_indent: int = 0) -> tuple[list[str], int, int, list[str]]:
    """A program of unique lines, a non-empty line range in it and replacement lines."""
    specs = draw(st.lists(_LINE, min_size=1, max_size=12))
    lines = [f"{'    ' * (min_indent + lvl)}v{k} = {val}" for k, (lvl, val) in enumerate(specs)]
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(i + 1, len(lines)))
    new = [
        f"{'    ' * (min_indent + lvl)}w{k} = {val}"
        for k, (lvl, val) in enumerate(draw(st.lists(_LINE, max_size=5)))
    ]
    return lines, i, j, new


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


@settings(max_examples=200, deadline=None)
@given(edit=_edit(), marks=st.tuples(*(st.integers(5, 9) for _ in range(3))), fence=st.booleans())
def test_property_block_applies_back(
    edit: tuple[list[str], int, int, list[str]], marks: tuple[int, int, int], fence: bool
) -> None:
    lines, i, j, new = edit
    text = (
        f"{'<' * marks[0]} SEARCH\n{_text(lines[i:j])}{'=' * marks[1]}\n"
        f"{_text(new)}{'>' * marks[2]} REPLACE\n"
    )
    if fence:
        text = f"Here is my edit:\n```\n{text}```\nDone."
    blocks = parse_blocks(text)
    assert blocks == [EditBlock(_text(lines[i:j]), _text(new))]
    assert apply_blocks(_text(lines), blocks) == _text(lines[:i] + new + lines[j:])


@settings(max_examples=200, deadline=None)
@given(edit=_edit(min_indent=1), tabs=st.booleans())
def test_property_dedented_or_tabbed_block_applies_back(
    edit: tuple[list[str], int, int, list[str]], tabs: bool
) -> None:
    lines, i, j, new = edit
    if tabs:
        search = [line.replace("    ", "\t") for line in lines[i:j]]
        repl = [line.replace("    ", "\t") for line in new]
    else:  # every line moved left by one level
        search = [line[4:] for line in lines[i:j]]
        repl = [line[4:] for line in new]
    out = apply_blocks(_text(lines), [EditBlock(_text(search), _text(repl))])
    assert out == _text(lines[:i] + new + lines[j:])


# --------------------------------------------------------------------------- the operator


def test_operator_attributes() -> None:
    op = SearchReplace(CONTEXT)
    assert (op.name, op.num_parents, op.uses_llm, op.mode) == ("search_replace", 1, True, "chat")
    assert op.instructions == DEFAULT_INSTRUCTIONS
    assert (op.max_tokens, op.temperature, op.top_p) == (512, 0.8, 0.95)


def test_chat_prompt() -> None:
    op = SearchReplace(
        CONTEXT, "chat", instructions=["Make the disk bigger."], max_tokens=300, parent_sized=False
    )
    proposal = op.propose([individual()], np.random.default_rng(0))
    request = proposal.request
    assert proposal.parent_ids == (7,) and proposal.code is None
    assert request is not None and request.kind == "chat" and request.stop == ()
    assert request.max_tokens == 300
    assert request.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    text = request.messages[1]["content"]
    assert text.startswith(CONTEXT.description)
    assert CONTEXT.api.strip() in text
    assert FENCED.findall(text)[-1].rstrip() == PARENT_CODE.rstrip()
    order = [
        text.index("Here is the current program:\n```python\n"),
        text.index("Make the disk bigger."),
        text.index("SEARCH/REPLACE blocks and nothing else"),
        text.index("Example:"),
    ]
    assert order == sorted(order)
    assert "`draw()`" in text
    # the worked example is a real, parseable pair of blocks
    example = parse_blocks(text[text.index("Example:") :])
    assert example == [
        EditBlock("def double(x):\n    return 2 * x\n", "def double(x):\n    return 2 * x + 1\n"),
        EditBlock("STEPS = 10\n", "STEPS = 20\n"),
    ]


def test_completion_prompt() -> None:
    op = SearchReplace(CONTEXT, "completion", instructions=["Use a brighter\ncolour."])
    request = op.propose([individual()], np.random.default_rng(0)).request
    assert request is not None and request.kind == "completion" and request.messages == ()
    assert request.stop == COMPLETION_STOP == ("\n# End of edits",)
    prompt = request.prompt
    assert prompt.startswith(CONTEXT.api)
    assert f"# Current version of draw()\n{PARENT_CODE.rstrip()}\n# End of current version" in (
        prompt
    )
    assert "# Goal of the edits: Use a brighter colour.\n" in prompt
    assert prompt.endswith("\n<<<<<<< SEARCH\n")
    assert parse_blocks(prompt) == []  # the format is explained in comments only


def test_same_rng_state_gives_same_request() -> None:
    for mode in ("chat", "completion"):
        op = SearchReplace(CONTEXT, mode)
        a = op.propose([individual()], np.random.default_rng(5)).request
        b = op.propose([individual()], np.random.default_rng(5)).request
        c = op.propose([individual()], np.random.default_rng(6)).request
        assert a == b and a is not None and c is not None and a.seed != c.seed


def test_instruction_weights() -> None:
    op = SearchReplace(CONTEXT, instructions=["AAA one.", "BBB two."], weights=[0, 1])
    texts = [user_message(op, individual(), seed) for seed in range(20)]
    assert all("BBB two." in t and "AAA one." not in t for t in texts)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "diff"}, "mode must be 'chat' or 'completion'"),
        ({"instructions": []}, "must not be empty"),
        ({"instructions": "Improve it."}, "not one string"),
        ({"instructions": ["a", "b"], "weights": [1.0]}, "one number per instruction"),
        ({"instructions": ["a", "b"], "weights": [0, 0]}, "not all zero"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SearchReplace(CONTEXT, **kwargs)


def test_wrong_number_of_parents() -> None:
    with pytest.raises(ValueError, match="takes 1 parent, got 2"):
        SearchReplace(CONTEXT).propose([individual(), individual(pid=8)], np.random.default_rng(0))


@pytest.mark.parametrize("mode", ["chat", "completion"])
@pytest.mark.parametrize(
    "code",
    [
        PARENT_CODE,
        'DOC = """```"""\n\n\ndef draw():\n    return None\n',
        "def draw():\n    return None  \n\n\n",
        "x = '''\n# End of current version of draw()\n'''\n\n\ndef draw():\n    return x\n",
    ],
)
def test_edits_apply_to_the_proposals_parent_whatever_it_holds(mode: str, code: str) -> None:
    op = SearchReplace(CONTEXT, mode)
    parent = individual(code)
    proposal = op.propose([parent], np.random.default_rng(0))
    assert proposal.parents == (parent,) and proposal.parent_ids == (7,)
    answer = block("def draw():\n", "def draw():\n    # edited\n")
    if mode == "completion":  # the prompt ends with the opening marker
        answer = answer.split("\n", 1)[1]
    result = op.finish(proposal, answer)
    assert result.ok, result.error
    # the parent as the prompt shows it (trailing whitespace made one newline), edited
    edited = code.rstrip().replace("def draw():\n", "def draw():\n    # edited\n") + "\n"
    assert result.code == edited


def test_finish_of_a_proposal_without_parents() -> None:
    op = SearchReplace(CONTEXT)
    request = op.propose([individual()], np.random.default_rng(0)).request
    for proposal in (Proposal((7,), request), Proposal(parent_ids=(7,), request=None)):
        result = op.finish(proposal, block("a\n", "b\n"))
        assert result.error == "the proposal carries no current program"


def chat_finish(completion: str, code: str = PROGRAM) -> tuple[SearchReplace, str | None, str]:
    op = SearchReplace(CONTEXT)
    result = op.finish(op.propose([individual(code)], np.random.default_rng(0)), completion)
    return op, result.error, result.code


def test_chat_round_trip() -> None:
    reply = (
        "Sure! I'll brighten the gradient.\n\n```python\n"
        + block("            img[i, :, 0] = i / SIZE\n", "            img[i, :, 0] = 1.0\n")
        + "```\n"
    )
    _, error, code = chat_finish(reply)
    assert error is None
    assert code == PROGRAM.replace("img[i, :, 0] = i / SIZE", "img[i, :, 0] = 1.0")
    assert DOMAIN.evaluate(code).ok


def test_chat_round_trip_on_the_domain_seed() -> None:
    reply = block("    img = np.full((16, 16, 3), 0.9)\n", "    img = np.full((16, 16, 3), 0.1)\n")
    _, error, code = chat_finish(reply, PARENT_CODE)
    assert error is None and code == PARENT_CODE.replace("0.9)", "0.1)")
    assert DOMAIN.evaluate(code).ok


def test_completion_round_trip() -> None:
    op = SearchReplace(CONTEXT, "completion")
    proposal = op.propose([individual(PROGRAM)], np.random.default_rng(0))
    # The model continues after the prompt's opening marker (the stop sequence is not returned).
    reply = "SIZE = 16\n=======\nSIZE = 16\nSCALE = 0.5\n>>>>>>> REPLACE\n" + block(
        "    return img\n", "    return img * SCALE\n"
    )
    result = op.finish(proposal, reply)
    assert result.ok, result.error
    assert result.code == PROGRAM.replace("SIZE = 16\n", "SIZE = 16\nSCALE = 0.5\n").replace(
        "return img", "return img * SCALE"
    )
    assert DOMAIN.evaluate(result.code).ok
    cut = op.finish(proposal, "SIZE = 16\n=======\nSIZE = 3")
    assert cut.error == (
        "edit did not apply: no complete SEARCH/REPLACE block in completion (block 1 has no "
        ">>>>>>> REPLACE line (cut off by max_tokens?); dropped)"
    )


def test_finish_unclosed_last_block_keeps_earlier_ones() -> None:
    reply = block("SIZE = 16\n", "SIZE = 8\n") + f"{S}\n    return img\n{D}\n    return im"
    _, error, code = chat_finish(reply)
    assert error is None and code == PROGRAM.replace("SIZE = 16", "SIZE = 8")


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("I'd rather not.", "edit did not apply: no SEARCH/REPLACE blocks in completion"),
        ("", "edit did not apply: no SEARCH/REPLACE blocks in completion"),
        (
            "```diff\n-SIZE = 16\n+SIZE = 8\n```",
            "edit did not apply: no SEARCH/REPLACE blocks in completion",
        ),
        (
            block("SIZE = 16\n", "SIZE = 8\n") + block("    return image\n", "    return 1\n"),
            "edit did not apply: block 2: SEARCH text not found in the program "
            "(its first line: 'return image')",
        ),
        (block("SIZE = 16\n", "SIZE = 16\n"), "edit did not apply: the edit changes nothing"),
        (block("SIZE = 16\n", "SIZE = 16  \n"), "edit did not apply: the edit changes nothing"),
        (
            block("    return img\n", "    return (img\n"),
            "edited program does not parse: SyntaxError at line 10: '(' was never closed",
        ),
        (
            block("    return img\n", "    return img\n        x = 1\n"),
            "edited program does not parse: IndentationError at line 11: unexpected indent",
        ),
        (
            block("def draw():\n", "def paint():\n"),
            "edited program does not define draw() at top level",
        ),
    ],
)
def test_finish_errors(reply: str, error: str) -> None:
    _, got, code = chat_finish(reply)
    assert (got, code) == (error, "")


def test_whole_program_in_a_fence_is_accepted() -> None:
    new = PROGRAM.replace("SIZE = 16", "SIZE = 12")
    _, error, code = chat_finish(f"I rewrote it:\n```python\n{new}```\n")
    assert error is None and code == new
    _, error, _ = chat_finish(f"```python\n{PROGRAM}```\n")
    assert error == "the answer repeats the current program unchanged"
    # a broken block answer is never read as a whole program
    _, error, _ = chat_finish(f"```python\n{S}\n{PROGRAM}{D}\n{PROGRAM}```\n")
    assert error is not None and error.startswith("edit did not apply: no complete")


def test_fake_mutating_responder_round_trip() -> None:
    op = SearchReplace(CONTEXT)
    rng = np.random.default_rng(0)
    for _ in range(5):
        proposal = op.propose([individual()], rng)
        result = op.finish(proposal, mutating_responder(proposal.request))  # type: ignore[arg-type]
        assert result.ok, result.error
        assert result.code != PARENT_CODE


def test_other_function_name_and_language() -> None:
    ctx = DomainContext(description="Return 3.", function_name="f", language="py")
    op = SearchReplace(ctx)
    parent = individual("def f():\n    return 2\n")
    text = user_message(op, parent)
    assert "```py\ndef f():\n    return 2\n```" in text and "`f()`" in text
    assert "Helper code" not in text
    proposal = op.propose([parent], np.random.default_rng(0))
    assert op.finish(proposal, block("    return 2\n", "    return 3\n")).code == (
        "def f():\n    return 3\n"
    )
