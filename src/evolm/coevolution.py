"""Co-evolution of programming puzzles and their solutions (ACES-like), on the scheduler.

A run of the ``puzzles`` domain with ``mode = "coevolve"`` holds two populations, each a
:class:`~evolm.scheduler.Scheduler` over its own archive, sharing one
:class:`~evolm.scheduler.Budget`:

- **puzzles**: candidates are a puzzle ``f`` with its reference solution ``g``, written by the
  LLM from two parent puzzles (:class:`~evolm.domains.puzzles.coevolve.PuzzleWriter`). The
  archive is a grid of 2 bins per skill tag (:data:`~evolm.domains.puzzles.skills.SKILLS`);
  fitness is the difficulty, ``1 - solved / k``.
- **solutions**: for every puzzle that parses, ``k`` solving prompts
  (:class:`~evolm.domains.puzzles.coevolve.PuzzleSolver`, few-shot from this archive) are LLM
  calls like any other (stored, budgeted, replayable). An attempt that solves its puzzle is
  kept in a grid over its code features (``loops``, ``ast_nodes``) with the puzzle's difficulty
  as fitness; it is a few-shot example for later solving prompts.

One loop drives both: the puzzle scheduler asks a batch; each candidate is written, checked
(its reference ``g`` and the ``k`` attempts, each a ``solve`` then a ``check`` sandbox job), and
the batch is told to the solution scheduler (the attempts), then to the puzzle scheduler (the
puzzles), and stored in one transaction. Batches run one at a time, so the archives are a pure
function of the seed and the LLM's answers.

A puzzle that no solution solves (neither ``g`` nor any attempt) is stored ``invalid`` with a
reason starting ``unsolvable:``; one that every attempt solves is stored ``rejected`` with
``trivial: solved k/k``; neither is inserted. Every stored evaluation names its population in
``extras["population"]`` (``"puzzles"`` or ``"solutions"``); the two populations' descriptors
differ in number, so a rebuilt run archive (``evolm status``, ``export``) holds the puzzles only.
Batch 0 checks the seed puzzles the same way (``k`` attempts each, no writing call).

Resume is not supported: ``evolm resume`` of a co-evolution run fails with
:data:`RESUME_UNSUPPORTED`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from evolm.archives import make_archive
from evolm.config import BudgetConfig, ConfigError, RunConfig
from evolm.domains.base import get_domain
from evolm.domains.puzzles.coevolve import (
    MAX_SOLVED_SHOWN,
    PuzzleCoevolveDomain,
    PuzzleSolver,
    PuzzleWriter,
    check_job,
    solve_job,
    split_pair,
)
from evolm.domains.puzzles.puzzle import Puzzle, plain_answer
from evolm.domains.puzzles.skills import skill_tags
from evolm.evaluators import EvalJob, Evaluator, build_evaluator
from evolm.events import EndEvent, SandboxEvent, StepEvent
from evolm.llm.base import Completion, LLMBackend, Request
from evolm.runlock import log_traceback
from evolm.scheduler import (
    LLM_CALL_FAILED,
    SEED,
    Arm,
    Batch,
    Budget,
    Candidate,
    Outcome,
    Scheduler,
    Snapshot,
)
from evolm.store import RunStore
from evolm.types import AddStatus, DescriptorSpace, Evaluation, Individual, Program, Status

__all__ = [
    "RESUME_UNSUPPORTED",
    "SOLUTION_SPACE",
    "CoevolutionBudget",
    "CoevolutionRunner",
    "is_coevolution",
]

RESUME_UNSUPPORTED = (
    "this is a puzzles co-evolution run, which cannot be resumed yet: its two populations are "
    "not rebuilt from a run database; start a new run (with a larger budget) instead"
)
"""Why ``evolm resume`` refuses a co-evolution run."""

SOLUTION_SPACE = DescriptorSpace(("loops", "ast_nodes"), ((0.0, 8.0), (0.0, 400.0)))
"""The solution archive's descriptors (a grid of 8 bins each), as in solve mode."""

_MISSING = object()  # an answer the solve job did not send (plain_answer refuses it)

MAX_EXAMPLES = 2
"""Solved puzzles shown to the solver as few-shot examples."""


def is_coevolution(config: RunConfig) -> bool:
    """Whether ``config`` describes a puzzles co-evolution run."""
    return config.domain.name == "puzzles" and config.domain.params.get("mode") == "coevolve"


def runner_for(
    config: RunConfig,
    store: RunStore,
    *,
    llm: LLMBackend | None = None,
    evaluator: Evaluator | None = None,
    on_step: Callable[[Snapshot], None] | None = None,
    on_round: Any = None,
) -> Any:
    """The runner ``config`` needs: a :class:`CoevolutionRunner` for puzzle co-evolution, else
    an :class:`evolm.runner.Runner` (the one place the CLI and :func:`evolm.run` choose)."""
    if is_coevolution(config):
        return CoevolutionRunner(config, store, llm=llm, evaluator=evaluator, on_step=on_step)
    from evolm.runner import Runner

    return Runner(config, store, llm=llm, evaluator=evaluator, on_step=on_step, on_round=on_round)


class CoevolutionBudget(Budget):
    """A :class:`Budget` whose batch size counts whole puzzles: each takes ``per_candidate``
    LLM calls and evaluations (its writing call and its ``k`` solver attempts)."""

    def __init__(self, config: BudgetConfig, per_candidate: int) -> None:
        super().__init__(config)
        self.per_candidate = per_candidate

    def ask_size(self, batch_size: int) -> int:
        """How many puzzles the next batch may have, all their attempts included."""
        b, per, n = self.config, self.per_candidate, batch_size
        if b.llm_calls is not None:
            n = min(n, (b.llm_calls - self.calls_reserved) // per)
        if b.evaluations is not None:
            n = min(n, (b.evaluations - self.evals_reserved) // per)
        return max(n, 0)

    def calls_left(self, n: int) -> int:
        """Writing calls a batch of ``n`` puzzles may make (``n``: its size accounts for the
        attempts already)."""
        return n

    def stop_reason(self, max_fitness: float | None, batch_size: int) -> str | None:
        """As :meth:`Budget.stop_reason`, naming the call or evaluation budget that cannot pay
        for one more puzzle."""
        reason = super().stop_reason(max_fitness, batch_size)
        b = self.config
        if reason is not None and self.ask_size(batch_size) == 0 and "budget" in reason:
            if b.llm_calls is not None and b.llm_calls - self.calls_reserved < self.per_candidate:
                return f"LLM-call budget {b.llm_calls} spent (a puzzle takes {self.per_candidate})"
            if b.evaluations is not None:
                return f"evaluation budget {b.evaluations} spent"
        return reason

    def settle(self) -> None:
        """Release what the told batches reserved and did not spend (no batch is in flight)."""
        self.calls_reserved = self.spent.llm_calls
        self.evals_reserved = self.spent.evaluations


@dataclasses.dataclass
class _Attempt:
    proposal: Any
    seed: int
    code: str = ""
    error: str | None = None
    completion: Completion | None = None
    solve: Evaluation | None = None
    check: Evaluation | None = None

    @property
    def solved(self) -> bool:
        return self.check is not None and self.check.extras.get("solved") is True


@dataclasses.dataclass
class _Pending:
    program: Program
    completion: Completion | None
    failure: Evaluation | None = None
    tags: tuple[int, ...] = ()
    f_source: str = ""
    reference: str = "no reference solution g"
    reference_solved: bool = False
    attempts: list[_Attempt] = dataclasses.field(default_factory=list)


def _hash(req: Request) -> str:
    return hashlib.sha256(req.to_json().encode()).hexdigest()[:16]


class CoevolutionRunner:
    """Runs one puzzles co-evolution (see the module docstring), writing to a :class:`RunStore`.

    Args:
        config: the run configuration; ``domain.params.mode`` is ``"coevolve"``, the archive a
            ``grid`` with ``bins = 2`` (one bin per tag value), one model, no fine-tuning.
        store: a new run database.
        llm: the backend (writer and solver); built from ``config.llm`` when None.
        evaluator: where the jobs run; a local sandbox pool when None.
        on_step: called with the puzzle population's :class:`Snapshot` after every batch.

    Raises:
        ConfigError: a configuration co-evolution does not support (the message says what to
            change).
    """

    def __init__(
        self,
        config: RunConfig,
        store: RunStore,
        *,
        llm: LLMBackend | None = None,
        evaluator: Evaluator | None = None,
        on_step: Callable[[Snapshot], None] | None = None,
    ) -> None:
        domain = get_domain(config.domain.name, config.domain.params)
        if not isinstance(domain, PuzzleCoevolveDomain):
            raise ConfigError("CoevolutionRunner runs the puzzles domain with mode = 'coevolve'")
        a = config.archive
        if a.kind != "grid" or getattr(a, "bins", None) != 2:
            raise ConfigError(
                "puzzles co-evolution keeps its puzzles in a grid of 2 bins per skill tag (each "
                'tag is 0 or 1); set [archive] kind = "grid" and bins = 2'
            )
        if config.models or config.finetune:
            raise ConfigError(
                "puzzles co-evolution uses one model ([llm]) and no fine-tuning; remove "
                "[[models]] and [finetune] from the configuration"
            )
        self.config, self.store, self.domain, self.on_step = config, store, domain, on_step
        self.k = domain.k
        self.eval_timeout = config.engine.eval_timeout or domain.eval_timeout
        self._evaluator = evaluator
        self._owned = llm is None
        if llm is None:
            from evolm.llm.build import build_backend

            llm = build_backend(config)
        self.llm: LLMBackend = llm
        m = config.llm
        sampling: dict[str, Any] = {
            "max_tokens": m.max_tokens,
            "temperature": m.temperature,
            "top_p": m.top_p,
            "repeat_penalty": m.repeat_penalty,
        }
        ctx = domain.context()
        writer = PuzzleWriter(ctx, m.mode, **sampling)
        self.solver = PuzzleSolver(ctx, m.mode, **sampling)
        label = m.name or llm.model
        self.budget = CoevolutionBudget(config.budget, 1 + self.k)
        qd = 0.0
        self.puzzles = Scheduler(
            config,
            make_archive("grid", domain.descriptor_space, qd_offset=qd, bins=2),
            [Arm(f"{writer.name}@{label}", writer, llm, 1.0)],
            self.budget,
        )
        self.solutions = Scheduler(
            config,
            make_archive("grid", SOLUTION_SPACE, qd_offset=qd, bins=8),
            [Arm(f"{self.solver.name}@{label}", self.solver, llm, 1.0)],
            self.budget,
        )
        self._f_of: dict[int, str] = {}  # puzzle id -> its f, for the solver's examples
        self._interrupted = False
        self.last_snapshot: Snapshot | None = None

    # -- control --------------------------------------------------------------------------
    def request_stop(self, reason: str = "interrupted") -> None:
        """Stop after the batch in flight (safe from signal handlers)."""
        self._interrupted = True
        self.puzzles.stop(reason)

    def check_prompt_fits(self) -> None:
        """No check: co-evolution's prompts grow with the puzzles shown (a request that does
        not fit fails as a value, an ``invalid`` candidate)."""

    @property
    def archive(self) -> Any:
        """The puzzle archive."""
        return self.puzzles.archive

    # -- the run --------------------------------------------------------------------------
    async def run(self, *, resume: bool = False) -> Any:
        """Run until a budget, the target, a stop request or an error ends it; returns a
        :class:`evolm.runner.RunResult`.

        Raises:
            ConfigError: ``resume`` (:data:`RESUME_UNSUPPORTED`).
            SandboxUnavailable: no evaluation jail works here (before anything is stored).
        """
        from evolm.runner import RunResult, dependency_versions

        if resume:
            raise ConfigError(RESUME_UNSUPPORTED)
        owned_evaluator = self._evaluator is None
        evaluator = self._evaluator or build_evaluator(self.config, self.domain)
        try:
            await evaluator.start()
            self.store.create_run(
                seed=self.config.seed,
                domain=self.config.domain.name,
                config=self.config.model_dump(mode="json"),
                versions=dependency_versions(),
            )
        except BaseException:
            if owned_evaluator:
                evaluator.close()
            raise
        self.store.set_status("running")
        self.store.record(SandboxEvent(evaluator=evaluator.name, info=dict(evaluator.info)))
        self.budget.start_clock()
        status, error = "completed", None
        try:
            await self._loop(evaluator)
        except asyncio.CancelledError:
            self._interrupted = True
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            self.puzzles.stop(error)
            log_traceback(self.store.path, exc, "the run failed")
        finally:
            if owned_evaluator:
                evaluator.close()
            if self._owned:
                with contextlib.suppress(Exception):
                    await self.llm.aclose()
        if self._interrupted and status != "failed":
            status = "interrupted"
        reason = self.puzzles.stop_reason or "done"
        failure = self._calls_failure()
        if status == "completed" and failure is not None:
            status, reason, error = "failed", failure, failure
        self.store.set_status(status)
        sel = self.puzzles.selector
        self.store.record(
            EndEvent(
                status=status,
                reason=reason,
                elapsed=self.budget.elapsed,
                selector={"kind": sel.kind, "arms": sel.state()},
            )
        )
        return RunResult(status, reason, self.last_snapshot, str(self.store.path), error)

    def _calls_failure(self) -> str | None:
        p, s = self.puzzles, self.solutions
        if p.calls_ok or s.calls_ok or not (p.calls_failed or s.calls_failed):
            return None
        return p.calls_failure() or s.calls_failure()

    async def _loop(self, evaluator: Evaluator) -> None:
        sched = self.puzzles
        seeds = self.domain.seeds()
        afford = self.budget.ask_size(len(seeds))
        if afford <= 0:
            sched.stop("the budget cannot pay for checking one seed puzzle (1 + k evaluations)")
            return
        first = sched.seed_batch(seeds[:afford])
        n = len(first.candidates)
        self.budget.reserve(llm_calls=self.k * n, evaluations=self.k * n)
        if not await self._round(first, evaluator):
            return
        while not self._interrupted:
            if sched.check_stop() is not None:
                return
            batch = sched.ask()
            if batch is None:
                return
            n = len(batch.candidates)
            self.budget.reserve(llm_calls=self.k * n, evaluations=self.k * n)
            if not await self._round(batch, evaluator):
                return

    async def _round(self, batch: Batch, evaluator: Evaluator) -> bool:
        """Write and check one batch, then tell and store it; False (nothing stored) when the
        wall-time budget ran out first."""
        examples = self._examples(batch.index)
        work = asyncio.gather(
            *(
                self._puzzle(batch, j, c, examples, evaluator)
                for j, c in enumerate(batch.candidates)
            )
        )
        try:
            pending = await asyncio.wait_for(work, self.budget.time_left())
        except TimeoutError:
            self.puzzles.stop(self.budget.wall_time_reason())
            return False
        self._tell(batch, list(pending))
        self.budget.settle()
        return True

    def _examples(self, index: int) -> list[tuple[str, str]]:
        """Up to :data:`MAX_EXAMPLES` solved ``(f, g)`` pairs from the solution archive."""
        archive = self.solutions.archive
        if len(archive) == 0:
            return [self._seed_example()] if self.domain.seed_puzzles else []
        rng = np.random.default_rng([self.config.seed, index, 3])
        picks = archive.sample(min(MAX_EXAMPLES, len(archive)), "uniform", rng)
        return [(self._f_of[ind.program.parent_ids[0]], ind.program.code) for ind in picks]

    def _seed_example(self) -> tuple[str, str]:
        p = self.domain.seed_puzzles[0]
        return p.f, p.g

    # -- one puzzle -----------------------------------------------------------------------
    async def _call(self, proposal: Any, finish: Any) -> tuple[str, str | None, Completion]:
        """One LLM call: ``(code, error, completion)``."""
        deadline = self.config.engine.llm_deadline
        try:
            (completion,) = await asyncio.wait_for(self.llm.generate([proposal.request]), deadline)
        except TimeoutError:
            completion = Completion(
                text="", model=self.llm.model, error=f"no answer within the {deadline:g} s deadline"
            )
        if not completion.ok:
            return "", f"{LLM_CALL_FAILED}{completion.error}", completion
        result = finish(proposal, completion.text)
        return result.code, result.error, completion

    async def _job(self, evaluator: Evaluator, code: str, seed: int) -> Evaluation:
        (ev,) = await evaluator.evaluate(
            [EvalJob(Program(id=-1, code=code), seed, self.eval_timeout)]
        )
        return ev

    async def _solve(
        self, evaluator: Evaluator, code: str, f_source: str, seed: int
    ) -> tuple[Evaluation, Evaluation | None]:
        """The ``solve`` job of ``code``, then (when it answered) the ``check`` job."""
        solve = await self._job(evaluator, solve_job(code), seed)
        if not solve.ok:
            return solve, None
        # The child's reply is the program's to forge: check its shape before using it.
        answer, why = plain_answer(solve.extras.get("answer", _MISSING))
        descriptors = solve.descriptors or ()
        if why is not None or len(descriptors) != 2 or not all(map(math.isfinite, descriptors)):
            why = why or "descriptors that are not two finite numbers"
            return Evaluation.failure(Status.INVALID, f"the solve job sent back {why}"), None
        solve = dataclasses.replace(solve, extras={"answer": answer})
        return solve, await self._job(evaluator, check_job(f_source, answer), seed)

    async def _puzzle(
        self,
        batch: Batch,
        j: int,
        cand: Candidate,
        examples: list[tuple[str, str]],
        evaluator: Evaluator,
    ) -> _Pending:
        prop = cand.proposal
        arm = self.puzzles.arms[0]
        completion: Completion | None = None
        if prop.request is None:
            code, error = prop.code or "", prop.error
        else:
            code, error, completion = await self._call(prop, arm.operator.finish)
        program = Program(
            id=cand.program_id,
            code=code,
            parent_ids=tuple(p.program.id for p in cand.parents),
            operator=arm.operator.name if prop.request is not None else SEED,
            model=completion.model if completion is not None else None,
            prompt_hash=_hash(prop.request) if prop.request is not None else None,
            generation=1 + max((p.program.generation for p in cand.parents), default=-1),
            batch=batch.index,
            seed=cand.seed,
        )
        pending = _Pending(program, completion)
        if error is not None:
            pending.failure = Evaluation.failure(Status.INVALID, error)
            return pending
        try:
            f_source, g_source = split_pair(code)
            Puzzle("candidate", 3, f_source)
        except ValueError as exc:
            pending.failure = Evaluation.failure(Status.INVALID, f"not a P3 puzzle: {exc}")
            return pending
        pending.f_source, pending.tags = f_source, skill_tags(code)
        self._f_of[program.id] = f_source
        rng = np.random.default_rng([self.config.seed, batch.index, 2, j])
        parent = Individual(program, Evaluation(Status.OK))
        attempts = [
            _Attempt(
                self.solver.propose_for(parent, f_source, examples, rng),
                int(rng.integers(2**31 - 1)),
            )
            for _ in range(self.k)
        ]
        pending.attempts = attempts

        async def reference() -> None:
            if not g_source:
                return
            solve, check = await self._solve(evaluator, code, f_source, cand.seed)
            pending.reference_solved = check is not None and check.extras.get("solved") is True
            if pending.reference_solved:
                pending.reference = "solved"
            else:
                why = (check or solve).error or "f returned False on g()'s answer"
                pending.reference = f"failed: {why}"

        async def attempt(a: _Attempt) -> None:
            a.code, a.error, a.completion = await self._call(a.proposal, self.solver.finish)
            if a.error is None:
                a.solve, a.check = await self._solve(evaluator, a.code, f_source, a.seed)

        await asyncio.gather(reference(), *(attempt(a) for a in attempts))
        return pending

    # -- tell -----------------------------------------------------------------------------
    def _verdict(self, p: _Pending, solved_by: list[int]) -> Evaluation:
        k, solved = self.k, len(solved_by)
        extras: dict[str, Any] = {"population": "puzzles"}
        if p.failure is not None:
            return dataclasses.replace(p.failure, extras=extras)
        extras.update(
            tags=dict(zip(self.domain.descriptor_space.names, p.tags, strict=True)),
            k=k,
            solved=solved,
            solve_rate=solved / k,
            reference=p.reference,
            solved_by=solved_by,
        )
        if solved == 0 and not p.reference_solved:
            return Evaluation.failure(
                Status.INVALID,
                f"unsolvable: neither the reference g ({p.reference}) nor any of the {k} solver "
                "attempts solved it",
                extras=extras,
            )
        if solved == k:
            return Evaluation.failure(
                Status.REJECTED, f"trivial: solved {k}/{k} by the solver", extras=extras
            )
        return Evaluation(
            Status.OK,
            fitness=1.0 - solved / k,
            descriptors=tuple(float(t) for t in p.tags),
            extras=extras,
        )

    def _attempt_eval(self, a: _Attempt, puzzle_id: int, difficulty: float) -> Evaluation:
        extras: dict[str, Any] = {"population": "solutions", "puzzle": puzzle_id}
        if a.error is not None:
            return Evaluation.failure(Status.INVALID, a.error, extras=extras)
        assert a.solve is not None
        if a.check is None:
            return dataclasses.replace(a.solve, extras=extras)
        if not a.check.ok:
            return dataclasses.replace(a.check, extras=extras)
        shown = repr(a.solve.extras.get("answer"))
        extras["answer"] = shown if len(shown) <= MAX_SOLVED_SHOWN else shown[:197] + "..."
        if not a.solved:
            return Evaluation.failure(
                Status.INVALID,
                f"did not solve puzzle {puzzle_id}: f returned False on g()'s answer",
                extras=extras,
            )
        loops, nodes = a.solve.descriptors or (0.0, 0.0)
        return Evaluation(
            Status.OK,
            fitness=difficulty,
            descriptors=(min(max(loops, 0.0), 8.0), min(max(nodes, 0.0), 400.0)),
            extras=extras,
            wall_time=a.solve.wall_time + a.check.wall_time,
            cpu_time=a.solve.cpu_time + a.check.cpu_time,
        )

    def _tell(self, batch: Batch, pending: list[_Pending]) -> None:
        next_id = self.puzzles.next_id
        puzzle_outcomes: list[Outcome] = []
        sol_cands: list[Candidate] = []
        sol_outcomes: list[Outcome] = []
        for p in pending:
            ids = list(range(next_id, next_id + len(p.attempts)))
            next_id += len(p.attempts)
            solved_by = [i for i, a in zip(ids, p.attempts, strict=True) if a.solved]
            verdict = self._verdict(p, solved_by)
            puzzle_outcomes.append(Outcome(p.program, verdict, p.completion, p.failure is None))
            difficulty = 1.0 - len(solved_by) / self.k
            parent = Individual(p.program, verdict)
            for i, a in zip(ids, p.attempts, strict=True):
                prog = Program(
                    id=i,
                    code=a.code,
                    parent_ids=(p.program.id,),
                    operator=self.solver.name,
                    model=a.completion.model if a.completion is not None else None,
                    prompt_hash=_hash(a.proposal.request),
                    generation=p.program.generation + 1,
                    batch=batch.index,
                    seed=a.seed,
                )
                ev = self._attempt_eval(a, p.program.id, difficulty)
                sol_cands.append(Candidate(i, (parent,), a.proposal, a.seed, 0))
                sol_outcomes.append(Outcome(prog, ev, a.completion, a.error is None))
        self.puzzles.next_id = next_id
        sol_batch = Batch(batch.index, tuple(sol_cands))
        told_s = self.solutions.tell(sol_batch, sol_outcomes)
        told = self.puzzles.tell(batch, puzzle_outcomes)
        store = self.store
        with store.transaction():
            programs = []
            for c, o in zip(
                [*batch.candidates, *sol_cands], [*puzzle_outcomes, *sol_outcomes], strict=True
            ):
                prog = o.program
                if o.completion is not None and c.proposal.request is not None:
                    call_id = store.add_llm_call(batch.index, c.proposal.request, o.completion)
                    prog = dataclasses.replace(prog, llm_call_id=call_id)
                programs.append(prog)
            store.add_programs(programs)
            store.add_evaluations(
                [
                    (ind.program.id, ind.evaluation, int(st))
                    for t in (told, told_s)
                    for ind, st in zip(t.individuals, t.statuses, strict=True)
                ]
            )
            snap = dataclasses.asdict(told.snapshot)
            del snap["inserted"]
            store.record(
                StepEvent(
                    **snap,
                    statuses=told.status_counts,
                    inserted=tuple(
                        (ind.program.id, st.name)
                        for ind, st in zip(told.individuals, told.statuses, strict=True)
                        if st is not AddStatus.NOT_ADDED
                    ),
                    num_elites=len(self.puzzles.archive),
                    arms={**told.arm_stats, **told_s.arm_stats},
                )
            )
        self.last_snapshot = told.snapshot
        if self.on_step is not None:
            self.on_step(told.snapshot)
