"""The events a run records, as typed records: one place for the schema of the ``events`` table.

Each event is a frozen dataclass with a ``kind`` (the table's ``kind`` column), ``to_payload()``
(the JSON object stored in ``payload``) and ``from_payload()``, which accepts the rows of older
databases: keys they lack take the defaults below. Writing a record gives the same JSON the
dict-based writers gave, so databases written before and after read alike.

The :class:`~evolm.store.RunStore` writes them with ``record()`` and reads them with ``steps()``,
``last_step()``, ``end_event()``, ``resumes()``, ``sandbox_events()`` and ``finetune_rounds()``.
This module imports nothing else from evolm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "EVENT_TYPES",
    "EndEvent",
    "Event",
    "FinetuneRoundEvent",
    "ResumeEvent",
    "SandboxEvent",
    "StepEvent",
]


class Event:
    """Base of the event records: ``kind`` names the row kind, ``batch`` the row's batch."""

    kind: ClassVar[str] = ""

    @property
    def row_batch(self) -> int | None:
        """The ``batch`` column of the row (None for events not tied to a batch)."""
        return None

    def to_payload(self) -> dict[str, Any]:
        """The JSON object stored in the row's ``payload`` column."""
        raise NotImplementedError


def _arms(raw: Any) -> dict[str, dict[str, float]]:
    return {str(k): dict(v) for k, v in (raw or {}).items()}


@dataclass(frozen=True)
class StepEvent(Event):
    """Progress after one told batch (``step``): the run's snapshot, the batch's evaluation
    statuses, the programs that entered the archive and the per-arm counts.

    ``inserted`` lists ``(program id, AddStatus name)`` for the batch's programs that entered
    the archive; ``arms`` maps ``operator@model`` to ``chosen``, ``parsed``, ``valid``,
    ``inserted`` and ``cost``. ``judge_calls`` counts the LLM calls made to score candidates
    (LLM-scored domains), which ``llm_calls`` (the operators' calls) leaves out.
    """

    kind: ClassVar[str] = "step"

    batch: int
    llm_calls: int
    tokens: int
    cost: float
    evaluations: int
    elites: int
    max_fitness: float | None
    qd_score: float
    coverage: float
    elapsed: float
    statuses: dict[str, int] = field(default_factory=dict)
    inserted: tuple[tuple[int, str], ...] = ()
    num_elites: int = 0
    arms: dict[str, dict[str, float]] = field(default_factory=dict)
    judge_calls: int = 0

    @property
    def row_batch(self) -> int | None:
        return self.batch

    def to_payload(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "llm_calls": self.llm_calls,
            "tokens": self.tokens,
            "cost": self.cost,
            "evaluations": self.evaluations,
            "elites": self.elites,
            "max_fitness": self.max_fitness,
            "qd_score": self.qd_score,
            "coverage": self.coverage,
            "elapsed": self.elapsed,
            "statuses": dict(self.statuses),
            "inserted": [[pid, name] for pid, name in self.inserted],
            "num_elites": self.num_elites,
            "arms": _arms(self.arms),
            # only LLM-scored runs make judge calls; other runs' steps keep their old JSON
            **({"judge_calls": self.judge_calls} if self.judge_calls else {}),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any], batch: int | None = None) -> StepEvent:
        """Read a stored payload; ``batch`` is the row's column (the payload's own is a copy)."""
        p = payload
        b = batch if batch is not None else int(p.get("batch", 0))
        return cls(
            batch=b,
            llm_calls=int(p.get("llm_calls", 0)),
            tokens=int(p.get("tokens", 0)),
            cost=float(p.get("cost", 0.0)),
            evaluations=int(p.get("evaluations", 0)),
            elites=int(p.get("elites", p.get("num_elites", 0))),
            max_fitness=p.get("max_fitness"),
            qd_score=float(p.get("qd_score", 0.0)),
            coverage=float(p.get("coverage", 0.0)),
            elapsed=float(p.get("elapsed", 0.0)),
            statuses={str(k): int(v) for k, v in (p.get("statuses") or {}).items()},
            inserted=tuple((int(i), str(s)) for i, s in p.get("inserted") or ()),
            num_elites=int(p.get("num_elites", p.get("elites", 0))),
            arms=_arms(p.get("arms")),
            judge_calls=int(p.get("judge_calls", 0)),
        )


@dataclass(frozen=True)
class EndEvent(Event):
    """How a run (or one resumed stretch of it) ended (``end``)."""

    kind: ClassVar[str] = "end"

    status: str
    reason: str
    elapsed: float = 0.0
    selector: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "elapsed": self.elapsed,
            "selector": dict(self.selector),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any], batch: int | None = None) -> EndEvent:
        """Read a stored payload (``batch`` is unused: end events have none)."""
        return cls(
            status=str(payload.get("status", "")),
            reason=str(payload.get("reason", "")),
            elapsed=float(payload.get("elapsed", 0.0)),
            selector=dict(payload.get("selector") or {}),
        )


@dataclass(frozen=True)
class ResumeEvent(Event):
    """A resume (``resume``): the first batch asked again, and how many in-flight programs of
    the interrupted run were dropped."""

    kind: ClassVar[str] = "resume"

    from_batch: int
    dropped_in_flight: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {"from_batch": self.from_batch, "dropped_in_flight": self.dropped_in_flight}

    @classmethod
    def from_payload(cls, payload: dict[str, Any], batch: int | None = None) -> ResumeEvent:
        """Read a stored payload (``batch`` is unused: resume events have none)."""
        return cls(
            from_batch=int(payload.get("from_batch", 0)),
            dropped_in_flight=int(payload.get("dropped_in_flight", 0)),
        )


@dataclass(frozen=True)
class SandboxEvent(Event):
    """Where programs ran for a run or a resumed stretch (``sandbox``): the evaluator's name and
    what it reports about itself (for the sandbox pool: tier, reason, workers, ...)."""

    kind: ClassVar[str] = "sandbox"

    evaluator: str
    info: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {**self.info, "evaluator": self.evaluator}

    @classmethod
    def from_payload(cls, payload: dict[str, Any], batch: int | None = None) -> SandboxEvent:
        """Read a stored payload; rows older than the evaluator protocol name ``sandbox``."""
        info = {k: v for k, v in payload.items() if k != "evaluator"}
        return cls(evaluator=str(payload.get("evaluator", "sandbox")), info=info)


@dataclass(frozen=True)
class FinetuneRoundEvent(Event):
    """One fine-tuning round (``finetune_round``), stored after ``batch``, the last batch told
    before it (see :mod:`evolm.finetune.loop` for what each field holds)."""

    kind: ClassVar[str] = "finetune_round"

    batch: int
    round: int
    status: str
    error: str | None = None
    trigger_batch: int | None = None
    accepted: int = 0
    period: dict[str, Any] = field(default_factory=dict)
    arms: dict[str, dict[str, float]] = field(default_factory=dict)
    databases: tuple[str, ...] = ()
    out_dir: str | None = None
    adapter: str | None = None
    adapter_sha256: str | None = None
    examples: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    applied: tuple[str, ...] = ()
    note: str = ""

    @property
    def ok(self) -> bool:
        """The round trained without an error."""
        return self.status == "ok"

    @property
    def row_batch(self) -> int | None:
        return self.batch

    def to_payload(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "status": self.status,
            "error": self.error,
            "trigger_batch": self.trigger_batch,
            "accepted": self.accepted,
            "period": dict(self.period),
            "arms": _arms(self.arms),
            "databases": list(self.databases),
            "out_dir": self.out_dir,
            "adapter": self.adapter,
            "adapter_sha256": self.adapter_sha256,
            "examples": dict(self.examples),
            "metrics": dict(self.metrics),
            "seconds": self.seconds,
            "applied": list(self.applied),
            "note": self.note,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any], batch: int | None = None) -> FinetuneRoundEvent:
        """Read a stored payload; ``batch`` is the row's column."""
        p = payload
        return cls(
            batch=int(batch if batch is not None else p.get("batch", -1)),
            round=int(p.get("round", 0)),
            status=str(p.get("status", "failed")),
            error=p.get("error"),
            trigger_batch=p.get("trigger_batch"),
            accepted=int(p.get("accepted", 0)),
            period=dict(p.get("period") or {}),
            arms=_arms(p.get("arms")),
            databases=tuple(str(d) for d in p.get("databases") or ()),
            out_dir=p.get("out_dir"),
            adapter=p.get("adapter"),
            adapter_sha256=p.get("adapter_sha256"),
            examples=dict(p.get("examples") or {}),
            metrics=dict(p.get("metrics") or {}),
            seconds=float(p.get("seconds", 0.0)),
            applied=tuple(str(a) for a in p.get("applied") or ()),
            note=str(p.get("note", "")),
        )


EVENT_TYPES: dict[str, type[Event]] = {
    t.kind: t for t in (StepEvent, EndEvent, ResumeEvent, SandboxEvent, FinetuneRoundEvent)
}
"""Event record class by row kind."""
