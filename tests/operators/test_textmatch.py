"""The operators' shared text helpers (evolm.operators.textmatch)."""

from __future__ import annotations

import pytest

from evolm.operators.textmatch import (
    END_TOKENS,
    MATCH_LEVELS,
    PARSE_ERRORS,
    clean_completion,
    comment_block,
    defines_function,
    describe_parse_error,
    fenced,
    first_line_preview,
    indent_of,
    indent_width,
    make_indent,
    match_positions,
    one_line,
)


def test_clean_completion_normalises_line_ends_drops_thoughts_and_cuts_at_end_tokens() -> None:
    text = "a\r\nb\rc<think>\nplan\n</think>\nd"
    assert clean_completion(text) == "a\nb\nc\nd"
    for token in END_TOKENS:
        assert clean_completion(f"x = 1\n{token}junk{END_TOKENS[0]}more") == "x = 1\n"
    # the first end token wins, whichever it is; an unclosed thought stays
    assert clean_completion("a</s>b<|endoftext|>c") == "a"
    assert clean_completion("<think>open") == "<think>open"


def test_indentation_helpers() -> None:
    assert indent_of("  \t x = 1  ") == "  \t "
    assert indent_of("x") == ""
    assert indent_of("   ") == "   "
    assert indent_width("\t") == 4 and indent_width("  \t") == 4 and indent_width("\t  ") == 6
    assert make_indent(6, tabs=False) == "      "
    assert make_indent(6, tabs=True) == "\t  "
    assert make_indent(0, tabs=True) == ""


def test_match_levels_find_lines_exactly_then_loosely() -> None:
    source = ["def f():", "    x = 1  ", "    return x", "x = 1"]
    (exact, strict), (rstrip, strict2), (strip, loose) = MATCH_LEVELS
    assert (strict, strict2, loose) == (False, False, True)
    assert match_positions(source, ["    x = 1"], exact) == []
    assert match_positions(source, ["    x = 1"], rstrip) == [1]
    assert match_positions(source, ["x = 1"], strip) == [1, 3]
    assert match_positions(source, ["x = 1", "return x"], strip) == [1]
    # whole lines only: "x = 1" never matches inside "max = 1"
    assert match_positions(["max = 1"], ["x = 1"], strip) == []
    assert match_positions(source, ["a", "b", "c", "d", "e"], strip) == []


def test_defines_function_and_parse_error_text() -> None:
    assert defines_function("def f():\n    return 1\n", "f")
    assert defines_function("async def f():\n    pass\n", "f")
    assert not defines_function("class A:\n    def f(self):\n        pass\n", "f")
    with pytest.raises(SyntaxError) as syntax:
        defines_function("def f(:\n", "f")
    assert describe_parse_error(syntax.value).startswith("SyntaxError at line 1: ")
    with pytest.raises(IndentationError) as indent:
        defines_function("def f():\nreturn 1\n", "f")
    assert describe_parse_error(indent.value).startswith("SyntaxError at line 2: ")
    named = describe_parse_error(indent.value, syntax_error_name=None)
    assert named.startswith("IndentationError at line 2: expected an indented block")
    with pytest.raises(PARSE_ERRORS):
        defines_function("x = 1\x00\n", "f")
    assert describe_parse_error(RecursionError("too deep")) == "RecursionError: too deep"


def test_first_line_preview() -> None:
    assert first_line_preview(["", "   ", "  x = 1  ", "y"]) == "x = 1"
    assert first_line_preview(["", " "]) == ""
    long = "a" * 61
    assert first_line_preview([long]) == "a" * 57 + "..."
    assert first_line_preview(["a" * 60]) == "a" * 60
    assert first_line_preview([long], limit=10) == "a" * 7 + "..."


def test_prompt_formatting() -> None:
    assert fenced("x = 1\n\n", "python") == "```python\nx = 1\n```"
    # a fence longer than any run of backticks in the code, so the block cannot end early
    assert fenced('s = """````"""', "python") == '`````python\ns = """````"""\n`````'
    text = "word " * 40
    lines = comment_block(text).split("\n")
    assert all(line.startswith("# ") and len(line) <= 96 for line in lines) and len(lines) == 3
    assert one_line(" a\n b\t\tc \n") == "a b c"
