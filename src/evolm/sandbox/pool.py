"""An asyncio pool of zygotes: the engine's evaluator for untrusted programs.

The pool starts ``workers`` zygotes (see :mod:`evolm.sandbox.zygote`) on the chosen tier, hands
each request to an idle one and waits for its reply with a deadline of the request's timeout plus
a grace period. The zygote itself kills a program at its deadline; the pool's own deadline is the
backstop for a zygote that dies or goes silent, which is then killed and replaced. Whatever a
program does, :meth:`SandboxPool.evaluate` returns an :class:`~evolm.types.Evaluation`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import secrets
import signal
import subprocess
from dataclasses import replace
from typing import Any, NoReturn

from evolm.domains.base import Domain, get_domain
from evolm.sandbox import codec, startup, tempdirs
from evolm.sandbox.probe import choose_tier
from evolm.sandbox.startup import START_TIMEOUT_S
from evolm.sandbox.tiers import (
    NOBODY,
    TIERS,
    SandboxUnavailable,
    launch_command,
    precheck,
    sandbox_paths,
    system_paths,
    zygote_env,
)
from evolm.types import Evaluation, Status

__all__ = ["START_TIMEOUT_S", "SandboxPool", "worker_domain_spec"]

GRACE_S = 2.0
"""How long past a request's timeout the pool waits for its zygote before replacing it."""

MAX_CODE_BYTES = 4 * 1024 * 1024


class _Worker:
    """One zygote process and the two pipes to it."""

    def __init__(self, proc: subprocess.Popen[bytes], log: str) -> None:
        self.proc = proc
        self.log = log
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.read_transport: asyncio.ReadTransport | None = None
        self.ready: asyncio.Task[None] | None = None

    async def connect(self, req_w: int, rep_r: int) -> None:
        loop = asyncio.get_running_loop()
        self.reader = asyncio.StreamReader(limit=codec.MAX_FRAME_BYTES)
        reader = self.reader
        self.read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(rep_r, "rb", 0)
        )
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(req_w, "wb", 0)
        )
        self.writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def send(self, obj: Any) -> None:
        assert self.writer is not None
        self.writer.write(codec.frame(codec.encode_value(obj)))
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        assert self.reader is not None
        n = codec.frame_length(await self.reader.readexactly(4))
        if n > codec.MAX_FRAME_BYTES:
            raise ValueError(f"worker announced a {n}-byte frame")
        msg = codec.decode_value(await self.reader.readexactly(n))
        if not isinstance(msg, dict):
            raise ValueError("worker frame is not a map")
        return msg

    def stderr_tail(self) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 2000))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def kill(self) -> None:
        for target in (self.proc.pid, -self.proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if self.proc.returncode is None:
                    os.kill(target, signal.SIGKILL)
        if self.ready is not None:
            if not self.ready.done():
                self.ready.cancel()
            elif not self.ready.cancelled():
                self.ready.exception()  # retrieved: a failed start is reported elsewhere
        if self.writer is not None:
            _close_transport(self.writer.transport)
        if self.read_transport is not None:
            _close_transport(self.read_transport)


def _close_transport(transport: asyncio.BaseTransport) -> None:
    try:
        transport.close()
    except RuntimeError:  # the event loop is already closed: close the pipe itself
        pipe = transport.get_extra_info("pipe")
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


class SandboxPool:
    """Evaluate untrusted programs of one domain in sandboxed fork-server workers.

    Args:
        domain: registered domain name or ``package.module:Class`` (rebuilt in each zygote);
            None runs the built-in probe domain that tier probes use.
        params: the domain's parameters (msgpack-serialisable).
        workers: number of zygotes (0: one per core).
        timeout: default seconds per program; a program past it is killed (status ``timeout``).
        memory_mb: default memory budget per program on top of the zygote's own size
            (None: no limit); a program over it gets status ``error`` ("memory limit exceeded").
        tier: ``"auto"`` (the strongest tier that works here), or one of ``TIERS`` to force it.
        allow_weak: permit the ``weak`` tier (no Landlock), explicitly or as the auto fallback.
        scratch: give each program an empty writable working directory (deleted after it).
        start_timeout: seconds a new worker may take to import and build the domain, and
            before that to set up (None: ``$EVOLM_SANDBOX_START_TIMEOUT``, else
            :data:`START_TIMEOUT_S`).

    Raises:
        ValueError: a bad argument (the message names it).

    Use as ``async with SandboxPool(...) as pool: ev = await pool.evaluate(code, seed)``.
    :meth:`start` raises :class:`SandboxUnavailable` when the tier cannot work, and
    ``ValueError`` when the domain cannot be built.
    """

    def __init__(
        self,
        domain: str | None,
        params: dict[str, Any] | None = None,
        *,
        workers: int = 0,
        timeout: float = 5.0,
        memory_mb: int | None = 1024,
        tier: str = "auto",
        allow_weak: bool = False,
        scratch: bool = False,
        start_timeout: float | None = None,
    ) -> None:
        self.start_timeout = startup.start_timeout(start_timeout)
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0 (0: one per core), got {workers}")
        if memory_mb is not None and memory_mb < 16:
            raise ValueError(f"memory_mb must be at least 16 (or None), got {memory_mb}")
        if tier != "auto" and tier not in TIERS:
            raise ValueError(f"unknown sandbox tier {tier!r}; choose auto or one of {TIERS}")
        try:
            codec.encode_value(params or {})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"domain params must be plain data for the workers: {exc}") from exc
        self.domain = domain
        self.params = dict(params or {})
        self.size = workers or os.cpu_count() or 1
        self.timeout = float(timeout)
        self.memory_mb = memory_mb
        self.requested_tier = tier
        self.allow_weak = allow_weak
        self.scratch = scratch
        self.tier: str | None = None
        self.tier_reason = ""
        self.scoring: str | None = None
        """``"separate"`` (a two-phase domain, scored in its own process) or ``"in_process"``
        (scored in the program's child), as the workers report it once started."""
        self.replaced = 0
        self.sandbox_id = secrets.token_hex(8)
        """Set as ``EVOLM_SANDBOX`` in every zygote's environment (for finding its processes)."""
        self._spec: str | None = None
        self._root: str | None = None
        self._paths: tuple[list[str], list[str]] = ([], [])
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: set[_Worker] = set()
        self._dead: list[subprocess.Popen[bytes]] = []
        self._ids = itertools.count(1)
        self._slots = itertools.count()
        self._closed = False

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def start(self) -> None:
        """Choose the tier, start the zygotes and wait until each has said hello.

        Raises:
            SandboxUnavailable: the tier cannot work here (the message says why).
            DomainStartError: (a ``SandboxUnavailable`` and a ``ValueError``) the domain raised,
                called ``sys.exit``, crashed or hung while a worker imported or built it.
            ValueError: the domain cannot be built here, or its class cannot be imported by a
                worker (defined in ``__main__`` or inside a function).
        """
        if self._idle is not None:
            raise RuntimeError("SandboxPool.start() called twice")
        if self.domain is not None:
            self._spec, dom = _worker_domain(self.domain, self.params)
            self.params = dict(dom.worker_params(dict(self.params)))
            self.scratch = self.scratch or dom.needs_scratch
        await self._choose_tier()
        tempdirs.remove_stale()  # left by engines killed outright (their owner is gone)
        self._root = tempdirs.make_root()
        self._paths = sandbox_paths(self._spec, self._root)
        self._idle = asyncio.Queue()
        try:
            workers = [self._spawn() for _ in range(self.size)]
            for w in workers:
                assert w.ready is not None
                await w.ready
                self._idle.put_nowait(w)
        except BaseException:
            self.close()
            raise

    async def _choose_tier(self) -> None:
        if self.requested_tier == "auto":
            # probing tries tiers with pools of its own: it is handed the class, never imports it
            probe = await asyncio.to_thread(choose_tier, self.allow_weak, pool=SandboxPool)
            self.tier, self.tier_reason = probe.tier, probe.reason
            return
        tier = self.requested_tier
        if tier == "weak" and not self.allow_weak:
            raise SandboxUnavailable(
                "the weak sandbox tier (seccomp and rlimits, no Landlock) lets programs read "
                "every file this user can; pass --allow-weak-sandbox (allow_weak=True) to use it"
            )
        why = precheck(tier)
        if why is not None:
            raise SandboxUnavailable(f"sandbox tier {tier!r} cannot work here: {why}")
        self.tier, self.tier_reason = tier, f"forced with tier={tier!r}"

    def _spawn(self) -> _Worker:
        """Start one zygote; its ``ready`` task finishes when it has said hello."""
        assert self._root is not None and self.tier is not None
        zdir = os.path.join(self._root, f"z{next(self._slots)}")
        os.mkdir(zdir, 0o700)
        scratch = os.path.join(zdir, "scratch") if self.scratch else None
        if scratch:
            os.mkdir(scratch, 0o700)
        drop_uid = NOBODY if self.tier == "bwrap" and os.geteuid() == 0 else None
        if drop_uid is not None:
            for d in (zdir, scratch):
                if d:
                    os.chown(d, drop_uid, drop_uid)
        sys_path, read = self._paths
        env = zygote_env(self.sandbox_id, zdir)
        if scratch:
            env["TMPDIR"] = scratch
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        log = zdir + ".log"
        try:
            argv = launch_command(self.tier, (req_r, rep_w), read, zdir, env)
            with open(log, "wb") as err:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    pass_fds=(req_r, rep_w),
                    cwd=zdir,
                    env=env,
                    start_new_session=True,
                )
        except BaseException:
            os.close(req_w)
            os.close(rep_r)
            raise
        finally:
            os.close(req_r)
            os.close(rep_w)
        w = _Worker(proc, log)
        self._workers.add(w)
        cfg = {
            "domain": self._spec,
            "params": self.params,
            "sys_path": sys_path,
            "read_paths": read + system_paths()[0],
            "write_paths": system_paths()[1] + ([scratch] if scratch else []),
            "scratch": scratch,
            "memory_mb": self.memory_mb,
            "landlock": self.tier != "weak",
            "userns": self.tier == "userns",
            "drop_uid": drop_uid,
            "parent_pid": None if self.tier == "bwrap" else os.getpid(),
            # the zygote dumps its stack to its stderr just before the pool gives up on its domain
            "dump_after": max(self.start_timeout - 1.0, self.start_timeout * 0.8),
        }
        w.ready = asyncio.get_running_loop().create_task(self._hello(w, req_w, rep_r, cfg))
        return w

    async def _hello(self, w: _Worker, req_w: int, rep_r: int, cfg: dict[str, Any]) -> None:
        await w.connect(req_w, rep_r)
        stage = "sandbox"
        try:
            await w.send(cfg)
            async with asyncio.timeout(self.start_timeout):
                hello = await w.recv()
            while "progress" in hello:  # each stage of set-up has start_timeout s
                stage = str(hello["progress"])
                async with asyncio.timeout(self.start_timeout):
                    hello = await w.recv()
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
            self._start_failed(w, stage, exc)
        if not hello.get("ok"):
            error = str(hello.get("error"))
            if hello.get("stage") == "domain" and self.domain is not None:
                assert self._spec is not None
                raise startup.domain_failed(
                    self.domain,
                    self._spec,
                    error,
                    str(hello.get("where") or ""),
                    w.stderr_tail(),
                    str(hello.get("traceback") or ""),
                )
            raise SandboxUnavailable(f"a {self.tier} sandbox worker failed to start: {error}")
        self.scoring = str(hello.get("scoring", "in_process"))

    @property
    def info(self) -> dict[str, Any]:
        """What the pool reports about itself for a run's ``sandbox`` event: tier, the reason
        it was chosen, the number of workers and the domain's scoring mode."""
        return {
            "tier": self.tier,
            "reason": self.tier_reason,
            "workers": self.size,
            "scoring": self.scoring,
        }

    def _start_failed(self, w: _Worker, stage: str, exc: BaseException) -> NoReturn:
        """Raise the error for a worker that died or went silent before its hello."""
        if stage == "domain" and self.domain is not None:
            assert self._spec is not None
            if isinstance(exc, TimeoutError):
                raise startup.domain_hung(
                    self.domain, self._spec, self.start_timeout, w.stderr_tail()
                ) from None
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=1.0)
            raise startup.domain_died(
                self.domain, self._spec, w.proc.returncode, w.stderr_tail()
            ) from None
        if isinstance(exc, TimeoutError):
            detail = w.stderr_tail()
            raise SandboxUnavailable(
                f"a {self.tier} sandbox worker did not finish setting up its sandbox within "
                f"{self.start_timeout:g} s" + (f": {detail[-1500:]}" if detail else "")
            ) from None
        detail = w.stderr_tail() or f"{type(exc).__name__}: {exc}"
        raise SandboxUnavailable(
            f"a {self.tier} sandbox worker failed to start: {detail[-1500:]}"
        ) from None

    def close(self) -> None:
        """Kill every zygote (their children die with them) and remove the scratch files."""
        self._closed = True
        for w in list(self._workers):
            w.kill()
            self._dead.append(w.proc)
        self._workers.clear()
        for proc in self._dead:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._dead.clear()
        if self._root is not None:
            tempdirs.remove_tree(self._root)
            self._root = None

    def _retire(self, w: _Worker) -> None:
        """Kill ``w`` and put a fresh zygote in its place."""
        w.kill()
        self._workers.discard(w)
        self._dead.append(w.proc)
        self._dead = [p for p in self._dead if p.poll() is None]
        self.replaced += 1
        assert self._idle is not None
        self._idle.put_nowait(self._spawn())

    async def evaluate(
        self,
        code: str,
        seed: int = 0,
        timeout: float | None = None,
        *,
        memory_mb: int | None = None,
    ) -> Evaluation:
        """Evaluate one program; never raises for anything the program does.

        Args:
            code: the program text handed to the domain's ``evaluate``.
            seed: reseeds ``random`` and numpy (modulo 2**32) in the child.
            timeout: seconds for this program (default: the pool's).
            memory_mb: memory budget for this program (default: the pool's).
        """
        if self._idle is None:
            raise RuntimeError("SandboxPool.evaluate called before start(); use `async with`")
        if self._closed:
            raise RuntimeError("SandboxPool.evaluate called after close()")
        deadline = self.timeout if timeout is None else float(timeout)
        if not (deadline > 0 and math.isfinite(deadline)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
        if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
            return Evaluation.failure(Status.ERROR, f"program is over {MAX_CODE_BYTES} bytes")
        request = {
            "code": code,
            "seed": int(seed) % 2**64,
            "timeout": deadline,
            "memory_mb": self.memory_mb if memory_mb is None else memory_mb,
        }
        w = await self._idle.get()
        healthy = False
        try:
            for _ in range(2):
                assert w.ready is not None
                try:
                    await w.ready
                except (SandboxUnavailable, ValueError) as exc:
                    return Evaluation.failure(Status.ERROR, f"sandbox worker unavailable: {exc}")
                if w.proc.poll() is None:
                    break
                self._retire(w)  # it died while idle, before this program ran: use another
                w = await self._idle.get()
            request["id"] = rid = next(self._ids)
            t0 = asyncio.get_running_loop().time()
            try:
                await w.send(request)
                async with asyncio.timeout(deadline + GRACE_S):
                    reply = await w.recv()
            except TimeoutError:
                return Evaluation.failure(
                    Status.TIMEOUT,
                    f"evaluation ran past its {deadline:g} s deadline and its worker stopped "
                    "answering; the worker was replaced",
                    wall_time=asyncio.get_running_loop().time() - t0,
                )
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
                code_ = w.proc.poll()
                why = f"exit code {code_}" if code_ is not None else type(exc).__name__
                if code_ is not None and code_ < 0:
                    why = f"killed by signal {-code_}"
                return Evaluation.failure(
                    Status.ERROR, f"sandbox worker died ({why}); it was replaced"
                )
            if reply.get("id") != rid:
                return Evaluation.failure(
                    Status.ERROR, "sandbox worker answered out of turn; it was replaced"
                )
            healthy = True
            return _evaluation(reply)
        finally:
            if healthy:
                self._idle.put_nowait(w)
            elif w in self._workers:  # not after close()
                self._retire(w)


def worker_domain_spec(domain: str, params: dict[str, Any] | None = None) -> str:
    """The ``package.module:Class`` a worker rebuilds ``domain`` from.

    The domain is built here once (by registered name or ``package.module:Class``), and its class
    named by where it is defined, so a domain registered with ``@register_domain`` in the user's
    own module works in workers, which start a fresh interpreter and never import that module by
    themselves.

    Raises:
        ValueError: the domain cannot be built with ``params``, or its class is defined where a
            worker cannot import it (in ``__main__``, or inside a function or another class).
    """
    return _worker_domain(domain, params)[0]


def _worker_domain(domain: str, params: dict[str, Any] | None) -> tuple[str, Domain]:
    """:func:`worker_domain_spec` and the domain built for it (for its worker parameters)."""
    try:
        dom = get_domain(domain, params)
    except TypeError as exc:  # a ``package.module:Class`` whose constructor refused the params
        raise ValueError(f"bad parameters for domain {domain!r}: {exc}") from exc
    cls = type(dom)
    spec = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "." in cls.__qualname__:
        where = "in __main__" if cls.__module__ == "__main__" else "inside a function or class"
        raise ValueError(
            f"domain {domain!r} is the class {spec}, defined {where}, which sandbox workers "
            "(fresh Python processes) cannot import; move the class to the top level of an "
            "importable module (a .py file next to your script or on PYTHONPATH) and import or "
            "name it from there (e.g. domain 'mymodule:MyDomain')"
        )
    return spec, dom


def _evaluation(reply: dict[str, Any]) -> Evaluation:
    wall, cpu = float(reply.get("wall", 0.0)), float(reply.get("cpu", 0.0))
    result = reply.get("result")
    if isinstance(result, bytes):
        return replace(codec.decode_evaluation(result), wall_time=wall, cpu_time=cpu)
    try:
        st = Status(str(reply.get("status")))
    except ValueError:
        st = Status.ERROR
    return Evaluation.failure(st, str(reply.get("error")), wall_time=wall, cpu_time=cpu)
