"""The SEARCH/REPLACE edit operator: the model answers with edits to the parent, not a new copy.

Diff-style mutation (used by AlphaEvolve and OpenEvolve; the format comes from the Aider coding
assistant) lets a model change a long program by writing only the lines that change. An answer
holds one or more **edit blocks**::

    <<<<<<< SEARCH
    lines as they stand in the current program
    =======
    the lines that take their place
    >>>>>>> REPLACE

Parsing (:func:`parse_blocks`):

* Line endings become ``\\n``, closed ``<think>...</think>`` sections are removed and the text is
  cut at the first end-of-text token (as in :func:`~evolm.operators.extract.extract_code`).
* A marker is a line of its own (indentation and trailing spaces allowed) made of 5 to 9 ``<``,
  ``=`` or ``>`` characters, followed for the first and last marker by the word ``SEARCH`` or
  ``REPLACE`` (any case, space before it optional). Everything outside blocks (prose, fence
  lines around the blocks) is ignored. A fence that wraps the inside of one part (the lines just
  after ``SEARCH`` and just before ``=======``, say) is removed from that part.
* A block that is opened but never closed (``max_tokens`` ran out), one without a ``=======``
  line, and one interrupted by the next ``SEARCH`` marker are dropped; each drop is noted. A
  ``SEARCH`` marker repeated on the very next line opens the same block.

Applying (:func:`apply_blocks`): blocks apply one after another, each to the program the
previous ones left. Each block's SEARCH lines are looked up as whole lines (a SEARCH text never
matches part of a line, so ``x = 1`` cannot hit ``max = 1``), trying in turn:

1. the lines exactly as written;
2. ignoring trailing whitespace on every line;
3. ignoring leading and trailing whitespace (indentation): the REPLACE lines are then shifted by
   the indentation difference between the first non-blank SEARCH line and the program line it
   matched, and rendered in the program's style (spaces, or tabs if the program indents with
   tabs; a tab counts four columns), so a block written dedented or with tabs lands at the right
   depth;
4. as 3, also ignoring blank lines (in the SEARCH text and in the program between matched lines).

The first level that finds the text wins, and when it occurs more than once **the first
occurrence is replaced** (like OpenEvolve; an ambiguous SEARCH is still a mutation, and refusing
it would waste the LLM call). A SEARCH part that is empty or only whitespace is an **insertion**:
the REPLACE lines are appended at the end of the program after a blank line. A block whose
SEARCH equals its REPLACE is skipped. Failures raise :class:`EditError`, whose message names the
1-based block: "block 2: SEARCH text not found in the program", "no SEARCH/REPLACE blocks in
completion", "the edit changes nothing" (every block is a no-op, or the edits cancel out).

The operator (:class:`SearchReplace`) prompts in two modes:

* ``"chat"``: the system message asks for edit blocks; the user message holds the task and API
  text (as :class:`~evolm.operators.prompt.PromptMutation` writes them), the current program in
  a fenced block after ``Here is the current program:``, an instruction drawn from a weighted
  list, then the format rules and a small worked example (unfenced, so the program stays the
  last fenced block). If the answer has no block marker at all but a fenced program defining
  the function (models sometimes ignore the format), that program is taken via ``extract_code``.
* ``"completion"`` (base models): a Python file holding the API text, the task as comments, the
  program between ``# Current version of draw()`` and ``# End of current version of draw()``,
  comments explaining the block format and the instruction, and finally an opening
  ``<<<<<<< SEARCH`` line that the model continues. The comments ask for a line
  ``# End of edits`` after the last block, which is the only stop sequence
  (:data:`COMPLETION_STOP`): a column-0 comment cannot stop generation here, because SEARCH text
  may quote comment lines of the program. Without that line, generation runs to ``max_tokens``
  and whatever follows the last complete block is ignored.

:meth:`SearchReplace.finish` takes the parent from the proposal (as the prompt shows it:
trailing whitespace at the end of the program is not preserved), applies the blocks, and
accepts the result only if it parses and defines the domain's function at top level.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from evolm.operators.base import Proposal, Result
from evolm.operators.extract import extract_code
from evolm.operators.prompt import PromptMutation
from evolm.operators.textmatch import (
    MATCH_LEVELS,
    PARSE_ERRORS,
    LineKey,
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
)
from evolm.types import Individual

__all__ = [
    "COMPLETION_STOP",
    "SYSTEM_PROMPT",
    "EditBlock",
    "EditError",
    "SearchReplace",
    "apply_blocks",
    "parse_blocks",
]

SEARCH_MARKER = "<<<<<<< SEARCH"
DIVIDER = "======="
REPLACE_MARKER = ">>>>>>> REPLACE"
END_OF_EDITS = "# End of edits"
COMPLETION_STOP: tuple[str, ...] = ("\n" + END_OF_EDITS,)
SYSTEM_PROMPT = (
    "You are an expert Python programmer taking part in an evolutionary search over programs. "
    "You change a program by answering with SEARCH/REPLACE edit blocks, never with the whole "
    "program."
)
PROGRAM_HEADER = "Here is the current program:\n"

_OPEN = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH[ \t]*$", re.IGNORECASE)
_DIVIDE = re.compile(r"^[ \t]*={5,9}[ \t]*$")
_CLOSE = re.compile(r"^[ \t]*>{5,9}[ \t]*REPLACE[ \t]*$", re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^[ \t]*(?:`{3,}|~{3,})[^`]*$")
_FENCE_CLOSE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})[ \t]*$")
_ANY_FENCE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})", re.MULTILINE)


class EditError(ValueError):
    """Edit blocks that cannot be applied; the message is the reason (see the module docstring)."""


@dataclass(frozen=True)
class EditBlock:
    """One edit: ``search`` lines to find and the ``replace`` lines that take their place. Both
    are whole lines ending in ``\\n``, or ``""`` (an empty SEARCH inserts, an empty REPLACE
    deletes)."""

    search: str
    replace: str


# --------------------------------------------------------------------------- parsing


def _part(lines: list[str]) -> str:
    """The text of one block part; a fence wrapping the whole part is removed."""
    if len(lines) >= 2 and _FENCE_OPEN.match(lines[0]) and _FENCE_CLOSE.match(lines[-1]):
        lines = lines[1:-1]
    return "".join(line + "\n" for line in lines)


def parse_blocks(text: str, notes: list[str] | None = None) -> list[EditBlock]:
    """The complete SEARCH/REPLACE blocks in a model's answer, in order.

    Args:
        text: the answer as the model returned it (prose, fences and end tokens allowed).
        notes: if given, a line is appended for every block that was opened but dropped (never
            closed, no ``=======`` line, or interrupted by the next block), naming it by its
            1-based position among the opened blocks.

    Returns:
        The blocks; empty if the text holds none that is complete. Never raises.
    """
    blocks: list[EditBlock] = []
    dropped: list[str] = []
    state = "out"  # "out", "search" or "replace"
    search: list[str] = []
    repl: list[str] = []
    opened = 0
    for line in clean_completion(text).split("\n"):
        if _OPEN.match(line):
            if state == "search" and not search:
                continue  # the marker written twice: still the same block
            if state != "out":
                dropped.append(f"block {opened} is interrupted by the next block; dropped")
            state, search, repl = "search", [], []
            opened += 1
        elif state == "search":
            if _DIVIDE.match(line):
                state = "replace"
            elif _CLOSE.match(line):
                dropped.append(f"block {opened} has no {DIVIDER} line; dropped")
                state = "out"
            else:
                search.append(line)
        elif state == "replace":
            if _CLOSE.match(line):
                blocks.append(EditBlock(_part(search), _part(repl)))
                state = "out"
            else:
                repl.append(line)
    if state != "out":
        dropped.append(
            f"block {opened} has no {REPLACE_MARKER} line (cut off by max_tokens?); dropped"
        )
    if notes is not None:
        notes.extend(dropped)
    return blocks


# --------------------------------------------------------------------------- applying


def _uses_tabs(lines: list[str]) -> bool:
    tabs = sum(line.startswith("\t") for line in lines)
    return tabs > sum(line.startswith(" ") for line in lines)


def _reindent(lines: list[str], search_indent: str, target_indent: str, tabs: bool) -> list[str]:
    """Shift ``lines`` by the indentation difference from ``search_indent`` to
    ``target_indent`` (in columns) and rewrite all their indentation in the program's style:
    tabs if ``tabs``, else spaces."""
    shift = indent_width(target_indent) - indent_width(search_indent)
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
            continue
        lead = indent_of(line)
        out.append(make_indent(max(0, indent_width(lead) + shift), tabs) + line[len(lead) :])
    return out


def _find(source: list[str], pattern: list[str], key: LineKey) -> int | None:
    """Index of the first run of ``source`` lines equal to ``pattern`` under ``key``."""
    return next(iter(match_positions(source, pattern, key)), None)


def _locate(source: list[str], pattern: list[str]) -> tuple[int, int, int, bool] | None:
    """Where ``pattern`` matches ``source``, by the levels of the module docstring:
    ``(start, end, first, loose)`` with the matched lines ``source[start:end]``, ``first`` the
    program line matched by the first non-blank pattern line, and ``loose`` true when
    indentation was ignored (levels 3 and 4); None if it matches nowhere."""
    lead = next((k for k, line in enumerate(pattern) if line.strip()), 0)
    for key, loose in MATCH_LEVELS:
        i = _find(source, pattern, key)
        if i is not None:
            return i, i + len(pattern), i + lead, loose
    rows = [k for k, line in enumerate(source) if line.strip()]
    kept = [line for line in pattern if line.strip()]
    j = _find([source[k] for k in rows], kept, str.strip)
    if j is None:
        return None
    return rows[j], rows[j + len(kept) - 1] + 1, rows[j], True


def _lines(text: str) -> list[str]:
    """Lines of a block part (which ends in ``\\n`` unless empty)."""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _same_program(a: str, b: str) -> bool:
    """Whether two programs differ at most in trailing whitespace."""
    return [line.rstrip() for line in a.rstrip().split("\n")] == [
        line.rstrip() for line in b.rstrip().split("\n")
    ]


def _apply_one(source: str, block: EditBlock, number: int) -> str:
    repl = _lines(block.replace)
    if not block.search.strip():
        body = "\n".join(repl).strip("\n")
        return source.rstrip("\n") + "\n\n" + body + "\n" if body else source
    lines = source.split("\n")
    pattern = _lines(block.search)
    found = _locate(lines, pattern)
    if found is None:
        preview = first_line_preview(block.search.split("\n"))
        raise EditError(
            f"block {number}: SEARCH text not found in the program (its first line: {preview!r})"
        )
    start, end, first, loose = found
    if loose:
        search_indent = next((indent_of(line) for line in pattern if line.strip()), "")
        repl = _reindent(repl, search_indent, indent_of(lines[first]), _uses_tabs(lines))
    return "\n".join(lines[:start] + repl + lines[end:])


def apply_blocks(source: str, blocks: Sequence[EditBlock]) -> str:
    """Apply edit blocks to a program, in order (rules in the module docstring).

    A SEARCH text found in several places is applied to the first one; an empty SEARCH appends
    the REPLACE lines at the end of the program; a block whose SEARCH equals its REPLACE is
    skipped.

    Args:
        source: the current program.
        blocks: the edits, e.g. from :func:`parse_blocks`.

    Returns:
        The edited program.

    Raises:
        EditError: no blocks ("no SEARCH/REPLACE blocks in completion"), a block's SEARCH text
            is not in the program as the earlier blocks left it ("block N: SEARCH text not found
            in the program ..."), or the result equals ``source`` ("the edit changes nothing").
    """
    if not blocks:
        raise EditError("no SEARCH/REPLACE blocks in completion")
    result = source
    for number, block in enumerate(blocks, start=1):
        if block.search != block.replace:
            result = _apply_one(result, block, number)
    if result == source:
        raise EditError("the edit changes nothing")
    return result


# --------------------------------------------------------------------------- the operator


def _chat_format(function_name: str) -> str:
    return (
        "Answer with one or more SEARCH/REPLACE blocks and nothing else. Each block looks like "
        "this:\n\n"
        f"{SEARCH_MARKER}\n"
        "lines copied from the current program\n"
        f"{DIVIDER}\n"
        "the lines that take their place\n"
        f"{REPLACE_MARKER}\n\n"
        "Rules:\n"
        "- Copy the SEARCH lines exactly, indentation included, from one place in the current "
        "program. A few lines are enough if they occur only once; if they occur several times, "
        "the first occurrence is changed.\n"
        "- Several blocks are applied one after another, each to the program as the blocks "
        "before it left it.\n"
        f"- An empty part between {DIVIDER} and {REPLACE_MARKER} deletes the SEARCH lines. An "
        "empty SEARCH part adds the new lines at the end of the program.\n"
        "- The edited program must still be complete and runnable, and define "
        f"`{function_name}()`.\n\n"
        "Example: in a program with a helper `def double(x):` that returns `2 * x` and a "
        "constant `STEPS = 10`, these two blocks make the helper add one and double the "
        "constant:\n\n"
        f"{SEARCH_MARKER}\n"
        "def double(x):\n"
        "    return 2 * x\n"
        f"{DIVIDER}\n"
        "def double(x):\n"
        "    return 2 * x + 1\n"
        f"{REPLACE_MARKER}\n"
        f"{SEARCH_MARKER}\n"
        "STEPS = 10\n"
        f"{DIVIDER}\n"
        "STEPS = 20\n"
        f"{REPLACE_MARKER}"
    )


def _start_marker(function_name: str) -> str:
    return f"# Current version of {function_name}()\n"


def _end_marker(function_name: str) -> str:
    return f"\n# End of current version of {function_name}()\n"


class SearchReplace(PromptMutation):
    """Mutate one parent by asking the LLM for SEARCH/REPLACE edit blocks and applying them.

    Args:
        context: the domain's prompt context.
        mode: ``"chat"`` or ``"completion"`` (see the module docstring for both prompts).
        instructions: what the edit should achieve, drawn per proposal; default
            :data:`~evolm.operators.prompt.DEFAULT_INSTRUCTIONS`.
        weights: relative probability of each instruction (non-negative, not all zero);
            default uniform.
        max_tokens, temperature, top_p: sampling parameters of every request.

    Raises:
        ValueError: bad mode, empty or non-string instructions, weights of the wrong length,
            negative, non-finite or all zero, or bad sampling parameters (checked as for
            :class:`~evolm.operators.prompt.PromptMutation`).
    """

    name = "search_replace"
    num_parents = 1
    uses_llm = True

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Draw an instruction (by ``weights``), then a request seed, both from ``rng``."""
        parent = self._parent(parents)
        instruction = self._draw_instruction(rng)
        code = parent.program.code
        ctx = self.context
        fn = ctx.function_name
        if self.mode == "chat":
            body = (
                f"{self._task(code)}\n\n{PROGRAM_HEADER}{fenced(code, ctx.language)}\n\n"
                f"{instruction.strip()}\n\n{_chat_format(fn)}"
            )
        else:
            body = (
                f"{self._completion_top(code)}{_start_marker(fn)}{code.rstrip()}{_end_marker(fn)}\n\n"
                f"# Edits to {fn}() above, as SEARCH/REPLACE blocks. Each block is:\n"
                f"# {SEARCH_MARKER}\n"
                "# (lines copied exactly from the program)\n"
                f"# {DIVIDER}\n"
                "# (the lines that take their place)\n"
                f"# {REPLACE_MARKER}\n"
                f'# After the last block comes the line "{END_OF_EDITS}".\n'
                f"{comment_block('Goal of the edits: ' + instruction)}\n"
                f"{SEARCH_MARKER}\n"
            )
        request = self._request(body, rng, code)
        if request.kind == "chat":
            system = {"role": "system", "content": SYSTEM_PROMPT}
            request = replace(request, messages=(system, *request.messages[1:]))
        else:
            request = replace(request, stop=COMPLETION_STOP)
        return self._proposal((parent,), request)

    def _check(self, code: str) -> Result:
        fn = self.context.function_name
        try:
            if defines_function(code, fn):
                return Result(code=code)
        except PARSE_ERRORS as exc:
            reason = describe_parse_error(exc, syntax_error_name=None)
            return Result("", error=f"edited program does not parse: {reason}")
        return Result("", error=f"edited program does not define {fn}() at top level")

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """Apply the answer's edit blocks to the proposal's parent (its code with trailing
        whitespace replaced by one newline, as the prompt shows it).

        Returns:
            ``Result(code)`` with the edited program, which parses and defines the domain's
            function; or ``Result("", error)``: "edit did not apply: <reason>" (the reasons of
            :func:`apply_blocks`, or "no complete SEARCH/REPLACE block in completion (...)" when
            every block was dropped; "the edit changes nothing" also when the result differs
            from the parent only in trailing whitespace), "edited program does not parse:
            SyntaxError at line N: ...", "edited program does not define draw() at top level",
            "the answer repeats the current program unchanged" (a whole program given instead
            of blocks), or "the proposal carries no current program" (one not made by
            :meth:`propose`).
        """
        if not proposal.parents:
            return Result("", error="the proposal carries no current program")
        parent = proposal.parents[0].program.code.rstrip() + "\n"
        text = completion if self.mode == "chat" else SEARCH_MARKER + "\n" + completion
        notes: list[str] = []
        blocks = parse_blocks(text, notes)
        if (
            self.mode == "chat"
            and not blocks
            and not notes
            and _ANY_FENCE.search(clean_completion(text))
        ):
            # no block marker at all: the model may have ignored the format and sent a program
            whole = extract_code(completion, self.context.function_name)
            if whole.ok and _same_program(whole.code, parent):
                return Result("", error="the answer repeats the current program unchanged")
            if whole.ok:
                return whole
        try:
            if not blocks and notes:
                raise EditError(
                    "no complete SEARCH/REPLACE block in completion (" + "; ".join(notes) + ")"
                )
            code = apply_blocks(parent, blocks)
        except EditError as exc:
            return Result("", error=f"edit did not apply: {exc}")
        if _same_program(code, parent):
            return Result("", error="edit did not apply: the edit changes nothing")
        return self._check(code.rstrip() + "\n")
