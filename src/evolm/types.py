"""Core value types shared by every part of evolm.

A :class:`Program` is one candidate (code or text) with its lineage; an :class:`Evaluation` is
what a domain said about it; an :class:`Individual` pairs the two and is what archives store.
Failed candidates are values, not exceptions: they carry a :class:`Status` other than ``ok``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np

__all__ = [
    "FITNESS_LIMIT",
    "SEED_OPERATOR",
    "AddStatus",
    "DescriptorSpace",
    "Evaluation",
    "Individual",
    "Program",
    "Status",
]

#: The ``operator`` of a seed program (one that no operator made): :attr:`Program.operator`'s
#: default.
SEED_OPERATOR = "seed"

#: The largest magnitude an accepted fitness may have. Fitness beyond it is rejected
#: (:meth:`Evaluation.checked`) and never stored in an archive, so a QD score (a sum of
#: ``fitness - qd_offset`` over at most millions of cells) always stays finite. Descriptors need
#: only be finite: archives clip them into the descriptor space's bounds.
FITNESS_LIMIT = 1e100


class Status(StrEnum):
    """Outcome of evaluating one candidate.

    ``ok``: evaluated, fitness and descriptors are finite. ``invalid``: the candidate is not a
    program of the expected form (no code in the completion, wrong return shape). ``error``: the
    program raised or broke a limit. ``timeout``: it ran past its deadline. ``rejected``: the
    evaluator returned something unusable (NaN fitness, descriptors of the wrong length).
    """

    OK = "ok"
    INVALID = "invalid"
    ERROR = "error"
    TIMEOUT = "timeout"
    REJECTED = "rejected"


class AddStatus(IntEnum):
    """Per-item result of :meth:`Archive.add`, ordered so larger means "more new"."""

    NOT_ADDED = 0
    IMPROVED = 1
    NEW = 2


@dataclass(frozen=True)
class DescriptorSpace:
    """Names and closed bounds of the behaviour descriptors of a domain.

    Raises:
        ValueError: names and bounds differ in length, a name repeats, or a lower bound is not
            strictly below its upper bound.
    """

    names: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "bounds", tuple((float(lo), float(hi)) for lo, hi in self.bounds))
        if len(self.names) != len(self.bounds):
            raise ValueError(
                f"descriptor space has {len(self.names)} names but {len(self.bounds)} bounds; "
                "give one (low, high) pair per name"
            )
        if not self.names:
            raise ValueError("descriptor space needs at least one descriptor")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"descriptor names must be unique, got {self.names}")
        for name, (lo, hi) in zip(self.names, self.bounds, strict=True):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"descriptor {name!r} has bounds ({lo}, {hi}); need finite low < high"
                )

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def lower(self) -> np.ndarray:
        return np.array([lo for lo, _ in self.bounds], dtype=np.float64)

    @property
    def upper(self) -> np.ndarray:
        return np.array([hi for _, hi in self.bounds], dtype=np.float64)

    def normalise(self, descriptors: Sequence[float] | np.ndarray) -> np.ndarray:
        """Map descriptors into [0, 1] per dimension (values outside the bounds are clipped).

        Accepts shape ``(dim,)`` or ``(n, dim)``; returns float64 of the same shape.
        """
        x = np.asarray(descriptors, dtype=np.float64)
        return np.clip((x - self.lower) / (self.upper - self.lower), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "bounds": [list(b) for b in self.bounds]}


@dataclass(frozen=True)
class Program:
    """One candidate produced by an operator (or a seed), evaluated or not.

    Attributes:
        id: run-scoped integer id, assigned by the engine in creation order.
        code: the program text (may be empty when no code could be extracted).
        parent_ids: ids of the parents the operator saw (empty for seeds).
        operator: name of the operator that produced it (:data:`SEED_OPERATOR` for seeds).
        model: model name of the LLM that wrote it, if any.
        prompt_hash: sha256 of the prompt it was produced from, if any.
        generation: 1 + the largest parent generation (0 for seeds).
        created_at: UNIX time of creation.
        batch: index of the engine batch it belongs to.
        llm_call_id: row id in ``llm_calls`` of the completion it came from.
        seed: per-candidate seed used for the evaluation (random / numpy reseeding).
    """

    id: int
    code: str
    parent_ids: tuple[int, ...] = ()
    operator: str = SEED_OPERATOR
    model: str | None = None
    prompt_hash: str | None = None
    generation: int = 0
    created_at: float = field(default_factory=time.time)
    batch: int = 0
    llm_call_id: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class Evaluation:
    """What a domain's evaluator said about one program.

    ``fitness`` and ``descriptors`` are only meaningful when ``status`` is ``ok``; ``extras``
    holds JSON-serialisable domain-specific details; ``error`` explains any non-ok status.
    """

    status: Status
    fitness: float | None = None
    descriptors: tuple[float, ...] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0
    cpu_time: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @classmethod
    def failure(cls, status: Status | str, error: str, **kw: Any) -> Evaluation:
        return cls(status=Status(status), error=error, **kw)

    def checked(
        self,
        space: DescriptorSpace,
        fitness_bounds: tuple[float, float] | None = None,
        *,
        descriptors_in_space: bool = False,
    ) -> Evaluation:
        """Return this evaluation, or a ``rejected`` one naming the problem.

        An ``ok`` evaluation must have a finite float fitness and exactly ``space.dim`` finite
        descriptors, and the fitness at most :data:`FITNESS_LIMIT` in magnitude; anything else
        becomes ``rejected`` (its fitness and descriptors dropped, the error naming them) so it can
        never reach an archive. With ``fitness_bounds`` (closed ``(low, high)``, either may be
        infinite) a fitness outside them is rejected too, and with ``descriptors_in_space`` a
        descriptor outside ``space.bounds``: a domain declares both
        (:attr:`evolm.domains.base.Domain.fitness_bounds`) for values it can never produce, which
        only a broken or forged result carries.
        """
        if self.status is not Status.OK:
            return self
        problem = None
        fit = self.fitness
        if fit is None or isinstance(fit, bool):
            problem = f"fitness must be a number, got {fit!r}"
        else:
            try:
                fit = float(fit)
            except (TypeError, ValueError):
                problem = f"fitness must be a number, got {type(fit).__name__}"
            else:
                if not math.isfinite(fit):
                    problem = f"fitness is not finite ({fit})"
                elif abs(fit) > FITNESS_LIMIT:
                    problem = (
                        f"fitness {fit:g} is beyond the limit of +-{FITNESS_LIMIT:g}, the largest "
                        "magnitude evolm accepts (it keeps the QD score finite)"
                    )
        desc: tuple[float, ...] | None = None
        if problem is None:
            try:
                desc = tuple(float(d) for d in (self.descriptors or ()))
            except (TypeError, ValueError):
                problem = f"descriptors must be numbers, got {self.descriptors!r}"
            else:
                if len(desc) != space.dim:
                    problem = f"expected {space.dim} descriptors {space.names}, got {len(desc)}"
                elif not all(math.isfinite(d) for d in desc):
                    problem = f"descriptors are not all finite: {desc}"
        if problem is None and fitness_bounds is not None:
            lo, hi = fitness_bounds
            if not lo <= float(fit) <= hi:  # type: ignore[arg-type]
                problem = f"fitness {fit} is outside the domain's bounds [{lo}, {hi}]"
        if problem is None and descriptors_in_space and desc is not None:
            for name, d, (lo, hi) in zip(space.names, desc, space.bounds, strict=True):
                if not lo <= d <= hi:
                    problem = f"descriptor {name} = {d} is outside its bounds [{lo}, {hi}]"
                    break
        if problem is not None:
            # The values themselves are dropped (the error names them): a non-finite number
            # cannot be stored as JSON, and nothing reads a rejected candidate's scores.
            return replace(
                self,
                status=Status.REJECTED,
                error=f"evaluator result rejected: {problem}",
                fitness=None,
                descriptors=None,
            )
        return replace(self, fitness=fit, descriptors=desc)


@dataclass(frozen=True)
class Individual:
    """A program with its evaluation: the unit archives store."""

    program: Program
    evaluation: Evaluation

    @property
    def id(self) -> int:
        return self.program.id

    @property
    def fitness(self) -> float:
        if self.evaluation.fitness is None:
            raise ValueError(f"program {self.program.id} has no fitness")
        return float(self.evaluation.fitness)

    @property
    def descriptors(self) -> tuple[float, ...]:
        if self.evaluation.descriptors is None:
            raise ValueError(f"program {self.program.id} has no descriptors")
        return self.evaluation.descriptors
