"""A pool of evaluation worker processes with hard deadlines.

Untrusted programs never run in the engine's process: each worker is a separate process (started
through a ``forkserver`` that has already imported numpy and the domain) that builds the domain
once and then evaluates programs sent to it. Results come back as msgpack, never pickle, so a
hostile program cannot make the engine execute code by returning a crafted object.

Every wait has a deadline: a program that runs past its timeout has its worker's whole process
group killed with SIGKILL and the worker is replaced; a worker that dies is replaced too. Either
way the candidate gets a status (``timeout`` or ``error``), and the engine never hangs.

This pool isolates crashes, hangs and memory blowups but is not a security boundary; the jailed
fork-server sandbox (see docs/design.md) replaces it as the default evaluator.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import resource
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

import msgpack

from evolm.types import Evaluation, Status

__all__ = ["EvalPool", "decode_evaluation", "encode_evaluation"]

MAX_RESULT_BYTES = 8 * 1024 * 1024


def encode_evaluation(ev: Evaluation) -> bytes:
    """msgpack of an evaluation; extras that cannot be encoded turn it into an error."""
    d = {
        "status": ev.status.value,
        "fitness": ev.fitness,
        "descriptors": list(ev.descriptors) if ev.descriptors is not None else None,
        "extras": ev.extras,
        "wall_time": ev.wall_time,
        "cpu_time": ev.cpu_time,
        "error": ev.error,
    }
    try:
        return msgpack.packb(d, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        d["status"] = Status.ERROR.value
        d["extras"] = {}
        d["error"] = f"result is not serialisable ({exc}); return numbers, strings, lists, dicts"
        return msgpack.packb(d, use_bin_type=True)


def decode_evaluation(blob: bytes) -> Evaluation:
    """Inverse of :func:`encode_evaluation`; malformed frames become ``error`` evaluations."""
    try:
        d = msgpack.unpackb(blob, raw=False, strict_map_key=True)
        if not isinstance(d, dict):
            raise ValueError("frame is not a map")
        desc = d.get("descriptors")
        return Evaluation(
            status=Status(d["status"]),
            fitness=None if d.get("fitness") is None else float(d["fitness"]),
            descriptors=None if desc is None else tuple(float(x) for x in desc),
            extras=d.get("extras") or {},
            wall_time=float(d.get("wall_time", 0.0)),
            cpu_time=float(d.get("cpu_time", 0.0)),
            error=d.get("error"),
        )
    except Exception as exc:
        return Evaluation.failure(Status.ERROR, f"malformed result from worker: {exc}")


def _worker_main(
    conn: Connection, domain_name: str, params: dict[str, Any], memory_mb: int | None
) -> None:
    """Worker loop: evaluate (code, seed) requests until the pipe closes."""
    os.setpgrp()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    import random

    import numpy as np

    from evolm.domains.base import get_domain

    domain = get_domain(domain_name, params)
    while True:
        try:
            req = msgpack.unpackb(conn.recv_bytes(), raw=False)
        except (EOFError, OSError):
            return
        code, seed = req["code"], int(req["seed"])
        random.seed(seed)
        np.random.seed(seed % 2**32)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            ev = domain.evaluate(code, seed)
            if not isinstance(ev, Evaluation):
                ev = Evaluation.failure(
                    Status.ERROR, f"domain.evaluate returned {type(ev).__name__}, not Evaluation"
                )
        except MemoryError:
            ev = Evaluation.failure(Status.ERROR, "memory limit exceeded")
        except BaseException as exc:
            ev = Evaluation.failure(Status.ERROR, f"{type(exc).__name__}: {exc}")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ev = Evaluation(
            status=ev.status,
            fitness=ev.fitness,
            descriptors=ev.descriptors,
            extras=ev.extras,
            wall_time=wall,
            cpu_time=cpu,
            error=ev.error,
        )
        try:
            conn.send_bytes(encode_evaluation(ev))
        except (OSError, ValueError):
            return


class _Worker:
    def __init__(self, proc: Any, conn: Connection) -> None:
        self.proc = proc
        self.conn = conn

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            if self.proc.pid:
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.join(timeout=2)
        with contextlib.suppress(Exception):
            self.conn.close()


class EvalPool:
    """Evaluate programs of one domain in ``workers`` separate processes.

    Args:
        domain: registered domain name; params: its parameters (rebuilt in every worker).
        workers: number of worker processes (0: one per core).
        timeout: default seconds per evaluation before the worker is killed.
        memory_mb: address-space limit per worker (None: no limit).

    Use as ``async with EvalPool(...) as pool: ev = await pool.evaluate(code, seed)``.
    """

    def __init__(
        self,
        domain: str,
        params: dict[str, Any] | None = None,
        *,
        workers: int = 0,
        timeout: float = 5.0,
        memory_mb: int | None = 1024,
    ) -> None:
        if timeout <= 0 or not math.isfinite(timeout):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        self.domain = domain
        self.params = dict(params or {})
        self.size = workers or os.cpu_count() or 1
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(["numpy", "msgpack", "evolm.domains.base"])
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self.replaced = 0

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self.domain, self.params, self.memory_mb),
            daemon=True,
        )
        proc.start()
        child.close()
        w = _Worker(proc, parent)
        self._all.add(w)
        return w

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        for _ in range(self.size):
            self._idle.put_nowait(self._spawn())

    async def __aenter__(self) -> EvalPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for w in list(self._all):
            w.kill()
        self._all.clear()

    def _replace(self, w: _Worker) -> _Worker:
        w.kill()
        self._all.discard(w)
        self.replaced += 1
        return self._spawn()

    async def _roundtrip(self, w: _Worker, payload: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        fd = w.conn.fileno()

        def on_readable() -> None:
            loop.remove_reader(fd)
            if fut.done():
                return
            try:
                fut.set_result(w.conn.recv_bytes(MAX_RESULT_BYTES))
            except Exception as exc:
                fut.set_exception(exc)

        w.conn.send_bytes(payload)
        loop.add_reader(fd, on_readable)
        try:
            return await fut
        finally:
            loop.remove_reader(fd)

    async def evaluate(self, code: str, seed: int = 0, timeout: float | None = None) -> Evaluation:
        """Evaluate one program; never raises for anything the program does."""
        if self._idle is None:
            raise RuntimeError("EvalPool.evaluate called before start(); use `async with`")
        deadline = self.timeout if timeout is None else timeout
        w = await self._idle.get()
        payload = msgpack.packb({"code": code, "seed": int(seed)}, use_bin_type=True)
        t0 = time.perf_counter()
        try:
            blob = await asyncio.wait_for(self._roundtrip(w, payload), deadline)
        except TimeoutError:
            self._idle.put_nowait(self._replace(w))
            return Evaluation.failure(
                Status.TIMEOUT,
                f"evaluation ran past its {deadline:g} s deadline and was killed",
                wall_time=time.perf_counter() - t0,
            )
        except asyncio.CancelledError:
            self._idle.put_nowait(self._replace(w))
            raise
        except (EOFError, OSError, ValueError) as exc:
            code_ = w.proc.exitcode
            self._idle.put_nowait(self._replace(w))
            why = "result too large" if isinstance(exc, OSError) and "large" in str(exc) else ""
            if code_ is not None and code_ < 0:
                why = f"killed by signal {-code_}"
            elif code_ is not None:
                why = f"exit code {code_}"
            return Evaluation.failure(
                Status.ERROR,
                f"evaluation worker died ({why or type(exc).__name__}); it was replaced",
                wall_time=time.perf_counter() - t0,
            )
        self._idle.put_nowait(w)
        return decode_evaluation(blob)
