"""Helpers for the sandbox tests: host-side evidence and pools usable from plain tests.

Verdicts never rest on what a sandboxed program says about itself: the host keeps a loopback
TCP listener, a UDP socket, a unix socket and an abstract unix socket that count what reaches
them, a canary process that must survive, a directory where marker files must not appear, a
secret (in this process's environment and in a 0600 file) that must never come back in a
result, and a /proc scan for processes carrying the pool's ``EVOLM_SANDBOX`` marker.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from evolm.sandbox import SandboxPool, SandboxUnavailable, probe_tiers
from evolm.types import Evaluation

ESCAPE = "tests.sandbox.escape_domain:EscapeDomain"
TOY = "tests.toy_domain:ToyDomain"
TIER_PARAMS = ("auto", "userns", "landlock")
"""The tier the probe selects, and each forced fallback."""


class Counter:
    """A socket served by a thread that counts connections (or datagrams) reaching it."""

    def __init__(self, sock: socket.socket, stream: bool) -> None:
        self.sock, self.stream, self.count = sock, stream, 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self.stream:
                    conn, _ = self.sock.accept()
                    conn.close()
                else:
                    self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            self.count += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class Host:
    """Host-side evidence shared by every escape test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.chmod(0o777)  # only the sandbox, not file permissions, may stop a write here
        self.secret = "s3cr3t-" + secrets.token_hex(16)
        self.secret_file = root / "secret.txt"
        self.secret_file.write_text(self.secret)
        self.secret_file.chmod(0o600)
        self.markers = root / "markers"
        self.markers.mkdir(mode=0o777)
        self.markers.chmod(0o777)

        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(16)
        self.tcp_port = tcp.getsockname()[1]
        self.tcp = Counter(tcp, stream=True)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        self.udp_port = udp.getsockname()[1]
        self.udp = Counter(udp, stream=False)
        self.unix_path = str(root / "host.sock")
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(self.unix_path)
        os.chmod(self.unix_path, 0o777)
        unix.listen(16)
        self.unix = Counter(unix, stream=True)
        self.abstract_name = "evolm-test-" + secrets.token_hex(8)
        abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        abstract.bind("\0" + self.abstract_name)
        abstract.listen(16)
        self.abstract = Counter(abstract, stream=True)
        self.canary = subprocess.Popen(["sleep", "3600"], start_new_session=True)

    def marker(self, name: str) -> str:
        return str(self.markers / name)

    def counts(self) -> dict[str, int]:
        return {
            "tcp": self.tcp.count,
            "udp": self.udp.count,
            "unix": self.unix.count,
            "abstract": self.abstract.count,
        }

    def canary_state(self) -> str:
        """'alive' (running or sleeping), 'stopped', or 'dead'."""
        if self.canary.poll() is not None:
            return "dead"
        state = Path(f"/proc/{self.canary.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return "stopped" if state in ("T", "t") else "alive"

    def close(self) -> None:
        for c in (self.tcp, self.udp, self.unix, self.abstract):
            c.close()
        self.canary.kill()
        self.canary.wait()


def sandbox_processes(sandbox_id: str) -> set[int]:
    """Pids of live processes whose environment carries this pool's ``EVOLM_SANDBOX`` marker."""
    needle = f"EVOLM_SANDBOX={sandbox_id}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if needle in Path(f"/proc/{entry}/environ").read_bytes():
                stat = Path(f"/proc/{entry}/stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.add(int(entry))
        except OSError:
            continue
    return found


def zygote_pids(sandbox_id: str) -> set[int]:
    """The zygote processes of a pool (not bubblewrap around them, nor their children)."""
    out = set()
    for pid in sandbox_processes(sandbox_id):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) != b"bwrap" and b"evolm.sandbox.zygote" in b" ".join(argv):
            out.add(pid)
    return {pid for pid in out if _ppid(pid) not in out}  # not the children a zygote forked


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


class Sandbox:
    """A started pool with its own event loop, usable from plain (synchronous) tests."""

    def __init__(self, pool: SandboxPool, secret: str | None = None) -> None:
        self.pool = pool
        self.secret = secret
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(pool.start())
        except BaseException:
            self.loop.close()
            raise
        self.baseline = sandbox_processes(pool.sandbox_id)

    def run(self, code: str, timeout: float | None = None, **kw: object) -> Evaluation:
        ev = self.loop.run_until_complete(self.pool.evaluate(code, timeout=timeout, **kw))
        if self.secret is not None:
            assert self.secret not in repr(ev), "the secret came back in a result"
        return ev

    def gather(self, codes: list[str], seeds: list[int] | None = None) -> list[Evaluation]:
        seeds = seeds or [0] * len(codes)

        async def go() -> list[Evaluation]:
            return list(
                await asyncio.gather(
                    *(self.pool.evaluate(c, s) for c, s in zip(codes, seeds, strict=True))
                )
            )

        return self.loop.run_until_complete(go())

    def processes(self) -> set[int]:
        return sandbox_processes(self.pool.sandbox_id)

    def close(self) -> None:
        self.pool.close()
        self.loop.close()


def wait_no_processes(sandbox_id: str, seconds: float = 3.0) -> set[int]:
    """Wait until no process carries the pool's marker; return those still there."""
    end = time.monotonic() + seconds
    left = sandbox_processes(sandbox_id)
    while left and time.monotonic() < end:
        time.sleep(0.05)
        left = sandbox_processes(sandbox_id)
    return left


def open_sandbox(tier: str, domain: str = ESCAPE, secret: str | None = None, **kw) -> Sandbox:
    """Start a pool on ``tier``, or skip the test with the probe's reason when it cannot work."""
    if tier != "auto":
        (probe,) = probe_tiers((tier,))
        if not probe.ok:
            pytest.skip(f"tier {tier} does not work here: {probe.reason}")
    opts: dict = {"workers": 1, "timeout": 3.0, "memory_mb": 256, "tier": tier}
    opts.update(kw)
    try:
        return Sandbox(SandboxPool(domain, {}, **opts), secret)
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox tier works here: {exc}")
