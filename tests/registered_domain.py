"""A domain registered by name with ``@register_domain``, the way a user's own module does it.

Sandbox workers never import this module by themselves: the pool names the class to them as
``tests.registered_domain:RegisteredToyDomain`` (see ``evolm.sandbox.pool.worker_domain_spec``).
"""

from __future__ import annotations

import dataclasses

from evolm.domains.base import register_domain
from evolm.types import Evaluation
from tests.toy_domain import ToyDomain

NAME = "test_registered_toy"


@register_domain(NAME)
class RegisteredToyDomain(ToyDomain):
    """The toy domain under a registered name; ``offset`` shifts every fitness."""

    name = NAME

    def __init__(self, n_seeds: int = 2, offset: float = 0.0) -> None:
        super().__init__(n_seeds=n_seeds)
        self.offset = offset

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        ev = super().evaluate(code, seed)
        if ev.fitness is None:
            return ev
        return dataclasses.replace(ev, fitness=ev.fitness + self.offset)
