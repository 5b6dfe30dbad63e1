"""The fork server ("zygote"): one long-lived process per worker that forks a child per program.

A zygote is started by :class:`evolm.sandbox.SandboxPool` (inside bubblewrap on the strongest
tier) with two inherited pipe ends, and speaks length-prefixed msgpack frames over them:

1. it reads one configuration frame, then sets itself up: user and network namespaces (``userns``
   tier) or a switch to an unprivileged uid (root under bubblewrap), ``sys.path``, numpy and the
   domain imported once, the seccomp filter compiled once, the Landlock ruleset built once;
2. it answers with a hello frame (``ok`` or the stage that failed, why and where), after a
   ``{"progress": "domain"}`` frame when it starts importing the domain (so the pool can tell a
   domain that crashes or hangs from a sandbox that fails);
3. for each request ``{id, code, seed, timeout, memory_mb}`` it forks a child that locks itself
   down (:meth:`evolm.sandbox.policy.ChildPolicy.enter`), reseeds ``random`` and numpy from the
   request's seed and runs the program, writing one frame on its private result pipe. The zygote
   enforces the wall-clock deadline with a pidfd and SIGKILL, reaps the child (for its CPU time)
   and replies ``{id, result, status, error, wall, cpu}``.

   A domain with ``scoring = "in_process"`` runs ``domain.evaluate(code, seed)`` in that child,
   which writes the encoded :class:`~evolm.types.Evaluation`. A two-phase domain (``scoring =
   "separate"``) runs ``domain.run(code, seed)`` there, which writes only data; once that child
   has exited, the zygote hands the frame's bytes to its scorer (:mod:`evolm.sandbox.scorer`), a
   process forked from the zygote before any program ran and locked down the same way, which
   decodes the data and answers with the evaluation of ``domain.score(data, seed)``. Whatever
   the program patched or wrote, the score is computed by the domain's own code from the data
   alone. Program and scoring share the request's deadline; the reply's CPU time is theirs
   together.

The zygote is single-threaded, so forking it is safe. It exits when its request pipe closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import gc
import math
import os
import select
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from evolm.sandbox import codec
from evolm.sandbox.policy import RESULT_FD, ChildPolicy
from evolm.sandbox.scorer import Scorer, _describe, _write_all  # one copy of each

__all__ = ["main"]

_SETUP_FAILED = 70
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUTS = 0x04000000
_PR_SET_PDEATHSIG = 1


class _Pipe:
    """Blocking frame I/O on the zygote's two protocol pipes."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd

    def recv(self) -> Any:
        n = codec.frame_length(self._read_exactly(4))
        if n > codec.MAX_FRAME_BYTES:
            raise EOFError(f"request frame of {n} bytes")
        return codec.decode_value(self._read_exactly(n))

    def _read_exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = os.read(self.rfd, n - len(buf))
            if not chunk:
                raise EOFError("request pipe closed")
            buf += chunk
        return bytes(buf)

    def send(self, obj: Any) -> None:
        _write_all(self.wfd, codec.frame(codec.encode_value(obj)))


def _origin(exc: BaseException) -> dict[str, str]:
    """``where`` (``file:line in function`` of the innermost frame in the user's code: not in
    the standard library, installed packages or evolm, if there is one) and the formatted
    traceback of a set-up failure, for the pool's message and log."""
    import sysconfig

    libs = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    libs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    prefixes = tuple(os.path.join(p, "") for p in libs if p)
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if not f.filename.startswith(("<", *prefixes))]
    where = ""
    if own or frames:
        frame = (own or frames)[-1]
        where = f"{frame.filename}:{frame.lineno} in {frame.name}"
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:
        text = _describe(exc)
    return {"where": where, "traceback": text[-20000:]}


def _enter_user_namespace() -> None:
    """Own user, network, IPC and UTS namespaces, with the current uid and gid mapped."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.geteuid(), os.getegid()
    flags = _CLONE_NEWUSER | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _drop_to(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


class _ProbeDomain:
    """Stand-in domain for tier probes: reports who the child is and whether writes fail."""

    def evaluate(self, code: str, seed: int = 0) -> Any:
        from evolm.types import Evaluation, Status

        try:
            with open("probe-write", "w"):
                pass
            blocked = False
        except OSError:
            blocked = True
        return Evaluation(Status.OK, 0.0, (0.0,), {"uid": os.getuid(), "write_blocked": blocked})


class Zygote:
    """Set-up and request loop of one fork server (see the module docstring)."""

    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe
        self.stage = "sandbox"

    def setup(self, cfg: dict[str, Any]) -> None:
        """Everything done once per zygote; ``stage`` names the part that failed, if one did."""
        if cfg.get("userns"):
            _enter_user_namespace()
        if cfg.get("drop_uid") is not None:
            _drop_to(int(cfg["drop_uid"]))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)
        parent = cfg.get("parent_pid")
        if parent is not None and os.getppid() != parent:
            raise OSError("the pool exited while this worker started")
        sys.path[:] = list(cfg["sys_path"])
        self.scratch: str | None = cfg.get("scratch")

        self.stage = "domain"
        self.pipe.send({"progress": "domain"})
        # a crash or a hang while importing the domain leaves its stack in the worker's stderr
        faulthandler.enable()
        faulthandler.dump_traceback_later(float(cfg.get("dump_after") or 55.0))
        try:
            self._load_domain(cfg)
        finally:
            faulthandler.cancel_dump_traceback_later()  # stops its thread: forking stays safe
            faulthandler.disable()
        self.scoring = str(getattr(self.domain, "scoring", "in_process"))
        if self.scoring not in ("separate", "in_process"):
            raise ValueError(
                f"domain {cfg.get('domain')!r} has scoring = {self.scoring!r}; use 'separate' "
                "(run and score) or 'in_process' (evaluate)"
            )
        self.split = self.scoring == "separate"

        self.stage = "sandbox"
        from evolm.sandbox import landlock
        from evolm.sandbox.policy import SeccompFilter, drop_bounding_set, process_limit

        ruleset = None
        if cfg["landlock"]:
            abi = landlock.abi_version()
            ruleset = landlock.build_ruleset(cfg["read_paths"], cfg["write_paths"], abi)
        drop_bounding_set()
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.policy = ChildPolicy(SeccompFilter(), ruleset, devnull, process_limit())
        from evolm.types import Evaluation, Status

        self.memory_blob = codec.frame(
            codec.encode_evaluation(Evaluation.failure(Status.ERROR, "memory limit exceeded"))
        )
        self._clear_scratch()
        gc.collect()
        gc.freeze()  # children then leave the zygote's objects' pages shared
        self.scorer = Scorer(self.domain, self.policy)
        if self.split:  # now, before any program has run in a child of this zygote
            self.scorer.start(cfg.get("memory_mb"))

    def _load_domain(self, cfg: dict[str, Any]) -> None:
        import numpy
        import numpy.random  # lazy in numpy 2; importing it per child would cost ~8 ms

        numpy.random.seed(0)

        from evolm.domains.base import get_domain

        name = cfg.get("domain")
        self.domain: Any = _ProbeDomain() if name is None else get_domain(name, cfg["params"])

    def serve(self) -> None:
        while True:
            try:
                req = self.pipe.recv()
            except EOFError:
                return
            reply = self.run(
                str(req["code"]),
                int(req["seed"]),
                float(req["timeout"]),
                req.get("memory_mb"),
            )
            reply["id"] = req["id"]
            self.pipe.send(reply)

    def run(self, code: str, seed: int, timeout: float, memory_mb: int | None) -> dict[str, Any]:
        """Run one program (and, for a two-phase domain, its scorer) within ``timeout`` seconds."""
        t0 = time.perf_counter()
        deadline = t0 + timeout
        reply = self._fork(lambda: self._program(code, seed), deadline, timeout, memory_mb)
        if self.split and reply["result"] is not None:
            data, reply["result"] = reply["result"], None
            if deadline > time.perf_counter():
                scored = self.scorer.score(data, seed, deadline, timeout, memory_mb)
                scored["cpu"] += reply["cpu"]
                reply = scored
            else:
                reply.update(status="timeout", error=self._late(timeout))
        reply["wall"] = time.perf_counter() - t0
        return reply

    @staticmethod
    def _late(timeout: float) -> str:
        return f"evaluation ran past its {timeout:g} s deadline and was killed"

    def _fork(
        self,
        body: Callable[[], bytes],
        deadline: float,
        timeout: float,
        memory_mb: int | None,
    ) -> dict[str, Any]:
        """Fork a child that runs ``body`` (its frame is the reply's ``result``) and wait for it
        until ``deadline``."""
        limits = self.policy.limits(timeout, memory_mb)
        r, w = os.pipe()
        zygote_pid = os.getpid()
        reply: dict[str, Any] = {"result": None, "status": None, "error": None, "cpu": 0.0}
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(r)
            os.close(w)
            reply.update(status="error", error=f"could not fork: {exc}")
            return reply
        if pid == 0:
            self._child(zygote_pid, w, limits, body)
        os.close(w)
        try:
            out = self._wait(pid, r, deadline)
        finally:
            os.close(r)
        _, status, usage = os.wait4(pid, 0)
        reply["cpu"] = usage.ru_utime + usage.ru_stime
        self._clear_scratch()
        if out == "timeout":
            reply.update(status="timeout", error=self._late(timeout))
        elif out == "too large":
            reply.update(
                status="error",
                error=f"result too large (over {codec.MAX_RESULT_BYTES} bytes); it was dropped",
            )
        elif isinstance(out, bytes) and out:
            n = codec.frame_length(out[:4]) if len(out) >= 4 else -1
            if n == len(out) - 4:
                reply["result"] = out[4:]
            else:
                reply.update(
                    status="error",
                    error=f"malformed result on the result pipe ({len(out)} bytes that are not "
                    "exactly one frame)",
                )
        else:
            reply["status"], reply["error"] = self._death(status, usage, timeout, memory_mb)
        return reply

    def _wait(self, pid: int, r: int, deadline: float) -> bytes | str:
        """Collect the child's output until it exits; ``"timeout"`` after killing it."""
        pidfd = os.pidfd_open(pid)
        try:
            poller = select.poll()
            poller.register(r, select.POLLIN)
            poller.register(pidfd, select.POLLIN)
            poller.register(self.pipe.rfd, 0)  # POLLHUP: the pool has gone away
            buf = bytearray()
            exited = eof = False
            while not (exited and eof):
                left = deadline - time.perf_counter()
                if left <= 0:
                    self._kill(pidfd, pid)
                    return "timeout"
                for fd, _ in poller.poll(math.ceil(left * 1000)):
                    if fd == r:
                        chunk = os.read(r, 1 << 20)
                        if not chunk:
                            eof = True
                            poller.unregister(r)
                        buf += chunk
                        if len(buf) > codec.MAX_FRAME_BYTES:
                            self._kill(pidfd, pid)
                            return "too large"
                    elif fd == pidfd:
                        exited = True
                        poller.unregister(pidfd)
                    else:
                        self._kill(pidfd, pid)
                        os._exit(0)
            return bytes(buf)
        finally:
            os.close(pidfd)

    @staticmethod
    def _kill(pidfd: int, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    def _death(
        self, status: int, usage: Any, timeout: float, memory_mb: int | None
    ) -> tuple[str, str]:
        """(status, message) for a child that ended without sending a result."""
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
            return "error", f"program exited with code {code} before returning a result"
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU or (
            sig == signal.SIGKILL and usage.ru_utime + usage.ru_stime >= math.ceil(timeout) + 1
        ):
            return "timeout", f"program used more than its {timeout:g} s of CPU time"
        if sig == signal.SIGSYS:
            return "error", "program was killed for a forbidden system call (SIGSYS)"
        if memory_mb and usage.ru_maxrss * 1024 >= 0.9 * memory_mb * 1024 * 1024:
            return "error", f"memory limit exceeded (program killed by {name})"
        return "error", f"program crashed (killed by {name})"

    def _child(self, zygote_pid: int, w: int, limits: Any, body: Callable[[], bytes]) -> NoReturn:
        from evolm.types import Evaluation, Status

        try:
            self.policy.enter(zygote_pid, w, limits)
        except BaseException as exc:
            fd = RESULT_FD if self.policy.result_fd_ready else w
            with contextlib.suppress(BaseException):
                ev = Evaluation.failure(Status.ERROR, f"sandbox setup failed: {_describe(exc)}")
                _write_all(fd, codec.frame(codec.encode_evaluation(ev)))
            os._exit(_SETUP_FAILED)
        try:
            blob = body()
        except MemoryError:
            blob = self.memory_blob
        except BaseException as exc:
            blob = codec.frame(
                codec.encode_evaluation(Evaluation.failure(Status.ERROR, _describe(exc)))
            )
        with contextlib.suppress(BaseException):
            _write_all(RESULT_FD, blob)
        os._exit(0)

    def _program(self, code: str, seed: int) -> bytes:
        """In the program's child: run it and return its frame (an evaluation, or data)."""
        import random

        import numpy as np

        from evolm.types import Evaluation, Status

        random.seed(seed)
        np.random.seed(seed % 2**32)
        if self.scratch:
            os.chdir(self.scratch)
        what = "run" if self.split else "evaluate"
        try:
            out = self.domain.run(code, seed) if self.split else self.domain.evaluate(code, seed)
        except MemoryError:
            raise
        except BaseException as exc:
            out = Evaluation.failure(Status.ERROR, _describe(exc))
        if isinstance(out, Evaluation):
            if self.split and out.ok:
                out = Evaluation.failure(
                    Status.ERROR, "domain.run returned an ok Evaluation; it must return data"
                )
            return codec.frame(codec.encode_evaluation(out))
        if self.split:
            return codec.frame(codec.encode_run_output(out))
        ev = Evaluation.failure(
            Status.ERROR, f"domain.{what} returned {type(out).__name__}, not Evaluation"
        )
        return codec.frame(codec.encode_evaluation(ev))

    def _clear_scratch(self) -> None:
        if not self.scratch:
            return
        for entry in os.scandir(self.scratch):
            if not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                continue
            with contextlib.suppress(OSError):
                os.chmod(entry.path, 0o700)
            for top, dirs, _ in os.walk(entry.path):  # a program may have left 000 dirs
                for d in dirs:
                    path = os.path.join(top, d)
                    if not os.path.islink(path):
                        with contextlib.suppress(OSError):
                            os.chmod(path, 0o700)
            shutil.rmtree(entry.path, ignore_errors=True)


def main() -> None:
    """Entry point: ``python -c "from evolm.sandbox.zygote import main; main()" RFD WFD``."""
    pipe = _Pipe(int(sys.argv[1]), int(sys.argv[2]))
    try:
        cfg = pipe.recv()
    except (EOFError, ValueError) as exc:
        print(f"evolm zygote: no configuration ({_describe(exc)})", file=sys.stderr)
        return
    zygote = Zygote(pipe)
    try:
        zygote.setup(cfg)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            pipe.send({"ok": False, "stage": zygote.stage, "error": _describe(exc), **_origin(exc)})
        return
    pipe.send({"ok": True, "scoring": zygote.scoring})
    zygote.serve()


if __name__ == "__main__":
    main()
