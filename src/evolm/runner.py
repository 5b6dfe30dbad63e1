"""The runner: the asyncio pipeline around the scheduler, the evaluator and the run database.

How a run proceeds (docs/design.md gives the reasoning):

1. Batch 0 evaluates the domain's seed programs and tells the scheduler.
2. Batches ``1..init_batches`` draw parents from the seeds; later ones from the archive
   (the scheduler's parent policy).
3. Up to ``pipeline_depth`` batches are in flight. Inside a batch every candidate is its own
   task: its LLM request runs (at most ``llm.concurrency`` at once), its code is extracted, then
   it goes to the evaluator, so LLM sampling and evaluation overlap.
4. Batches are told strictly in index order, each stored in one database transaction, and the
   batches the scheduler says are due are asked right after. Together with the scheduler's
   per-batch generators this makes the archive a pure function of the seed and the LLM's
   answers, whatever the timing: a replayed run reproduces it, and a resumed run rebuilds it
   exactly by replaying the stored batches through the scheduler.

A crash (even ``kill -9``) loses at most the batches in flight; ``evolm resume`` drops their
traces and continues from the last told batch. With ``[finetune]``, rounds run between batches
(:mod:`evolm.finetune.loop`): the scheduler stops asking while a round is due, the batches in
flight are told, the round trains, the adapter is loaded, and the pipeline restarts. Other
between-batch work plugs in as a :class:`Hook`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evolm import __version__
from evolm.config import ConfigError, RunConfig
from evolm.domains.base import Domain, get_domain, operator_context
from evolm.evaluators import EvalJob, Evaluator, build_evaluator
from evolm.events import EndEvent, ResumeEvent, SandboxEvent, StepEvent
from evolm.finetune.loop import FinetuneLoop, swap_adapter
from evolm.llm.base import Completion, LLMBackend, Request
from evolm.llm.client import LLMCallFailed, LLMClient
from evolm.llm.local import TokenCounter
from evolm.runlock import log_traceback
from evolm.scheduler import (
    LLM_CALL_FAILED,
    SEED,
    Batch,
    Budget,
    Candidate,
    Outcome,
    Scheduler,
    Snapshot,
    Spent,
    Told,
    build_archive,
    build_arms,
    stored_batches,
)
from evolm.store import RunStore
from evolm.types import AddStatus, Evaluation, Individual, Program, Status

__all__ = ["EvaluatorFailed", "Hook", "PromptTooLong", "RunResult", "Runner", "dependency_versions"]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """How a run ended. ``status`` is ``completed`` (a budget or the target was reached),
    ``interrupted`` (Ctrl-C or a stop request) or ``failed`` (``error`` says why: an exception,
    or every LLM call of the run failed, see :meth:`Scheduler.calls_failure`)."""

    status: str
    reason: str
    snapshot: Snapshot | None
    path: str
    error: str | None = None


class PromptTooLong(ConfigError):
    """The worst-case prompt and ``llm.max_tokens`` do not fit the model's context."""


class Hook(Protocol):
    """Work between batches: called once a batch is told and stored, before the batches due
    after it start (e.g. a checkpoint, a custom event, an external monitor). It may read
    ``runner.scheduler`` and ``runner.store``; it must not ask or tell."""

    async def after_tell(self, runner: Runner, told: Told) -> None: ...


def dependency_versions() -> dict[str, str]:
    """Versions of evolm and the packages that change results."""
    from importlib import metadata

    out = {"evolm": __version__, "python": platform.python_version()}
    for pkg in (
        "numpy", "ribs", "pydantic", "openai", "msgpack", "llama-cpp-python", "transformers",
        "torch", "vllm",
    ):  # fmt: skip
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _prompt_hash(req: Request) -> str:
    return hashlib.sha256(req.to_json().encode()).hexdigest()[:16]


def _build_backend(config: RunConfig, llm_config: Any = None) -> LLMBackend:
    from evolm.llm.build import build_backend

    return build_backend(config, llm_config)


class Runner:
    """Runs one evolution, writing everything to a :class:`RunStore`.

    Args:
        config: the validated run configuration.
        store: an open run database (new, or holding the run to resume).
        llm: the primary LLM backend; built from ``config.llm`` when None.
        models: backends for ``config.models`` (one each, in order); built when None.
        evaluator: where programs run; a local sandbox pool built from the config when None.
        judge: the backend an LLM-scored domain's ``assess`` calls (``scoring = "llm"``); when
            None, built from ``config.judge`` on first use, or ``llm`` itself when
            ``config.judge`` is unset, the same as ``config.llm``, or ``config.llm`` replays a
            cassette (the cassette answers the judge's calls too).
        hooks: work to do between batches (see :class:`Hook`).
        on_step: called with a :class:`Snapshot` after every told batch.
        on_round: called with ``("start", {"round": n, "accepted": k})`` when a fine-tuning
            round starts training and with ``("end", payload)`` (the round's stored event)
            when it ends, so a front end can say why the run pauses.

    Whoever builds a backend or an evaluator closes it: the runner closes the ones it built
    (and the ones a fine-tuning round rebuilt), never the ones passed in.
    """

    def __init__(
        self,
        config: RunConfig,
        store: RunStore,
        *,
        llm: LLMBackend | None = None,
        models: Sequence[LLMBackend] | None = None,
        evaluator: Evaluator | None = None,
        judge: LLMBackend | None = None,
        hooks: Sequence[Hook] = (),
        on_step: Callable[[Snapshot], None] | None = None,
        on_round: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.on_step = on_step
        self.on_round = on_round
        self.hooks = list(hooks)
        self.domain: Domain = get_domain(config.domain.name, config.domain.params)
        self.space = self.domain.descriptor_space
        self.eval_timeout = config.engine.eval_timeout or self.domain.eval_timeout
        self._evaluator = evaluator
        extra = list(models) if models is not None else None
        if extra is not None and len(extra) != len(config.models):
            raise ValueError(f"config.models has {len(config.models)} models, got {len(extra)}")
        self._owned: set[int] = set()  # ids of the backends this runner built
        self.llms_extra: list[LLMBackend] = []  # built besides self.llms (a separate judge)
        primary = llm if llm is not None else self._built(_build_backend(config))
        others = extra or [self._built(_build_backend(config, m)) for m in config.models]
        self.llms: list[LLMBackend] = [primary, *others]
        self._judge_llm = judge
        self._finetune = FinetuneLoop(config, store.path) if config.finetune else None
        arms = build_arms(config, operator_context(self.domain), self.llms)
        self.budget = Budget(config.budget, counts_calls=any(a.llm is not None for a in arms))
        self.scheduler = Scheduler(
            config,
            build_archive(config, self.domain),
            arms,
            self.budget,
            pauses=self._finetune.schedule if self._finetune is not None else None,
        )
        self.last_snapshot: Snapshot | None = None
        self._interrupted = False
        self._inflight: dict[int, Batch] = {}
        self._tasks: dict[int, list[asyncio.Task[Outcome]]] = {}
        self._prompt_checked = False
        self._round: asyncio.Future[Any] | None = None  # the fine-tuning round being waited for
        self._reload: Path | None = None  # a recorded round's adapter to load on resume

    def _built(self, llm: LLMBackend) -> LLMBackend:
        self._owned.add(id(llm))
        return llm

    # -- views ----------------------------------------------------------------------------
    @property
    def archive(self) -> Any:
        return self.scheduler.archive

    @property
    def arms(self) -> list[Any]:
        return self.scheduler.arms

    @property
    def selector(self) -> Any:
        return self.scheduler.selector

    @property
    def llm(self) -> LLMBackend:
        return self.llms[0]

    @property
    def judge_llm(self) -> LLMBackend:
        """The backend that scores an LLM-scored domain's candidates (see ``judge``)."""
        if self._judge_llm is None:
            c = self.config
            if c.judge is None or c.judge == c.llm or c.llm.backend == "replay":
                self._judge_llm = self.llm
            else:
                self._judge_llm = self._built(_build_backend(c, c.judge))
                self.llms_extra.append(self._judge_llm)
        return self._judge_llm

    @property
    def elapsed(self) -> float:
        return self.budget.elapsed

    # -- public control -------------------------------------------------------------------
    def request_stop(self, reason: str = "interrupted") -> None:
        """Stop asking, cancel what is in flight, store what is done (safe from signal handlers)."""
        self._interrupted = True
        self.scheduler.stop(reason)
        for tasks in self._tasks.values():
            for t in tasks:
                t.cancel()
        if self._round is not None:
            self._round.cancel()

    def check_prompt_fits(self) -> None:
        """Refuse a configuration whose prompts cannot fit the model's context.

        The worst case is the operator's request for the longest seed program (16 draws, so
        every instruction of the operator's set is seen); its prompt tokens, counted by the
        backend's own tokenizer, plus ``llm.max_tokens`` must fit the context. Backends
        without a tokenizer (fake, replay, openai) skip the check. Programs that grow during
        the run can still overflow; such a request fails as a value (an ``invalid`` candidate)
        and the run goes on.

        Raises:
            PromptTooLong: with the numbers and the fixes.
        """
        if self._prompt_checked:
            return
        seeds = self.domain.seeds()
        if not seeds:
            return
        program = Program(id=-1, code=max(seeds, key=len))
        parent = Individual(program, Evaluation(Status.OK, fitness=self.domain.qd_offset))
        for arm in self.arms:
            llm = arm.llm
            if llm is None or not isinstance(llm, TokenCounter):
                continue
            parents = (parent,) * arm.operator.num_parents
            rng = np.random.default_rng(0)
            need, max_tokens = 0, self.config.llm.max_tokens
            for _ in range(16):
                request = arm.operator.propose(parents, rng).request
                if request is not None:
                    need = max(need, llm.count_tokens(request))
                    max_tokens = request.max_tokens
            context = llm.context_length
            if need + max_tokens > context:
                where = f"{arm.label}: " if len(self.arms) > 1 else ""
                raise PromptTooLong(
                    f"{where}prompt needs {need} tokens + max_tokens {max_tokens} > "
                    f"context {context} of {llm.model}; lower llm.max_tokens or use a model "
                    "with a longer context" + _context_hint(llm, need + max_tokens)
                )
        self._prompt_checked = True

    # -- start and resume -----------------------------------------------------------------
    def _start_new(self) -> None:
        self.store.create_run(
            seed=self.config.seed,
            domain=self.config.domain.name,
            config=self.config.model_dump(mode="json"),
            versions=dependency_versions(),
        )

    def _restore(self) -> None:
        """Rebuild the scheduler and the budget from the database (resume)."""
        store, sched = self.store, self.scheduler
        last = store.last_step()
        last_batch = -1 if last is None else last.batch
        if self._finetune is not None:  # raises before anything changes if an adapter is gone
            self._reload = self._finetune.resume(store, last_batch)
        dropped = store.delete_unevaluated_after(last_batch)
        store.drop_after(last_batch)
        totals = store.llm_totals()
        self.budget.restore(
            Spent(
                llm_calls=int(totals["calls"]),
                tokens=int(totals["tokens_in"] + totals["tokens_out"]),
                cost=float(totals["cost"]),
                evaluations=sum(1 for _ in store.evaluated(max_batch=last_batch)),
                judge_calls=int(totals["judge_calls"]),
            )
        )
        sched.next_id = store.max_program_id() + 1
        sched.next_batch = last_batch + 1
        steps = store.steps(max_batch=last_batch)
        arms_by_batch = {e.batch: e.arms for e in steps}
        inserted = {e.batch: len(e.inserted) for e in steps if e.batch > 0}
        sched.inserted = sum(inserted.values())
        if last is not None:
            self.budget.start_clock(last.elapsed)
        for told, individuals in stored_batches(store, last_batch):
            sched.replay(told, individuals, arms_by_batch.get(told, {}))
            if self._finetune is not None:
                self._finetune.replay_told(
                    told, inserted.get(told, 0), arms_by_batch.get(told, {}), store.path
                )
            # The live run asked batch k right after telling batch max(k - depth, 0): ask the
            # batches in flight at the crash at those same archive and selector states.
            for k in sched.asked_after(told):
                if k == sched.next_batch and sched.check_stop() is None:
                    batch = sched.ask()
                    if batch is not None:
                        self._inflight[batch.index] = batch
        store.record(ResumeEvent(from_batch=last_batch + 1, dropped_in_flight=dropped))

    # -- main loop ------------------------------------------------------------------------
    async def run(self, *, resume: bool = False) -> RunResult:
        """Run (or resume) until a budget, the target, a stop request or an error ends it.

        Raises:
            PromptTooLong: before anything is stored (see :meth:`check_prompt_fits`).
            SandboxUnavailable: no evaluation jail of the configured tier works here (before
                anything is stored).
        """
        self.check_prompt_fits()
        owned_evaluator = self._evaluator is None
        evaluator = self._evaluator or build_evaluator(self.config, self.domain)
        try:
            await evaluator.start()  # raises SandboxUnavailable before anything is stored
            if resume:
                self._restore()  # raises AdapterMissing before anything changes
            else:
                self._start_new()
        except BaseException:
            if owned_evaluator:
                evaluator.close()
            raise
        self.store.set_status("running")
        self.store.record(SandboxEvent(evaluator=evaluator.name, info=dict(evaluator.info)))
        if not resume:
            self.budget.start_clock()
        status, error = "completed", None
        try:
            await self._loop(evaluator)
        except asyncio.CancelledError:
            self._interrupted = True
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            self.scheduler.stop_reason = error
            log_traceback(self.store.path, exc, "the run failed")
        finally:
            if owned_evaluator:
                evaluator.close()
            for llm in [*self.llms, *self.llms_extra]:
                if id(llm) in self._owned:
                    with contextlib.suppress(Exception):
                        await llm.aclose()
        if self._interrupted and status != "failed":
            status = "interrupted"
        reason = self.scheduler.stop_reason or "done"
        calls_failure = self.scheduler.calls_failure()
        if status == "completed" and calls_failure is not None:
            status, reason, error = "failed", calls_failure, calls_failure
        self.store.set_status(status)
        self.store.record(
            EndEvent(
                status=status,
                reason=reason,
                elapsed=self.elapsed,
                selector={"kind": self.selector.kind, "arms": self.selector.state()},
            )
        )
        return RunResult(status, reason, self.last_snapshot, str(self.store.path), error)

    async def _loop(self, evaluator: Evaluator) -> None:
        sched = self.scheduler
        if self._reload is not None:
            await self._use_adapter(self._reload)
            self._reload = None
        if sched.next_batch == 0:
            seeds = self.domain.seeds()
            if not seeds:
                raise ValueError(f"domain {self.domain.name!r} has no seed programs")
            seed_batch = sched.seed_batch(seeds)
            self._start(seed_batch, evaluator)
            outcomes = await self._wait(seed_batch)
            _check_seed_evaluations(outcomes)
            await self._tell(seed_batch, outcomes)
            self._queue(sched.ask_after(0))
        for batch in self._inflight.values():
            self._start(batch, evaluator)
        while self._inflight or self._round_due():
            if not self._inflight:  # drained, and a fine-tuning round is due
                if not await self._finetune_round():
                    return
                for new in self._queue(sched.ask_after(sched.next_batch - 1)):
                    self._start(new, evaluator)
                continue
            index = min(self._inflight)
            batch = self._inflight[index]
            try:
                left = self.budget.time_left()
                if left is None:
                    outcomes = await self._wait(batch)
                else:
                    outcomes = await asyncio.wait_for(asyncio.shield(self._wait(batch)), left)
            except TimeoutError:
                sched.stop(self.budget.wall_time_reason())
                self._cancel_all()
                return
            except asyncio.CancelledError:
                if self._interrupted:
                    self._cancel_all()
                    return
                raise
            if self.domain.reevaluate_best > 0:
                outcomes = await self._reproduce(outcomes, evaluator)
            del self._inflight[index]
            self._tasks.pop(index, None)
            await self._tell(batch, outcomes)
            for new in self._queue(sched.ask_after(index)):
                self._start(new, evaluator)
            if self._interrupted:
                self._cancel_all()
                return

    def _queue(self, batches: list[Batch]) -> list[Batch]:
        for b in batches:
            self._inflight[b.index] = b
        return batches

    def _round_due(self) -> bool:
        """A fine-tuning round is due, the drain is over (nothing in flight) and no budget or
        stop request ends the run first."""
        if self._finetune is None or not self._finetune.schedule.due or self._inflight:
            return False
        return self.scheduler.check_stop() is None

    async def _finetune_round(self) -> bool:
        """Train the due round and load its adapter; False if the run stopped meanwhile."""
        assert self._finetune is not None
        if self.on_round is not None:
            n = self._finetune.schedule.rounds + 1
            self.on_round("start", {"round": n, "accepted": self._finetune.schedule.accepted})
        self._round = self._finetune.start(self.scheduler.next_batch - 1)
        try:
            outcome = await asyncio.wait_for(self._round, self.budget.time_left())
        except TimeoutError:
            self.scheduler.stop(self.budget.wall_time_reason())
            return False
        except asyncio.CancelledError:
            if self._interrupted:
                return False
            raise
        finally:
            self._round = None
        applied: list[str] = []
        note = ""
        if outcome.error is None and outcome.adapter is not None:
            try:
                applied, note = await self._use_adapter(outcome.adapter)
            except Exception as exc:
                outcome = dataclasses.replace(
                    outcome, error=f"the adapter cannot be loaded: {type(exc).__name__}: {exc}"
                )
        payload = self._finetune.record(self.store, outcome, applied, note)
        if self.on_round is not None:
            self.on_round("end", payload)
        return True

    async def _use_adapter(self, adapter: Path) -> tuple[list[str], str]:
        """Rebuild the models that take ``adapter`` and put them in every arm that used the old
        ones; returns their labels and a note for the round's event."""
        built, applied, note = swap_adapter(self.config, adapter, _build_backend)
        sched = self.scheduler
        for i, new in built.items():
            old = self.llms[i]
            self.llms[i] = self._built(new)
            sched.arms = [
                dataclasses.replace(a, llm=new) if a.llm is old else a for a in sched.arms
            ]
            if id(old) in self._owned:
                self._owned.discard(id(old))
                with contextlib.suppress(Exception):
                    await old.aclose()
        return applied, note

    # -- one candidate --------------------------------------------------------------------
    def _start(self, batch: Batch, evaluator: Evaluator) -> None:
        if batch.index not in self._tasks:
            self._tasks[batch.index] = [
                asyncio.ensure_future(self._run_candidate(batch, c, evaluator))
                for c in batch.candidates
            ]

    async def _wait(self, batch: Batch) -> list[Outcome]:
        results = await asyncio.gather(*self._tasks[batch.index], return_exceptions=True)
        outcomes = []
        for r in results:
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, BaseException):
                self._cancel_all()
                raise r
            outcomes.append(r)
        return outcomes

    def _cancel_all(self) -> None:
        for tasks in self._tasks.values():
            for t in tasks:
                t.cancel()
        self._tasks.clear()
        self._inflight.clear()

    async def _run_candidate(self, batch: Batch, cand: Candidate, evaluator: Evaluator) -> Outcome:
        prop = cand.proposal
        arm = self.arms[cand.arm] if cand.arm >= 0 else None
        generation = 1 + max((p.program.generation for p in cand.parents), default=-1)
        model = None
        prompt_hash = None
        error: str | None = None
        completion: Completion | None = None
        if prop.request is None:
            code, error = prop.code or "", prop.error
        else:
            assert arm is not None and arm.llm is not None
            req = prop.request
            prompt_hash = _prompt_hash(req)
            deadline = self.config.engine.llm_deadline
            try:
                (completion,) = await asyncio.wait_for(arm.llm.generate([req]), deadline)
            except TimeoutError:
                completion = Completion(
                    text="",
                    model=arm.llm.model,
                    error=f"no answer within the {deadline:g} s deadline",
                )
            model = completion.model
            if completion.ok:
                result = arm.operator.finish(prop, completion.text)
                code, error = result.code, result.error
            else:
                code, error = "", f"{LLM_CALL_FAILED}{completion.error}"
        if error is None:
            try:
                code = self.domain.prepare(code)
            except ValueError as exc:
                error = str(exc) or "the domain refused the program"
        program = Program(
            id=cand.program_id,
            code=code,
            parent_ids=tuple(p.program.id for p in cand.parents),
            operator=arm.operator.name if arm is not None else SEED,
            model=model,
            prompt_hash=prompt_hash,
            generation=generation,
            batch=batch.index,
            seed=cand.seed,
        )
        if error is not None:
            return Outcome(program, Evaluation.failure(Status.INVALID, error), completion, False)
        dom = self.domain
        calls: tuple[tuple[Request, Completion], ...] = ()
        if dom.scoring == "llm":
            ev, calls = await self._assess(program, cand.seed)
        else:
            (ev,) = await evaluator.evaluate([EvalJob(program, cand.seed, self.eval_timeout)])
        checked = ev.checked(
            self.space, dom.fitness_bounds, descriptors_in_space=dom.descriptors_in_space
        )
        return Outcome(program, checked, completion, judge_calls=calls)

    async def _assess(
        self, program: Program, seed: int
    ) -> tuple[Evaluation, tuple[tuple[Request, Completion], ...]]:
        """Score a text of an LLM-scored domain in the engine; its calls come back with it (the
        runner stores them with the candidate). A failed call makes the candidate ``error``;
        ``assess`` raising anything else blames the domain (``extras["failure"]``)."""
        dom = self.domain
        client = LLMClient(
            self.judge_llm, role=dom.llm_role, deadline=self.config.engine.llm_deadline
        )
        try:
            ev = await dom.assess(program.code, seed, client)
        except LLMCallFailed as exc:
            ev = Evaluation.failure(Status.ERROR, f"{dom.llm_role} call failed: {exc.error}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ev = Evaluation.failure(
                Status.ERROR,
                f"the domain's assess() raised {type(exc).__name__}: {exc}",
                extras={"failure": "evaluator"},
            )
        return ev, tuple(client.calls)

    async def _reproduce(self, outcomes: list[Outcome], evaluator: Evaluator) -> list[Outcome]:
        """Re-evaluate each candidate that would be the run's new best ``reevaluate_best``
        times; one whose fitness does not reproduce (within the domain's relative tolerance) is
        ``rejected``. Runs when the batch is told, in batch order, so which candidates are
        re-evaluated depends only on the archive, and their seeds only on the candidate's."""
        dom = self.domain
        best = self.archive.stats.max_fitness
        out = []
        for o in outcomes:
            ev = o.evaluation
            if not ev.ok or ev.fitness is None or (best is not None and ev.fitness <= best):
                out.append(o)
                continue
            seeds = [
                _reevaluation_seed(o.program.seed, i)
                if dom.reevaluate_fresh_seeds
                else o.program.seed
                for i in range(dom.reevaluate_best)
            ]
            jobs = [EvalJob(o.program, s, self.eval_timeout) for s in seeds]
            again = await evaluator.evaluate(jobs)
            ev = _reproduced(ev, again, seeds, dom.reproduce_tolerance)
            if ev.ok:
                best = ev.fitness
            out.append(dataclasses.replace(o, evaluation=ev))
        return out

    # -- tell -----------------------------------------------------------------------------
    async def _tell(self, batch: Batch, outcomes: list[Outcome]) -> Told:
        """Tell the scheduler, then store the batch and its step event in one transaction."""
        told = self.scheduler.tell(batch, outcomes)
        store = self.store
        with store.transaction():
            programs = []
            for c, o in zip(batch.candidates, outcomes, strict=True):
                prog = o.program
                if o.completion is not None and c.proposal.request is not None:
                    call_id = store.add_llm_call(batch.index, c.proposal.request, o.completion)
                    prog = dataclasses.replace(prog, llm_call_id=call_id)
                for request, completion in o.judge_calls:
                    store.add_llm_call(batch.index, request, completion)
                programs.append(prog)
            store.add_programs(programs)
            store.add_evaluations(
                [
                    (ind.program.id, ind.evaluation, int(st))
                    for ind, st in zip(told.individuals, told.statuses, strict=True)
                ]
            )
            if self._finetune is not None:
                self._finetune.schedule.told(batch.index, told.accepted, told.arm_stats)
            snap = dataclasses.asdict(told.snapshot)
            del snap["inserted"]  # a count here; the step event lists the inserted programs
            store.record(
                StepEvent(
                    **snap,
                    statuses=told.status_counts,
                    inserted=tuple(
                        (ind.program.id, st.name)
                        for ind, st in zip(told.individuals, told.statuses, strict=True)
                        if st is not AddStatus.NOT_ADDED
                    ),
                    num_elites=len(self.archive),
                    arms=told.arm_stats,
                )
            )
        self.last_snapshot = told.snapshot
        if self.on_step is not None:
            self.on_step(told.snapshot)
        for hook in self.hooks:
            await hook.after_tell(self, told)
        return told


class EvaluatorFailed(RuntimeError):
    """The domain's evaluator failed on a seed program: the run stops before its budget."""


def _check_seed_evaluations(outcomes: list[Outcome]) -> None:
    """Raise :class:`EvaluatorFailed` when a seed program's evaluation blames the evaluator
    (``extras["failure"] == "evaluator"``): every later candidate would fail the same way."""
    for o in outcomes:
        ev = o.evaluation
        if ev.extras.get("failure") == "evaluator":
            raise EvaluatorFailed(
                f"the seed program could not be scored: {ev.error}. Fix the evaluator (run it "
                "on the seed program by hand to see the traceback) and start the run again."
            )


def _reevaluation_seed(seed: int, i: int) -> int:
    digest = hashlib.sha256(f"reevaluate:{seed}:{i}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _reproduced(
    ev: Evaluation, again: Sequence[Evaluation], seeds: Sequence[int], tolerance: float
) -> Evaluation:
    """``ev`` with its re-evaluations recorded in ``extras["reevaluations"]``, or ``rejected``
    when one of them failed or gave another fitness (relative ``tolerance``)."""
    assert ev.fitness is not None
    record = [
        {"seed": s, "status": str(a.status), "fitness": a.fitness}
        for s, a in zip(seeds, again, strict=True)
    ]
    extras = {**ev.extras, "reevaluations": record}
    for a in again:
        same = (
            a.ok
            and a.fitness is not None
            and abs(a.fitness - ev.fitness) <= tolerance * max(abs(ev.fitness), abs(a.fitness))
        )
        if not same:
            got = (
                f"{a.fitness:.6g}" if a.ok and a.fitness is not None else f"{a.status} ({a.error})"
            )
            return Evaluation.failure(
                Status.REJECTED,
                f"did not reproduce: {ev.fitness:.6g} then {got}",
                extras=extras,
                wall_time=ev.wall_time,
                cpu_time=ev.cpu_time,
            )
    return dataclasses.replace(ev, extras=extras)


def _context_hint(llm: Any, needed: int) -> str:
    trained = getattr(llm, "n_ctx_train", None)
    if llm.name == "llama_cpp" and trained and trained >= needed:
        return f" (this model was trained on {trained} tokens: raise llm.n_ctx to {needed} or more)"
    return ""
