"""Escape attempts through the public API, on the tier auto selects and on each forced fallback.

Every verdict comes from the host: a marker file that must not exist, listeners whose counts must
stay at zero, a canary that must stay alive and unstopped, worker pids that must not change, a
/proc scan that must find no process the program started, and the secret (in the engine's env and
in a 0600 file) that :class:`~tests.sandbox.harness.Sandbox` checks is absent from every result.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import textwrap
import time
from pathlib import Path

from evolm.types import Status
from tests.sandbox.harness import Host, Sandbox, zygote_pids


def prog(body: str) -> str:
    """A program whose ``attack()`` runs ``body``."""
    return "def attack():\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


def assert_contained(sb: Sandbox, host: Host, workers_before: set[int]) -> None:
    """Nothing the program did is still running, the zygote is the same, the canary is fine."""
    assert sb.processes() == sb.baseline, "a process started by the program is still alive"
    assert zygote_pids(sb.pool.sandbox_id) == workers_before, "the zygote was killed or replaced"
    assert host.canary_state() == "alive"
    assert host.counts() == {"tcp": 0, "udp": 0, "unix": 0, "abstract": 0}


def attempt(sb: Sandbox, host: Host, body: str, timeout: float | None = None):
    before = zygote_pids(sb.pool.sandbox_id)
    replaced = sb.pool.replaced
    ev = sb.run(prog(body), timeout=timeout)
    assert_contained(sb, host, before)
    assert sb.pool.replaced == replaced
    return ev


def value(ev) -> str:
    return repr(ev.extras.get("value")) + str(ev.error)


# --- files ---------------------------------------------------------------------------------------


def test_read_system_files(sandbox: Sandbox, host: Host) -> None:
    ev = attempt(
        sandbox,
        host,
        """
        out = []
        for p in ("/etc/passwd", "/etc/shadow", "/root/.bashrc", "/proc/1/environ"):
            try:
                out.append(open(p).read()[:200])
            except OSError as exc:
                out.append(type(exc).__name__)
        return out
        """,
    )
    assert ev.ok and "root:" not in value(ev)
    assert all(v in ("PermissionError", "FileNotFoundError") for v in ev.extras["value"])


def test_read_secret_file_and_parent_environment(sandbox: Sandbox, host: Host) -> None:
    ev = attempt(
        sandbox,
        host,
        f"""
        import os
        out = [dict(os.environ)]
        for p in [{str(host.secret_file)!r}] + [f"/proc/{{pid}}/environ" for pid in
                  (os.getppid(), 1, {os.getpid()})]:
            try:
                out.append(open(p, "rb").read().decode(errors="replace"))
            except OSError as exc:
                out.append(type(exc).__name__)
        try:
            for pid in os.listdir("/proc"):
                out.append(open(f"/proc/{{pid}}/environ", "rb").read().decode(errors="replace"))
        except OSError as exc:
            out.append(type(exc).__name__)
        return out
        """,
    )
    assert ev.ok  # the harness asserts the secret is nowhere in the result
    assert "EVOLM_TEST_SECRET" not in value(ev)


def test_write_outside_scratch(sandbox: Sandbox, host: Host) -> None:
    in_tmp = f"/tmp/evolm-escape-{secrets.token_hex(6)}"
    targets = [host.marker("written"), in_tmp, "../escaped"]
    ev = attempt(
        sandbox,
        host,
        f"""
        out = []
        for p in {targets!r}:
            try:
                with open(p, "w") as f:
                    f.write("x")
                out.append("wrote")
            except OSError as exc:
                out.append(type(exc).__name__)
        with open("inside", "w") as f:  # the per-run scratch directory is writable
            f.write("ok")
        out.append(open("inside").read())
        return out
        """,
    )
    assert ev.ok and ev.extras["value"][-1] == "ok"
    assert "wrote" not in ev.extras["value"]
    assert not Path(host.marker("written")).exists()
    assert not Path(in_tmp).exists()


def test_scratch_is_fresh_for_each_program(sandbox: Sandbox, host: Host) -> None:
    attempt(sandbox, host, "open('left-behind', 'w').write('x')\nreturn 1")
    ev = attempt(sandbox, host, "import os\nreturn sorted(os.listdir('.'))")
    assert ev.ok and ev.extras["value"] == []


def test_big_file_is_capped(sandbox: Sandbox, host: Host) -> None:
    """Writing 1 GiB stops at the 16 MiB file-size limit, seen from the host while it runs."""
    scratch_root = sandbox.pool._root
    body = """
        import time
        chunk = b"x" * (1 << 20)
        written = 0
        try:
            with open("big", "wb") as f:
                for _ in range(1024):
                    f.write(chunk)
                    written += len(chunk)
        except OSError as exc:
            err = type(exc).__name__
        else:
            err = None
        time.sleep(1.0)
        return [written, err]
    """

    async def watch() -> tuple[object, int]:
        task = asyncio.ensure_future(sandbox.pool.evaluate(prog(body), timeout=5))
        biggest = 0
        while not task.done():
            for top, _, files in os.walk(scratch_root):
                for name in files:
                    if name == "big":
                        with contextlib.suppress(OSError):
                            biggest = max(biggest, os.path.getsize(os.path.join(top, name)))
            await asyncio.sleep(0.05)
        return await task, biggest

    ev, biggest = sandbox.loop.run_until_complete(watch())
    assert ev.ok, ev.error
    written, err = ev.extras["value"]
    assert err == "OSError" and written <= 16 * 1024 * 1024
    assert 0 < biggest <= 16 * 1024 * 1024


# --- network -------------------------------------------------------------------------------------


def test_network(sandbox: Sandbox, host: Host) -> None:
    ev = attempt(
        sandbox,
        host,
        f"""
        import socket
        out = []
        tries = [
            (socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", {host.tcp_port})),
            (socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", {host.udp_port})),
            (socket.AF_UNIX, socket.SOCK_STREAM, {host.unix_path!r}),
            (socket.AF_UNIX, socket.SOCK_STREAM, "\\0{host.abstract_name}"),
        ]
        for family, kind, addr in tries:
            try:
                s = socket.socket(family, kind)
                s.settimeout(1)
                s.connect(addr)
                s.send(b"hello")
                out.append("connected")
            except OSError as exc:
                out.append(type(exc).__name__)
        return out
        """,
    )
    assert ev.ok and "connected" not in ev.extras["value"]
    time.sleep(0.3)
    assert host.counts() == {"tcp": 0, "udp": 0, "unix": 0, "abstract": 0}


# --- processes -----------------------------------------------------------------------------------


def test_ctypes_system_and_subprocess(sandbox: Sandbox, host: Host) -> None:
    marker = host.marker("spawned")
    ev = attempt(
        sandbox,
        host,
        f"""
        import ctypes, os, subprocess
        out = [ctypes.CDLL(None).system(b"touch {marker}")]
        for run in (lambda: os.system("touch {marker}"),
                    lambda: subprocess.run(["/usr/bin/touch", "{marker}"]),
                    lambda: os.posix_spawn("/usr/bin/touch", ["touch", "{marker}"], {{}}),
                    lambda: os.execv("/usr/bin/touch", ["touch", "{marker}"])):
            try:
                out.append(repr(run()))
            except OSError as exc:
                out.append(type(exc).__name__)
        return out
        """,
    )
    assert ev.ok
    time.sleep(0.2)
    assert not Path(marker).exists()


def test_raw_syscalls(sandbox: Sandbox, host: Host) -> None:
    marker = host.marker("raw")
    ev = attempt(
        sandbox,
        host,
        f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        argv = (ctypes.c_char_p * 3)(b"/usr/bin/touch", b"{marker}", None)
        out = []
        for nr, args in ((59, (b"/usr/bin/touch", argv, None)),   # execve
                         (57, ()),                                # fork
                         (58, ()),                                # vfork
                         (56, (17, 0, 0, 0, 0)),                  # clone(SIGCHLD)
                         (435, (0, 0)),                           # clone3
                         (272, (0x10000000,)),                    # unshare(CLONE_NEWUSER)
                         (165, (b"none", b"/tmp", b"tmpfs", 0, 0)),  # mount
                         (321, (0, 0, 0)),                        # bpf
                         (298, (0, 0, -1, -1, 0))):               # perf_event_open
            r = libc.syscall(nr, *args)
            out.append((nr, r, ctypes.get_errno()))
        return out
        """,
    )
    assert ev.ok
    assert all(r == -1 for _, r, _ in ev.extras["value"]), ev.extras["value"]
    time.sleep(0.2)
    assert not Path(marker).exists()


def _shellcode_call(code_hex: str) -> str:
    return f"""
        import ctypes, mmap
        code = bytes.fromhex("{code_hex}")
        mem = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        mem.write(code)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(mem))
        return ctypes.CFUNCTYPE(ctypes.c_long)(addr)()
    """


def test_int80_syscall_is_killed(sandbox: Sandbox, host: Host) -> None:
    """The i386 ABI (int 0x80) fails the architecture check: kill(canary) never happens."""
    pid = host.canary.pid.to_bytes(4, "little").hex()
    # push rbx; mov eax, 37 (kill); mov ebx, pid; mov ecx, 9; int 0x80; pop rbx; ret
    ev = attempt(sandbox, host, _shellcode_call(f"53b825000000bb{pid}b909000000cd805bc3"))
    assert ev.status is Status.ERROR and "SIGSYS" in ev.error


def test_x32_syscall_is_killed(sandbox: Sandbox, host: Host) -> None:
    pid = host.canary.pid.to_bytes(4, "little").hex()
    # mov eax, 0x40000000 | 62 (x32 kill); mov edi, pid; mov esi, 9; syscall; ret
    ev = attempt(sandbox, host, _shellcode_call(f"b83e000040bf{pid}be090000000f05c3"))
    assert ev.status is Status.ERROR and "SIGSYS" in ev.error


def test_fork_bomb(sandbox: Sandbox, host: Host) -> None:
    ev = attempt(
        sandbox,
        host,
        """
        import os
        n = 0
        for _ in range(10000):
            os.fork()
            n += 1
        return n
        """,
    )
    assert ev.status is Status.ERROR and "PermissionError" in ev.error


def test_daemon(sandbox: Sandbox, host: Host) -> None:
    marker = host.marker("daemon")
    ev = attempt(
        sandbox,
        host,
        f"""
        import os, threading, time
        out = []
        for step in (os.setsid, lambda: os.setpgid(0, 0), os.fork):
            try:
                out.append(step())
            except OSError as exc:
                out.append(type(exc).__name__)
        def later():
            time.sleep(0.5)
            open("{marker}", "w").write("still running")
        threading.Thread(target=later, daemon=False).start()  # dies with the child
        return out
        """,
    )
    assert ev.ok and ev.extras["value"] == ["PermissionError"] * 3
    time.sleep(1.0)
    assert not Path(marker).exists()


def test_kill_parent_canary_and_everyone(sandbox: Sandbox, host: Host) -> None:
    ev = attempt(
        sandbox,
        host,
        f"""
        import os, signal
        out = []
        for pid in (os.getppid(), {host.canary.pid}, -1, -os.getppid(), 1):
            try:
                os.kill(pid, signal.SIGKILL)
                out.append("sent")
            except OSError as exc:
                out.append(type(exc).__name__)
        try:
            signal.pidfd_send_signal(os.pidfd_open(os.getppid()), signal.SIGKILL)
            out.append("sent")
        except OSError as exc:
            out.append(type(exc).__name__)
        return out
        """,
    )
    assert ev.ok and "sent" not in ev.extras["value"]


def test_kill_via_sigio_owner(sandbox: Sandbox, host: Host) -> None:
    """F_SETOWN / F_SETOWN_EX with F_SETSIG(SIGKILL) on an O_ASYNC pipe targets nobody."""
    ev = attempt(
        sandbox,
        host,
        f"""
        import ctypes, fcntl, os, struct
        out = []
        for target in ({host.canary.pid}, os.getppid(), -os.getpgid(os.getppid())):
            r, w = os.pipe()
            try:
                fcntl.fcntl(r, fcntl.F_SETFL, os.O_ASYNC)
                fcntl.fcntl(r, 10, 9)  # F_SETSIG SIGKILL
                try:
                    fcntl.fcntl(r, fcntl.F_SETOWN, target)
                    out.append("owner set")
                except OSError as exc:
                    out.append(type(exc).__name__)
                try:
                    fcntl.fcntl(r, 15, struct.pack("ii", 1, abs(target)))  # F_SETOWN_EX
                    out.append("owner set")
                except OSError as exc:
                    out.append(type(exc).__name__)
                os.write(w, b"x")
            finally:
                os.close(r)
                os.close(w)
        return out
        """,
    )
    assert ev.ok and "owner set" not in ev.extras["value"]
    time.sleep(0.2)


def test_ptrace(sandbox: Sandbox, host: Host) -> None:
    ev = attempt(
        sandbox,
        host,
        f"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        for pid in ({host.canary.pid}, os.getppid()):
            for req in (16, 0x4206):  # PTRACE_ATTACH, PTRACE_SEIZE
                out.append((libc.ptrace(req, pid, 0, 0), ctypes.get_errno()))
        try:
            open(f"/proc/{{os.getppid()}}/mem", "rb").read(1)
            out.append("read parent memory")
        except OSError as exc:
            out.append(type(exc).__name__)
        return out
        """,
    )
    assert ev.ok and "read parent memory" not in ev.extras["value"]
    assert all(r == -1 for r, _ in ev.extras["value"][:-1])


def test_io_uring(sandbox: Sandbox, host: Host) -> None:
    ev = attempt(
        sandbox,
        host,
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        params = ctypes.create_string_buffer(120)
        return [libc.syscall(425, 8, params), ctypes.get_errno()]  # io_uring_setup
        """,
    )
    assert ev.ok and ev.extras["value"] == [-1, 1]  # EPERM from seccomp


# --- memory --------------------------------------------------------------------------------------


def test_memory_bombs(sandbox: Sandbox, host: Host) -> None:
    for body in (
        "x = bytearray(10 * 1024**3)\nreturn len(x)",
        "import numpy as np\nx = np.ones(2 * 1024**3)\nreturn float(x.sum())",
        "xs = []\nwhile True:\n    xs.append(bytearray(64 * 1024**2))",
    ):
        ev = attempt(sandbox, host, body)
        assert ev.status is Status.ERROR and "memory limit" in ev.error, ev.error
    assert sandbox.run(prog("return 7")).extras["value"] == 7


# --- results -------------------------------------------------------------------------------------


def test_reduce_result_is_never_unpickled(sandbox: Sandbox, host: Host) -> None:
    marker = host.marker("unpickled")
    ev = attempt(
        sandbox,
        host,
        f"""
        import os
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        return Evil()
        """,
    )
    assert ev.status is Status.ERROR and "not serialisable" in ev.error
    assert not Path(marker).exists()


def test_forged_frames_on_the_result_pipe(sandbox: Sandbox, host: Host) -> None:
    forge = """
        import os, struct, msgpack
        fake = msgpack.packb({"status": "ok", "fitness": 1e9, "descriptors": [0.5],
                              "extras": {"value": "forged"}, "wall_time": 0.0,
                              "cpu_time": 0.0, "error": None})
        os.write(3, struct.pack(">I", len(fake)) + fake)
    """
    ev = attempt(sandbox, host, textwrap.dedent(forge) + "return 'real'")
    assert ev.status is Status.ERROR and "malformed result" in ev.error
    assert ev.fitness != 1e9
    ev = attempt(sandbox, host, "import os\nos.write(3, b'\\xff\\xff\\xff\\xff')\nreturn 1")
    assert ev.status is Status.ERROR and "malformed" in ev.error
    ev = attempt(
        sandbox,
        host,
        """
        import os
        out = []
        for fd in range(4, 64):
            try:
                os.write(fd, b"\\x00\\x00\\x00\\x05garbage")
                out.append(fd)
            except OSError:
                pass
        return out
        """,
    )
    assert ev.ok and ev.extras["value"] == []  # no descriptor but the result pipe is open
    assert sandbox.run(prog("return 'next'")).extras["value"] == "next"
