"""Shared helpers for domains that run a program's source: loading it, calling it, its file
name and error messages. They run untrusted code: call them only inside an evaluation worker."""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolm.types import Status

__all__ = [
    "MAX_ERROR_CHARS",
    "PROGRAM_FILE",
    "ProgramFailure",
    "call_program",
    "describe_exception",
    "load_function",
    "program_line",
]

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


@dataclass(frozen=True)
class ProgramFailure:
    """Why a program could not be loaded or called: an :class:`~evolm.types.Status` and a
    message, for the domain to turn into an ``Evaluation`` with its own extras."""

    status: Status
    error: str


def _raised(exc: BaseException, invalid: tuple[type[BaseException], ...]) -> ProgramFailure:
    if isinstance(exc, invalid):
        return ProgramFailure(Status.INVALID, describe_exception(exc))
    if isinstance(exc, SystemExit):
        line = program_line(exc)
        where = f" (line {line})" if line is not None else ""
        return ProgramFailure(Status.ERROR, f"program called exit(){where}")
    return ProgramFailure(Status.ERROR, describe_exception(exc))


def load_function(
    code: str,
    function_name: str,
    seed: int = 0,
    namespace: dict[str, Any] | None = None,
    *,
    invalid: tuple[type[BaseException], ...] = (),
) -> Callable[..., Any] | ProgramFailure:
    """Reseed ``random`` and ``numpy.random`` with ``seed``, compile and run ``code`` in a fresh
    module namespace (pre-filled with ``namespace``), and return its ``function_name``.

    Never raises for bad code (``KeyboardInterrupt`` excepted): a syntax error, a missing or
    non-callable function, or an exception of an ``invalid`` type while the module runs, is
    ``invalid``; any other exception or ``exit()`` while it runs (or while it compiles, e.g.
    RecursionError) is ``error``.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        compiled = compile(code, PROGRAM_FILE, "exec")
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno is not None else ""
        return ProgramFailure(Status.INVALID, f"SyntaxError{where}: {exc.msg}")
    except ValueError as exc:  # null bytes in the source
        return ProgramFailure(Status.INVALID, f"cannot compile: {exc}")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # RecursionError, MemoryError on pathological sources
        return ProgramFailure(Status.ERROR, describe_exception(exc))
    module: dict[str, Any] = {"__name__": "__evolm_program__", **(namespace or {})}
    try:
        exec(compiled, module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a program may raise anything; it is a result, not a crash
        return _raised(exc, invalid)
    fn = module.get(function_name)
    if fn is None:
        return ProgramFailure(Status.INVALID, f"program defines no function {function_name}()")
    if not callable(fn):
        return ProgramFailure(
            Status.INVALID, f"{function_name} is a {type(fn).__name__}, not a function"
        )
    return fn


def call_program(
    fn: Callable[..., Any], *args: Any, invalid: tuple[type[BaseException], ...] = ()
) -> tuple[Any, ProgramFailure | None]:
    """Call a program's function: ``(value, None)``, or ``(None, failure)`` when it raised
    (``invalid`` exception types are ``invalid``, anything else and ``exit()`` are ``error``;
    ``KeyboardInterrupt`` propagates)."""
    try:
        return fn(*args), None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a program may raise anything; it is a result, not a crash
        return None, _raised(exc, invalid)
