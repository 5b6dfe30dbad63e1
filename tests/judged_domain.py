"""An LLM-scored toy domain for engine tests (``scoring = "llm"``): a candidate is a text (a
``f()`` returning a number, so the fake mutation model can vary it) that is never run; its
fitness is a judge's P(yes) that the text "looks good", its descriptors that probability and
the text's length. A text containing ``FAIL`` raises from ``assess`` (to test how the runner
blames the domain). Importable as ``tests.judged_domain:JudgedDomain``.
"""

from __future__ import annotations

from evolm.domains.base import Domain, DomainContext
from evolm.judge import Judge, Question
from evolm.llm.client import LLMClient
from evolm.types import DescriptorSpace, Evaluation, Status

QUESTION = Question("Does this text look good?", ("yes", "no"), (("def f(): return 3", "yes"),))


class JudgedDomain(Domain):
    name = "judged"
    scoring = "llm"
    fitness_bounds = (0.0, 1.0)
    descriptors_in_space = True

    def __init__(self, n_seeds: int = 2) -> None:
        self.n_seeds = n_seeds

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("p_yes", "length"), ((0.0, 1.0), (0.0, 1.0)))

    def seeds(self) -> list[str]:
        return [f"def f():\n    return {0.5 + i * 1.25}\n" for i in range(self.n_seeds)]

    def context(self) -> DomainContext:
        return DomainContext(description="Return a number close to 3.", function_name="f")

    async def assess(self, text: str, seed: int, client: LLMClient) -> Evaluation:
        if "FAIL" in text:
            raise RuntimeError("this text breaks the scorer")
        p = (await Judge(client).probs(text, QUESTION, seed=seed))["yes"]
        return Evaluation(Status.OK, fitness=p, descriptors=(p, min(len(text) / 100, 1.0)))
