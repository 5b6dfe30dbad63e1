"""Spreading evaluation jobs over remote sandbox pools, and surviving their loss.

A :class:`Dispatcher` holds *slots*: remote pools (one per cluster node) that each evaluate up to
``capacity`` jobs at once. Every job goes to the slot with the most free capacity, waiting while
all are full, so a batch is split across nodes by what each can take right now and a slow node
gets fewer jobs. This module knows nothing of Ray: :mod:`evolm.evaluators.ray_cluster` gives it
slots backed by actors, and the unit tests give it fakes.

Faults. A slot whose evaluation raises :class:`SlotLost` (its actor or node died), or that gives
no answer within the job's timeout plus ``grace`` (hung: the pool itself kills a program at its
deadline, so silence past that means the node is stuck), is taken out, killed, and a replacement
is asked for in the background; its job is resubmitted to another slot. Each job yields exactly
one evaluation, whatever slot produced it, so a job is never told twice and none is lost; and
since the evaluation depends only on the job (its code and its seed), never on the node, the
archive does not depend on which node evaluated what. A job lost ``max_tries`` times comes back
as an ``error`` evaluation (a program that kills every node it runs on must not stop the run).
When no slot is left and no replacement is coming, :class:`ClusterGone` is raised: the run fails
with that message instead of waiting for a cluster that is not there.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from evolm.evaluators.base import EvalJob
from evolm.types import Evaluation, Status

__all__ = ["ClusterGone", "Dispatcher", "Slot", "SlotLost"]


class SlotLost(Exception):
    """A remote pool cannot answer any more (its process or node died)."""


class ClusterGone(RuntimeError):
    """Every remote pool is lost and none can be started again: the cluster is gone."""


class Slot(Protocol):
    """One remote sandbox pool.

    Attributes:
        name: how the slot appears in info and messages (e.g. its node's id).
        node: the node it runs on (a replacement may run on the same one).
        capacity: jobs it evaluates at once (its pool's worker count).
    """

    name: str
    node: str
    capacity: int

    async def evaluate(self, job: EvalJob) -> Evaluation:
        """The job's evaluation; raises :class:`SlotLost` when the pool is gone."""
        ...

    def kill(self) -> None:
        """Stop the remote pool now (its programs die with it); never raises."""
        ...


Replacer = Callable[[Slot], Awaitable["Slot | None"]]
"""Starts a slot in place of a lost one (on its node if that is alive); None when none can be."""


class Dispatcher:
    """Evaluate jobs on slots by free capacity, resubmitting the jobs of lost slots.

    Args:
        slots: the started slots.
        replace: starts a replacement for a lost slot, or returns None.
        grace: seconds past a job's own timeout before its slot counts as hung.
        max_tries: slots a job may be tried on before it comes back as an ``error``.
    """

    def __init__(
        self, slots: Sequence[Slot], replace: Replacer, *, grace: float, max_tries: int = 3
    ) -> None:
        if not slots:
            raise ValueError("a dispatcher needs at least one slot")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.slots: list[Slot] = list(slots)
        self.grace = grace
        self.max_tries = max_tries
        self.lost: list[str] = []
        """One line per slot taken out: which, and why."""
        self.done: collections.Counter[str] = collections.Counter()
        """Evaluations returned, by slot name."""
        self._replace = replace
        self._busy: dict[int, int] = {id(s): 0 for s in self.slots}
        self._pending: set[asyncio.Task[None]] = set()
        self._changed: asyncio.Condition | None = None
        self._closed = False

    @property
    def capacity(self) -> int:
        """Jobs the live slots evaluate at once."""
        return sum(s.capacity for s in self.slots)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:  # made on first use, inside the running loop
            self._changed = asyncio.Condition()
        return self._changed

    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        """One evaluation per job, in job order.

        Raises:
            ClusterGone: no slot is left and none is being started.
        """
        if len(jobs) == 1:
            return [await self._one(jobs[0])]
        try:
            async with asyncio.TaskGroup() as tg:  # one job failing cancels the others
                tasks = [tg.create_task(self._one(j)) for j in jobs]
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None
        return [t.result() for t in tasks]

    async def _one(self, job: EvalJob) -> Evaluation:
        tries: list[str] = []
        for _ in range(self.max_tries):
            slot = await self._acquire()
            try:
                async with asyncio.timeout(job.timeout + self.grace):
                    ev = await slot.evaluate(job)
            except SlotLost as exc:
                why = str(exc) or "its pool was lost"
                tries.append(f"{slot.name}: {why}")
                self._lose(slot, why)
            except TimeoutError:
                why = (
                    f"no answer within {job.timeout + self.grace:g} s (the program's "
                    f"{job.timeout:g} s and {self.grace:g} s of grace): hung, killed"
                )
                tries.append(f"{slot.name}: {why}")
                self._lose(slot, why)
            else:
                self.done[slot.name] += 1
                return ev
            finally:
                await self._release(slot)
        return Evaluation.failure(
            Status.ERROR,
            f"the evaluation was lost on {len(tries)} cluster nodes in turn ("
            + "; ".join(tries)
            + "); it is not tried again",
        )

    async def _acquire(self) -> Slot:
        cond = self._condition()
        async with cond:
            while True:
                if not self.slots and not self._pending:
                    raise ClusterGone(self._gone_message())
                free = [(s.capacity - self._busy[id(s)], -i, s) for i, s in enumerate(self.slots)]
                if free:
                    room, _, best = max(free, key=lambda t: (t[0], t[1]))
                    if room > 0:
                        self._busy[id(best)] += 1
                        return best
                await cond.wait()

    async def _release(self, slot: Slot) -> None:
        cond = self._condition()
        async with cond:
            if id(slot) in self._busy:
                self._busy[id(slot)] -= 1
            cond.notify_all()

    def _lose(self, slot: Slot, why: str) -> None:
        """Take ``slot`` out (once, however many of its jobs noticed), kill it and start its
        replacement in the background."""
        if slot not in self.slots:
            return
        self.slots.remove(slot)
        del self._busy[id(slot)]
        self.lost.append(f"{slot.name}: {why}")
        slot.kill()
        task = asyncio.get_running_loop().create_task(self._start_replacement(slot))
        self._pending.add(task)

    async def _start_replacement(self, old: Slot) -> None:
        new: Slot | None = None
        try:
            new = await self._replace(old)
        except Exception as exc:  # a failed start is one more loss, reported, not raised
            self.lost.append(f"{old.name}: its replacement failed to start: {exc}")
        finally:
            cond = self._condition()
            async with cond:
                self._pending.discard(asyncio.current_task())
                if new is not None and self._closed:
                    new.kill()
                elif new is not None:
                    self.slots.append(new)
                    self._busy[id(new)] = 0
                cond.notify_all()

    def _gone_message(self) -> str:
        lost = "; ".join(self.lost[-5:]) or "no node could start a pool"
        return (
            "the cluster is gone: every node's evaluation pool was lost and none could be "
            f"started again (last losses: {lost}). Check the cluster with `ray status`, restart "
            "its nodes, then continue the run with `evolm resume RUN.db`"
        )

    def drain(self) -> list[Slot]:
        """Stop: cancel the replacements being started (a starting one is killed) and hand
        back the live slots, for the caller to close."""
        self._closed = True
        for task in list(self._pending):
            task.cancel()
        slots, self.slots = self.slots, []
        self._busy.clear()
        return slots
