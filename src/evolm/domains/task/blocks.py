"""EVOLVE-BLOCK markers: the regions of a task's program that operators may change.

A block starts on the line after one containing ``EVOLVE-BLOCK-START`` and ends before the next
line containing ``EVOLVE-BLOCK-END`` (the markers are comments in any language; only the words
matter). A program may hold several blocks, never nested. :func:`splice` puts a candidate's
block contents into the original program, so everything outside the blocks, the marker lines
included, stays the original's, byte for byte.
"""

from __future__ import annotations

START = "EVOLVE-BLOCK-START"
END = "EVOLVE-BLOCK-END"

__all__ = ["END", "START", "blocks", "splice", "split_blocks"]


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


def splice(original: str, candidate: str) -> str:
    """``original`` with each block's contents replaced by the same block of ``candidate``.

    Raises:
        ValueError: the candidate's markers are missing or malformed, or it has a different
            number of blocks than the original (the message says so, for an ``invalid``
            candidate).
    """
    outside, theirs = split_blocks(original)
    try:
        _, ours = split_blocks(candidate)
    except ValueError as exc:
        raise ValueError(
            f"the program must keep its {START} / {END} markers and change only the code "
            f"between them: {exc}"
        ) from None
    if len(ours) != len(theirs):
        raise ValueError(
            f"the program has {len(ours)} EVOLVE blocks where the task's program has "
            f"{len(theirs)}; keep every {START} / {END} pair and change only the code between them"
        )
    parts = [outside[0]]
    for body, after in zip(ours, outside[1:], strict=True):
        if body and not body.endswith("\n"):
            body += "\n"
        parts += [body, after]
    return "".join(parts)
