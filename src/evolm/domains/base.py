"""The domain protocol: what a task must provide to be evolved.

A domain gives seed programs, the context an LLM needs to write programs for it, an
``evaluate(code, seed)`` that runs **inside an evaluation worker** (never in the engine's
process), and its descriptor space. Domains are built by name from the registry with keyword
parameters, so a worker process can rebuild the same domain from ``(name, params)``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evolm.registry import Registry
from evolm.types import DescriptorSpace, Evaluation

__all__ = [
    "DOMAINS",
    "Domain",
    "DomainContext",
    "get_domain",
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
    """

    description: str
    function_name: str
    api: str = ""
    language: str = "python"
    file_name: str = "program.py"
    optional_api: dict[str, str] = field(default_factory=dict)

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

    Subclasses set ``name`` and implement :meth:`seeds`, :meth:`context`, :meth:`evaluate` and
    :attr:`descriptor_space`. ``eval_timeout`` (seconds) and ``qd_offset`` (at or below the lowest
    fitness the domain can produce) have domain-specific defaults.
    """

    name: str = "domain"
    eval_timeout: float = 5.0
    qd_offset: float = 0.0

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

    @abstractmethod
    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        """Run ``code`` and score it. Runs in a worker process; must not raise for bad code."""


DOMAINS: Registry[Callable[..., Domain]] = Registry(
    "domain",
    {
        "image": "evolm.domains.image:ImageDomain",
        "parity": "evolm.domains.parity:ParityDomain",
        "sodarace": "evolm.domains.sodarace:SodaraceDomain",
    },
)
"""Domain classes (or factories) by name, imported on first use; a user domain is
``package.module:Class``, which a sandbox worker can import too."""


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
