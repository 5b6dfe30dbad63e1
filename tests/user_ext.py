"""A user's own operator and LLM backend, loaded by evolm as ``tests.user_ext:Nudge`` and
``tests.user_ext:EchoLLM`` without any change to evolm (see tests/test_registry.py).

Both are written for the toy domain (``tests.toy_domain:ToyDomain``): programs define ``f()``
returning a number.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from evolm.llm.base import Completion, LLMBackend, Request
from evolm.operators.base import Operator, Proposal
from evolm.types import Individual

_NUMBER = re.compile(r"return\s+(-?[0-9.]+)")


class Nudge(Operator):
    """LLM-free: the parent's returned number plus a normal step of size ``scale``."""

    name = "nudge"
    uses_llm = False

    def __init__(self, context: Any, mode: str = "chat", *, scale: float = 1.0) -> None:
        super().__init__(context, mode)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.scale = scale

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        parent = parents[0].program
        found = _NUMBER.search(parent.code)
        if found is None:
            return Proposal((parent.id,), None, error="the parent returns no number literal")
        value = float(found.group(1)) + float(rng.normal(0.0, self.scale))
        return Proposal((parent.id,), None, code=f"def f():\n    return {value!r}\n")


class EchoLLM(LLMBackend):
    """Answers every request with a fenced ``f()`` returning a number drawn from the request's
    seed (plus ``offset``); a prompt containing ``FAIL`` raises, which the base class turns into
    a failed completion."""

    name = "echo"

    def __init__(self, model: str = "echo", offset: float = 0.0, **common: Any) -> None:
        super().__init__(model, **common)
        self.offset = offset

    async def _generate_one(self, request: Request) -> Completion:
        text = request.prompt + "".join(m["content"] for m in request.messages)
        if "FAIL" in text:
            raise RuntimeError("asked to fail")
        value = random.Random(self.request_seed(request)).uniform(0.0, 6.0) + self.offset
        answer = f"```python\ndef f():\n    return {value!r}\n```\n"
        return Completion(
            text=answer,
            model=self.model,
            tokens_in=len(text) // 4,
            tokens_out=len(answer) // 4,
            cost=self.cost(len(text) // 4, len(answer) // 4),
        )
