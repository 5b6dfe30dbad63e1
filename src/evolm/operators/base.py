"""The operator protocol (pyribs would say emitter): parents in, LLM requests out, code back.

An operator works in two steps so the engine can batch LLM calls and record everything:
:meth:`Operator.propose` turns parents into a :class:`Proposal` holding an LLM request (or, for
LLM-free operators, the finished code), and :meth:`Operator.finish` turns the completion text into
program code or a recorded failure reason. The proposal carries its parents and whatever else
``finish`` needs (:attr:`Proposal.prefix`), so ``finish`` never reads the prompt back.
LLM-free operators (``uses_llm = False``) implement only ``propose``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evolm.archives.base import Archive
from evolm.domains.base import DomainContext
from evolm.llm.base import Request
from evolm.types import Individual

__all__ = [
    "Operator",
    "Proposal",
    "Result",
    "check_sampling",
    "choice_weights",
    "validated_choices",
]


@dataclass(frozen=True)
class Proposal:
    """What an operator wants generated. ``request`` is None for LLM-free operators, whose
    ``code`` is already final, or whose ``error`` says why they produced nothing (the candidate
    is then recorded as ``invalid`` with that reason).

    Attributes:
        parent_ids: ids of the parents, in the order the operator was given them.
        request: the LLM request, or None (LLM-free operators, seeds).
        code: finished code of an LLM-free proposal.
        error: why an LLM-free operator produced nothing.
        parents: the parents themselves (keyword only; empty for seeds), in the order of
            ``parent_ids``. :meth:`Operator.finish` reads the parent's code from here. Not
            compared: ``parent_ids`` names the same parents.
        prefix: keyword only. In completion mode, the head of the new program that ends the
            prompt and that the model continues (imports and the ``def`` line); ``finish``
            prepends it to unfenced answer text. ``""`` when there is none.
        detail: keyword only. Anything else an operator's ``finish`` needs, as a tuple of
            plain values (:class:`~evolm.operators.line_edit.LineEdit`: where the new line
            goes). ``()`` when there is nothing.
    """

    parent_ids: tuple[int, ...]
    request: Request | None
    code: str | None = None
    error: str | None = None
    parents: tuple[Individual, ...] = field(default=(), kw_only=True, compare=False)
    prefix: str = field(default="", kw_only=True)
    detail: tuple[int | str, ...] = field(default=(), kw_only=True)


@dataclass(frozen=True)
class Result:
    """Code extracted from a completion, or the reason there is none (``code`` empty)."""

    code: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Operator(ABC):
    """Base class. ``num_parents`` is how many parents :meth:`propose` wants; ``uses_llm`` is
    False for operators that never call a model (their proposals carry finished code)."""

    name: str = "operator"
    num_parents: int = 1
    uses_llm: bool = True

    def __init__(self, context: DomainContext, mode: str = "chat") -> None:
        if mode not in ("chat", "completion"):
            raise ValueError(f"operator mode must be 'chat' or 'completion', got {mode!r}")
        self.context = context
        self.mode = mode

    def select_parents(
        self, archive: Archive, strategy: str, rng: np.random.Generator
    ) -> list[Individual]:
        """Draw :attr:`num_parents` parents from a non-empty archive. The default uses the run's
        selection ``strategy``; operators with their own notion of parents (LMX) override it.

        Raises:
            EmptyArchiveError: the archive holds no elites.
        """
        return archive.sample(self.num_parents, strategy, rng)

    @abstractmethod
    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Build a proposal from ``parents`` (len == ``num_parents``)."""

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """Extract the program from a completion text; LLM operators override this.

        Raises:
            NotImplementedError: the operator does not call an LLM (its proposals carry their
                code already), or an LLM operator does not implement ``finish``.
        """
        if not self.uses_llm:
            raise NotImplementedError(
                f"operator {self.name!r} does not call an LLM: its proposals already carry their "
                "code (Proposal.code), so there is no completion to finish"
            )
        raise NotImplementedError(
            f"operator {self.name!r} ({type(self).__name__}) sets uses_llm = True but does not "
            "implement finish(proposal, completion); implement it, or set uses_llm = False"
        )


def check_sampling(
    max_tokens: int, temperature: float, top_p: float, repeat_penalty: float
) -> None:
    """Check an operator's sampling parameters.

    Raises:
        ValueError: ``max_tokens`` is not an int >= 1, ``repeat_penalty`` not finite and > 0,
            ``temperature`` not finite and >= 0, or ``top_p`` not in (0, 1].
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an int >= 1, got {max_tokens!r}")
    if not (math.isfinite(repeat_penalty) and repeat_penalty > 0):
        raise ValueError(f"repeat_penalty must be > 0 (1.0 is off), got {repeat_penalty!r}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if not (0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def choice_weights(weights: Sequence[float] | None, n: int, what: str) -> np.ndarray:
    """Probabilities of ``n`` choices from relative ``weights`` (default: uniform).

    ``what`` names one choice in messages, e.g. ``"instruction (4)"``.

    Raises:
        ValueError: ``weights`` is not a list of numbers, has the wrong length, or is negative,
            non-finite or all zero.
    """
    if weights is None:
        return np.full(n, 1.0 / n)
    if isinstance(weights, str):
        raise ValueError(f"weights must be a list of numbers, got {weights!r}")
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weights must be a list of numbers, got {weights!r}") from exc
    if w.shape != (n,):
        raise ValueError(f"weights must give one number per {what}, got {list(weights)}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all zero, got {list(w)}")
    return w / w.sum()


def validated_choices(
    items: Sequence[str], weights: Sequence[float] | None, what: str, one: str | None = None
) -> tuple[tuple[str, ...], np.ndarray]:
    """Non-empty strings to draw from and their probabilities (see :func:`choice_weights`).
    ``what`` names the list in messages (``"instructions"``), ``one`` an entry of it
    (default ``"entry of <what>"``).

    Raises:
        ValueError: ``items`` is one string, empty or holds a blank or non-string entry, or the
            weights are bad.
    """
    if isinstance(items, str):
        raise ValueError(f"{what} must be a list of strings, not one string")
    chosen = tuple(items)
    if not chosen:
        raise ValueError(f"{what} must not be empty")
    one = one or f"entry of {what}"
    for item in chosen:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"every {one} must be a non-empty string, got {item!r}")
    return chosen, choice_weights(weights, len(chosen), f"{one} ({len(chosen)})")
