"""Line edits: the model rewrites one line of the parent, or writes one new line into it.

A small model cannot reproduce a whole program it is shown (measured on Sodarace with
SmolLM2-135M: 10 to 13 % of full rewrites and SEARCH/REPLACE edits were valid), but it predicts
the next line of a program it is reading well. :class:`LineEdit` asks for exactly that. It picks
one *site* of the parent at random (engine-side, from the run's generator), shows the model the
parent's text up to that point, and lets it write one line; the rest of the parent is then put
back unchanged. The edit is local, like a GP mutation, but written by the model, so it is
usually meaningful code (a new joint, another muscle, a changed amplitude) where a GP edit is a
random perturbation of the syntax tree.

Sites are the lines of the parent's function bodies (the domain's function and its helpers)
that hold a whole statement: a one-line statement, or the one-line header of an ``if``, ``for``,
``while`` or ``with``; and, to be rewritten only, each line of a statement written over several
lines. Nested functions count as helpers. The ``return`` lines of helpers are sites (a CPPN's
amplitude function is one line), those of the domain's function are not. Docstrings, ``pass``,
``break``, ``continue`` and ``def`` lines are never sites. A rewrite of a line that binds names
(``x = ...``, ``for i in ...``, ``return ...``) keeps the text up to its value. Two kinds of
edit, the kind drawn first, then a site that allows it:

* ``replace`` (probability ``1 - insert_rate``): the prompt ends just before the site's text,
  at its indentation; the model's line takes its place. In completion mode the prompt may also
  end inside the old line (after its ``x = `` always, for a line that binds names; otherwise
  with probability ``partial_rate``), and by default only where a number literal is still to
  come (``cuts="numbers"``): the model then finishes the line with a new constant, or more. A
  line that binds names with no number in its value (``wc = walker_creator()``) is then not
  rewritten, only written after. Measured on Sodarace with the shipped adapter, 71 % of the
  rewrites cut before a number were valid against 0 to 19 % of those cut where only names or
  closing brackets were left (which the model mostly copied or broke), and none of the
  rewrites of such binding lines. An answer that only repeats the line is rejected
  (``unchanged``), as is one that does not parse in place.
* ``insert`` (probability ``insert_rate``): the prompt ends after the site, on a new line at the
  indentation of the statement that would follow it (the body's for a header); the model's line
  is added there.

A new header line (``if y1 == y2:``) needs a body: a small model often writes a condition
where a statement was. In a rewrite, an ``if``/``for``/``with`` header guards the one-line
statement it replaces (``x = f()`` -> ``if y1 == y2: x = f()``); otherwise the header takes the
one-line statement at the same indentation after it, or, for a new ``if``/``for``/``with`` line
at the end of a block, the one before it.

Prompts:

* ``"completion"`` (base models, and the embedded model): the domain's API text (only what the
  parent uses), the task as comments, then the parent's lines up to the edit point. Stop: the
  end of the line. The answer's token limit is sized from the line (:attr:`LineEdit.max_tokens`
  caps it).
* ``"chat"``: the parent with the site marked, and a request for the one new line in a fenced
  block; the first non-blank line of the answer's code is taken.

The child is checked with :func:`ast.parse` in :meth:`LineEdit.finish` (never run); it still has
to pass the sandbox and the domain's scoring like any other candidate.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from evolm.domains.base import DomainContext
from evolm.llm.base import Request
from evolm.operators.base import Operator, Proposal, Result, check_sampling
from evolm.operators.extract import fenced_blocks
from evolm.operators.textmatch import (
    PARSE_ERRORS,
    clean_completion,
    comment_block,
    defines_function,
    describe_parse_error,
    fenced,
    indent_of,
)
from evolm.types import Individual

__all__ = ["CUTS", "LINE_STOP", "LineEdit", "LineSpot", "Site", "cut_points", "edit_sites"]

#: The completion stops at the end of the line it writes.
LINE_STOP: tuple[str, ...] = ("\n",)
_COMPOUND = (ast.If, ast.For, ast.While, ast.With, ast.AsyncFor, ast.AsyncWith)
_MAX_LINE = 400  # characters; a longer "line" is not one the model meant
_NEVER: tuple[type[ast.stmt], ...] = (ast.Pass, ast.Global, ast.Nonlocal, ast.Import)
_NEVER += (ast.ImportFrom, ast.Break, ast.Continue)
_FLOW = (("return",), ("pass",), ("break",), ("continue",))
_GUARDS = (("if",), ("for",), ("with",))  # headers that may guard a line (not `while`: a loop)
#: Where a rewrite's prompt may end inside the old line (:class:`LineEdit`'s ``cuts``).
CUTS = ("numbers", "any")


@dataclass(frozen=True)
class Site:
    """A line of a program the model may rewrite or write after.

    Attributes:
        index: the line's index (0-based) in ``code.split("\\n")``.
        indent: the indentation of a line inserted after this one (the body's indentation for
            a compound statement's header, the line's own otherwise).
        bound: where, in the line without its indentation, the value of a statement that
            binds names starts (``x = `` of an assignment, ``for i in `` of a loop); 0 for
            others. A rewrite of such a line keeps the text before it, so the names the rest
            of the program uses stay defined.
        whole: the line holds a whole statement (or a header). A line of a statement written
            over several lines (an argument, an item of a tuple) is a site too, but only to
            be rewritten: no line is added after it.
    """

    index: int
    indent: str
    bound: int = 0
    whole: bool = True


def _bound(node: ast.stmt, line: str) -> int:
    value: ast.expr | None = None
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Return):
        value = node.value
    elif isinstance(node, ast.For | ast.AsyncFor):
        value = node.iter
    if value is None or value.lineno != node.lineno:
        return 0
    # col_offset counts UTF-8 bytes
    column = len(line.encode("utf-8")[: value.col_offset].decode("utf-8", "replace"))
    return max(column - len(indent_of(line)), 0)


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _body_sites(
    body: Sequence[ast.stmt], lines: list[str], out: list[Site], returns: bool = True
) -> None:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            _body_sites(node.body, lines, out)  # a nested helper: its return is a site
            continue
        if isinstance(node, ast.ClassDef):
            continue
        if isinstance(node, _NEVER) or _is_docstring(node):
            continue
        if isinstance(node, ast.Return) and (not returns or node.value is None):
            continue
        line = lines[node.lineno - 1]
        if isinstance(node, _COMPOUND):
            first = node.body[0]
            if first.lineno > node.lineno and line.rstrip().endswith(":"):
                body_indent = indent_of(lines[first.lineno - 1])
                out.append(Site(node.lineno - 1, body_indent, _bound(node, line)))
            _body_sites(node.body, lines, out, returns)
            _body_sites(getattr(node, "orelse", []), lines, out, returns)
        elif isinstance(node, ast.Try | ast.Match):
            continue
        elif node.end_lineno == node.lineno:
            out.append(Site(node.lineno - 1, indent_of(line), _bound(node, line)))
        elif node.end_lineno is not None:  # a statement over several lines
            out.append(Site(node.lineno - 1, indent_of(line), _bound(node, line), False))
            for i in range(node.lineno, node.end_lineno):
                if lines[i].strip() and not lines[i].lstrip().startswith("#"):
                    out.append(Site(i, indent_of(lines[i]), 0, False))


def edit_sites(code: str, function_name: str = "") -> list[Site]:
    """The sites of ``code`` (see the module docstring), in line order; ``[]`` if it does not
    parse or has no function with such a line. The ``return`` lines of ``function_name`` (the
    domain's function) are not sites; those of helpers are."""
    try:
        tree = ast.parse(code)
    except PARSE_ERRORS:
        return []
    lines = code.split("\n")
    out: list[Site] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            _body_sites(node.body, lines, out, node.name != function_name)
    return sorted(set(out), key=lambda s: s.index)


@dataclass(frozen=True)
class LineSpot:
    """One edit of a program's lines (``code.split("\\n")``): the child is ``lines[:keep]``,
    the new line, then ``lines[resume:]``.

    Attributes:
        keep: the new line's index.
        resume: ``keep + 1`` for a rewrite of line ``keep``, ``keep`` for an insert.
        indent: the new line's indentation.
        old: the rewritten line without its indentation (``""`` for an insert).
        head: the start of ``old`` the prompt ends with, for the model to finish (``""``:
            the model writes the whole line).
    """

    keep: int
    resume: int
    indent: str
    old: str
    head: str = ""


def _code_tokens(line: str) -> tuple[str, ...]:
    """The tokens of one line of code, without comments or layout (for "unchanged"). A line
    of a statement over several lines tokenizes up to its end."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER}
    skip |= {tokenize.INDENT, tokenize.DEDENT}
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline):
            if tok.type not in skip:
                out.append(tok.string)
    except (tokenize.TokenError, SyntaxError, ValueError):
        if not out:
            return tuple(line.split())
    return tuple(out)


def cut_points(text: str, *, numbers: bool = False) -> list[int]:
    """Where a line of code (without indentation) may be cut so the model writes the rest:
    after an opening bracket, a comma or an ``=``, and before a number. Never at 0 or the end;
    ``[]`` if the line does not tokenize. With ``numbers``, only the points with a number
    literal somewhere after them (the model then has a constant to change)."""
    points: set[int] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text + "\n").readline))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return []
    tokens = [tok for tok in tokens if tok.start[0] == 1]
    for tok in tokens:
        if tok.type == tokenize.OP and tok.string in ("(", "[", ",", "=", "+=", "-=", "*="):
            end = tok.end[1]
            points.add(end + 1 if text[end : end + 1] == " " else end)
        elif tok.type == tokenize.NUMBER:
            points.add(tok.start[1])
    if numbers:
        last = max((t.start[1] for t in tokens if t.type == tokenize.NUMBER), default=-1)
        points = {p for p in points if p <= last}
    return sorted(p for p in points if 0 < p < len(text.rstrip()))


def _one_line_statement(line: str, indent: str) -> bool:
    """``line`` sits at ``indent`` and holds one simple statement (not a header, not ``def``):
    a body a new header line can take."""
    if indent_of(line) != indent or not line.strip():
        return False
    # parsed inside a function and a loop, so that `return x` and `continue` parse (a header
    # alone, with no body, does not)
    try:
        tree = ast.parse("def _f():\n    for _i in _j:\n        " + line.strip())
    except PARSE_ERRORS:
        return False
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    loop = function.body[0]
    assert isinstance(loop, ast.For)
    return len(loop.body) == 1 and not isinstance(
        loop.body[0], (*_COMPOUND, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    )


def _with_header(
    lines: list[str], keep: int, resume: int, indent: str, new: str, guard: bool
) -> list[str]:
    """The parent's ``lines`` with the new header line ``new`` (``if ...:``, ``for ...:``) put
    in at ``keep`` (replacing ``lines[keep:resume]``), given a body: a header needs one, and a
    small model often writes a condition where a statement was. The body is, in this order of
    preference, the line it replaces (``x = f()`` rewritten as ``if y > 0:`` becomes
    ``if y > 0: x = f()``, a guard), the one-line statement after it, or, for a new line, the
    one-line statement before it. Only a ``guard`` header (``if``, ``for`` or ``with``) takes
    the line it replaces or follows (a ``while`` would repeat it forever); a header that
    replaces a header keeps the old body. Without any of them the header is put in as written
    (and the child does not parse)."""
    old = lines[keep] if resume > keep else ""
    after = lines[resume:]
    body = indent + ("\t" if indent.endswith("\t") else "    ")  # one level deeper
    if old.rstrip().endswith(":"):  # a header for a header: the old body stays
        return [*lines[:keep], indent + new, *after]
    if old and guard and _one_line_statement(old, indent):
        return [*lines[:keep], indent + new, body + old.strip(), *after]
    if after and _one_line_statement(after[0], indent):
        return [*lines[:keep], indent + new, body + after[0].strip(), *after[1:]]
    if not old and guard and keep > 0 and _one_line_statement(lines[keep - 1], indent):
        return [*lines[: keep - 1], indent + new, body + lines[keep - 1].strip(), *after]
    return [*lines[:keep], indent + new, *after]


class LineEdit(Operator):
    """Rewrite one line of the parent, or add one (see the module docstring).

    Args:
        context: the domain's prompt context.
        mode: ``"completion"`` (recommended for small models) or ``"chat"``.
        insert_rate: probability of writing a new line rather than rewriting one (0 to 1).
        partial_rate: in completion mode, probability that a rewrite of a line that binds no
            name starts with a head of the old line (a line that binds names always does).
        cuts: where such a head may end. ``"numbers"``: only before a number literal is left
            (after an opening bracket, a comma or an ``=`` that has one after it, or just
            before it), so the model has a constant to change; a line without one is rewritten
            whole (after its ``x = `` if it binds names). ``"any"``: at any
            :func:`cut_points` point.
        avoid_copy: a rewrite may not begin like the text it replaces (completion mode, on
            backends that support :attr:`Request.avoid`).
        show_parent: the completion prompt shows the whole parent before the edited copy.
        max_tokens: cap on the answer's tokens; each request gets 32 plus one token per two
            characters of the line it replaces (32 characters for an insert), at most this.
        temperature, top_p, repeat_penalty: sampling parameters.

    Raises:
        ValueError: bad mode, a rate outside [0, 1], unknown ``cuts``, or bad sampling
            parameters.
    """

    name = "line_edit"
    num_parents = 1

    def __init__(
        self,
        context: DomainContext,
        mode: str = "completion",
        *,
        insert_rate: float = 0.3,
        partial_rate: float = 0.5,
        cuts: str = "numbers",
        avoid_copy: bool = False,
        show_parent: bool = False,
        max_tokens: int = 96,
        temperature: float = 1.0,
        top_p: float = 0.95,
        repeat_penalty: float = 1.0,
    ) -> None:
        super().__init__(context, mode)
        for name, rate in (("insert_rate", insert_rate), ("partial_rate", partial_rate)):
            if not (0.0 <= rate <= 1.0):
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if cuts not in CUTS:
            raise ValueError(f"cuts must be one of {', '.join(map(repr, CUTS))}, got {cuts!r}")
        check_sampling(max_tokens, temperature, top_p, repeat_penalty)
        self.cuts = cuts
        self.insert_rate = float(insert_rate)
        self.partial_rate = float(partial_rate)
        self.avoid_copy = bool(avoid_copy)
        self.show_parent = bool(show_parent)
        self.max_tokens = max_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.repeat_penalty = float(repeat_penalty)

    # -- proposing ------------------------------------------------------------------------
    def _edit(self, code: str, rng: np.random.Generator) -> LineSpot:
        sites = edit_sites(code, self.context.function_name)
        if not sites:  # nothing to edit (it does not parse): a line added at the end
            end = len(code.split("\n"))
            return LineSpot(end, end, "", "")
        lines = code.split("\n")
        completion, numbers = self.mode == "completion", self.cuts == "numbers"
        # where the prompt may end in a line that binds names (completion mode): after the
        # names, at a cut point (before a number only, with cuts="numbers")
        bound_cuts = {
            s.index: [
                p for p in cut_points(lines[s.index].strip(), numbers=numbers) if p >= s.bound
            ]
            for s in sites
            if completion and s.bound
        }
        inserts = [s for s in sites if s.whole]
        # with cuts="numbers", a line that binds names is rewritten only if its value holds a
        # number: otherwise the model copies it (`phase = phase_func(...)`) or rebinds the
        # name to something else (`wc = walker_creator()`)
        rewrites = [s for s in sites if not numbers or bound_cuts.get(s.index) != []]
        insert = rng.random() < self.insert_rate
        if not (inserts if insert else rewrites):  # the other kind, if this one has no site
            insert = not insert
        pool = (inserts if insert else rewrites) or sites
        site = pool[int(rng.integers(len(pool)))]
        if insert and site.whole:
            return LineSpot(site.index + 1, site.index + 1, site.indent, "")
        line = lines[site.index]
        old = line.strip()
        head = ""
        if completion and site.bound:  # keep the names it binds
            points = bound_cuts[site.index] or [site.bound]
            head = old[: points[int(rng.integers(len(points)))]]
        elif completion and rng.random() < self.partial_rate:
            points = cut_points(old, numbers=numbers)
            if points:
                head = old[: points[int(rng.integers(len(points)))]]
        return LineSpot(site.index, site.index + 1, indent_of(line), old, head)

    def _prompt(self, code: str, edit: LineSpot) -> str:
        ctx = self.context
        lines = code.split("\n")
        if self.mode == "completion":
            api = ctx.api_for(code)
            top = api.rstrip() + "\n\n" if api.strip() else ""
            top += comment_block("Task: " + ctx.description) + "\n\n"
            if self.show_parent:
                fn = ctx.function_name
                what = "one line changed" if edit.old else "one line added"
                top += f"# Previous version of {fn}()\n{code.rstrip()}\n\n\n"
                top += f"# New version of {fn}(), with {what}\n"
            return top + "\n".join(lines[: edit.keep]) + "\n" + edit.indent + edit.head
        marked = list(lines)
        if edit.old:
            marked[edit.keep] += "  # <-- rewrite this line"
            ask = (
                "Rewrite the marked line so that the program does something different or scores "
                "better. Reply with only the new line, in one fenced code block."
            )
        else:
            marked.insert(edit.keep, edit.indent + "# <-- a new line goes here")
            ask = (
                "Write one new line of code for the marked place, so that the program does "
                "something different or scores better. Reply with only that line, in one fenced "
                "code block."
            )
        api = ctx.api_for(code)
        task = ctx.description.strip()
        if api.strip():
            task += "\n\nHelper code and conventions:\n" + fenced(api, ctx.language)
        return (
            f"{task}\n\nHere is the current program:\n"
            f"{fenced(chr(10).join(marked), ctx.language)}\n\n{ask}"
        )

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Draw a site and the kind of edit, then a request seed, all from ``rng``. A parent
        with no site (it does not parse) gets a line added at its end."""
        if len(parents) != 1:
            raise ValueError(f"operator {self.name!r} takes 1 parent, got {len(parents)}")
        parent = parents[0]
        return self.proposal(parent, self._edit(parent.program.code, rng), rng)

    def proposal(self, parent: Individual, edit: LineSpot, rng: np.random.Generator) -> Proposal:
        """The proposal of one given ``edit`` of ``parent`` (its request seed drawn from
        ``rng``): :meth:`propose` after drawing the edit, and the ``line`` format of
        ``evolm finetune``, which renders the edits of any run this way."""
        code = parent.program.code
        budget = 32 + (len(edit.old) if edit.old else 32) // 2
        request = Request(
            max_tokens=min(self.max_tokens, budget),
            temperature=self.temperature,
            top_p=self.top_p,
            seed=int(rng.integers(2**31)),
            repeat_penalty=self.repeat_penalty,
        )
        body = self._prompt(code, edit)
        if self.mode == "completion":
            # with avoid_copy, a rewrite may not begin like what it replaces
            avoid = edit.old[len(edit.head) :] if edit.old and self.avoid_copy else ""
            request = replace(request, kind="completion", prompt=body, stop=LINE_STOP, avoid=avoid)
        else:
            request = replace(
                request,
                max_tokens=min(self.max_tokens, budget + 32),  # and the fence
                kind="chat",
                messages=(
                    {
                        "role": "system",
                        "content": "You are an expert Python programmer editing one line of a "
                        "program in an evolutionary search.",
                    },
                    {"role": "user", "content": body},
                ),
            )
        detail = (edit.keep, edit.resume, edit.indent + edit.head)
        return Proposal((parent.id,), request, parents=(parent,), detail=detail)

    # -- finishing ------------------------------------------------------------------------
    def _line(self, completion: str) -> str:
        text = clean_completion(completion)
        if self.mode == "chat":
            blocks = fenced_blocks(text)
            text = blocks[-1][1] if blocks else text
        for line in text.split("\n"):
            if line.strip():
                return line.strip()
        return ""

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """Put the model's line into the parent at the proposal's edit point."""
        if not proposal.parents:
            return Result(code="", error="line_edit: the proposal carries no parent")
        keep, resume, start = proposal.detail
        assert isinstance(keep, int) and isinstance(resume, int) and isinstance(start, str)
        lines = proposal.parents[0].program.code.split("\n")
        indent = indent_of(start)
        head = start[len(indent) :]
        if head:  # the model finishes a line the prompt began
            rest = clean_completion(completion).split("\n", 1)[0].rstrip()
            new = head + rest if rest.strip() else ""
        else:
            new = self._line(completion)
        if not new:
            return Result(code="", error="empty: the model wrote no line")
        if new.startswith(('"""', "'''", "def ", "async def ", "class ", "@")):
            return Result(code="", error=f"not a statement: the model wrote {new[:60]!r}")
        old = lines[keep].strip() if resume > keep else ""
        new_tokens, old_tokens = _code_tokens(new), _code_tokens(old)
        if new_tokens[:1] in _FLOW and new_tokens[:1] != old_tokens[:1]:
            return Result(code="", error=f"not an edit: the model wrote {new[:60]!r}")
        if resume == keep and new.startswith("#"):
            return Result(code="", error="no code: the model wrote a comment where a line goes")
        if len(new) > _MAX_LINE:
            return Result(code="", error=f"too long: the new line has {len(new)} characters")
        if old and new_tokens == old_tokens:
            return Result(code="", error="unchanged: the model wrote the line it was to replace")
        if new.endswith(":") and not new.startswith("#"):
            guard = new_tokens[:1] in _GUARDS
            code = "\n".join(_with_header(lines, keep, resume, indent, new, guard))
        else:
            code = "\n".join([*lines[:keep], indent + new, *lines[resume:]])
        try:
            ast.parse(code)
        except PARSE_ERRORS as exc:
            return Result(
                code="",
                error=f"syntax: the new line {new[:80]!r} does not parse in place: "
                f"{describe_parse_error(exc)}",
            )
        if not defines_function(code, self.context.function_name):
            return Result(code="", error=f"no `{self.context.function_name}` after the edit")
        return Result(code=code)
