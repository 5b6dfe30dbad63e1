"""Shared helpers for domains that run a program's source: its file name and error messages."""

from __future__ import annotations

import traceback

__all__ = ["MAX_ERROR_CHARS", "PROGRAM_FILE", "describe_exception", "program_line"]

PROGRAM_FILE = "<program>"
"""The file name programs are compiled under, so tracebacks can point into them."""

MAX_ERROR_CHARS = 500
"""Error texts are cut to this length before they are stored."""


def program_line(exc: BaseException) -> int | None:
    """Line number inside :data:`PROGRAM_FILE` of the innermost program frame of ``exc``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == PROGRAM_FILE]
    return frames[-1].lineno if frames else None


def describe_exception(exc: BaseException) -> str:
    """``"Type: message (line N)"``, cut to :data:`MAX_ERROR_CHARS`; never raises."""
    try:
        message = str(exc)
    except Exception:  # a program's exception class may break __str__
        message = "<unprintable message>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    line = program_line(exc)
    return f"{text} (line {line})" if line is not None else text
