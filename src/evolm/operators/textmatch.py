"""Text helpers shared by the operators: cleaning completions, indentation, line matching,
parse checks and prompt formatting.

The operators read model answers (:mod:`~evolm.operators.extract`, :mod:`~evolm.operators.diff`,
:mod:`~evolm.operators.search_replace`) and write prompts (:mod:`~evolm.operators.prompt` and
the operators built on it). What they do to text in the same way lives here, once:

* :func:`clean_completion`: line endings become ``\\n``, closed ``<think>...</think>`` sections
  are removed and the text is cut at the first end-of-text token (:data:`END_TOKENS`).
* :func:`indent_of`, :func:`indent_width` and :func:`make_indent`: a line's leading blanks, their
  width in columns (a tab counts :data:`TAB_WIDTH`) and an indentation of a given width.
* :data:`MATCH_LEVELS` and :func:`match_positions`: whole-line matching of a run of lines in a
  program, exactly, ignoring trailing whitespace, or ignoring indentation too.
* :func:`defines_function` and :func:`describe_parse_error`: whether code parses with a
  top-level definition of a function, and the reason text when it does not.
* :func:`first_line_preview`: the first non-blank line of a text, shortened, for error messages.
* :func:`fenced`, :func:`comment_block` and :func:`one_line`: a fenced code block, a ``#``
  comment wrapped at 96 columns, and a text on one line, as prompts show them.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "END_TOKENS",
    "MATCH_LEVELS",
    "PARSE_ERRORS",
    "TAB_WIDTH",
    "LineKey",
    "clean_completion",
    "comment_block",
    "defines_function",
    "describe_parse_error",
    "fenced",
    "first_line_preview",
    "indent_of",
    "indent_width",
    "make_indent",
    "match_positions",
    "one_line",
]

#: End-of-text tokens of common model families; a completion is cut at the first one.
END_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<|eom_id|>",
    "</s>",
    "<end_of_turn>",
    "<eos>",
)
#: Columns a tab counts for when indentation widths are compared or rewritten.
TAB_WIDTH = 4
#: What :func:`ast.parse` raises for text that is not a program.
PARSE_ERRORS: tuple[type[Exception], ...] = (SyntaxError, ValueError, RecursionError)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


def clean_completion(text: str) -> str:
    """``text`` with ``\\r\\n`` and ``\\r`` turned into ``\\n``, closed ``<think>...</think>``
    sections removed, and everything from the first of :data:`END_TOKENS` on cut off."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _THINK.sub("", text)
    cut = min((i for i in (text.find(t) for t in END_TOKENS) if i >= 0), default=len(text))
    return text[:cut]


def indent_of(line: str) -> str:
    """The leading spaces and tabs of ``line``."""
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(indent: str) -> int:
    """The width in columns of an indentation string, a tab counting :data:`TAB_WIDTH`."""
    return len(indent.expandtabs(TAB_WIDTH))


def make_indent(width: int, tabs: bool) -> str:
    """An indentation ``width`` columns wide: spaces, or with ``tabs`` as many tabs as fit
    (:data:`TAB_WIDTH` columns each) followed by the remaining spaces."""
    if tabs:
        return "\t" * (width // TAB_WIDTH) + " " * (width % TAB_WIDTH)
    return " " * width


def _exact(line: str) -> str:
    return line


#: A function that turns a line into what line comparisons compare (e.g. ``str.strip``).
LineKey = Callable[[str], str]
#: The line comparisons operators try in turn when they look for lines a model quoted from a
#: program, as ``(key, loose)``: lines equal under ``key``; ``loose`` is True when indentation
#: is ignored (the replacement then needs re-indenting). Exact, then trailing whitespace
#: ignored, then leading and trailing whitespace ignored.
MATCH_LEVELS: tuple[tuple[LineKey, bool], ...] = (
    (_exact, False),
    (str.rstrip, False),
    (str.strip, True),
)


def match_positions(source: Sequence[str], pattern: Sequence[str], key: LineKey) -> list[int]:
    """Every index ``i`` where ``source[i : i + len(pattern)]`` equals ``pattern`` line by line
    once ``key`` is applied to both sides, in increasing order (empty if there is none)."""
    keys = [key(line) for line in source]
    want = [key(line) for line in pattern]
    n = len(want)
    if n == 0:
        return list(range(len(keys) + 1))
    return [i for i in range(len(keys) - n + 1) if keys[i] == want[0] and keys[i : i + n] == want]


def defines_function(code: str, function_name: str) -> bool:
    """Whether ``code`` parses with a top-level (async) definition of ``function_name``.

    Raises:
        SyntaxError, ValueError, RecursionError: ``code`` does not parse (:data:`PARSE_ERRORS`).
    """
    tree = ast.parse(code)
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function_name
        for node in tree.body
    )


def describe_parse_error(exc: Exception, *, syntax_error_name: str | None = "SyntaxError") -> str:
    """Why code did not parse, for an error message: ``"SyntaxError at line N: msg"`` for a
    syntax error, ``"<Type>: <message>"`` for anything else.

    Args:
        exc: one of :data:`PARSE_ERRORS`.
        syntax_error_name: the name a syntax error is given; None names its own class
            (``IndentationError``, ``TabError``).
    """
    if isinstance(exc, SyntaxError):
        return f"{syntax_error_name or type(exc).__name__} at line {exc.lineno}: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"


def first_line_preview(lines: Iterable[str], limit: int = 60) -> str:
    """The first non-blank line of ``lines``, stripped and cut to ``limit`` characters (ending
    in ``...`` when cut); ``""`` if every line is blank."""
    first = next((line.strip() for line in lines if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 3] + "..."


def fenced(code: str, language: str) -> str:
    """``code`` (trailing whitespace removed) in a fenced block tagged ``language``; the fence
    is one backtick longer than any run of three or more backticks in ``code``."""
    fence = "```"
    while fence in code:
        fence += "`"
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


def comment_block(text: str) -> str:
    """``text`` on ``# `` comment lines of at most 96 characters, its whitespace collapsed."""
    return "\n".join(
        textwrap.wrap(" ".join(text.split()), 96, initial_indent="# ", subsequent_indent="# ")
    )


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space, stripped."""
    return " ".join(text.split())
