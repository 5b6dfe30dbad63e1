"""A domain for sandbox tests: a program defines ``attack()``, and whatever it returns comes back.

``evaluate`` runs the program inside the sandboxed child, calls ``attack()`` and returns its value
as ``extras["value"]`` (status ``ok``), or the exception as an ``error``, so that an escape that
worked can report what it got. Workers import it as ``tests.sandbox.escape_domain:EscapeDomain``.
"""

from __future__ import annotations

from evolm.domains.base import Domain, DomainContext
from evolm.types import DescriptorSpace, Evaluation, Status


class EscapeDomain(Domain):
    name = "escape"
    eval_timeout = 5.0

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("x",), ((0.0, 1.0),))

    def seeds(self) -> list[str]:
        return ["def attack():\n    return 1\n"]

    def context(self) -> DomainContext:
        return DomainContext(description="Break out of the sandbox.", function_name="attack")

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        ns: dict = {}
        try:
            exec(compile(code, "<program>", "exec"), ns)
            value = ns["attack"]()
        except MemoryError:
            raise
        except Exception as exc:
            return Evaluation.failure(Status.ERROR, f"{type(exc).__name__}: {exc}")
        return Evaluation(Status.OK, 0.0, (0.0,), extras={"value": value})
