"""Shared parts of the in-process backends (llama.cpp, transformers, vLLM).

- :class:`ModelWorker`: one thread that runs every call into one loaded model, in order, with a
  lock, because model contexts are not thread-safe. Generation never runs on the event loop, so
  the engine keeps evaluating programs meanwhile. A request whose caller gives up (a deadline, a
  cancelled run) sets its :class:`threading.Event`, and the backend stops generating at the next
  token.
- :class:`MicroBatcher`: the engine sends one request per candidate, concurrently; a batched
  backend collects the requests that are waiting into one batch per model call.
- :class:`TokenCounter`: what a backend with a tokenizer offers the engine's start-up
  prompt-size check.
- :func:`default_threads`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, TypeVar, runtime_checkable

from evolm.llm.base import Completion, Request

__all__ = [
    "MicroBatcher",
    "ModelWorker",
    "TokenCounter",
    "default_threads",
]

T = TypeVar("T")


@runtime_checkable
class TokenCounter(Protocol):
    """A backend that can count a request's prompt tokens exactly, as its model will see them.

    ``context_length`` is the most tokens (prompt + completion) one request can use.
    """

    model: str

    @property
    def context_length(self) -> int: ...

    def count_tokens(self, request: Request) -> int: ...


def default_threads() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ModelWorker:
    """Runs calls into one model on one thread, in the order they are submitted.

    ``lock`` is held around every call the worker runs; code outside the worker that touches
    the model (tokenizing for the prompt-size check) takes it too.
    """

    def __init__(self, name: str) -> None:
        self.lock = threading.Lock()
        self._name = name
        self._executor: ThreadPoolExecutor | None = None

    def _locked(self, fn: Callable[[], T]) -> T:
        with self.lock:
            return fn()

    async def run(self, fn: Callable[[], T], cancel: threading.Event | None = None) -> T:
        """Run ``fn()`` on the worker thread and return its result.

        If the caller is cancelled, ``cancel`` is set (so a generation in progress can stop at
        its next token) and a call that has not started yet is dropped.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"evolm-{self._name}")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._locked, fn)
        try:
            return await future
        except asyncio.CancelledError:
            if cancel is not None:
                cancel.set()
            raise

    def shutdown(self) -> None:
        """Stop the thread once the call in progress (if any) returns."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


@dataclass
class _Pending:
    request: Request
    future: asyncio.Future[Completion]
    cancel: threading.Event = field(default_factory=threading.Event)


BatchFn = Callable[[Sequence[Request], Sequence[threading.Event]], list[Completion]]


class MicroBatcher:
    """Collects concurrent single requests into batches for one model call each.

    Args:
        run_batch: generates a batch on the worker thread; gets the requests and their
            cancel events, returns one completion per request, in order.
        worker: the model's worker.
        max_batch: the most requests in one call.
        window: seconds to wait for more requests before starting a batch that is not full.

    While a batch runs, new requests queue up and form the next batch. An exception from
    ``run_batch`` fails every request of that batch (as an exception the backend's base class
    turns into error completions).
    """

    def __init__(
        self, run_batch: BatchFn, worker: ModelWorker, max_batch: int, window: float = 0.005
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run_batch = run_batch
        self._worker = worker
        self.max_batch = max_batch
        self.window = window
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []

    async def submit(self, request: Request) -> Completion:
        """Queue one request and wait for its completion."""
        loop = asyncio.get_running_loop()
        item = _Pending(request, loop.create_future())
        self._queue.append(item)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        try:
            return await item.future
        except asyncio.CancelledError:
            item.cancel.set()
            with contextlib.suppress(ValueError):
                self._queue.remove(item)
            raise

    async def _drain(self) -> None:
        while self._queue:
            if len(self._queue) < self.max_batch:
                await asyncio.sleep(self.window)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            batch = [p for p in batch if not p.future.done()]
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            requests = [p.request for p in batch]
            cancels = [p.cancel for p in batch]
            try:
                results = await self._worker.run(partial(self._run_batch, requests, cancels))
            except asyncio.CancelledError:
                for p in batch:
                    p.cancel.set()
                    if not p.future.done():
                        p.future.cancel()
                raise
            except Exception as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, completion in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(completion)
