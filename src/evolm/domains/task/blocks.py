"""EVOLVE-BLOCK markers: the regions of a task's program that operators may change.

A block starts on the line after one containing ``EVOLVE-BLOCK-START`` and ends before the next
line containing ``EVOLVE-BLOCK-END`` (the markers are comments in any language; only the words
matter). A program may hold several blocks, never nested. :func:`splice` puts a candidate's
block contents into the original program, so everything outside the blocks, the marker lines
included, stays the original's, byte for byte.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass

START = "EVOLVE-BLOCK-START"
END = "EVOLVE-BLOCK-END"

__all__ = ["END", "START", "blocks", "splice", "splice_definitions", "split_blocks"]


def split_blocks(text: str) -> tuple[list[str], list[str]]:
    """``(outside, blocks)`` of ``text``: ``len(outside) == len(blocks) + 1``, and
    ``outside[0] + blocks[0] + outside[1] + ... + outside[-1] == text`` (marker lines belong to
    ``outside``).

    Raises:
        ValueError: no block, a block not closed, an end marker without a start, or a start
            marker inside a block (the message says which line).
    """
    outside: list[str] = []
    found: list[str] = []
    current: list[str] = []
    inside = False
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        has_start, has_end = START in line, END in line
        if has_start and has_end:
            raise ValueError(f"line {number} holds both {START} and {END}; put them on two lines")
        if has_start:
            if inside:
                raise ValueError(f"{START} on line {number} is inside a block (blocks cannot nest)")
            current.append(line)
            outside.append("".join(current))
            current, inside = [], True
        elif has_end:
            if not inside:
                raise ValueError(f"{END} on line {number} has no {START} before it")
            found.append("".join(current))
            current, inside = [line], False
        else:
            current.append(line)
    if inside:
        raise ValueError(f"the last {START} has no {END} after it")
    if not found:
        raise ValueError(f"no {START} ... {END} markers")
    outside.append("".join(current))
    return outside, found


def blocks(text: str) -> list[str]:
    """The contents of ``text``'s blocks (see :func:`split_blocks`), or ``[text]`` when it has
    no valid markers."""
    try:
        return split_blocks(text)[1]
    except ValueError:
        return [text]


def splice(original: str, candidate: str, *, lenient: bool = False) -> str:
    """``original`` with each block's contents replaced by the same block of ``candidate``.

    With ``lenient`` (Python programs), a candidate whose markers are missing, unbalanced or of
    another count is read as Python definitions instead, its marker lines ignored
    (:func:`splice_definitions`): models often answer with only the function they changed, or
    the whole file without the marker comments, and a completion-mode answer never has the end
    marker (its stop sequences end the answer at a column-0 comment).

    Raises:
        ValueError: the candidate's markers are missing or malformed, or it has a different
            number of blocks than the original (the message says so, for an ``invalid``
            candidate); with ``lenient``, the reasons of :func:`splice_definitions` when the
            candidate has no marker, else the markers' reason.
    """
    outside, theirs = split_blocks(original)
    try:
        _, ours = split_blocks(candidate)
        if len(ours) != len(theirs):
            raise ValueError(
                f"the program has {len(ours)} EVOLVE blocks where the task's program has "
                f"{len(theirs)}; keep every {START} / {END} pair and change only the code "
                "between them"
            )
    except ValueError as exc:
        marked = START in candidate or END in candidate
        if lenient and not marked:
            return splice_definitions(original, candidate)
        if not exc.args[0].startswith("the program has"):
            exc = ValueError(
                f"the program must keep its {START} / {END} markers and change only the code "
                f"between them: {exc}"
            )
        if lenient:
            lines = candidate.splitlines(keepends=True)
            unmarked = "".join(x for x in lines if START not in x and END not in x)
            try:
                return splice_definitions(original, unmarked)
            except ValueError:
                raise exc from None
        raise exc from None
    parts = [outside[0]]
    for body, after in zip(ours, outside[1:], strict=True):
        if body and not body.endswith("\n"):
            body += "\n"
        parts += [body, after]
    return "".join(parts)


# --------------------------------------------------------------------------- marker-less answers


@dataclass
class _Chunk:
    """Consecutive top-level statements of one file (those sharing a line are one chunk): their
    source lines (comments just above them included), the names they bind and their kind."""

    text: str
    names: set[str]
    kind: str  # "import", "def" (function or class), "assign" or "other"
    start: int  # 1-based line where ``text`` starts
    first: int  # 1-based line of the first statement (decorators included)
    last: int  # 1-based line of the last statement's end
    nodes: list[ast.stmt]


def _bound(node: ast.stmt) -> tuple[set[str], str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}, "def"
    if isinstance(node, ast.Import | ast.ImportFrom):
        names = {(a.asname or a.name).split(".")[0] for a in node.names}
        future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
        return names, "other" if future or "*" in names else "import"
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    names = set()
    while targets:
        target = targets.pop()
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            targets.extend(target.elts)
        else:  # an attribute or subscript changes an object; it binds no name
            return set(), "other"
    return names, "assign" if names else "other"


def _chunks(text: str, tree: ast.Module, starts: tuple[int, ...] = ()) -> list[_Chunk]:
    """The top-level chunks of ``text``; a chunk's leading comments never reach back over a
    line in ``starts`` (the first lines of blocks)."""
    lines = text.split("\n")
    chunks: list[_Chunk] = []
    previous_end = 0
    for node in tree.body:
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno, *(d.lineno for d in decorators)])
        end = node.end_lineno or node.lineno
        names, kind = _bound(node)
        if chunks and first <= previous_end:  # `a = 1; b = 2`: one chunk
            last = chunks[-1]
            last.names |= names
            last.kind = last.kind if last.kind == kind else "other"
            last.last = max(last.last, end)
            last.nodes.append(node)
            last.text = "\n".join(lines[last.start - 1 : last.last])
        else:
            start = max([previous_end + 1, *(s for s in starts if s <= first)])
            while start < first and not lines[start - 1].strip():
                start += 1
            text_of = "\n".join(lines[start - 1 : end])
            chunks.append(_Chunk(text_of, names, kind, start, first, end, [node]))
        previous_end = max(previous_end, end)
    return chunks


def _block_spans(outside: list[str], found: list[str]) -> list[tuple[int, int]]:
    """The 1-based first and last line of each block's contents."""
    spans, line = [], 1
    for before, body in zip(outside, found, strict=False):
        line += before.count("\n")
        spans.append((line, line + body.count("\n") - 1))
        line += body.count("\n")
    return spans


def _keep_markers(why: str) -> ValueError:
    return ValueError(
        f"the program has no {START} / {END} markers, and {why}, so its definitions cannot be "
        f"matched to the blocks; keep the {START} / {END} lines and change only the code between "
        "them"
    )


def _joined(texts: list[str]) -> str:
    return "\n\n\n".join(t.rstrip() for t in texts) + "\n\n\n" if texts else ""


def splice_definitions(original: str, candidate: str) -> str:
    """``original`` with its blocks rebuilt from the top-level definitions of ``candidate``, a
    Python answer without markers (only parsed, never run).

    Each definition (function, class or assignment) of the candidate whose name a block of the
    original defines replaces that definition in that block; the block's definitions the
    candidate leaves out stay as they are (an assignment of several names, some replaced, stays
    before the new definitions). Functions, classes and assignments of new names
    (helpers) go to the first block, and imports the original lacks to its start. The
    candidate's definitions of names the original defines outside its blocks (``run_packing``,
    ``np``) are dropped, so the code outside the blocks keeps its meaning, and so are its other
    statements (``print(...)``, ``if __name__ == "__main__":``). A block's new definitions, in
    the candidate's order, take the place of the first definition they replace. Everything
    outside the blocks stays the original's, byte for byte, and so does a block the candidate
    does not touch.

    Raises:
        ValueError: the candidate does not parse, the original cannot be split into top-level
            definitions (not valid Python, a block inside a statement, or blocks that define no
            names), or the candidate defines none of the blocks' names (the message names them).
    """
    outside, found = split_blocks(original)
    spans = _block_spans(outside, found)
    try:
        tree = ast.parse(original)
    except (SyntaxError, ValueError, RecursionError):
        raise _keep_markers("the task's program is not valid Python as a whole") from None
    theirs: list[list[_Chunk]] = [[] for _ in found]
    outside_names: set[str] = set()
    for chunk in _chunks(original, tree, tuple(a for a, _ in spans)):
        block = next((i for i, (a, b) in enumerate(spans) if a <= chunk.first <= b), None)
        if block is None and any(chunk.first < a <= chunk.last for a, _ in spans):
            raise _keep_markers("a block of the task's program lies inside a statement")
        if block is not None and chunk.last > spans[block][1]:
            raise _keep_markers("a block of the task's program ends inside a statement")
        if block is None:
            outside_names |= chunk.names
        else:
            theirs[block].append(chunk)
    original_imports = {
        ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)
    }
    block_of = {n: i for i in reversed(range(len(found))) for c in theirs[i] for n in c.names}
    outside_names -= set(block_of)
    if not block_of:
        raise _keep_markers("the task's blocks define no top-level functions, classes or names")
    try:
        with warnings.catch_warnings():  # a model's "\d" in a string is no reason to warn
            warnings.simplefilter("ignore", SyntaxWarning)
            ours = ast.parse(candidate)
    except (SyntaxError, ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise ValueError(
            f"the program has no {START} / {END} markers and does not parse as Python: "
            f"{reason}{where}; answer with valid Python: new versions of the blocks' "
            "definitions, or the whole program"
        ) from None
    new: list[list[_Chunk]] = [[] for _ in found]
    imports: list[str] = []
    for chunk in _chunks(candidate, ours):
        if chunk.kind == "import":
            known = all(ast.unparse(n) in original_imports for n in chunk.nodes)
            if not known and not chunk.names & outside_names:
                imports.append(chunk.text)
        elif chunk.kind != "other" and not chunk.names & outside_names:
            new[min((block_of[n] for n in chunk.names if n in block_of), default=0)].append(chunk)
    replaced = {n for chunks in new for c in chunks for n in c.names}
    if not replaced & set(block_of):
        raise ValueError(
            f"the program has no {START} / {END} markers and defines none of the names its "
            f"EVOLVE blocks define ({', '.join(sorted(block_of))}); answer with new versions of "
            "these definitions (the code outside the blocks is kept as it is), or with the whole "
            "program and its markers"
        )
    parts = [outside[0]]
    for i, after in enumerate(outside[1:]):
        texts = ["\n".join(t.rstrip() for t in imports)] if i == 0 and imports else []
        if not texts and not new[i]:  # a block the answer does not touch stays as it was
            parts += [found[i], after]
            continue
        placed = False
        for chunk in theirs[i]:
            hit = chunk.names & replaced
            if not hit or chunk.names - replaced:  # `A, B = 1, 2` with only A replaced stays
                texts.append(chunk.text)
            if hit and not placed:
                texts += [c.text for c in new[i]]
                placed = True
        if not placed:
            texts += [c.text for c in new[i]]
        parts += [_joined(texts), after]
    return "".join(parts)
