"""The engine: an asyncio ask / evaluate / tell loop over batches, with budgets and resume.

How a run proceeds (see docs/design.md for the reasoning):

1. Batch 0 evaluates the domain's seed programs and tells the archive.
2. Batches ``1..init_batches`` draw parents uniformly from the seeds (ELM's initial phase, which
   fills the archive with mutations of the seeds); later batches sample the archive with the
   configured selection strategy.
3. Up to ``pipeline_depth`` batches are in flight. Inside a batch every candidate is its own task:
   its LLM request runs (at most ``llm.concurrency`` at once), its code is extracted, then it waits
   for a free evaluation worker, so LLM sampling and evaluation overlap.
4. Batches are told to the archive strictly in order, each in one database transaction, and
   batch ``k + depth`` is asked right after batch ``k`` is told. Batch ``k``'s random generator is
   ``default_rng([seed, k])``. Together these make the archive a pure function of the seed and
   the LLM's answers, whatever the timing: a replayed run reproduces it, and a resumed run
   rebuilds it exactly by re-adding the stored batches.

A crash (even ``kill -9``) loses at most the batches in flight; ``evolm resume`` drops their
traces and continues from the last told batch.

With ``[finetune]``, fine-tuning rounds run between batches (:mod:`evolm.finetune.loop`): once
enough mutations were accepted, the engine stops asking, tells the batches in flight, trains,
loads the adapter, and restarts the pipeline as after the seed batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evolm import __version__
from evolm.archives import make_archive
from evolm.archives.base import Archive, EmptyArchiveError
from evolm.config import ConfigError, LLMConfig, RunConfig
from evolm.domains.base import Domain, get_domain
from evolm.finetune.loop import FinetuneLoop, swap_adapter
from evolm.llm.base import Completion, LLMBackend, Request
from evolm.llm.local import TokenCounter
from evolm.operators import OPERATORS, make_operator
from evolm.operators.bandit import make_selector
from evolm.operators.base import Operator, Proposal
from evolm.sandbox import SandboxPool
from evolm.store import RunStore, StoreError
from evolm.types import AddStatus, Evaluation, Individual, Program, Status

__all__ = [
    "Engine",
    "PromptTooLong",
    "RunResult",
    "Snapshot",
    "apply_batch",
    "build_archive",
    "dependency_versions",
    "rebuild_archive",
]


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


@dataclass(frozen=True)
class RunResult:
    """How a run ended. ``status`` is ``completed`` (a budget or the target was reached),
    ``interrupted`` (Ctrl-C or a stop request) or ``failed`` (``error`` says why)."""

    status: str
    reason: str
    snapshot: Snapshot | None
    path: str
    error: str | None = None


@dataclass
class _Candidate:
    program_id: int
    parents: tuple[Individual, ...]
    proposal: Proposal
    seed: int
    arm: int = -1
    parsed: bool = True
    program: Program | None = None
    evaluation: Evaluation | None = None
    completion: Completion | None = None


@dataclass
class _Batch:
    index: int
    candidates: list[_Candidate]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass(frozen=True)
class Arm:
    """One (operator, model) pair the engine can use for a prompt; ``llm`` is None for
    LLM-free operators. ``label`` is ``operator@model`` (or the operator's label alone)."""

    label: str
    operator: Operator
    llm: LLMBackend | None
    weight: float


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


def apply_batch(archive: Archive, individuals: Sequence[Individual]) -> list[AddStatus]:
    """Tell a batch to an archive: insertion, then curiosity feedback for each offspring.

    The engine and the resume path both go through here, so a rebuilt archive receives exactly
    the calls the live one did.
    """
    statuses = archive.add(individuals)
    for ind, st in zip(individuals, statuses, strict=True):
        if ind.program.parent_ids:
            archive.feedback(ind.program.parent_ids, st is not AddStatus.NOT_ADDED)
    return statuses


def build_archive(config: RunConfig, domain: Domain) -> Archive:
    """The empty archive a configuration describes, over the domain's descriptor space."""
    a = config.archive
    by_kind: dict[str, dict[str, Any]] = {
        "grid": {"bins": a.bins},
        "cvt": {"cells": a.cells},
        "deep_grid": {"bins": a.bins, "per_cell": a.per_cell},
        "population": {"size": a.size, "tournament_size": a.tournament_size},
        "best_of_n": {},
    }
    params = by_kind[a.kind]
    offset = a.qd_offset if a.qd_offset is not None else domain.qd_offset
    return make_archive(
        a.kind, domain.descriptor_space, qd_offset=offset, seed=config.seed, **params
    )


def rebuild_archive(
    archive: Archive,
    store: RunStore,
    max_batch: int | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> list[Individual]:
    """Re-add the stored batches (up to ``max_batch``) in order; returns the seed batch.

    ``after_batch(k)`` is called once batch ``k`` has been applied, with the archive in the
    state the live run had right after telling batch ``k``.
    """
    seeds: list[Individual] = []
    current: list[Individual] = []
    current_batch = 0

    def flush() -> None:
        apply_batch(archive, current)
        if after_batch is not None:
            after_batch(current_batch)

    for ind in store.evaluated(max_batch=max_batch):
        if ind.program.batch != current_batch:
            flush()
            current, current_batch = [], ind.program.batch
        current.append(ind)
        if ind.program.batch == 0:
            seeds.append(ind)
    if current:
        flush()
    return seeds


class PromptTooLong(ConfigError):
    """The worst-case prompt and ``llm.max_tokens`` do not fit the model's context."""


def _prompt_hash(req: Request) -> str:
    return hashlib.sha256(req.to_json().encode()).hexdigest()[:16]


class Engine:
    """Runs one evolution, writing everything to a :class:`RunStore`.

    Args:
        config: the validated run configuration.
        store: an open run database (new, or holding the run to resume).
        llm: the LLM backend; built from ``config.llm`` when None.
        models: backends for ``config.models`` (one each, in order); built when None.
        on_step: called with a :class:`Snapshot` after every told batch.
        on_round: called with ``("start", {"round": n, "accepted": k})`` when a fine-tuning
            round starts training and with ``("end", payload)`` (the round's stored event)
            when it ends, so a front end can say why the run pauses.
    """

    def __init__(
        self,
        config: RunConfig,
        store: RunStore,
        *,
        llm: LLMBackend | None = None,
        models: Sequence[LLMBackend] | None = None,
        on_step: Callable[[Snapshot], None] | None = None,
        on_round: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.on_step = on_step
        self.on_round = on_round
        self.domain: Domain = get_domain(config.domain.name, config.domain.params)
        self.space = self.domain.descriptor_space
        self.archive = build_archive(config, self.domain)
        self.llm = llm if llm is not None else build_backend(config)
        extra = list(models) if models is not None else None
        if extra is not None and len(extra) != len(config.models):
            raise ValueError(f"config.models has {len(config.models)} models, got {len(extra)}")
        self.llms: list[LLMBackend] = [
            self.llm,
            *(extra or [build_backend(config, m) for m in config.models]),
        ]
        self.arms = self._build_arms()
        self.operator: Operator = self.arms[0].operator
        self.selector = make_selector(
            [a.label for a in self.arms],
            config.bandit.kind,
            weights=[a.weight for a in self.arms],
            c=config.bandit.c,
            prior=config.bandit.prior,
            cost_aware=config.bandit.cost_aware,
            window=config.bandit.window,
        )
        self._cost_in_usd = config.cost_in_usd()
        self.eval_timeout = config.engine.eval_timeout or self.domain.eval_timeout
        self.seed_individuals: list[Individual] = []
        self._next_id = 0
        self._next_batch = 0
        self._calls = 0
        self._tokens = 0
        self._cost = 0.0
        self._evaluations = 0
        self._inserted = 0
        self._calls_reserved = 0
        self._evals_reserved = 0
        self._elapsed_before = 0.0
        self._t0 = time.monotonic()
        self._stop_reason: str | None = None
        self._interrupted = False
        self._inflight: dict[int, _Batch] = {}
        self.last_snapshot: Snapshot | None = None
        self._prompt_checked = False
        self._finetune = FinetuneLoop(config, store.path) if config.finetune else None
        self._round: asyncio.Future[Any] | None = None  # the fine-tuning round being waited for
        self._reload: Path | None = None  # a recorded round's adapter to load on resume

    # -- public control -------------------------------------------------------------------
    def request_stop(self, reason: str = "interrupted") -> None:
        """Stop asking, cancel what is in flight, store what is done (safe from signal handlers)."""
        self._interrupted = True
        self._stop_reason = reason
        for b in self._inflight.values():
            for t in b.tasks:
                t.cancel()
        if self._round is not None:
            self._round.cancel()

    @property
    def elapsed(self) -> float:
        return self._elapsed_before + (time.monotonic() - self._t0)

    # -- setup ----------------------------------------------------------------------------
    def _build_arms(self) -> list[Arm]:
        """Every LLM operator with every model, and every LLM-free operator once."""
        cfg = self.config
        labels: list[str] = []
        for m, llm in zip(cfg.model_list(), self.llms, strict=True):
            label = m.name or llm.model
            labels.append(label if label not in labels else f"{label}#{len(labels) + 1}")
        context = self.domain.context()
        arms: list[Arm] = []
        for oc in cfg.operator_list():
            op_label = oc.name or oc.kind
            if oc.kind in OPERATORS and not OPERATORS[oc.kind].uses_llm:
                op = make_operator(oc.kind, context, cfg.llm.mode, **oc.params)
                op.name = op_label
                arms.append(Arm(op_label, op, None, oc.weight))
                continue
            per_model = []
            for m, llm, label in zip(cfg.model_list(), self.llms, labels, strict=True):
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
            total = sum(m.weight for m in cfg.model_list())
            arms += [
                dataclasses.replace(a, weight=a.weight * m.weight / total if total > 0 else 0.0)
                for a, m in zip(per_model, cfg.model_list(), strict=True)
            ]
        if sum(a.weight for a in arms) <= 0:
            raise ConfigError("every (operator, model) pair has weight 0; raise some weight")
        return arms

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

    def _start_new(self) -> None:
        self.store.create_run(
            seed=self.config.seed,
            domain=self.config.domain.name,
            config=self.config.model_dump(mode="json"),
            versions=dependency_versions(),
        )

    def _restore(self) -> None:
        """Rebuild the archive and counters from the database (resume)."""
        last = self.store.last_event("step")
        last_batch = -1 if last is None else int(last["batch"])
        if self._finetune is not None:  # raises before anything changes if an adapter is gone
            self._reload = self._finetune.resume(self.store, last_batch)
        dropped = self.store.delete_unevaluated_after(last_batch)
        with self.store.transaction():
            self.store.conn.execute("DELETE FROM llm_calls WHERE batch > ?", (last_batch,))
            self.store.conn.execute("DELETE FROM events WHERE batch > ?", (last_batch,))
        self._evaluations = sum(1 for _ in self.store.evaluated(max_batch=last_batch))
        totals = self.store.llm_totals()
        self._calls = int(totals["calls"])
        self._tokens = int(totals["tokens_in"] + totals["tokens_out"])
        self._cost = float(totals["cost"])
        self._calls_reserved = self._calls
        self._evals_reserved = self._evaluations
        self._next_id = self.store.max_program_id() + 1
        self._next_batch = last_batch + 1
        if last is not None:
            self._elapsed_before = float(last["payload"]["elapsed"])

        steps = [
            e
            for e in self.store.events("step")
            if e["batch"] is not None and e["batch"] <= last_batch
        ]
        arms_by_batch = {int(e["batch"]): e["payload"].get("arms", {}) for e in steps}
        inserted = {int(e["batch"]): len(e["payload"]["inserted"]) for e in steps if e["batch"] > 0}
        self._inserted = sum(inserted.values())

        def ask_as_the_live_run_did(told: int) -> None:
            # The live run asked batch k right after telling batch max(k - depth, 0); ask the
            # batches that were in flight at the crash at those same archive states, with the
            # selector rewarded exactly as it was then.
            self._learn(arms_by_batch.get(told, {}))
            if told == 0:
                self.seed_individuals = list(self.store.evaluated(max_batch=0))
            if self._finetune is not None:
                self._finetune.replay_told(
                    told, inserted.get(told, 0), arms_by_batch.get(told, {}), self.store.path
                )
            for k in self._asked_after(told):
                if k == self._next_batch and self._stop_reason is None:
                    self._check_stop()
                    if self._stop_reason is None:
                        self._ask_next()

        rebuild_archive(self.archive, self.store, last_batch, ask_as_the_live_run_did)
        self.store.add_event(
            "resume", {"from_batch": self._next_batch, "dropped_in_flight": dropped}
        )

    def _asked_after(self, told: int) -> range:
        """Indices of the batches asked right after batch ``told`` is told: none while a
        fine-tuning round is due (the drain); ``depth`` at once after the seed batch and after
        a round (the pipeline restarts); else batch ``told + depth``."""
        depth = self.config.engine.pipeline_depth
        schedule = self._finetune.schedule if self._finetune is not None else None
        if schedule is not None and schedule.due:
            return range(0)
        if told == 0 or (schedule is not None and schedule.last_round_batch == told):
            return range(told + 1, told + depth + 1)
        return range(told + depth, told + depth + 1)

    # -- budgets --------------------------------------------------------------------------
    def _ask_size(self) -> int:
        b = self.config.budget
        n = self.config.engine.batch_size
        if b.llm_calls is not None and any(a.llm is not None for a in self.arms):
            n = min(n, b.llm_calls - self._calls_reserved)
        if b.evaluations is not None:
            n = min(n, b.evaluations - self._evals_reserved)
        return max(n, 0)

    def _check_stop(self) -> None:
        if self._stop_reason is not None:
            return
        b = self.config.budget
        best = self.archive.stats.max_fitness
        if b.target_fitness is not None and best is not None and best >= b.target_fitness:
            self._stop_reason = f"target fitness {b.target_fitness} reached ({best:.6g})"
        elif b.tokens is not None and self._tokens >= b.tokens:
            self._stop_reason = f"token budget {b.tokens} spent"
        elif b.cost is not None and self._cost >= b.cost:
            self._stop_reason = f"cost budget ${b.cost} spent"
        elif b.wall_time is not None and self.elapsed >= b.wall_time:
            self._stop_reason = f"wall-time budget {b.wall_time} s spent"
        elif self._ask_size() == 0:
            if b.llm_calls is not None and self._calls_reserved >= b.llm_calls:
                self._stop_reason = f"LLM-call budget {b.llm_calls} spent"
            else:
                self._stop_reason = f"evaluation budget {b.evaluations} spent"

    # -- ask ------------------------------------------------------------------------------
    def _parents(
        self, batch: int, operator: Operator, rng: np.random.Generator
    ) -> tuple[Individual, ...]:
        k = operator.num_parents
        pool = [s for s in self.seed_individuals if s.evaluation.ok] or self.seed_individuals
        if batch <= self.config.engine.init_batches or len(self.archive) == 0:
            idx = rng.integers(len(pool), size=k)
            return tuple(pool[i] for i in idx)
        try:
            return tuple(operator.select_parents(self.archive, self.config.archive.selection, rng))
        except EmptyArchiveError:
            idx = rng.integers(len(pool), size=k)
            return tuple(pool[i] for i in idx)

    def _ask(self, index: int) -> _Batch | None:
        n = self._ask_size()
        if n <= 0:
            return None
        rng = np.random.default_rng([self.config.seed, index])
        per_prompt = self.config.llm.samples_per_prompt
        # Arms come from their own stream, so a one-arm run draws exactly what it always did.
        arm_rng = np.random.default_rng([self.config.seed, index, 1])
        arms = self.selector.choose(-(-n // per_prompt), arm_rng)
        calls = self.config.budget.llm_calls
        calls_left = n if calls is None else calls - self._calls_reserved
        cands: list[_Candidate] = []
        for i in range(n):
            arm = arms[i // per_prompt]
            if i % per_prompt == 0:
                operator = self.arms[arm].operator
                parents = self._parents(index, operator, rng)
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
            cands.append(_Candidate(self._next_id, parents, proposal, seed, arm))
            self._next_id += 1
        if not cands:
            return None
        self._calls_reserved += sum(c.proposal.request is not None for c in cands)
        self._evals_reserved += len(cands)
        return _Batch(index, cands)

    # -- evaluate -------------------------------------------------------------------------
    async def _run_candidate(self, batch: _Batch, cand: _Candidate, pool: SandboxPool) -> None:
        prop = cand.proposal
        arm = self.arms[cand.arm] if cand.arm >= 0 else None
        generation = 1 + max((p.program.generation for p in cand.parents), default=-1)
        model = None
        prompt_hash = None
        error: str | None = None
        if prop.request is None:
            code, error = prop.code or "", prop.error
        else:
            assert arm is not None and arm.llm is not None
            req = prop.request
            prompt_hash = _prompt_hash(req)
            try:
                (completion,) = await asyncio.wait_for(
                    arm.llm.generate([req]), self.config.engine.llm_deadline
                )
            except TimeoutError:
                completion = Completion(
                    text="",
                    model=arm.llm.model,
                    error=f"no answer within the {self.config.engine.llm_deadline:g} s deadline",
                )
            cand.completion = completion
            model = completion.model
            if completion.ok:
                result = arm.operator.finish(prop, completion.text)
                code, error = result.code, result.error
            else:
                code, error = "", f"LLM call failed: {completion.error}"
        cand.program = Program(
            id=cand.program_id,
            code=code,
            parent_ids=tuple(p.program.id for p in cand.parents),
            operator=arm.operator.name if arm is not None else "seed",
            model=model,
            prompt_hash=prompt_hash,
            generation=generation,
            batch=batch.index,
            seed=cand.seed,
        )
        if error is not None:
            cand.parsed = False
            cand.evaluation = Evaluation.failure(Status.INVALID, error)
            return
        ev = await pool.evaluate(code, cand.seed, self.eval_timeout)
        cand.evaluation = ev.checked(self.space)

    # -- tell -----------------------------------------------------------------------------
    def _tell(self, batch: _Batch) -> list[AddStatus]:
        inds = []
        for c in batch.candidates:
            assert c.program is not None and c.evaluation is not None
            inds.append(Individual(c.program, c.evaluation))
        statuses = apply_batch(self.archive, inds)
        if batch.index == 0:
            self.seed_individuals = inds
        with self.store.transaction():
            programs = []
            for c in batch.candidates:
                assert c.program is not None
                prog = c.program
                if c.completion is not None and c.proposal.request is not None:
                    call_id = self.store.add_llm_call(batch.index, c.proposal.request, c.completion)
                    prog = dataclasses.replace(prog, llm_call_id=call_id)
                    self._calls += 1
                    self._tokens += c.completion.tokens_in + c.completion.tokens_out
                    self._cost += c.completion.cost
                programs.append(prog)
            self.store.add_programs(programs)
            self.store.add_evaluations(
                [
                    (ind.program.id, ind.evaluation, int(st))
                    for ind, st in zip(inds, statuses, strict=True)
                ]
            )
            self._evaluations += len(inds)
            accepted = sum(st is not AddStatus.NOT_ADDED for st in statuses) if batch.index else 0
            self._inserted += accepted
            arm_stats = self._arm_stats(batch, statuses)
            self._learn(arm_stats)
            if self._finetune is not None:
                self._finetune.schedule.told(batch.index, accepted, arm_stats)
            snap = self._snapshot(batch.index)
            counts: dict[str, int] = {}
            for ind in inds:
                counts[ind.evaluation.status.value] = counts.get(ind.evaluation.status.value, 0) + 1
            self.store.add_event(
                "step",
                {
                    **dataclasses.asdict(snap),
                    "statuses": counts,
                    "inserted": [
                        [ind.program.id, st.name]
                        for ind, st in zip(inds, statuses, strict=True)
                        if st is not AddStatus.NOT_ADDED
                    ],
                    "num_elites": len(self.archive),
                    "arms": arm_stats,
                },
                batch=batch.index,
            )
        self.last_snapshot = snap
        if self.on_step is not None:
            self.on_step(snap)
        return statuses

    def _arm_stats(
        self, batch: _Batch, statuses: Sequence[AddStatus]
    ) -> dict[str, dict[str, float]]:
        """Per arm of this batch: candidates, parsed, valid (ran ok), inserted, and cost."""
        out: dict[str, dict[str, float]] = {}
        for c, st in zip(batch.candidates, statuses, strict=True):
            if c.arm < 0:
                continue
            row = out.setdefault(
                self.arms[c.arm].label,
                {"chosen": 0, "parsed": 0, "valid": 0, "inserted": 0, "cost": 0.0},
            )
            row["chosen"] += 1
            row["parsed"] += int(c.parsed)
            row["valid"] += int(c.evaluation is not None and c.evaluation.ok)
            row["inserted"] += int(st is not AddStatus.NOT_ADDED)
            if c.completion is not None:
                comp = c.completion
                row["cost"] += comp.cost if self._cost_in_usd else comp.tokens_in + comp.tokens_out
        return out

    def _learn(self, arm_stats: dict[str, Any]) -> None:
        """Reward the selector with one told batch's per-arm stats (live and on resume)."""
        index = {a.label: i for i, a in enumerate(self.arms)}
        rows = [
            (index[label], float(r["chosen"]), float(r["inserted"]), float(r["cost"]))
            for label, r in arm_stats.items()
            if label in index
        ]
        if rows:
            self.selector.update(rows)

    def _snapshot(self, batch: int) -> Snapshot:
        st = self.archive.stats
        return Snapshot(
            batch=batch,
            llm_calls=self._calls,
            tokens=self._tokens,
            cost=self._cost,
            evaluations=self._evaluations,
            elites=st.num_elites,
            max_fitness=st.max_fitness,
            qd_score=st.qd_score,
            coverage=st.coverage,
            elapsed=self.elapsed,
            inserted=self._inserted,
        )

    # -- main loop ------------------------------------------------------------------------
    async def run(self, *, resume: bool = False) -> RunResult:
        """Run (or resume) until a budget, the target, a stop request or an error ends it.

        Raises:
            PromptTooLong: before anything is stored (see :meth:`check_prompt_fits`).
            SandboxUnavailable: no evaluation jail of the configured tier works here (before
                anything is stored).
        """
        self.check_prompt_fits()
        eng = self.config.engine
        pool = SandboxPool(
            self.config.domain.name,
            self.config.domain.params,
            workers=eng.workers,
            timeout=self.eval_timeout,
            memory_mb=eng.memory_mb,
            tier=eng.sandbox,
            allow_weak=eng.allow_weak_sandbox,
        )
        await pool.start()  # raises SandboxUnavailable before anything is stored
        try:
            if resume:
                self._restore()  # raises AdapterMissing before anything changes
            else:
                self._start_new()
        except BaseException:
            pool.close()
            raise
        self.store.set_status("running")
        self.store.add_event("sandbox", {"tier": pool.tier, "reason": pool.tier_reason})
        self._t0 = time.monotonic()
        status, error = "completed", None
        try:
            await self._loop(pool)
        except asyncio.CancelledError:
            self._interrupted = True
        except Exception as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            self._stop_reason = error
        finally:
            pool.close()
            for llm in self.llms:
                with contextlib.suppress(Exception):
                    await llm.aclose()
        if self._interrupted and status != "failed":
            status = "interrupted"
        reason = self._stop_reason or "done"
        self.store.set_status(status)
        self.store.add_event(
            "end",
            {
                "status": status,
                "reason": reason,
                "elapsed": self.elapsed,
                "selector": {"kind": self.selector.kind, "arms": self.selector.state()},
            },
        )
        return RunResult(status, reason, self.last_snapshot, str(self.store.path), error)

    async def _loop(self, pool: SandboxPool) -> None:
        if self._reload is not None:
            await self._use_adapter(self._reload)
            self._reload = None
        if self._next_batch == 0:
            seeds = self.domain.seeds()
            if not seeds:
                raise ValueError(f"domain {self.domain.name!r} has no seed programs")
            if self.config.budget.evaluations is not None:
                seeds = seeds[: self.config.budget.evaluations]
            cands = [
                _Candidate(self._next_id + i, (), Proposal((), None, code=s), i)
                for i, s in enumerate(seeds)
            ]
            self._next_id += len(cands)
            self._evals_reserved += len(cands)
            seed_batch = _Batch(0, cands)
            await self._gather(seed_batch, pool)
            self._tell(seed_batch)
            self._next_batch = 1
            self._after_tell(0)
        for batch in self._inflight.values():
            self._start(batch, pool)
        wall = self.config.budget.wall_time
        while self._inflight or self._round_due():
            if not self._inflight:  # drained, and a fine-tuning round is due
                if not await self._finetune_round():
                    return
                for new in self._after_tell(self._next_batch - 1):
                    self._start(new, pool)
                continue
            index = min(self._inflight)
            batch = self._inflight[index]
            try:
                if wall is not None:
                    left = max(wall - self.elapsed, 0.0)
                    await asyncio.wait_for(asyncio.shield(self._wait(batch)), left)
                else:
                    await self._wait(batch)
            except TimeoutError:
                self._stop_reason = f"wall-time budget {wall} s spent"
                self._cancel_all()
                return
            except asyncio.CancelledError:
                if self._interrupted:
                    self._cancel_all()
                    return
                raise
            del self._inflight[index]
            self._tell(batch)
            for new in self._after_tell(index):
                self._start(new, pool)
            if self._interrupted:
                self._cancel_all()
                return

    def _after_tell(self, told: int) -> list[_Batch]:
        """Check budgets, then ask the batches due after batch ``told`` (not started yet)."""
        self._check_stop()
        asked = []
        for k in self._asked_after(told):
            if self._stop_reason is not None or k != self._next_batch:
                break
            batch = self._ask_next()
            if batch is None:
                break
            asked.append(batch)
        return asked

    def _round_due(self) -> bool:
        """A fine-tuning round is due, the drain is over (nothing in flight) and no budget or
        stop request ends the run first."""
        if self._finetune is None or not self._finetune.schedule.due or self._inflight:
            return False
        self._check_stop()
        return self._stop_reason is None

    async def _finetune_round(self) -> bool:
        """Train the due round and load its adapter; False if the run stopped meanwhile."""
        assert self._finetune is not None
        if self.on_round is not None:
            n = self._finetune.schedule.rounds + 1
            self.on_round("start", {"round": n, "accepted": self._finetune.schedule.accepted})
        self._round = self._finetune.start(self._next_batch - 1)
        wall = self.config.budget.wall_time
        try:
            left = None if wall is None else max(wall - self.elapsed, 0.0)
            outcome = await asyncio.wait_for(self._round, left)
        except TimeoutError:
            self._stop_reason = f"wall-time budget {wall} s spent"
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
        built, applied, note = swap_adapter(self.config, adapter, build_backend)
        for i, new in built.items():
            old = self.llms[i]
            self.llms[i] = new
            self.arms = [dataclasses.replace(a, llm=new) if a.llm is old else a for a in self.arms]
            with contextlib.suppress(Exception):
                await old.aclose()
        self.llm = self.llms[0]
        return applied, note

    def _ask_next(self) -> _Batch | None:
        batch = self._ask(self._next_batch)
        if batch is not None:
            self._next_batch += 1
            self._inflight[batch.index] = batch
        return batch

    def _start(self, batch: _Batch, pool: SandboxPool) -> None:
        if not batch.tasks:
            batch.tasks = [
                asyncio.ensure_future(self._run_candidate(batch, c, pool)) for c in batch.candidates
            ]

    async def _gather(self, batch: _Batch, pool: SandboxPool) -> None:
        self._start(batch, pool)
        await self._wait(batch)

    async def _wait(self, batch: _Batch) -> None:
        results = await asyncio.gather(*batch.tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, asyncio.CancelledError):
                raise r
            if isinstance(r, BaseException):
                self._cancel_all()
                raise r

    def _cancel_all(self) -> None:
        for b in self._inflight.values():
            for t in b.tasks:
                t.cancel()
        self._inflight.clear()


def _context_hint(llm: LLMBackend, needed: int) -> str:
    trained = getattr(llm, "n_ctx_train", None)
    if llm.name == "llama_cpp" and trained and trained >= needed:
        return f" (this model was trained on {trained} tokens: raise llm.n_ctx to {needed} or more)"
    return ""


def build_backend(config: RunConfig, llm_config: LLMConfig | None = None) -> LLMBackend:
    """The LLM backend a configuration names (``llm_config``, default ``config.llm``).

    Raises:
        ValueError: a setting the backend needs is missing.
        evolm.llm.LLMError: the backend cannot be set up (a package or model file is missing).
    """
    from evolm.llm import make_backend

    c = llm_config if llm_config is not None else config.llm
    if c.backend == "fake":
        return make_backend(
            "fake", model=c.model or "fake", latency=c.latency, concurrency=c.concurrency
        )
    if c.backend == "replay":
        if not c.cassette:
            raise ValueError(
                "llm.backend = 'replay' needs llm.cassette (a run database path, "
                "or 'package:NAME' for a shipped cassette)"
            )
        return make_backend(f"replay:{resolve_cassette(c.cassette)}")
    path = f":{c.model_path}" if c.model_path else ""
    if c.backend == "llama_cpp":
        return make_backend(
            f"llama_cpp{path}",
            model=c.model,
            n_ctx=c.n_ctx,
            n_threads=c.n_threads,
            concurrency=c.concurrency,
            prices=c.prices,
            lora_path=resolve_adapter(c.lora, config.domain.name, c.model_path),
            lora_scale=c.lora_scale,
            token_healing=c.token_healing,
            seed=config.seed,
        )
    if c.backend == "hf":
        return make_backend(
            f"hf{path}",
            model=c.model,
            device=c.device,
            dtype=c.dtype,
            quantization=c.quantization,
            concurrency=c.concurrency,
            prices=c.prices,
            lora_path=c.lora if c.lora not in (None, SHIPPED) else None,
            seed=config.seed,
        )
    if c.backend == "vllm":
        if not c.model_path:
            raise ValueError(
                "llm.backend = 'vllm' needs llm.model_path (a model directory, or a hub id "
                "already in the local cache)"
            )
        return make_backend(
            f"vllm{path}",
            model=c.model,
            dtype=c.dtype,
            gpu_memory_utilization=c.gpu_memory_utilization,
            tensor_parallel_size=c.tensor_parallel_size,
            concurrency=c.concurrency,
            prices=c.prices,
            seed=config.seed,
        )
    if not c.model:
        raise ValueError("llm.backend = 'openai' needs llm.model (the model name to request)")
    return make_backend(
        f"openai:{c.model}" + (f"@{c.base_url}" if c.base_url else ""),
        api_key_env=c.api_key_env,
        concurrency=c.concurrency,
        timeout=c.timeout,
        max_retries=c.max_retries,
        prices=c.prices,
        seed=config.seed,
    )


SHIPPED = "shipped"
"""``llm.lora`` value for the adapter evolm ships for the bundled model and the run's domain."""


def resolve_adapter(spec: str | None, domain: str, model_path: str | None = None) -> str | None:
    """The LoRA adapter file an ``llm.lora`` value names, or None.

    ``"shipped"`` is the adapter trained for the bundled SmolLM2 model and ``domain``
    (``evolm/adapters/smollm2-<domain>.gguf``); with another model, or a domain without one, it
    is no adapter. ``package:NAME`` names a shipped adapter; anything else is a path.

    Raises:
        ConfigError: no shipped adapter has that name.
    """
    from importlib import resources

    if spec is None:
        return None
    root = resources.files("evolm.adapters")
    if spec == SHIPPED:
        res = root.joinpath(f"smollm2-{domain}.gguf")
        return str(res) if model_path is None and res.is_file() else None
    if spec.startswith("package:"):
        name = spec.split(":", 1)[1]
        res = root.joinpath(f"{name}.gguf")
        if not res.is_file():
            shipped = sorted(
                f.name.removesuffix(".gguf") for f in root.iterdir() if f.name.endswith(".gguf")
            )
            raise ConfigError(
                f"llm.lora: no adapter named {name!r} ships with evolm; shipped: "
                f"{', '.join(shipped) or 'none'}"
            )
        return str(res)
    return spec


def resolve_cassette(spec: str) -> str:
    """A cassette path; ``package:NAME`` names one shipped in ``evolm/cassettes``."""
    if spec.startswith("package:"):
        from importlib import resources

        name = spec.split(":", 1)[1]
        res = resources.files("evolm.cassettes").joinpath(f"{name}.db")
        if not res.is_file():
            raise StoreError(f"no cassette named {name!r} ships with evolm")
        return str(res)
    return spec
