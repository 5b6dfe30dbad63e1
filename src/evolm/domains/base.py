"""The domain protocol: what a task must provide to be evolved.

A domain gives seed programs, the context an LLM needs to write programs for it, a way to run
and score a program, and its descriptor space. Domains are built by name from the registry with
keyword parameters, so a worker process can rebuild the same domain from ``(name, params)``.

Running and scoring come in one of two forms (:attr:`Domain.scoring`):

- ``"separate"`` (two-phase): ``run(code, seed)`` runs the program in the sandboxed child and
  returns plain data (numbers, strings, lists, dicts with str keys, numeric numpy arrays), and
  ``score(data, seed)`` turns that data into an :class:`~evolm.types.Evaluation` in a separate
  sandboxed process that never runs the program, so a program can neither forge its score nor
  patch the scorer. ``score`` must validate ``data`` (types, shapes, sizes): it may come from a
  hostile program.
- ``"in_process"``: ``evaluate(code, seed)`` runs the program and scores it in one sandboxed
  child, for domains that cannot split (e.g. a scorer that needs the program's live objects).
- ``"llm"``: the candidate is a text that is never executed (a poem, an instruction);
  ``await assess(text, seed, client)`` scores it with LLM calls made in the engine through an
  :class:`~evolm.llm.client.LLMClient` (stored, charged to the budget, replayable). No sandbox.

Programs (the first two forms) run **inside an evaluation worker**, never in the engine's
process.
"""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from evolm.registry import Registry
from evolm.types import DescriptorSpace, Evaluation

if TYPE_CHECKING:
    import numpy as np

    from evolm.llm.client import LLMClient, Role

__all__ = [
    "DOMAINS",
    "Domain",
    "DomainContext",
    "get_domain",
    "operator_context",
    "register_domain",
    "registered_domains",
]


@dataclass(frozen=True)
class DomainContext:
    """What prompts include about a domain.

    Attributes:
        description: one paragraph on the task, for instruction-following models.
        function_name: the entry point a program must define (e.g. ``"draw"``).
        api: helper code or API text shown before the program (may be empty).
        language: language tag for fenced code blocks.
        file_name: file name used by diff-style prompts.
        optional_api: API text shown only for programs that use it: each key is a name, and
            its text follows ``api`` when a program shown in the prompt mentions the name. A
            small model copes better with a prompt that holds only what its parent uses.
        random_program: the domain's random program generator (its ``random_program(rng)``),
            or None when it has none; the ``random`` operator (random search) calls it. It is
            no part of any prompt, and is left out of comparisons and the repr, so a context
            with it equals one without.
    """

    description: str
    function_name: str
    api: str = ""
    language: str = "python"
    file_name: str = "program.py"
    optional_api: dict[str, str] = field(default_factory=dict)
    random_program: Callable[[np.random.Generator], str] | None = field(
        default=None, compare=False, repr=False
    )

    def api_for(self, *codes: str) -> str:
        """``api`` plus the :attr:`optional_api` texts whose names one of ``codes`` mentions
        (as a whole word), in the order of :attr:`optional_api`."""
        parts = [self.api.rstrip("\n")] if self.api.strip() else []
        for name, text in self.optional_api.items():
            word = re.compile(rf"\b{re.escape(name)}\b")
            if any(word.search(code) for code in codes):
                parts.append(text.strip("\n"))
        return "\n\n".join(parts) + "\n" if parts else ""


class Domain(ABC):
    """Base class of every domain.

    Subclasses set ``name`` and implement :meth:`seeds`, :meth:`context`,
    :attr:`descriptor_space`, and either :meth:`run` and :meth:`score` (with ``scoring =
    "separate"``) or :meth:`evaluate` (``scoring = "in_process"``, the default). ``eval_timeout``
    (seconds, for running and scoring together) and ``qd_offset`` (at or below the lowest fitness
    the domain can produce) have domain-specific defaults.

    Attributes:
        scoring: ``"separate"``: the sandbox runs :meth:`run` in the program's child and
            :meth:`score` in a separate process; ``"in_process"``: it runs :meth:`evaluate`;
            ``"llm"``: no sandbox, the runner awaits :meth:`assess` in the engine.
        llm_role: ``"judge"`` or ``"task"``, stored with the calls :meth:`assess` makes
            (``scoring = "llm"`` only).
        fitness_bounds: closed ``(low, high)`` bounds of every fitness the domain can give, or
            None; an ``ok`` evaluation outside them is ``rejected`` by the engine.
        descriptors_in_space: whether every descriptor lies inside :attr:`descriptor_space`'s
            bounds; when True, an ``ok`` evaluation outside them is ``rejected``.
        needs_scratch: programs get an empty writable working directory (the sandbox's
            ``scratch``; ``tempfile`` writes there), emptied after each program.
        memory_mb: the domain's own memory limit per program (None: the engine's setting).
        reevaluate_best: how many times the runner re-evaluates a candidate that would be the
            run's new best; it must reproduce its fitness within ``reproduce_tolerance``
            (relative) each time, else it is ``rejected``. 0 (the default) turns this off.
        reevaluate_fresh_seeds: re-evaluations use seeds derived from the candidate's seed
            (True) or the candidate's seed itself (False).

    A domain may also define ``report_view(program: dict) -> str | None``: its own HTML
    fragment of a stored program for ``evolm report``, used before the built-in views (see
    :func:`evolm.report.domain_views.view` and docs/domains.md). It runs in the report's process,
    so it must never run the program.

    A domain may also define ``random_program(rng: numpy.random.Generator) -> str``: a random
    program of its own kind, the same for the same generator state, meant to be valid most of
    the time. It is what random search (the ``random`` operator, the ``random`` baseline of
    ``evolm compare``) samples, so it should cover the domain's space broadly rather than write
    good programs. :func:`operator_context` hands it to operators through
    :attr:`DomainContext.random_program`. The image, Sodarace and parity domains define one.
    """

    name: str = "domain"
    eval_timeout: float = 5.0
    qd_offset: float = 0.0
    scoring: ClassVar[Literal["separate", "in_process", "llm"]] = "in_process"
    llm_role: ClassVar[Role] = "judge"
    fitness_bounds: ClassVar[tuple[float, float] | None] = None
    descriptors_in_space: ClassVar[bool] = False
    needs_scratch: ClassVar[bool] = False
    memory_mb: int | None = None
    reevaluate_best: int = 0
    reproduce_tolerance: float = 1e-9
    reevaluate_fresh_seeds: bool = False

    def worker_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters a sandbox worker rebuilds this domain from, given those it was built
        with. Workers cannot read the user's files: a domain built from files returns their
        contents here. Default: ``params`` unchanged."""
        return params

    def prepare(self, code: str) -> str:
        """The program to store and evaluate for a candidate's ``code`` (engine side, after
        the operator and before evaluation). Raise ``ValueError(reason)`` to make the
        candidate ``invalid``. Default: ``code`` unchanged."""
        return code

    @property
    @abstractmethod
    def descriptor_space(self) -> DescriptorSpace:
        """Names and bounds of the behaviour descriptors."""

    @abstractmethod
    def seeds(self) -> list[str]:
        """Seed programs (source text), each valid for :meth:`evaluate`."""

    @abstractmethod
    def context(self) -> DomainContext:
        """Prompt context for operators."""

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        """Run ``code`` and score it in this process; must not raise for bad code.

        In a sandbox this runs in the program's child (``scoring = "in_process"``). A two-phase
        domain inherits this definition, :meth:`score` of what :meth:`run` returned, which is
        also its trusted one-process path (tests, reference programs).
        """
        if self.scoring != "separate":
            raise NotImplementedError(
                f"domain {type(self).__name__} implements neither evaluate(code, seed) nor "
                'run(code, seed) and score(data, seed) with scoring = "separate"'
            )
        out = self.run(code, seed)
        return out if isinstance(out, Evaluation) else self.score(out, seed)

    def run(self, code: str, seed: int = 0) -> Any:
        """Run ``code`` and return plain data for :meth:`score`, or a failed
        :class:`~evolm.types.Evaluation` (status not ``ok``) saying why it could not.

        Two-phase domains only; runs in the program's sandboxed child; must not raise for bad
        code. Data is None, bool, int, float, str, bytes, lists, dicts with str keys and numeric
        numpy arrays, at most 8 MiB encoded.
        """
        raise NotImplementedError(f"domain {type(self).__name__} has no run(code, seed)")

    def score(self, data: Any, seed: int = 0) -> Evaluation:
        """Score what :meth:`run` returned. Two-phase domains only; runs in the sandbox's scoring
        process, never with the program's code. ``data`` may have been forged by a hostile
        program: validate it and return an ``invalid`` evaluation naming what is wrong."""
        raise NotImplementedError(f"domain {type(self).__name__} has no score(data, seed)")

    async def assess(self, text: str, seed: int, client: LLMClient) -> Evaluation:
        """Score a text with LLM calls (``scoring = "llm"`` only); runs in the engine.

        Make every call through ``client`` (:meth:`LLMClient.option_probs`,
        :meth:`LLMClient.generate`, or an :class:`evolm.judge.Judge` built on it) so it is
        stored, charged and replayed; pass ``seed`` on so a replay asks the same. A failed call
        raises :class:`~evolm.llm.client.LLMCallFailed`: catch it to return a failed evaluation,
        or let it through (the runner makes the candidate ``error`` with the call's error).
        The result goes through :meth:`Evaluation.checked` like any evaluation.
        """
        raise NotImplementedError(
            f"domain {type(self).__name__} has scoring = {self.scoring!r} and no "
            "assess(text, seed, client)"
        )


DOMAINS: Registry[Callable[..., Domain]] = Registry(
    "domain",
    {
        "image": "evolm.domains.image:ImageDomain",
        "parity": "evolm.domains.parity:ParityDomain",
        "poetry": "evolm.domains.poetry:PoetryDomain",
        "prompts": "evolm.domains.prompts:PromptsDomain",
        "puzzles": "evolm.domains.puzzles:puzzle_domain",
        "sodarace": "evolm.domains.sodarace:SodaraceDomain",
        "task": "evolm.domains.task:task_domain",
    },
)
"""Domain classes (or factories) by name, imported on first use; a user domain is
``package.module:Class``, which a sandbox worker can import too."""


def operator_context(domain: Domain) -> DomainContext:
    """The context operators get for ``domain``: its :meth:`Domain.context`, with
    :attr:`DomainContext.random_program` filled from the domain's ``random_program`` method
    when the domain defines one and its context does not name it already (so a user domain
    needs only the method)."""
    ctx = domain.context()
    method = getattr(domain, "random_program", None)
    if ctx.random_program is None and callable(method):
        ctx = dataclasses.replace(ctx, random_program=method)
    return ctx


def register_domain(name: str) -> Callable[[Callable[..., Domain]], Callable[..., Domain]]:
    """Class decorator adding a domain factory to :data:`DOMAINS` under ``name``.

    A sandbox worker is a fresh interpreter: it knows the name only if the module that registers
    it is imported there too. Prefer naming a user domain ``package.module:Class`` in configs.
    """
    return DOMAINS.decorator(name)


def registered_domains() -> list[str]:
    """The registered domain names, sorted."""
    return sorted(DOMAINS.names())


def get_domain(name: str, params: dict[str, Any] | None = None) -> Domain:
    """Build a registered domain, or one named ``package.module:ClassName``.

    Raises:
        ValueError: no domain has that name (the message lists the known ones), the module does
            not load, the parameters are wrong for it, or it builds something not a Domain.
    """
    factory = DOMAINS.get(name)
    try:
        dom = factory(**(params or {}))
    except TypeError as exc:
        raise ValueError(f"bad parameters for domain {name!r}: {exc}") from exc
    if not isinstance(dom, Domain):
        raise ValueError(f"{name!r} built a {type(dom).__name__}, not an evolm Domain")
    return dom
