"""The dispatcher's splitting, resubmission and replacement logic, with fake slots (their real
counterpart, the Ray actor slot, is tested on a real cluster in test_ray.py)."""

from __future__ import annotations

import asyncio
import collections

import pytest

from evolm.evaluators import EvalJob
from evolm.evaluators.dispatch import ClusterGone, Dispatcher, Slot, SlotLost
from evolm.types import Evaluation, Program, Status


class FakeSlot:
    """A remote pool that evaluates a job to ``fitness = program id`` after ``delay`` s.

    ``die_after``: evaluations it answers before every later one raises :class:`SlotLost`;
    ``hang_on``: program ids it never answers.
    """

    def __init__(
        self,
        name: str,
        capacity: int = 1,
        *,
        delay: float = 0.01,
        die_after: int | None = None,
        hang_on: frozenset[int] = frozenset(),
    ) -> None:
        self.name = name
        self.node = name
        self.capacity = capacity
        self.delay = delay
        self.die_after = die_after
        self.hang_on = hang_on
        self.now = self.peak = 0
        self.seen: list[int] = []
        self.answered: list[int] = []
        self.killed = False

    async def evaluate(self, job: EvalJob) -> Evaluation:
        assert not self.killed, "a killed slot was given a job"
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.seen.append(job.program.id)
        try:
            await asyncio.sleep(self.delay)
            if self.die_after is not None and len(self.answered) >= self.die_after:
                raise SlotLost("actor died")
            if job.program.id in self.hang_on:
                await asyncio.sleep(3600)
            self.answered.append(job.program.id)
            return Evaluation(Status.OK, float(job.program.id), (0.0,), extras={"seed": job.seed})
        finally:
            self.now -= 1

    def kill(self) -> None:
        self.killed = True


def jobs(n: int, timeout: float = 0.2) -> list[EvalJob]:
    return [EvalJob(Program(id=i, code=f"# {i}"), 1000 + i, timeout) for i in range(n)]


async def no_replacement(old: Slot) -> Slot | None:
    return None


def run(d: Dispatcher, js: list[EvalJob]) -> list[Evaluation]:
    return asyncio.run(d.evaluate(js))


def test_jobs_spread_by_free_capacity_and_come_back_in_order():
    big, small = FakeSlot("big", capacity=3), FakeSlot("small", capacity=1)
    d = Dispatcher([big, small], no_replacement, grace=1.0)
    evs = run(d, jobs(12))
    assert [e.fitness for e in evs] == [float(i) for i in range(12)]
    assert [e.extras["seed"] for e in evs] == [1000 + i for i in range(12)]  # the job's seed
    assert big.peak == 3 and small.peak == 1  # never past a slot's capacity
    assert len(big.seen) > len(small.seen) > 0  # the bigger pool takes more of the batch
    assert sorted(big.seen + small.seen) == list(range(12))  # each job evaluated once


def test_concurrent_single_job_calls_share_the_capacity():
    a, b = FakeSlot("a", capacity=2), FakeSlot("b", capacity=2)
    d = Dispatcher([a, b], no_replacement, grace=1.0)

    async def go() -> list[list[Evaluation]]:
        return list(await asyncio.gather(*(d.evaluate([j]) for j in jobs(8))))

    evs = asyncio.run(go())
    assert [e[0].fitness for e in evs] == [float(i) for i in range(8)]
    assert a.peak == 2 and b.peak == 2


def test_a_lost_slot_has_its_jobs_resubmitted_and_none_counted_twice():
    dying = FakeSlot("dying", capacity=2, die_after=1)
    healthy = FakeSlot("healthy", capacity=2)
    d = Dispatcher([dying, healthy], no_replacement, grace=1.0)
    evs = run(d, jobs(10))
    assert [e.fitness for e in evs] == [float(i) for i in range(10)]  # nothing lost
    answered = dying.answered + healthy.answered
    assert sorted(answered) == list(range(10))  # each job answered exactly once
    assert dying.killed and d.slots == [healthy]
    assert len(d.lost) == 1 and "dying: actor died" in d.lost[0]  # taken out once
    assert d.done["dying"] == 1 and d.done["healthy"] == 9


def test_a_hung_slot_is_killed_and_replaced_and_its_job_resubmitted():
    hung = FakeSlot("hung", hang_on=frozenset({0, 1, 2}))
    spare = FakeSlot("hung-2")
    started: list[str] = []

    async def replace(old: Slot) -> Slot | None:
        started.append(old.node)
        return spare

    d = Dispatcher([hung], replace, grace=0.2)
    evs = run(d, jobs(4, timeout=0.1))
    assert [e.fitness for e in evs] == [0.0, 1.0, 2.0, 3.0]
    assert hung.killed and started == ["hung"] and d.slots == [spare]
    assert "hung, killed" in d.lost[0] and "0.3 s" in d.lost[0]
    assert sorted(spare.answered) == [0, 1, 2, 3]  # job 0 resubmitted, once


def test_a_job_lost_on_every_try_comes_back_as_an_error_not_an_exception():
    made = collections.Counter[str]()

    async def replace(old: Slot) -> Slot | None:
        made[old.node] += 1
        return FakeSlot(f"n{sum(made.values())}", die_after=0)

    d = Dispatcher([FakeSlot("n0", die_after=0)], replace, grace=1.0, max_tries=3)
    (ev,) = run(d, jobs(1))
    assert ev.status is Status.ERROR
    assert "lost on 3 cluster nodes" in (ev.error or "") and "n0: actor died" in (ev.error or "")


def test_no_slot_left_and_none_coming_raises_cluster_gone_with_the_fix():
    d = Dispatcher([FakeSlot("only", die_after=0)], no_replacement, grace=1.0)
    with pytest.raises(ClusterGone, match="the cluster is gone") as info:
        run(d, jobs(3))
    assert "only: actor died" in str(info.value) and "evolm resume" in str(info.value)


def test_a_replacement_that_fails_to_start_is_reported():
    async def broken(old: Slot) -> Slot | None:
        raise RuntimeError("no pool within 90 s")

    d = Dispatcher([FakeSlot("x", die_after=0)], broken, grace=1.0)
    with pytest.raises(ClusterGone, match="replacement failed to start: no pool within 90 s"):
        run(d, jobs(1))


def test_drain_hands_back_the_slots_and_bad_arguments_are_refused():
    a = FakeSlot("a")
    d = Dispatcher([a], no_replacement, grace=1.0)
    assert d.capacity == 1 and d.drain() == [a] and d.slots == []
    with pytest.raises(ValueError, match="at least one slot"):
        Dispatcher([], no_replacement, grace=1.0)
    with pytest.raises(ValueError, match="max_tries"):
        Dispatcher([a], no_replacement, grace=1.0, max_tries=0)
