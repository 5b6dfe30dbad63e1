"""Reading unified diffs out of LLM completions and applying them to a parent program.

A unified diff describes an edit as *hunks*. Each hunk is a run of lines whose first character
says what the line is: ``' '`` a context line (kept), ``'-'`` a line removed from the old text,
``'+'`` a line added to the new one. A hunk usually starts with a header
``@@ -OLD_START,OLD_LEN +NEW_START,NEW_LEN @@`` and a diff usually starts with the file names
(``--- a/file`` then ``+++ b/file``). The *before* text of a hunk (context and removed lines)
must be found in the old file; it is replaced by the *after* text (context and added lines).

Models write diffs loosely, so :func:`parse_hunks` is lenient:

* The text is cleaned first: line endings become ``\\n``, closed ``<think>...</think>`` sections
  are removed, and the text is cut at the first end-of-text token
  (:data:`~evolm.operators.textmatch.END_TOKENS`).
* Prose before, between and after hunks is skipped, and so are fence lines (```` ``` ````,
  ``~~~``), ``---``/``+++`` file headers, ``diff --git``/``index`` lines and horizontal rules.
* A header is any line starting (after blanks) with ``@@``; its numbers are read when present
  (a bare ``@@`` is common). Text after the closing ``@@`` is ignored.
* Inside a hunk, a completely empty line counts as an empty context line (models drop the
  single space), and ``\\ No newline at end of file`` is ignored. Empty context lines at the
  very end of a hunk are dropped (often a blank line before prose; without them the hunk can
  only fit in more places). The hunk ends at the first other line (prose, a fence, a file
  header) or at the next ``@@`` header.
* Lines right after a ``---``/``+++`` pair start a hunk even without a ``@@`` header.
* If the text has no ``@@`` header at all, every run of lines starting with ``' '``, ``'-'`` or
  ``'+'`` is one hunk, provided it is inside a fenced block tagged ``diff``, ``patch``,
  ``udiff`` or untagged, or the text has no fenced block at all (so bullet lists in prose next
  to a fenced program are not read as edits). Runs that change nothing (indented prose, code
  bodies) are skipped.

:func:`apply_hunks` applies the hunks in order. A hunk's before-lines are looked for in the
current text, trying these comparisons in turn and taking the first that finds a place:

1. lines equal;
2. lines equal once trailing whitespace is ignored;
3. lines equal once all leading and trailing whitespace is ignored; the added lines are then
   re-indented to the parent's indentation (the hunk's indentation strings map to those of the
   lines they matched; other indentation is shifted by the width difference of the nearest
   matched level, tabs counting 4 columns, and written with tabs if the parent's are);
4. *fuzz*, as ``patch`` does: up to 2 leading and up to 2 trailing context lines are dropped
   (fewest first), keeping at least one line, with comparisons 1-3 again.

If several places fit, places after the previous hunk are preferred, and among them the one
nearest the header's line number (shifted by the lines earlier hunks added or removed), or the
first if the header has no number. A hunk with no before-lines (pure insertion) goes at its
header's line, or at the end if it has none. Context lines keep the parent's text, so every line
the diff does not change stays byte-identical, and the parent's trailing-newline convention is
kept. Failures raise :class:`DiffError` naming the hunk (1-based) and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evolm.operators.textmatch import (
    MATCH_LEVELS,
    clean_completion,
    first_line_preview,
    indent_of,
    indent_width,
    make_indent,
    match_positions,
)

__all__ = ["DiffError", "Hunk", "apply_diff", "apply_hunks", "parse_hunks"]

MAX_FUZZ = 2
_HEADER = re.compile(
    r"@@+[ \t]*(?:-(?P<old>\d+)(?:,(?P<old_len>\d+))?)?[ \t]*(?:\+(?P<new>\d+)(?:,\d+)?)?"
)
_FENCE = re.compile(r"^[ \t]{0,3}(?:`{3,}|~{3,})[ \t]*(?P<tag>[\w+-]*)")
_DIFF_TAGS = frozenset({"", "diff", "patch", "udiff"})
_RULE = re.compile(r"^(?:-{3,}|\*{3,}|_{3,})[ \t]*$")
# Orders of (leading, trailing) context lines dropped when fuzzing: fewest first.
_FUZZ_STEPS = sorted(
    ((a, b) for a in range(MAX_FUZZ + 1) for b in range(MAX_FUZZ + 1)),
    key=lambda ab: (max(ab), sum(ab), ab[1]),
)


class DiffError(ValueError):
    """A diff could not be read or applied; ``reason`` says which hunk failed and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Hunk:
    """One hunk: ``lines`` are ``(op, text)`` pairs with ``op`` one of ``' '`` (context),
    ``'-'`` (removed) and ``'+'`` (added). ``old_start``/``old_len`` come from the ``@@``
    header (1-based, as written; None when the header has no numbers)."""

    lines: tuple[tuple[str, str], ...]
    old_start: int | None = None
    old_len: int | None = None

    @property
    def before(self) -> list[str]:
        """The lines the hunk expects in the old text (context and removed)."""
        return [text for op, text in self.lines if op != "+"]

    @property
    def after(self) -> list[str]:
        """The lines the hunk leaves in the new text (context and added)."""
        return [text for op, text in self.lines if op != "-"]

    @property
    def changes(self) -> bool:
        """Whether applying the hunk changes anything."""
        return self.before != self.after


def _is_header(line: str) -> bool:
    return line.lstrip(" \t").startswith("@@")


def _file_header_at(lines: list[str], i: int) -> bool:
    """Whether line ``i`` is part of a ``--- old`` / ``+++ new`` file-name pair."""

    def minus(line: str) -> bool:
        return line == "---" or line.startswith("--- ")

    def plus(line: str) -> bool:
        return line == "+++" or line.startswith("+++ ")

    line = lines[i]
    if minus(line):
        return i + 1 < len(lines) and plus(lines[i + 1])
    return plus(line) and i > 0 and minus(lines[i - 1])


def _hunk(lines: list[tuple[str, str]], old_start: int | None, old_len: int | None) -> Hunk:
    while lines and lines[-1] == (" ", ""):
        lines.pop()
    return Hunk(tuple(lines), old_start, old_len)


def parse_hunks(text: str) -> list[Hunk]:
    """Find the unified-diff hunks in a completion, by the rules of the module docstring.

    Args:
        text: the completion, as the model returned it.

    Returns:
        The hunks in order of appearance (possibly none). Hunks are not checked here: one that
        changes nothing is reported by :func:`apply_hunks`.
    """
    lines = clean_completion(text).split("\n")
    explicit = any(_is_header(line) for line in lines)
    fenced = any(_FENCE.match(line) for line in lines)
    fence_tag: str | None = None  # None: outside any fenced block
    hunks: list[Hunk] = []
    current: list[tuple[str, str]] | None = None
    old_start: int | None = None
    old_len: int | None = None

    def close() -> None:
        nonlocal current
        if current:
            hunk = _hunk(current, old_start, old_len)
            if hunk.lines and (explicit or hunk.changes):
                hunks.append(hunk)
        current = None

    for i, line in enumerate(lines):
        fence = _FENCE.match(line)
        if fence:
            close()
            fence_tag = fence["tag"].lower() if fence_tag is None else None
            continue
        if _is_header(line):
            close()
            m = _HEADER.match(line.lstrip(" \t"))
            old = m["old"] if m else None
            old_start = int(old) if old else None
            old_len = None if not old else int(m["old_len"]) if m and m["old_len"] else 1
            current = []
            continue
        if _file_header_at(lines, i):
            close()
            if line.startswith("+"):  # hunk lines may follow the file names without a header
                current, old_start, old_len = [], None, None
            continue
        if _RULE.match(line):
            close()
            continue
        if current is None:
            if explicit or not line or line[0] not in " -+":
                continue
            if fenced and fence_tag not in _DIFF_TAGS:
                continue
            current, old_start, old_len = [], None, None
        if not line:
            current.append((" ", ""))
        elif line[0] in " -+":
            current.append((line[0], line[1:]))
        elif line[0] != "\\":
            close()
    close()
    return hunks


class _Reindenter:
    """Maps the hunk's indentation onto the parent's, from the lines that matched."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.exact: dict[str, str] = {}
        self.levels: list[tuple[int, int]] = []
        self.tabs = False
        for hunk_line, source_line in pairs:
            if not hunk_line.strip():
                continue
            h, s = indent_of(hunk_line), indent_of(source_line)
            self.exact.setdefault(h, s)
            self.levels.append((indent_width(h), indent_width(s)))
            self.tabs = self.tabs or "\t" in s

    def __call__(self, line: str) -> str:
        if not line.strip() or not self.levels:
            return line
        indent = indent_of(line)
        body = line[len(indent) :]
        if indent in self.exact:
            return self.exact[indent] + body
        width = indent_width(indent)
        h, s = min(self.levels, key=lambda hs: abs(hs[0] - width))
        return make_indent(max(0, width + s - h), self.tabs) + body


@dataclass(frozen=True)
class _Match:
    start: int
    lines: tuple[tuple[str, str], ...]
    reindent: bool


def _context_runs(lines: tuple[tuple[str, str], ...]) -> tuple[int, int]:
    """How many context lines the hunk starts and ends with."""
    lead = next((i for i, (op, _) in enumerate(lines) if op != " "), len(lines))
    trail = next((i for i, (op, _) in enumerate(reversed(lines)) if op != " "), len(lines))
    return lead, trail


def _locate(work: list[str], hunk: Hunk, expected: int | None, floor: int) -> _Match | None:
    lead, trail = _context_runs(hunk.lines)
    for drop_lead, drop_trail in _FUZZ_STEPS:
        if drop_lead > lead or drop_trail > trail:
            continue
        lines = hunk.lines[drop_lead : len(hunk.lines) - drop_trail]
        before = [text for op, text in lines if op != "+"]
        if not before:
            continue
        for key, reindent in MATCH_LEVELS:
            found = match_positions(work, before, key)
            if not found:
                continue
            pool = [p for p in found if p >= floor] or found
            if expected is None:
                start = pool[0]
            else:
                target = expected + drop_lead
                start = min(pool, key=lambda p: (abs(p - target), p))
            return _Match(start, lines, reindent)
    return None


def _describe(hunk: Hunk) -> str:
    first = first_line_preview(hunk.before)
    return f" (first line: {first!r})" if first else ""


def apply_hunks(source: str, hunks: Sequence[Hunk]) -> str:
    """Apply ``hunks``, in order, to ``source``, by the rules of the module docstring.

    Args:
        source: the parent program.
        hunks: hunks from :func:`parse_hunks`.

    Returns:
        The edited text; lines the hunks do not change are byte-identical to ``source``'s, and
        it ends with a newline exactly when ``source`` does (or ``source`` is empty).

    Raises:
        DiffError: there are no hunks ("no hunks in completion"), a hunk changes nothing
            ("hunk 1 changes nothing"), or a hunk does not fit anywhere ("hunk 2: its
            context/removed lines were not found in the parent ...").
    """
    if not hunks:
        raise DiffError("no hunks in completion")
    newline = source.endswith("\n") or not source
    work = source.split("\n")
    if newline:
        work.pop()
    shift = 0  # lines added minus lines removed by earlier hunks
    floor = 0  # where the previous hunk's new text ends
    for number, hunk in enumerate(hunks, 1):
        if not hunk.changes:
            raise DiffError(f"hunk {number} changes nothing")
        expected = None
        if hunk.old_start is not None:
            expected = hunk.old_start - (0 if hunk.old_len == 0 else 1) + shift
        if not hunk.before:
            added = hunk.after
            at = len(work) if expected is None else min(max(expected, 0), len(work))
            work[at:at] = added
            shift += len(added)
            floor = at + len(added)
            continue
        match = _locate(work, hunk, expected, floor)
        if match is None:
            raise DiffError(
                f"hunk {number}: its context/removed lines were not found in the parent"
                + _describe(hunk)
            )
        i = match.start
        pairs: list[tuple[str, str]] = []
        for op, text in match.lines:
            if op != "+":
                pairs.append((text, work[i]))
                i += 1
        fix = _Reindenter(pairs) if match.reindent else None
        new: list[str] = []
        i = match.start
        for op, text in match.lines:
            if op == " ":
                new.append(work[i])
            elif op == "+":
                new.append(fix(text) if fix else text)
            if op != "+":
                i += 1
        work[match.start : i] = new
        shift += len(new) - (i - match.start)
        floor = match.start + len(new)
    return "\n".join(work) + ("\n" if newline else "")


def apply_diff(source: str, completion: str) -> str:
    """Parse the hunks of ``completion`` and apply them to ``source``.

    Raises:
        DiffError: as for :func:`apply_hunks` (including "no hunks in completion").
    """
    return apply_hunks(source, parse_hunks(completion))
