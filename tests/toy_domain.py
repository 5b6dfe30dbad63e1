"""A small domain for engine and worker tests: programs define ``f()`` returning a number.

fitness = -(f() - 3) ** 2 (best at 3); descriptors = (f() mod 1, |f()| / 10 clipped to 1).
Importable by worker processes as ``tests.toy_domain:ToyDomain``.
"""

from __future__ import annotations

import math

from evolm.domains.base import Domain, DomainContext
from evolm.types import DescriptorSpace, Evaluation, Status


class ToyDomain(Domain):
    name = "toy"
    eval_timeout = 2.0
    qd_offset = -100.0

    def __init__(self, n_seeds: int = 2) -> None:
        self.n_seeds = n_seeds

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("frac", "mag"), ((0.0, 1.0), (0.0, 1.0)))

    def seeds(self) -> list[str]:
        return [f"def f():\n    return {0.5 + i * 1.25}\n" for i in range(self.n_seeds)]

    def context(self) -> DomainContext:
        return DomainContext(description="Return a number close to 3.", function_name="f")

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        ns: dict = {}
        try:
            exec(compile(code, "<program>", "exec"), ns)
            value = ns["f"]()
        except MemoryError:
            raise
        except Exception as exc:
            return Evaluation.failure(Status.ERROR, f"{type(exc).__name__}: {exc}")
        if isinstance(value, dict):  # lets tests return arbitrary extras
            return Evaluation(Status.OK, 0.0, (0.0, 0.0), extras=value)
        v = float(value)
        if not math.isfinite(v):
            return Evaluation(Status.OK, v, (0.0, 0.0))
        return Evaluation(Status.OK, -((v - 3.0) ** 2), (v % 1.0, min(abs(v) / 10.0, 1.0)))
