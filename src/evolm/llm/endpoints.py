"""Several servers of one model: which one takes the next request, and which are out.

Users outgrow one GPU server by starting more of them (vLLM or llama.cpp servers of the same
model) and listing every base URL. Requests go to the server with the fewest requests
outstanding (ties: the one sent the fewest so far, then the first listed): a slower server, with
more requests piling up, gets fewer new ones, which is what join-the-shortest-queue balancing
does without knowing any server's speed. A server that fails (no connection, a timeout, 429 or a
5xx answer) is taken out for ``backoff`` seconds, doubling with each failure in a row up to
``backoff_max``, and comes back on its own once that passes; its first success resets it. When
every server is out, the one due back soonest is tried anyway rather than failing the call. The
choice of server never changes what a request asks for, so a run's results do not depend on it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Endpoint", "EndpointPool"]

C = TypeVar("C")


@dataclass(eq=False)
class Endpoint(Generic[C]):
    """One server: its URL, its client, and its load and health."""

    url: str
    client: C
    outstanding: int = 0
    sent: int = 0
    failures: int = 0
    """Failures in a row (0 once it answers)."""
    down_until: float = 0.0
    """Clock time before which it is out."""


class EndpointPool(Generic[C]):
    """Choose among the servers of one model; see the module docstring.

    Args:
        urls: the servers' base URLs, at least one, no repeats.
        make_client: builds the client of one URL.
        backoff: seconds a server stays out after its first failure in a row.
        backoff_max: the longest it stays out.
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        urls: Sequence[str],
        make_client: Callable[[str], C],
        *,
        backoff: float = 5.0,
        backoff_max: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("give at least one server URL")
        repeated = sorted({u for u in urls if list(urls).count(u) > 1})
        if repeated:
            raise ValueError(f"server URLs repeat: {', '.join(repeated)}; list each once")
        for label, value in (("backoff", backoff), ("backoff_max", backoff_max)):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{label} must be a finite number of seconds >= 0, got {value}")
        self.endpoints = [Endpoint(u, make_client(u)) for u in urls]
        self.backoff = backoff
        self.backoff_max = backoff_max
        self._clock = clock

    def __len__(self) -> int:
        return len(self.endpoints)

    def pick(self) -> Endpoint[C]:
        """The server for the next attempt (counted as outstanding until :meth:`done`)."""
        now = self._clock()
        eps = self.endpoints
        up = [e for e in eps if e.down_until <= now]
        pool = up or [min(eps, key=lambda e: e.down_until)]
        best = min(pool, key=lambda e: (e.outstanding, e.sent, eps.index(e)))
        best.outstanding += 1
        best.sent += 1
        return best

    def done(self, ep: Endpoint[C], *, ok: bool, retry_after: float | None = None) -> None:
        """Record how ``ep``'s attempt ended; a failure takes it out for its back-off, or for
        ``retry_after`` seconds when the server asked for that (and it is longer)."""
        ep.outstanding -= 1
        if ok:
            ep.failures = 0
            ep.down_until = 0.0
            return
        ep.failures += 1
        wait = min(self.backoff_max, self.backoff * 2 ** (ep.failures - 1))
        if retry_after is not None:
            wait = max(wait, retry_after)
        ep.down_until = self._clock() + wait

    def any_up(self, besides: Endpoint[C] | None = None) -> bool:
        """Whether a server other than ``besides`` can take a request now."""
        now = self._clock()
        return any(e.down_until <= now for e in self.endpoints if e is not besides)
