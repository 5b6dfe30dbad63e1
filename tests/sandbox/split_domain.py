"""A two-phase domain for sandbox tests: a program defines ``attack()``; ``run`` sends back
``{"value": attack(), "pid": <the program's pid>}`` and ``score`` reports who scored it.

``score`` gives fitness 0.5 and ``extras`` ``{"value", "run_pid", "scorer_pid"}`` for a map with
those two keys; for a value ``"hang"``, ``"crash"`` or ``"raise"`` it loops forever, kills itself
with SIGSEGV or raises, so tests can see what a misbehaving scorer does to a pool. Workers import
it as ``tests.sandbox.split_domain:SplitDomain``.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from evolm.domains.base import Domain, DomainContext
from evolm.types import DescriptorSpace, Evaluation, Status


class SplitDomain(Domain):
    name = "split-escape"
    eval_timeout = 5.0
    scoring = "separate"
    fitness_bounds = (0.0, 1.0)
    descriptors_in_space = True

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("x",), ((0.0, 1.0),))

    def seeds(self) -> list[str]:
        return ["def attack():\n    return 1\n"]

    def context(self) -> DomainContext:
        return DomainContext(description="Break out of the sandbox.", function_name="attack")

    def run(self, code: str, seed: int = 0) -> Any:
        ns: dict = {}
        try:
            exec(compile(code, "<program>", "exec"), ns)
            value = ns["attack"]()
        except MemoryError:
            raise
        except Exception as exc:
            return Evaluation.failure(Status.ERROR, f"{type(exc).__name__}: {exc}")
        return {"value": value, "pid": os.getpid()}

    def score(self, data: Any, seed: int = 0) -> Evaluation:
        if not isinstance(data, dict) or set(data) != {"value", "pid"}:
            return Evaluation.failure(Status.INVALID, f"not run data: {data!r:.200}")
        if data["value"] == "hang":
            while True:
                pass
        if data["value"] == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if data["value"] == "raise":
            raise RuntimeError("scorer bug")
        extras = {"value": data["value"], "run_pid": data["pid"], "scorer_pid": os.getpid()}
        return Evaluation(Status.OK, 0.5, (0.5,), extras=extras)
