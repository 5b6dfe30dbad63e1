"""The scoring process of a two-phase domain: one per zygote, never running a program's code.

A zygote of a domain with ``scoring = "separate"`` forks its scorer once, right after its own
set-up and before any program has run, so the scorer's copy of the domain is pristine. The
scorer locks itself down as a program's child does (:meth:`evolm.sandbox.policy.ChildPolicy.enter`:
Landlock, seccomp, rlimits, no capabilities; no CPU-time limit, since it lives across many
programs and the zygote holds it to each request's wall-clock deadline) and then serves requests
on a private socket: for each, the data a program's child sent back (the bytes of one frame) and
the request's seed in, the encoded :class:`~evolm.types.Evaluation` of ``domain.score(data,
seed)`` and the CPU seconds it took out.

A program cannot reach the scorer: its child is forked with the scorer's socket closed, cannot
signal or trace other processes, and only its frame's bytes are passed on, decoded by the scorer
(:func:`evolm.sandbox.codec.decode_run_output`, which refuses an evaluation the program wrote in
place of data). A scorer that overruns a deadline or dies is killed and forked again from the
zygote for the next request.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import socket
import struct
import time
from typing import Any, NoReturn

from evolm.sandbox import codec
from evolm.sandbox.policy import RESULT_FD, ChildPolicy

__all__ = ["Scorer"]

_SETUP_FAILED = 70
_SEED = struct.Struct(">Q")
_CPU = struct.Struct(">d")


def _read_exactly(fd: int, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError("scorer socket closed")
        buf += chunk
    return bytes(buf)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}"[:2000]


def score_frame(domain: Any, data: bytes, seed: int) -> bytes:
    """The encoded evaluation of ``domain.score`` on one program's frame (``data``); never raises
    (``MemoryError`` excepted)."""
    import random

    import numpy as np

    from evolm.types import Evaluation, Status

    random.seed(seed)
    np.random.seed(seed % 2**32)
    value, failed = codec.decode_run_output(data)
    if failed is not None:
        return codec.encode_evaluation(failed)
    try:
        ev = domain.score(value, seed)
    except MemoryError:
        raise
    except BaseException as exc:
        ev = Evaluation.failure(Status.ERROR, f"the domain's scorer raised {_describe(exc)}")
    if not isinstance(ev, Evaluation):
        ev = Evaluation.failure(
            Status.ERROR, f"domain.score returned {type(ev).__name__}, not Evaluation"
        )
    return codec.encode_evaluation(ev)


class Scorer:
    """The zygote's handle on its scoring process (see the module docstring).

    Args:
        domain: the zygote's domain (two-phase).
        policy: the zygote's child policy, applied to the scorer as to a program's child.
    """

    def __init__(self, domain: Any, policy: ChildPolicy) -> None:
        self.domain = domain
        self.policy = policy
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.memory_mb: int | None = None

    def start(self, memory_mb: int | None) -> None:
        """Fork the scorer (the caller must be the pristine zygote)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        limits = [
            lim for lim in self.policy.limits(1.0, memory_mb) if lim[0] != resource.RLIMIT_CPU
        ]
        zygote_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            ours.close()
            try:
                self.policy.enter(zygote_pid, theirs.fileno(), limits)
            except BaseException:
                os._exit(_SETUP_FAILED)
            self._serve()
        theirs.close()
        self.pid, self.sock, self.memory_mb = pid, ours, memory_mb

    def _serve(self) -> NoReturn:
        """The scorer's loop: one request in, one reply out, until the socket closes."""
        from evolm.types import Evaluation, Status

        memory = codec.encode_evaluation(
            Evaluation.failure(Status.ERROR, "memory limit exceeded while scoring")
        )
        while True:
            try:
                n = codec.frame_length(_read_exactly(RESULT_FD, 4))
                payload = _read_exactly(RESULT_FD, n)
            except (EOFError, OSError):
                os._exit(0)
            t0 = time.process_time()
            (seed,) = _SEED.unpack_from(payload)
            try:
                blob = score_frame(self.domain, payload[_SEED.size :], seed)
            except MemoryError:
                blob = memory
            del payload
            cpu = time.process_time() - t0
            try:
                _write_all(RESULT_FD, codec.frame(_CPU.pack(cpu) + blob))
            except OSError:
                os._exit(0)

    def score(
        self, data: bytes, seed: int, deadline: float, timeout: float, memory_mb: int | None
    ) -> dict[str, Any]:
        """Score one program's frame by ``deadline`` (``time.perf_counter``): a reply dict of
        ``result`` (an encoded evaluation) or ``status`` and ``error``, and ``cpu``."""
        reply: dict[str, Any] = {"result": None, "status": None, "error": None, "cpu": 0.0}
        if self.pid is None or memory_mb != self.memory_mb:
            self.stop()
            self.start(memory_mb)
        assert self.sock is not None
        try:
            self.sock.settimeout(max(deadline - time.perf_counter(), 0.001))
            self.sock.sendall(codec.frame(_SEED.pack(seed % 2**64) + data))
            out = self._receive(deadline)
        except TimeoutError:
            self.stop()
            reply.update(
                status="timeout",
                error=f"evaluation ran past its {timeout:g} s deadline while being scored",
            )
            return reply
        except (OSError, EOFError, ValueError) as exc:
            why = self.stop() or _describe(exc)
            reply.update(status="error", error=f"the domain's scorer failed ({why})")
            return reply
        (reply["cpu"],) = _CPU.unpack_from(out)
        reply["result"] = out[_CPU.size :]
        return reply

    def _receive(self, deadline: float) -> bytes:
        assert self.sock is not None
        fd = self.sock.fileno()
        buf = bytearray()
        need = 4
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while len(buf) < need:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError
            if not poller.poll(max(1, int(left * 1000))):
                continue
            chunk = os.read(fd, max(need - len(buf), 1 << 16))
            if not chunk:
                raise EOFError("scorer exited")
            buf += chunk
            if need == 4 and len(buf) >= 4:
                need = 4 + codec.frame_length(bytes(buf[:4]))
                if need > codec.MAX_FRAME_BYTES + _CPU.size + 4:
                    raise ValueError(f"scorer announced a {need}-byte frame")
        if len(buf) != need:
            raise ValueError("scorer sent more than one frame")
        return bytes(buf[4:])

    def stop(self) -> str | None:
        """Kill the scorer if it runs and reap it; how it ended, when it had ended by itself."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        ended: str | None = None
        with contextlib.suppress(ChildProcessError):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if os.WIFSIGNALED(status):
                    sig = os.WTERMSIG(status)
                    known = sig in signal.Signals._value2member_map_
                    ended = f"killed by {signal.Signals(sig).name if known else sig}"
                else:
                    ended = f"exit code {os.WEXITSTATUS(status)}"
                return ended
        for target in (pid, -pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return ended
