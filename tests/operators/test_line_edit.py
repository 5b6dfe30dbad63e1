"""LineEdit: which lines are sites, where the new line goes, prompts, and what finish rejects."""

from __future__ import annotations

import ast
import dataclasses
import textwrap

import numpy as np
import pytest

from evolm.domains.base import get_domain
from evolm.operators import make_operator
from evolm.operators.line_edit import LINE_STOP, LineEdit, cut_points, edit_sites
from evolm.types import Evaluation, Individual, Program, Status

PROGRAM = textwrap.dedent(
    '''\
    import math


    def helper(wc, n):
        """Add n joints."""
        out = []
        for i in range(n):
            out.append(wc.add_joint(i, math.sin(i)))
        return out


    def make_walker():
        wc = walker_creator()
        joints = helper(wc, 3)
        if len(joints) > 2:
            wc.add_muscle(joints[0], joints[1],
                          0.5, 0.0)
        else:
            pass
        return wc.get_walker()
    '''
)
LINES = PROGRAM.split("\n")
SODA = get_domain("sodarace")


def parent(code: str = PROGRAM) -> Individual:
    return Individual(Program(id=3, code=code), Evaluation(Status.OK, fitness=1.0))


def op(mode: str = "completion", **kw: object) -> LineEdit:
    made = make_operator("line_edit", SODA.context(), mode, **kw)
    assert isinstance(made, LineEdit)
    return made


def test_sites_are_whole_one_line_statements_and_headers_inside_functions() -> None:
    sites = {
        LINES[s.index].strip(): (s.indent, s.bound, s.whole)
        for s in edit_sites(PROGRAM, "make_walker")
    }
    assert sites == {
        "out = []": ("    ", len("out = "), True),
        # an insert after a header goes into its body; a rewrite keeps `for i in `
        "for i in range(n):": ("        ", len("for i in "), True),
        "out.append(wc.add_joint(i, math.sin(i)))": ("        ", 0, True),
        "return out": ("    ", len("return "), True),  # a helper's return
        "wc = walker_creator()": ("    ", len("wc = "), True),
        "joints = helper(wc, 3)": ("    ", len("joints = "), True),
        "if len(joints) > 2:": ("        ", 0, True),
        # the lines of a statement over two lines: rewritten, never followed by a new line
        "wc.add_muscle(joints[0], joints[1],": ("        ", 0, False),
        "0.5, 0.0)": (" " * 22, 0, False),
    }
    # never: imports, def lines, docstrings, pass, the domain function's return
    assert edit_sites("def f(:\n") == []
    assert edit_sites("x = 1\n") == []  # module level is not a function body


def test_cut_points_fall_after_brackets_commas_and_equals_and_before_numbers() -> None:
    line = "wc.add_muscle(corners[1], centre, 0.4, 0.0)"
    heads = [line[:p] for p in cut_points(line)]
    assert heads == [
        "wc.add_muscle(",
        "wc.add_muscle(corners[",
        "wc.add_muscle(corners[1], ",
        "wc.add_muscle(corners[1], centre, ",
        "wc.add_muscle(corners[1], centre, 0.4, ",
    ]
    assert cut_points('x = "a, (b"') == [len("x = ")]  # never inside a string
    assert cut_points("f(") == []  # an unfinished line does not tokenize


def test_number_cut_points_leave_a_number_for_the_model_to_change() -> None:
    line = "wc.add_muscle(corners[1], centre, 0.4, 0.0)"
    heads = [line[:p] for p in cut_points(line, numbers=True)]
    assert heads == [line[:p] for p in cut_points(line)]  # every cut has 0.4 or 0.0 after it
    line = "query_cppn(wc, 8, 3, connect, amp, phase)"
    assert [line[:p] for p in cut_points(line, numbers=True)] == [
        "query_cppn(",
        "query_cppn(wc, ",
        "query_cppn(wc, 8, ",
    ]
    assert cut_points("wc = walker_creator()", numbers=True) == []
    assert cut_points("x = f(a, b)", numbers=True) == []
    assert cut_points("x = f(a, -2)", numbers=True) == [4, 6, 9, 10]


@pytest.mark.parametrize("cuts", ["numbers", "any"])
def test_a_rewrite_ends_its_prompt_before_a_number_unless_told_otherwise(cuts: str) -> None:
    edit = op(insert_rate=0.0, partial_rate=1.0, cuts=cuts)
    sites = {s.index: s for s in edit_sites(PROGRAM, "make_walker")}
    rests = []
    for seed in range(200):
        keep, _, start = edit.propose([parent()], np.random.default_rng(seed)).detail
        assert isinstance(keep, int) and isinstance(start, str)
        old = LINES[keep].strip()
        head = start.lstrip(" \t")
        assert old.startswith(head)
        if head and len(head) > sites[keep].bound:
            rests.append(old[len(head) :])
    assert rests
    with_number = [any(ch.isdigit() for ch in rest) for rest in rests]
    if cuts == "numbers":
        assert all(with_number), rests
    else:
        assert not all(with_number)  # `wc.add_muscle(joints[0], ` leaves only names


@pytest.mark.parametrize("cuts", ["numbers", "any"])
def test_a_line_that_binds_names_without_a_number_is_only_written_after(cuts: str) -> None:
    edit = op(insert_rate=0.3, cuts=cuts)
    rewritten, added = set(), set()
    for seed in range(300):
        keep, resume, _ = edit.propose([parent()], np.random.default_rng(seed)).detail
        assert isinstance(keep, int) and isinstance(resume, int)
        (rewritten if resume > keep else added).add(LINES[resume - 1].strip())
    no_number = {"wc = walker_creator()", "out = []"}
    assert no_number <= added  # lines still go in after them
    if cuts == "numbers":
        assert not rewritten & no_number
        assert "joints = helper(wc, 3)" in rewritten
    else:
        assert no_number <= rewritten


def test_unknown_cuts_are_refused() -> None:
    with pytest.raises(ValueError, match="cuts must be one of 'numbers', 'any'"):
        op(cuts="brackets")


def changed(old: str) -> str:
    """``old`` with its code changed but still a valid line in place (a header keeps its
    colon, the first line of a call over two lines its comma)."""
    if old.endswith(":"):
        return old[:-1].rstrip() + " or False:"
    if old.endswith(","):
        return old[:-1] + " + 0,"
    return old + "; _e = 1"


def _answer(proposal_detail: tuple[object, ...], text: str) -> str:
    """``text`` as the model must write it after the prompt (without the line's head)."""
    start = proposal_detail[2]
    assert isinstance(start, str)
    return text[len(start.lstrip(" \t")) :]


def test_replace_and_insert_put_the_line_where_the_prompt_ended() -> None:
    seen = set()
    for seed in range(80):
        edit = op(insert_rate=0.5)
        proposal = edit.propose([parent()], np.random.default_rng(seed))
        keep, resume, start = proposal.detail
        assert isinstance(keep, int) and isinstance(resume, int) and isinstance(start, str)
        prompt = proposal.request.prompt
        # the prompt ends with the parent's text up to the edit point, then the line's start
        assert prompt.endswith("\n".join(LINES[:keep]) + "\n" + start)
        assert proposal.request.stop == LINE_STOP
        kind = "replace" if resume > keep else "insert"
        head = start.lstrip(" \t")
        if kind == "replace":
            old = LINES[keep].strip()
            assert old.startswith(head)
            new = changed(old)
            seen.add("head" if head else "whole")
        else:
            assert head == ""
            new = "xyz = 42"
        seen.add(kind)
        result = edit.finish(proposal, _answer(proposal.detail, new) + "\nmore = 1\n")
        assert result.ok, result.error
        out = result.code.split("\n")
        assert out[keep] == start[: len(start) - len(head)] + new  # only the first line
        assert out[:keep] == LINES[:keep] and out[keep + 1 :] == LINES[resume:]
        assert len(out) == len(LINES) + (kind == "insert")
    assert seen == {"replace", "insert", "head", "whole"}


def test_a_line_that_binds_names_keeps_them() -> None:
    edit = op(insert_rate=0.0, partial_rate=0.0)
    for seed in range(40):
        proposal = edit.propose([parent()], np.random.default_rng(seed))
        keep, _, start = proposal.detail
        assert isinstance(keep, int) and isinstance(start, str)
        bound = {s.index: s.bound for s in edit_sites(PROGRAM)}[keep]
        head = start.lstrip(" \t")
        assert len(head) >= bound
        assert (head == "") == (bound == 0)  # partial_rate 0: only bound lines get a head


def test_insert_rate_one_never_replaces_and_zero_never_inserts() -> None:
    whole = {s.index + 1 for s in edit_sites(PROGRAM, "make_walker") if s.whole}
    for rate in (1.0, 0.0):
        for seed in range(20):
            p = op(insert_rate=rate).propose([parent()], np.random.default_rng(seed))
            keep, resume, _ = p.detail
            if resume == keep:  # an insert: only at rate 1, after a whole statement
                assert rate == 1.0 and keep in whole
            else:  # a rewrite: at rate 0, or of a line a new one may not follow
                assert rate == 0.0 or keep + 1 not in whole


def test_unchanged_empty_and_unparsable_lines_are_rejected_with_a_reason() -> None:
    edit = op(insert_rate=0.0, partial_rate=0.0)
    rng = np.random.default_rng(0)
    while True:  # a whole-line rewrite of a simple statement
        proposal = edit.propose([parent()], rng)
        keep, _, start = proposal.detail
        assert isinstance(keep, int) and isinstance(start, str)
        if not start.strip() and not LINES[keep].rstrip().endswith(":"):
            break
    old = LINES[keep].strip()
    for same in (old.replace(" ", "  "), old + "  # a comment is no change"):
        result = edit.finish(proposal, "  " + same + "  \n")
        assert not result.ok and (result.error or "").startswith("unchanged")
    assert (edit.finish(proposal, "\n\n").error or "").startswith("empty")
    bad = edit.finish(proposal, "x = )(\n")
    assert not bad.ok and "does not parse" in (bad.error or "")
    for text in ('"""A docstring."""', "def g(x):", "class A:"):
        assert (edit.finish(proposal, text).error or "").startswith("not a statement")
    for text in ("return wc", "pass", "break"):  # a cut, not an edit
        assert (edit.finish(proposal, text).error or "").startswith("not an edit")


def test_the_answer_token_limit_is_sized_from_the_line_and_capped() -> None:
    for seed in range(10):
        p = op(insert_rate=0.0, partial_rate=0.0).propose([parent()], np.random.default_rng(seed))
        keep = p.detail[0]
        assert isinstance(keep, int)
        assert p.request.max_tokens == 32 + len(LINES[keep].strip()) // 2
    capped = op(max_tokens=5).propose([parent()], np.random.default_rng(0))
    assert capped.request.max_tokens == 5


def test_the_completion_prompt_shows_only_the_api_the_parent_uses() -> None:
    ctx = SODA.context()
    seed = parent(SODA.seeds()[0])
    prompt = op().propose([seed], np.random.default_rng(0)).request.prompt
    assert ctx.api.strip().split("\n")[0] in prompt
    unused = [name for name in ctx.optional_api if name not in seed.program.code]
    assert unused, "the test needs an optional API text the seed does not use"
    for name in unused:
        assert ctx.optional_api[name].strip() not in prompt


def test_chat_mode_marks_the_line_and_takes_the_fenced_answer() -> None:
    edit = op("chat", insert_rate=0.0)
    proposal = edit.propose([parent()], np.random.default_rng(1))
    keep = proposal.detail[0]
    assert isinstance(keep, int)
    user = proposal.request.messages[-1]["content"]
    assert LINES[keep] + "  # <-- rewrite this line" in user
    answer = "Sure:\n```python\n    zz = 7\n```\nThat changes it."
    result = edit.finish(proposal, answer)
    if LINES[keep].rstrip().endswith(":"):
        assert not result.ok
    else:
        assert result.ok and result.code.split("\n")[keep].strip() == "zz = 7"


def test_a_parent_that_does_not_parse_gets_a_line_at_its_end() -> None:
    edit = op()
    proposal = edit.propose([parent("def (")], np.random.default_rng(0))
    assert proposal.detail == (1, 1, "")
    result = edit.finish(proposal, "def make_walker(): return 1\n")
    assert not result.ok  # the broken parent still does not parse


def test_children_of_every_sodarace_seed_parse_for_a_plausible_line() -> None:
    edit = op(insert_rate=0.5)
    for code in SODA.seeds():
        lines = code.split("\n")
        for seed in range(10):
            proposal = edit.propose([parent(code)], np.random.default_rng(seed))
            keep, resume, _ = proposal.detail
            assert isinstance(keep, int) and isinstance(resume, int)
            new = changed(lines[keep].strip()) if resume > keep else "c2 = wc.add_joint(3, 4)"
            result = edit.finish(proposal, _answer(proposal.detail, new))
            assert result.ok, result.error
            ast.parse(result.code)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
@pytest.mark.parametrize("name", ["insert_rate", "partial_rate"])
def test_bad_rates_are_refused(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=f"{name} must be between 0 and 1"):
        op(**{name: bad})


def test_nested_helpers_are_sites_and_their_returns_too() -> None:
    code = next(c for c in SODA.seeds() if "    def amp(" in c)  # a CPPN seed
    lines = code.split("\n")
    sites = {lines[s.index].strip(): s for s in edit_sites(code, "make_walker")}
    returns = [text for text in sites if text.startswith("return ")]
    assert returns and all(sites[t].bound == len("return ") for t in returns)
    assert "return wc.get_walker()" not in sites  # the domain function's own return


def test_show_parent_puts_the_whole_parent_above_the_edit() -> None:
    prompt = op(show_parent=True).propose([parent()], np.random.default_rng(0)).request.prompt
    assert "# Previous version of make_walker()\n" + PROGRAM.rstrip() in prompt
    assert "# New version of make_walker(), with one line" in prompt
    plain = op().propose([parent()], np.random.default_rng(0)).request.prompt
    assert "# Previous version" not in plain


def test_a_new_header_takes_the_next_one_line_statement_as_its_body() -> None:
    edit = op(insert_rate=1.0)
    for seed in range(40):
        proposal = edit.propose([parent()], np.random.default_rng(seed))
        keep, _, start = proposal.detail
        assert isinstance(keep, int) and isinstance(start, str)
        if LINES[keep].strip() == "joints = helper(wc, 3)":  # after `wc = walker_creator()`
            break
    else:
        raise AssertionError("no insert before `joints = helper(wc, 3)` drawn")
    result = edit.finish(proposal, "if wc is not None:\n")
    assert result.ok, result.error
    out = result.code.split("\n")
    assert out[keep : keep + 2] == ["    if wc is not None:", "        joints = helper(wc, 3)"]
    assert out[keep + 2 :] == LINES[keep + 1 :]
    # before a compound statement there is no one-line body to take: it does not parse
    lines_if = next(i for i, x in enumerate(LINES) if x.strip().startswith("if len("))
    bad = edit.finish(
        dataclasses.replace(proposal, detail=(lines_if, lines_if, "    ")), "while True:\n"
    )
    assert not bad.ok and "does not parse" in (bad.error or "")


def _line_index(text: str) -> int:
    return next(i for i, x in enumerate(LINES) if x.strip() == text)


def test_a_header_that_replaces_a_statement_guards_it() -> None:
    keep = _line_index("joints = helper(wc, 3)")
    proposal = op().propose([parent()], np.random.default_rng(0))
    rewrite = dataclasses.replace(proposal, detail=(keep, keep + 1, "    "))
    result = op().finish(rewrite, "if wc is not None:\n")
    assert result.ok, result.error
    out = result.code.split("\n")
    assert out[keep : keep + 2] == ["    if wc is not None:", "        joints = helper(wc, 3)"]
    assert out[:keep] == LINES[:keep] and out[keep + 2 :] == LINES[keep + 1 :]
    # a `while` would repeat the statement forever: it is not given it (nor the `if` after
    # it, a compound statement), so it does not parse
    looped = op().finish(rewrite, "while wc:\n")
    assert not looped.ok and "does not parse" in (looped.error or "")


def test_a_header_that_replaces_a_header_keeps_its_body() -> None:
    keep = _line_index("if len(joints) > 2:")
    proposal = op().propose([parent()], np.random.default_rng(0))
    result = op().finish(
        dataclasses.replace(proposal, detail=(keep, keep + 1, "    ")), "if len(joints) > 3:\n"
    )
    assert result.ok, result.error
    out = result.code.split("\n")
    assert out[keep] == "    if len(joints) > 3:" and out[keep + 1 :] == LINES[keep + 1 :]


def test_a_new_header_at_the_end_of_a_block_guards_the_line_before_it() -> None:
    # after `out.append(...)`, the last line of the loop's body: no statement follows there
    keep = _line_index("out.append(wc.add_joint(i, math.sin(i)))") + 1
    proposal = op().propose([parent()], np.random.default_rng(0))
    insert = dataclasses.replace(proposal, detail=(keep, keep, "        "))
    result = op().finish(insert, "if i % 2 == 0:\n")
    assert result.ok, result.error
    out = result.code.split("\n")
    assert out[keep - 1 : keep + 1] == [
        "        if i % 2 == 0:",
        "            out.append(wc.add_joint(i, math.sin(i)))",
    ]
    assert out[keep + 1 :] == LINES[keep:]
    # a `while` is not given the line before it (it would loop): it does not parse
    bad = op().finish(insert, "while i < 3:\n")
    assert not bad.ok and "does not parse" in (bad.error or "")


def test_a_header_takes_a_return_or_continue_as_its_body() -> None:
    code = textwrap.dedent(
        """\
        def make_walker():
            wc = walker_creator()

            def amp(x1, y1):
                if y1 == 0:
                    return 0.0
                return 0.2 * x1

            for k in range(3):
                continue
            return wc.get_walker()
        """
    )
    lines = code.split("\n")
    proposal = op().propose([parent(code)], np.random.default_rng(0))
    ret = lines.index("        return 0.2 * x1")
    guarded = op().finish(
        dataclasses.replace(proposal, detail=(ret, ret + 1, "        ")), "if x1 > 2:"
    )
    assert guarded.ok, guarded.error
    assert guarded.code.split("\n")[ret : ret + 2] == [
        "        if x1 > 2:",
        "            return 0.2 * x1",
    ]
    # a new line at the end of the `if` block, after `return 0.0`: it guards that line
    end = lines.index("            return 0.0") + 1
    inner = op().finish(dataclasses.replace(proposal, detail=(end, end, "            ")), "if x1:")
    assert inner.ok, inner.error
    assert inner.code.split("\n")[end - 1 : end + 1] == [
        "            if x1:",
        "                return 0.0",
    ]
    loop = lines.index("        continue")
    adopted = op().finish(dataclasses.replace(proposal, detail=(loop, loop, "        ")), "if k:")
    assert adopted.ok, adopted.error
    assert adopted.code.split("\n")[loop : loop + 2] == ["        if k:", "            continue"]
