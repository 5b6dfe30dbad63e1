"""What a sandbox pool says when a worker cannot start: the domain's fault or the sandbox's.

A zygote reports how far its set-up got (``{"progress": "domain"}`` once it begins importing and
building the domain), so the pool can tell a domain that raises, exits, crashes or hangs while it
starts from a sandbox tier that does not work here. Domain failures raise
:class:`DomainStartError`, whose message names the domain, what went wrong in the worker (the
exception, where it was raised or where the import hung, the last lines of the worker's stderr)
and how to fix it; the worker's full traceback is kept on the exception, not in the message.
"""

from __future__ import annotations

import math
import os
import re

from evolm.sandbox.tiers import SandboxUnavailable

__all__ = [
    "START_TIMEOUT_ENV",
    "START_TIMEOUT_S",
    "DomainStartError",
    "domain_died",
    "domain_failed",
    "domain_hung",
    "hung_at",
    "start_timeout",
]

START_TIMEOUT_S = 60.0
"""How long a new zygote may take by default to import numpy and the domain and say hello
(and, separately, to set itself up before that)."""

START_TIMEOUT_ENV = "EVOLM_SANDBOX_START_TIMEOUT"
"""Environment variable overriding :data:`START_TIMEOUT_S` (seconds)."""

_TAIL_CHARS = 600


class DomainStartError(SandboxUnavailable, ValueError):
    """A domain could not be imported or built in a sandbox worker (it raised, called
    ``sys.exit``, crashed or did not finish starting in time).

    A :class:`SandboxUnavailable` (the run cannot start, nothing was stored) and a ``ValueError``
    (the domain is at fault), so callers that catch either keep working.

    Attributes:
        domain: the domain as the caller named it.
        worker_traceback: the worker's formatted traceback or stack dump ("" if none), for a log.
    """

    def __init__(self, message: str, domain: str, worker_traceback: str = "") -> None:
        super().__init__(message)
        self.domain = domain
        self.worker_traceback = worker_traceback


def start_timeout(value: float | None = None) -> float:
    """The start-up deadline in seconds: ``value``, else ``$EVOLM_SANDBOX_START_TIMEOUT``, else
    :data:`START_TIMEOUT_S`.

    Raises:
        ValueError: the value is not a positive finite number of seconds.
    """
    source = "start_timeout"
    if value is None:
        text = os.environ.get(START_TIMEOUT_ENV, "").strip()
        if not text:
            return START_TIMEOUT_S
        source = START_TIMEOUT_ENV
        try:
            value = float(text)
        except ValueError:
            value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(
            f"{source} must be a positive number of seconds (how long a sandbox worker may take "
            f"to import and build the domain), got {value!r}; the default is {START_TIMEOUT_S:g}"
        )
    return float(value)


def _tail(stderr: str) -> str:
    text = " | ".join(line.strip() for line in stderr.strip().splitlines() if line.strip())
    return text if len(text) <= _TAIL_CHARS else "..." + text[-_TAIL_CHARS:]


def _stderr_part(stderr: str) -> str:
    tail = _tail(stderr)
    return f" The worker's stderr ended with: {tail}" if tail else ""


def _named(domain: str, spec: str) -> str:
    return f"domain {domain!r}" + ("" if spec == domain else f" (class {spec})")


def domain_failed(
    domain: str, spec: str, error: str, where: str, stderr: str, traceback: str = ""
) -> DomainStartError:
    """The domain raised (or called ``sys.exit``) while a worker imported or built it."""
    at = f" at {where}" if where else ""
    if error.startswith("SystemExit"):
        code = error.partition(":")[2].strip() or "None"
        message = (
            f"{_named(domain, spec)} called sys.exit({code}){at} while a sandbox worker imported "
            "or built it, so no worker could start. A domain's module and constructor must not "
            "exit: remove the sys.exit call (raise an exception with a message instead), and put "
            'script code under `if __name__ == "__main__":`.'
        )
    else:
        message = (
            f"{_named(domain, spec)} failed to start in a sandbox worker: {error}{at}. It was "
            "built in the engine first, so the failure is the worker's: a fresh Python process "
            "that sees only the engine's sys.path and the paths the sandbox grants, with no "
            "network, a minimal environment and a read-only file system. Make the domain's "
            "import and constructor work there (do file or network set-up in the engine and pass "
            "plain data to the domain through its params)."
        )
    return DomainStartError(message + _stderr_part(stderr), domain, traceback)


def domain_died(domain: str, spec: str, returncode: int | None, stderr: str) -> DomainStartError:
    """The worker died (crashed or ``os._exit``) while it imported or built the domain."""
    if returncode is None:
        how = "closed its pipe"
    elif returncode < 0:
        how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode}"
    message = (
        f"a sandbox worker {how} while it imported or built {_named(domain, spec)}, before it "
        "could report an error: the domain's module or constructor (or a compiled extension it "
        "loads) crashed or ended the process. Fix the domain's import so that it raises an "
        "exception instead."
    )
    return DomainStartError(message + _stderr_part(stderr), domain, stderr)


_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)(?: in (.+))?$')


def hung_at(stderr: str) -> str:
    """``file:line in function`` of the innermost frame in a faulthandler dump in ``stderr``
    (skipping the import machinery), or ""."""
    start = max(stderr.rfind("Current thread"), stderr.rfind("Thread 0x"), 0)
    for line in stderr[start:].splitlines():
        m = _FRAME.match(line)
        if m and not m.group(1).startswith("<frozen"):
            return f"{m.group(1)}:{m.group(2)}" + (f" in {m.group(3)}" if m.group(3) else "")
    return ""


def domain_hung(domain: str, spec: str, timeout: float, stderr: str) -> DomainStartError:
    """The worker did not finish importing and building the domain within ``timeout`` s."""
    where = hung_at(stderr)
    at = f"; when it was stopped it was at {where}" if where else ""
    message = (
        f"{_named(domain, spec)} did not finish starting in a sandbox worker within "
        f"{timeout:g} s (importing its module and building it){at}. Make the domain's import and "
        "constructor fast (no waiting on input, locks or the network at import time; move slow "
        "set-up into a cache), or give workers longer with the environment variable "
        f"{START_TIMEOUT_ENV}=<seconds> (now {timeout:g})."
    )
    return DomainStartError(message + ("" if where else _stderr_part(stderr)), domain, stderr)
