"""A trivial domain for benchmarks/loop_overhead.py and benchmarks/sandbox.py, in a module that
imports almost nothing (every sandbox zygote imports it)."""

from __future__ import annotations

from evolm.domains.base import Domain, DomainContext
from evolm.types import DescriptorSpace, Evaluation, Status


class TrivialDomain(Domain):
    """``f()`` returns a number x; fitness -|x - 3|, descriptors (x mod 1, x / 100)."""

    name = "trivial"
    qd_offset = -1000.0

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("frac", "scale"), ((0.0, 1.0), (0.0, 1.0)))

    def seeds(self) -> list[str]:
        return ["def f():\n    return 1.5\n", "def f():\n    return 7\n"]

    def context(self) -> DomainContext:
        return DomainContext(description="Return a number near 3.", function_name="f")

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        ns: dict[str, object] = {}
        try:
            exec(compile(code, "<program>", "exec"), ns)
            x = float(ns["f"]())  # type: ignore[operator]
        except Exception as exc:
            return Evaluation.failure(Status.ERROR, repr(exc))
        return Evaluation(Status.OK, -abs(x - 3.0), (x % 1.0, min(abs(x) / 100.0, 1.0)))


class SplitTrivialDomain(TrivialDomain):
    """:class:`TrivialDomain` as a two-phase domain: ``run`` calls ``f()`` in the program's child,
    ``score`` scores the number in the sandbox's separate scoring process."""

    scoring = "separate"

    def run(self, code: str, seed: int = 0) -> float | Evaluation:
        ns: dict[str, object] = {}
        try:
            exec(compile(code, "<program>", "exec"), ns)
            return float(ns["f"]())  # type: ignore[operator]
        except Exception as exc:
            return Evaluation.failure(Status.ERROR, repr(exc))

    def score(self, data: object, seed: int = 0) -> Evaluation:
        if isinstance(data, bool) or not isinstance(data, int | float):
            return Evaluation.failure(Status.INVALID, f"f() gave {type(data).__name__}")
        x = float(data)
        return Evaluation(Status.OK, -abs(x - 3.0), (x % 1.0, min(abs(x) / 100.0, 1.0)))
