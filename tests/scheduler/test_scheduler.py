"""The scheduler and the budget without asyncio, a sandbox or SQLite.

Candidates are answered by the fake responder and scored by the toy domain's ``evaluate``
called in this process: a unit-test stand-in for the runner, whose real counterpart (the async
runner with the sandbox evaluator and the run database) tests/test_engine.py covers, including
that the runner reproduces exactly what :func:`drive` computes here.
"""

from __future__ import annotations

import asyncio

import pytest

from evolm.config import load_config
from evolm.domains.base import get_domain
from evolm.llm.base import Completion
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.runner import Runner
from evolm.scheduler import (
    SEED,
    Batch,
    Budget,
    Outcome,
    Scheduler,
    Spent,
    build_archive,
    build_arms,
)
from evolm.store import RunStore
from evolm.types import AddStatus, Evaluation, Program, Status

TOY = "tests.toy_domain:ToyDomain"


def toy_config(**over):
    base = {
        "seed": 1,
        "domain": {"name": TOY},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": 2, "workers": 2, "init_batches": 1},
        "budget": {"evaluations": 30},
    }
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(overrides=base)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_scheduler(cfg, clock=None):
    domain = get_domain(cfg.domain.name, cfg.domain.params)
    llm = FakeLLM(responder=mutating_responder)
    arms = build_arms(cfg, domain.context(), [llm])
    budget = Budget(cfg.budget, counts_calls=True, clock=clock or Clock())
    return domain, Scheduler(cfg, build_archive(cfg, domain), arms, budget)


def run_batch(sched: Scheduler, domain, batch: Batch, answer=mutating_responder) -> list[Outcome]:
    """What the runner does for a batch, synchronously and in this process."""
    out = []
    space = domain.descriptor_space
    for c in batch.candidates:
        prop = c.proposal
        arm = sched.arms[c.arm] if c.arm >= 0 else None
        completion = None
        if prop.request is None:
            code, error = prop.code or "", prop.error
        else:
            assert arm is not None
            text = answer(prop.request)
            completion = Completion(text=text, model="fake", tokens_in=10, tokens_out=len(text))
            res = arm.operator.finish(prop, text)
            code, error = res.code, res.error
        program = Program(
            id=c.program_id,
            code=code,
            parent_ids=tuple(p.program.id for p in c.parents),
            operator=arm.operator.name if arm else SEED,
            batch=batch.index,
            seed=c.seed,
        )
        if error is not None:
            ev = Evaluation.failure(Status.INVALID, error)
            out.append(Outcome(program, ev, completion, parsed=False))
        else:
            out.append(Outcome(program, domain.evaluate(code, c.seed).checked(space), completion))
    return out


def drive(cfg):
    """A whole run with the runner's ordering: tell in order, ask what is due after each."""
    domain, sched = make_scheduler(cfg)
    inflight = {}
    seed = sched.seed_batch(domain.seeds())
    sched.tell(seed, run_batch(sched, domain, seed))
    for b in sched.ask_after(0):
        inflight[b.index] = b
    told = []
    while inflight:
        k = min(inflight)
        batch = inflight.pop(k)
        told.append(sched.tell(batch, run_batch(sched, domain, batch)))
        for b in sched.ask_after(k):
            inflight[b.index] = b
    return sched, told


def elites(archive):
    return sorted((e["id"], e["fitness"], e["cell"]) for e in archive.export())


def test_ask_is_a_pure_function_of_seed_and_batch_index():
    cfg = toy_config()
    runs = [drive(cfg) for _ in range(2)]
    assert elites(runs[0][0].archive) == elites(runs[1][0].archive)
    assert [t.statuses for t in runs[0][1]] == [t.statuses for t in runs[1][1]]
    other = drive(toy_config(seed=2))
    assert [t.individuals[0].program.code for t in other[1]] != [
        t.individuals[0].program.code for t in runs[0][1]
    ]


def test_scheduler_run_matches_the_async_runner(tmp_path):
    """The runner is only timing around the scheduler: same seed, same answers, same archive."""
    cfg = toy_config()
    sched, _told = drive(cfg)
    eng = Runner(cfg, RunStore(tmp_path / "r.db"), llm=FakeLLM(responder=mutating_responder))
    result = asyncio.run(eng.run())
    assert result.status == "completed"
    assert elites(eng.archive) == elites(sched.archive)
    assert sched.budget.spent.evaluations == 30 == result.snapshot.evaluations


def test_seeds_first_then_the_archive_and_parents_recorded():
    cfg = toy_config(engine={"init_batches": 2})
    domain, sched = make_scheduler(cfg)
    seed = sched.seed_batch(domain.seeds())
    assert [c.arm for c in seed.candidates] == [-1, -1] and seed.llm_calls == 0
    sched.tell(seed, run_batch(sched, domain, seed))
    seed_ids = {s.program.id for s in sched.seeds}
    (b1, b2) = sched.ask_after(0)  # depth 2: two batches at once after the seeds
    for b in (b1, b2):
        for c in b.candidates:
            assert {p.program.id for p in c.parents} <= seed_ids
            assert c.proposal.request is not None
    told = sched.tell(b1, run_batch(sched, domain, b1))
    sched.tell(b2, run_batch(sched, domain, b2))
    (b3,) = sched.ask_after(1)
    assert b3.index == 3
    archive_ids = {e["id"] for e in sched.archive.export()}
    assert all({p.program.id for p in c.parents} <= archive_ids for c in b3.candidates)
    assert told.arm_stats["prompt_mutation@fake"]["chosen"] == len(b1.candidates)


def test_budget_reserves_calls_for_batches_in_flight():
    cfg = toy_config(budget={"evaluations": None, "llm_calls": 6})
    domain, sched = make_scheduler(cfg)
    seed = sched.seed_batch(domain.seeds())
    sched.tell(seed, run_batch(sched, domain, seed))
    asked = sched.ask_after(0)
    assert [len(b.candidates) for b in asked] == [4, 2]  # never more calls than the budget
    assert sched.budget.calls_reserved == 6 and sched.budget.spent.llm_calls == 0
    for b in asked:
        sched.tell(b, run_batch(sched, domain, b))
    assert sched.budget.spent.llm_calls == 6
    assert sched.ask_after(2) == []
    assert sched.stop_reason == "LLM-call budget 6 spent"


def test_garbage_answers_are_told_as_invalid_not_raised():
    cfg = toy_config(budget={"evaluations": 10})
    domain, sched = make_scheduler(cfg)
    seed = sched.seed_batch(domain.seeds())
    sched.tell(seed, run_batch(sched, domain, seed))
    (b1, _b2) = sched.ask_after(0)
    told = sched.tell(b1, run_batch(sched, domain, b1, answer=lambda r: "\x00\x01 not code"))
    assert set(told.status_counts) <= {"invalid", "error"}
    assert all(st is AddStatus.NOT_ADDED for st in told.statuses)
    assert told.arm_stats["prompt_mutation@fake"]["valid"] == 0
    assert told.accepted == 0


def test_tell_refuses_outcomes_that_do_not_match_the_batch():
    cfg = toy_config()
    domain, sched = make_scheduler(cfg)
    seed = sched.seed_batch(domain.seeds())
    outcomes = run_batch(sched, domain, seed)
    with pytest.raises(ValueError, match="2 candidates, got 1 outcomes"):
        sched.tell(seed, outcomes[:1])


def test_wall_time_has_one_path():
    clock = Clock()
    cfg = toy_config(budget={"evaluations": None, "wall_time": 10.0})
    budget = Budget(cfg.budget, clock=clock)
    budget.start_clock(elapsed_before=4.0)
    assert budget.time_left() == 6.0 and budget.stop_reason(None, 4) is None
    clock.now = 7.0
    assert budget.time_left() == 0.0
    reason = budget.stop_reason(None, 4)
    assert reason == budget.wall_time_reason() == "wall-time budget 10.0 s spent"


def test_budget_stop_reasons_in_order():
    cfg = toy_config(budget={"evaluations": 8, "tokens": 100, "target_fitness": -1.0})
    budget = Budget(cfg.budget, clock=Clock())
    assert budget.stop_reason(-5.0, 4) is None
    assert budget.stop_reason(-0.5, 4) == "target fitness -1.0 reached (-0.5)"
    budget.charge(tokens=100)
    assert budget.stop_reason(-5.0, 4) == "token budget 100 spent"
    budget = Budget(cfg.budget, clock=Clock())
    budget.restore(Spent(llm_calls=3, tokens=5, cost=0.0, evaluations=8))
    assert budget.ask_size(4) == 0
    assert budget.stop_reason(None, 4) == "evaluation budget 8 spent"


def test_replay_rebuilds_the_state_of_a_live_scheduler():
    cfg = toy_config()
    live, told = drive(cfg)
    domain, again = make_scheduler(cfg)
    seed = again.seed_batch(domain.seeds())
    seed_told = again.tell(seed, run_batch(again, domain, seed))
    _, fresh = make_scheduler(cfg)
    fresh.replay(0, seed_told.individuals, seed_told.arm_stats)
    for t in told:
        fresh.replay(t.index, t.individuals, t.arm_stats)
    assert elites(fresh.archive) == elites(live.archive)
    assert fresh.selector.state() == live.selector.state()
