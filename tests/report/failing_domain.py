"""A domain whose every program fails (for the report's failed-run test): the evaluation
raises an error naming a line that differs per program, so the failure taxonomy must group
them into one reason."""

from __future__ import annotations

import zlib

from evolm.domains.base import Domain, DomainContext
from evolm.types import DescriptorSpace, Evaluation, Status


class AlwaysFails(Domain):
    name = "always_fails"
    eval_timeout = 2.0

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("a", "b"), ((0.0, 1.0), (0.0, 1.0)))

    def seeds(self) -> list[str]:
        return ["def f():\n    return 1 / 0\n", "def f():\n    return 2 / 0\n"]

    def context(self) -> DomainContext:
        return DomainContext(description="Return a number.", function_name="f")

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        line = zlib.crc32(code.encode()) % 50 + 1
        return Evaluation.failure(
            Status.ERROR, f"ZeroDivisionError: division by zero (line {line})"
        )
