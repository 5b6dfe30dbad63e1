"""Random search: an operator that ignores the archive and samples a fresh random program.

ELM-style papers ask whether evolution beats simply sampling the program space at the same
number of evaluations. :class:`RandomSearch` is that baseline: each proposal is the domain's
``random_program(rng)`` (see :class:`~evolm.domains.base.Domain`), handed to operators as
:attr:`DomainContext.random_program <evolm.domains.base.DomainContext.random_program>`. It takes
no parents (so its candidates record ``parent_ids`` ``[]`` and generation 0, like seeds) and
calls no LLM, so a run of it alone is bounded by an evaluation budget. Every random choice comes
from the ``rng`` passed to :meth:`RandomSearch.propose`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evolm.archives.base import Archive
from evolm.domains.base import DomainContext
from evolm.operators.base import Operator, Proposal
from evolm.types import Individual

__all__ = ["GENERATOR_DOMAINS", "RandomSearch"]

GENERATOR_DOMAINS: tuple[str, ...] = ("image", "parity", "sodarace")
"""The domains evolm ships with a random program generator (named in error messages)."""


class RandomSearch(Operator):
    """Propose a random program of the domain's own kind, whatever the archive holds.

    Args:
        context: the domain's context; it must carry a generator
            (:attr:`DomainContext.random_program`).
        mode: accepted for a uniform signature and ignored (no prompt is built).

    Raises:
        ValueError: bad mode, or the context has no random program generator (the message
            names the domains that have one).
    """

    name = "random"
    num_parents = 0
    uses_llm = False

    def __init__(self, context: DomainContext, mode: str = "chat") -> None:
        super().__init__(context, mode)
        if context.random_program is None:
            raise ValueError(
                "operator 'random' (random search) needs a domain with a random program "
                f"generator, and this one (function {context.function_name}) has none; the "
                f"domains with one are {', '.join(GENERATOR_DOMAINS)}. A domain of your own "
                "gets one by defining random_program(rng) -> str"
            )
        self.generate = context.random_program

    def select_parents(
        self, archive: Archive, strategy: str, rng: np.random.Generator
    ) -> list[Individual]:
        """No parents: random search never reads the archive (and draws nothing here)."""
        return []

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """A proposal carrying a fresh random program (``parents`` are ignored, and not
        recorded); a generator that raises gives a proposal with the error instead, which
        the run records as an ``invalid`` candidate."""
        try:
            code = self.generate(rng)
        except Exception as exc:
            return Proposal((), None, error=f"random program generator failed: {exc!r}")
        if not isinstance(code, str) or not code.strip():
            return Proposal(
                (),
                None,
                error=f"random program generator returned {type(code).__name__}, "
                "not a program's text",
            )
        return Proposal((), None, code=code)
