"""The scheduler: ask batch ``k``, tell batch ``k``; synchronous and deterministic.

The scheduler owns what decides *which* candidates a run tries: the archive, the arms
(operator x model) and the selector that picks them, the parent policy (the seeds first, then
the archive), the per-batch random generator ``default_rng([seed, k])`` and the budget. It has no
asyncio, database or sandbox in it: :meth:`Scheduler.ask` returns a :class:`Batch` of candidates
(each a proposal: an LLM request, or finished code), whoever runs them returns one
:class:`Outcome` per candidate, and :meth:`Scheduler.tell` inserts them and learns from them.

Determinism: with the same seed and the same outcomes, the same calls give the same archive,
whatever the timing. The runner (:mod:`evolm.runner`) keeps that by telling batches strictly in
index order and asking batch ``k`` right after telling batch ``max(k - depth, 0)``
(:meth:`Scheduler.asked_after`); resume replays the stored batches through
:meth:`Scheduler.replay` and asks exactly what the live run asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from evolm.archives.base import Archive, EmptyArchiveError
from evolm.config import ConfigError, RunConfig
from evolm.operators import OPERATORS, make_operator
from evolm.operators.bandit import Selector, make_selector
from evolm.operators.base import Operator, Proposal
from evolm.scheduler.budget import Budget
from evolm.scheduler.rebuild import apply_batch
from evolm.types import SEED_OPERATOR, AddStatus, Evaluation, Individual, Program, Status

if TYPE_CHECKING:
    from evolm.domains.base import DomainContext
    from evolm.llm.base import Completion, LLMBackend, Request

__all__ = [
    "ALL_CALLS_FAILED_STOP",
    "LLM_CALL_FAILED",
    "Arm",
    "Batch",
    "Candidate",
    "Outcome",
    "Pauses",
    "Scheduler",
    "Snapshot",
    "Told",
    "build_arms",
    "build_selector",
]

SEED = SEED_OPERATOR
"""The operator name recorded for the seed programs (batch 0): :data:`evolm.types.SEED_OPERATOR`."""

LLM_CALL_FAILED = "LLM call failed: "
"""How the error of a candidate whose LLM call failed begins (the call's error follows)."""

ALL_CALLS_FAILED_STOP = 16
"""The run stops (and fails) once this many LLM calls are told and every one has failed: a
server that is down or a model setting that every request trips is not worth a whole budget.
A run whose budget ends sooner, with every call failed, fails at its end the same way."""


@dataclass(frozen=True)
class Arm:
    """One (operator, model) pair a prompt can go to; ``llm`` is None for LLM-free operators.
    ``label`` is ``operator@model`` (or the operator's label alone)."""

    label: str
    operator: Operator
    llm: LLMBackend | None
    weight: float


@dataclass(frozen=True)
class Candidate:
    """One candidate of a batch, before it runs: its id, parents, proposal, evaluation seed and
    arm (-1 for seeds)."""

    program_id: int
    parents: tuple[Individual, ...]
    proposal: Proposal
    seed: int
    arm: int = -1


@dataclass(frozen=True)
class Batch:
    """The candidates asked as batch ``index``."""

    index: int
    candidates: tuple[Candidate, ...]

    @property
    def llm_calls(self) -> int:
        return sum(c.proposal.request is not None for c in self.candidates)


@dataclass(frozen=True)
class Outcome:
    """What became of one candidate: the program (with lineage), its evaluation, the LLM's
    completion if a model was called, whether code could be extracted from it, and the calls
    that scored it (LLM-scored domains: ``(request, completion)`` pairs, in order)."""

    program: Program
    evaluation: Evaluation
    completion: Completion | None = None
    parsed: bool = True
    judge_calls: tuple[tuple[Request, Completion], ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Progress after a told batch (what the CLI shows and events store)."""

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
    inserted: int = 0  # candidates (seeds excluded) that entered the archive, NEW or IMPROVED
    judge_calls: int = 0  # LLM calls that scored candidates (not in llm_calls)


@dataclass(frozen=True)
class Told:
    """The result of telling one batch."""

    index: int
    individuals: tuple[Individual, ...]
    statuses: tuple[AddStatus, ...]
    accepted: int  # candidates that entered the archive (0 for the seed batch)
    arm_stats: dict[str, dict[str, float]]
    snapshot: Snapshot

    @property
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ind in self.individuals:
            key = ind.evaluation.status.value
            counts[key] = counts.get(key, 0) + 1
        return counts


class Pauses(Protocol):
    """Something that pauses asking between batches (a fine-tuning schedule): while ``due``,
    nothing is asked; after a pause that followed batch ``last_round_batch``, the pipeline
    restarts as after the seed batch."""

    @property
    def due(self) -> bool: ...

    @property
    def last_round_batch(self) -> int | None: ...


def build_arms(config: RunConfig, context: DomainContext, llms: Sequence[LLMBackend]) -> list[Arm]:
    """Every LLM operator with every model (``llms`` in ``config.model_list()`` order), and
    every LLM-free operator once, with the configured weights.

    Raises:
        ConfigError: every arm has weight 0.
    """
    labels: list[str] = []
    for m, llm in zip(config.model_list(), llms, strict=True):
        label = m.name or llm.model
        labels.append(label if label not in labels else f"{label}#{len(labels) + 1}")
    arms: list[Arm] = []
    for oc in config.operator_list():
        op_label = oc.name or oc.kind
        if oc.kind in OPERATORS and not OPERATORS[oc.kind].uses_llm:
            op = make_operator(oc.kind, context, config.llm.mode, **oc.params)
            op.name = op_label
            arms.append(Arm(op_label, op, None, oc.weight))
            continue
        per_model = []
        for m, llm, label in zip(config.model_list(), llms, labels, strict=True):
            sampling = {
                "max_tokens": m.max_tokens,
                "temperature": m.temperature,
                "repeat_penalty": m.repeat_penalty,
            }
            op = make_operator(
                oc.kind, context, m.mode, **{**sampling, "top_p": m.top_p, **oc.params}
            )
            op.name = op_label
            per_model.append(Arm(f"{op_label}@{label}", op, llm, oc.weight))
        total = sum(m.weight for m in config.model_list())
        arms += [
            dataclasses.replace(a, weight=a.weight * m.weight / total if total > 0 else 0.0)
            for a, m in zip(per_model, config.model_list(), strict=True)
        ]
    if sum(a.weight for a in arms) <= 0:
        raise ConfigError("every (operator, model) pair has weight 0; raise some weight")
    return arms


def build_selector(config: RunConfig, arms: Sequence[Arm]) -> Selector:
    """The arm selector ``config.bandit`` describes."""
    b = config.bandit
    return make_selector(
        [a.label for a in arms],
        b.kind,
        weights=[a.weight for a in arms],
        c=b.c,
        prior=b.prior,
        cost_aware=b.cost_aware,
        window=b.window,
    )


class Scheduler:
    """Ask and tell batches over an archive, a set of arms and a budget.

    Args:
        config: the run configuration (seed, engine sizes, selection strategy).
        archive: the (empty, or rebuilt by :meth:`replay`) archive.
        arms: the arms, as :func:`build_arms` makes them.
        budget: the run's budget; the scheduler reserves and charges it.
        selector: picks arms for prompts (default: :func:`build_selector`).
        pauses: a fine-tuning schedule, or None.
    """

    def __init__(
        self,
        config: RunConfig,
        archive: Archive,
        arms: Sequence[Arm],
        budget: Budget,
        *,
        selector: Selector | None = None,
        pauses: Pauses | None = None,
    ) -> None:
        self.config = config
        self.archive = archive
        self.arms = list(arms)
        self.budget = budget
        self.selector = selector if selector is not None else build_selector(config, self.arms)
        self.pauses = pauses
        self.cost_in_usd = config.cost_in_usd()
        self.seeds: list[Individual] = []
        self.next_id = 0
        self.next_batch = 0
        self.inserted = 0
        self.stop_reason: str | None = None
        self.calls_ok = 0  # told LLM calls that answered
        self.calls_failed = 0  # told LLM calls that failed
        self.last_call_error: str | None = None

    # -- stopping -------------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Stop asking; the first reason given is the one kept."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def check_stop(self) -> str | None:
        """Stop if a budget or the target says so, or once :data:`ALL_CALLS_FAILED_STOP` LLM
        calls have failed and none answered; returns the stop reason, if any."""
        if self.stop_reason is None:
            reason = None
            if self.calls_failed >= ALL_CALLS_FAILED_STOP:
                reason = self.calls_failure()
            if reason is None:
                reason = self.budget.stop_reason(
                    self.archive.stats.max_fitness, self.config.engine.batch_size
                )
            if reason is not None:
                self.stop_reason = reason
        return self.stop_reason

    def calls_failure(self) -> str | None:
        """Why the run failed if it made LLM calls and every one failed, else None."""
        if self.calls_ok or not self.calls_failed:
            return None
        return (
            f"every LLM call failed: {self.last_call_error} ({self.calls_failed} calls, none "
            "answered; check that the server is up and the model settings are right, then start "
            "a new run)"
        )

    def _count_calls(self, individuals: Sequence[Individual]) -> None:
        """Count the told LLM calls that answered and that failed (live and on resume, from the
        same stored facts: a prompt hash means a call, :data:`LLM_CALL_FAILED` a failed one)."""
        for ind in individuals:
            if ind.program.prompt_hash is None:
                continue
            error = ind.evaluation.error or ""
            if ind.evaluation.status is Status.INVALID and error.startswith(LLM_CALL_FAILED):
                self.calls_failed += 1
                self.last_call_error = error[len(LLM_CALL_FAILED) :]
            else:
                self.calls_ok += 1

    # -- ask ------------------------------------------------------------------------------
    def seed_batch(self, codes: Sequence[str]) -> Batch:
        """Batch 0: the domain's seed programs (cut to the evaluation budget)."""
        if self.config.budget.evaluations is not None:
            codes = list(codes)[: self.config.budget.evaluations]
        cands = tuple(
            Candidate(self.next_id + i, (), Proposal((), None, code=c), i)
            for i, c in enumerate(codes)
        )
        self.next_id += len(cands)
        self.next_batch = 1
        self.budget.reserve(evaluations=len(cands))
        return Batch(0, cands)

    def asked_after(self, told: int) -> range:
        """Indices of the batches asked right after batch ``told`` is told: none while a pause
        is due (the drain); ``depth`` at once after the seed batch and after a pause (the
        pipeline restarts); else batch ``told + depth``."""
        depth = self.config.engine.pipeline_depth
        p = self.pauses
        if p is not None and p.due:
            return range(0)
        if told == 0 or (p is not None and p.last_round_batch == told):
            return range(told + 1, told + depth + 1)
        return range(told + depth, told + depth + 1)

    def ask_after(self, told: int) -> list[Batch]:
        """Check the budgets, then ask the batches due after batch ``told``."""
        self.check_stop()
        asked = []
        for k in self.asked_after(told):
            if self.stop_reason is not None or k != self.next_batch:
                break
            batch = self.ask()
            if batch is None:
                break
            asked.append(batch)
        return asked

    def ask(self) -> Batch | None:
        """Ask the next batch, or None when the budget allows no candidate."""
        index = self.next_batch
        n = self.budget.ask_size(self.config.engine.batch_size)
        if n <= 0:
            return None
        rng = np.random.default_rng([self.config.seed, index])
        per_prompt = self.config.llm.samples_per_prompt
        # Arms come from their own stream, so a one-arm run draws exactly what it always did.
        arm_rng = np.random.default_rng([self.config.seed, index, 1])
        arms = self.selector.choose(-(-n // per_prompt), arm_rng)
        calls_left = self.budget.calls_left(n)
        cands: list[Candidate] = []
        next_id = self.next_id
        for i in range(n):
            arm = arms[i // per_prompt]
            if i % per_prompt == 0:
                operator = self.arms[arm].operator
                parents = self.parents(index, operator, rng)
                proposal = operator.propose(parents, rng)
            elif proposal.request is not None:  # another sample of the same prompt
                request = dataclasses.replace(proposal.request, seed=int(rng.integers(2**31)))
                proposal = dataclasses.replace(proposal, request=request)
            else:  # an LLM-free operator: another mutation of the same parents
                proposal = operator.propose(parents, rng)
            if proposal.request is not None:
                if calls_left <= 0:
                    break
                calls_left -= 1
            seed = int(rng.integers(2**31 - 1))
            cands.append(Candidate(next_id, parents, proposal, seed, arm))
            next_id += 1
        if not cands:
            return None
        batch = Batch(index, tuple(cands))
        self.next_id = next_id
        self.next_batch += 1
        self.budget.reserve(llm_calls=batch.llm_calls, evaluations=len(cands))
        return batch

    def parents(
        self, batch: int, operator: Operator, rng: np.random.Generator
    ) -> tuple[Individual, ...]:
        """The parent policy: uniform over the seeds that ran (all seeds if none did) during
        the initial batches or while the archive is empty; then the operator's selection
        from the archive."""
        k = operator.num_parents
        pool = [s for s in self.seeds if s.evaluation.ok] or self.seeds
        if batch <= self.config.engine.init_batches or len(self.archive) == 0:
            idx = rng.integers(len(pool), size=k)
            return tuple(pool[i] for i in idx)
        try:
            return tuple(operator.select_parents(self.archive, self.config.archive.selection, rng))
        except EmptyArchiveError:
            idx = rng.integers(len(pool), size=k)
            return tuple(pool[i] for i in idx)

    # -- tell -----------------------------------------------------------------------------
    def tell(self, batch: Batch, outcomes: Sequence[Outcome]) -> Told:
        """Insert a batch's outcomes (one per candidate, in order), charge the budget and
        reward the selector.

        Raises:
            ValueError: ``outcomes`` does not match the batch's candidates.
        """
        if len(outcomes) != len(batch.candidates):
            raise ValueError(
                f"batch {batch.index} has {len(batch.candidates)} candidates, got "
                f"{len(outcomes)} outcomes"
            )
        inds = tuple(Individual(o.program, o.evaluation) for o in outcomes)
        statuses = tuple(apply_batch(self.archive, inds))
        if batch.index == 0:
            self.seeds = list(inds)
        self._count_calls(inds)
        called = [o.completion for o in outcomes if o.completion is not None]
        judged = [c for o in outcomes for _, c in o.judge_calls]
        self.budget.charge(
            llm_calls=len(called),
            tokens=sum(c.tokens_in + c.tokens_out for c in [*called, *judged]),
            cost=sum(c.cost for c in [*called, *judged]),
            evaluations=len(inds),
            judge_calls=len(judged),
        )
        accepted = sum(st is not AddStatus.NOT_ADDED for st in statuses) if batch.index else 0
        self.inserted += accepted
        arm_stats = self._arm_stats(batch, outcomes, statuses)
        self.learn(arm_stats)
        return Told(batch.index, inds, statuses, accepted, arm_stats, self.snapshot(batch.index))

    def _arm_stats(
        self, batch: Batch, outcomes: Sequence[Outcome], statuses: Sequence[AddStatus]
    ) -> dict[str, dict[str, float]]:
        """Per arm of this batch: candidates, parsed, valid (ran ok), inserted, and cost."""
        out: dict[str, dict[str, float]] = {}
        for c, o, st in zip(batch.candidates, outcomes, statuses, strict=True):
            if c.arm < 0:
                continue
            row = out.setdefault(
                self.arms[c.arm].label,
                {"chosen": 0, "parsed": 0, "valid": 0, "inserted": 0, "cost": 0.0},
            )
            row["chosen"] += 1
            row["parsed"] += int(o.parsed)
            row["valid"] += int(o.evaluation.ok)
            row["inserted"] += int(st is not AddStatus.NOT_ADDED)
            if o.completion is not None:
                comp = o.completion
                row["cost"] += comp.cost if self.cost_in_usd else comp.tokens_in + comp.tokens_out
        return out

    def learn(self, arm_stats: dict[str, Any]) -> None:
        """Reward the selector with one told batch's per-arm stats (live and on resume)."""
        index = {a.label: i for i, a in enumerate(self.arms)}
        rows = [
            (index[label], float(r["chosen"]), float(r["inserted"]), float(r["cost"]))
            for label, r in arm_stats.items()
            if label in index
        ]
        if rows:
            self.selector.update(rows)

    def snapshot(self, batch: int) -> Snapshot:
        """Progress now, labelled as after batch ``batch``."""
        st = self.archive.stats
        s = self.budget.spent
        return Snapshot(
            batch=batch,
            llm_calls=s.llm_calls,
            tokens=s.tokens,
            cost=s.cost,
            evaluations=s.evaluations,
            elites=st.num_elites,
            max_fitness=st.max_fitness,
            qd_score=st.qd_score,
            coverage=st.coverage,
            elapsed=self.budget.elapsed,
            inserted=self.inserted,
            judge_calls=s.judge_calls,
        )

    # -- resume ---------------------------------------------------------------------------
    def replay(
        self, index: int, individuals: Sequence[Individual], arm_stats: dict[str, Any]
    ) -> None:
        """Resume: tell a stored batch again, exactly as the live run told it (the budget is
        restored separately, from the stored totals)."""
        apply_batch(self.archive, individuals)
        if index == 0:
            self.seeds = list(individuals)
        self._count_calls(individuals)
        self.learn(arm_stats)
