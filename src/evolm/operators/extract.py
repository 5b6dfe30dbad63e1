"""Robust extraction of a program from an LLM completion.

Models wrap code in prose, in several fenced blocks, in unclosed fences (``max_tokens`` ran out),
or, in completion mode, simply continue the prompt's last lines. :func:`extract_code` turns any of
these into one program that defines the wanted function and parses, or into a recorded reason why
there is none. It only parses (``ast.parse``); it never runs anything.

Rules, in order:

1. **Clean.** Line endings become ``\\n``; closed ``<think>...</think>`` sections are removed; the
   text is cut at the first end-of-text token (``<|endoftext|>``, ``<|im_end|>``, ``<|eot_id|>``,
   ``<|end_of_text|>``, ``<|end|>``, ``<|eom_id|>``, ``</s>``, ``<end_of_turn>``, ``<eos>``).
   Nothing left: "empty completion".
2. **Fenced blocks.** A fence opens on a line holding (after any indentation) three or more
   backticks or tildes and an optional language tag, and closes on a line holding only the same
   character at least as many times; a fence still open at the end runs to the end (output cut by
   ``max_tokens``). Block text is dedented. The last block that contains ``def <function>(`` wins.
3. **Raw text.** Otherwise the program is read from ``prefix + text`` (in completion mode the
   prefix is the prompt's tail, e.g. ``"def draw():\\n"``, which the model continues). It starts
   at the first column-0 line that is a ``def``, ``class``, ``import``, ``from ... import``,
   ``@decorator`` or a plain assignment (``NAME = ...``). From there, every line is kept until,
   **after the target function's ``def``**, a column-0 line appears that is none of those, not a
   comment, and not inside an open bracket, string or backslash continuation: prose,
   ``if __name__ == ...``, ``print(...)``, a closing fence. That line and all after it are cut.
   Before the target's ``def`` nothing is cut (module-level statements may set up the function).
4. If the raw text does not define the function either but there were fenced blocks, the longest
   block tagged as Python (or untagged) is taken, else the longest block.
5. **Validate.** The chosen text must contain ``def <function>(`` ("no function draw() in
   completion" otherwise) and parse with a top-level definition of it. If it does not parse,
   trailing lines are dropped (a completion cut mid-expression by ``max_tokens``) until it does,
   as long as the ``def`` line survives; failing that, the error names the first SyntaxError.
"""

from __future__ import annotations

import re
import textwrap

from evolm.operators.base import Result
from evolm.operators.textmatch import (
    END_TOKENS,
    PARSE_ERRORS,
    clean_completion,
    defines_function,
    describe_parse_error,
)

__all__ = ["END_TOKENS", "extract_code", "fenced_blocks"]

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_PYTHON_TAGS = frozenset({"", "python", "python3", "py", "py3"})
_IMPORT = r"[\w.]+(?:[ \t]+as[ \t]+\w+)?"
_CODE_START = re.compile(
    r"^(?:"
    r"(?:async[ \t]+)?def[ \t]+\w+[ \t]*\("
    r"|class[ \t]+\w+"
    rf"|import[ \t]+{_IMPORT}(?:[ \t]*,[ \t]*{_IMPORT})*[ \t]*(?:#.*)?$"
    r"|from[ \t]+[\w.]+[ \t]+import[ \t(]"
    r"|@[\w.]+"
    r"|[A-Za-z_]\w*(?:[ \t]*,[ \t]*[A-Za-z_]\w*)*[ \t]*(?://|\*\*|>>|<<|[-+*/%&|^@])?=(?!=)"
    r")"
)
_MAX_PARSE_ATTEMPTS = 200


def _defines_re(function_name: str) -> re.Pattern[str]:
    return re.compile(
        rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(function_name)}[ \t]*\(", re.MULTILINE
    )


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language tag, dedented code)`` of every fenced block, in order of appearance."""
    blocks: list[tuple[str, str]] = []
    fence: str | None = None
    indent = 0
    lang = ""
    body: list[str] = []
    for line in text.split("\n"):
        if fence is None:
            m = _FENCE_OPEN.match(line)
            if m is None or (m["fence"][0] == "`" and "`" in m["info"]):
                continue
            fence, indent, body = m["fence"], len(m["indent"]), []
            info = m["info"].split()
            lang = info[0].strip("{}.").lower() if info else ""
            continue
        stripped = line.strip()
        if len(stripped) >= len(fence) and set(stripped) == {fence[0]}:
            blocks.append((lang, textwrap.dedent("\n".join(body))))
            fence = None
            continue
        lead = len(line) - len(line.lstrip(" \t"))
        body.append(line[min(lead, indent) :])
    if fence is not None:
        blocks.append((lang, textwrap.dedent("\n".join(body))))
    return blocks


class _Continuation:
    """Tracks whether the next line continues the current statement (open bracket, triple-quoted
    string, or trailing backslash). Approximate by design: it scans text that may not be code."""

    def __init__(self) -> None:
        self.depth = 0
        self.triple: str | None = None
        self.backslash = False

    @property
    def open(self) -> bool:
        return self.depth > 0 or self.triple is not None or self.backslash

    def feed(self, line: str) -> None:
        self.backslash = False
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if self.triple is not None:
                if c == "\\":
                    i += 2
                elif line.startswith(self.triple, i):
                    self.triple = None
                    i += 3
                else:
                    i += 1
                continue
            if c == "#":
                return
            if c in "\"'":
                if line.startswith(c * 3, i):
                    self.triple = c * 3
                    i += 3
                    continue
                i += 1
                while i < n and line[i] != c:
                    i += 2 if line[i] == "\\" else 1
                i += 1
                continue
            if c in "([{":
                self.depth += 1
            elif c in ")]}":
                self.depth = max(0, self.depth - 1)
            i += 1
        self.backslash = self.triple is None and line.rstrip().endswith("\\")


def _raw_program(text: str, function_name: str) -> str:
    """The program in unfenced text, by rule 3 of the module docstring ("" if none starts)."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return ""
    target = _defines_re(function_name)
    kept: list[str] = []
    state = _Continuation()
    in_target = False
    for line in lines[start:]:
        if not state.open and line.strip() and line[0] not in " \t#":
            if target.match(line):
                in_target = True
            elif in_target and not _CODE_START.match(line):
                break
        kept.append(line)
        state.feed(line)
    return "\n".join(kept)


def _longest_block(blocks: list[tuple[str, str]]) -> str:
    python = [code for lang, code in blocks if lang in _PYTHON_TAGS and code.strip()]
    return max(python or [code for _, code in blocks], key=len)


def _validate(code: str, function_name: str) -> Result:
    code = code.strip("\n").rstrip() + "\n"
    missing = f"no function {function_name}() in completion"
    defines = _defines_re(function_name)
    if not defines.search(code):
        return Result(code="", error=missing)
    try:
        if defines_function(code, function_name):
            return Result(code=code)
        return Result(code="", error=f"{missing} at top level")
    except PARSE_ERRORS as exc:
        reason = f"completion does not parse: {describe_parse_error(exc)}"
    lines = code.rstrip("\n").split("\n")
    k = len(lines) - 1
    for _ in range(_MAX_PARSE_ATTEMPTS):
        candidate = "\n".join(lines[:k]).rstrip() + "\n"
        if k <= 0 or not defines.search(candidate):
            break
        try:
            if defines_function(candidate, function_name):
                return Result(code=candidate)
            break
        except SyntaxError as exc:
            # Lines from the error on cannot be part of a parsing prefix: jump past them.
            k = min(k, exc.lineno or k) - 1
        except (ValueError, RecursionError):
            k -= 1
    return Result(code="", error=reason)


def extract_code(text: str, function_name: str, *, prefix: str = "") -> Result:
    """Extract the program defining ``function_name`` from a completion.

    Args:
        text: the completion text, as the model returned it.
        function_name: the entry point the program must define at top level (e.g. ``"draw"``).
        prefix: in completion mode, the tail of the prompt the model continues (e.g. imports and
            ``"def draw():\\n"``); it is prepended to unfenced text.

    Returns:
        ``Result(code)`` with code that parses and defines the function at top level, or
        ``Result("", error)`` with the reason: "empty completion", "no function draw() in
        completion", or "completion does not parse: SyntaxError at line N: ...". The module
        docstring lists the rules.
    """
    text = clean_completion(text)
    if not text.strip():
        return Result(code="", error="empty completion")
    defines = _defines_re(function_name)
    blocks = fenced_blocks(text)
    defining = [code for _, code in blocks if defines.search(code)]
    if defining:
        return _validate(defining[-1], function_name)
    code = _raw_program(prefix + text, function_name)
    if blocks and not defines.search(code):
        code = _longest_block(blocks)
    return _validate(code, function_name)
