"""A real Ray cluster on this machine for tests and benchmarks: a head and extra nodes, each a
``ray start --block`` process of its own (its own raylet), stopped by pid, never by ``ray stop``
(which would stop every Ray process of the machine)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """Start with :meth:`start_head`, add nodes with :meth:`add_node`; :meth:`stop` always."""

    def __init__(self, extra_path: tuple[str, ...] = ()) -> None:
        self.dir = tempfile.mkdtemp(prefix="evray")  # short: Ray's socket paths have a limit
        self.address = ""
        self.nodes: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ)
        # workers import this checkout's evolm and the tests' (or benchmarks') domains
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), *extra_path])
        self.env["RAY_USAGE_STATS_ENABLED"] = "0"
        self.env["RAY_AUTH_MODE"] = "disabled"  # loopback only; no token file in ~/.ray
        # notice a dead node within seconds, not the default half minute
        self.env["RAY_health_check_period_ms"] = "500"
        self.env["RAY_health_check_timeout_ms"] = "1000"
        self.env["RAY_health_check_failure_threshold"] = "3"

    def _start(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(os.path.join(self.dir, log), "wb") as out:
            proc = subprocess.Popen(
                [RAY, "start", "--block", "--disable-usage-stats", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.dir,
                start_new_session=True,
            )
        self.nodes.append(proc)
        return proc

    def start_head(self, num_cpus: int = 1) -> str:
        port = _free_port()
        self._start(
            [
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={num_cpus}",
                "--include-dashboard=false",
                f"--temp-dir={self.dir}",
            ],
            "head.log",
        )
        self.address = f"127.0.0.1:{port}"
        self.wait_for_nodes(1)
        return self.address

    def add_node(self, num_cpus: int = 1) -> subprocess.Popen[bytes]:
        n = len(self.nodes)
        proc = self._start(
            [
                f"--address={self.address}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={num_cpus}",
            ],
            f"node{n}.log",
        )
        self.wait_for_nodes(n + 1)
        return proc

    def live_nodes(self) -> int:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import ray; ray.init(address={self.address!r}, logging_level='ERROR', "
                "log_to_driver=False); print(sum(1 for n in ray.nodes() if n['Alive']))",
            ],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        try:
            return int(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 0

    def wait_for_nodes(self, n: int, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for p in self.nodes:
                if p.poll() is not None:
                    raise RuntimeError(f"a ray start process exited: see {self.dir}")
            if self.live_nodes() >= n:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the local Ray cluster did not reach {n} nodes: see {self.dir}")

    def raylet_pid(self, node: subprocess.Popen[bytes]) -> int:
        """The raylet started by ``node``'s ``ray start``."""
        for child in psutil.Process(node.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.name() == "raylet":
                    return int(child.pid)
        raise RuntimeError(f"no raylet under ray start process {node.pid}")

    def kill(self) -> None:
        """SIGKILL every process of every node at once: the whole cluster is gone."""
        for proc in self.nodes:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM each node's ``ray start`` (it stops its own processes), then SIGKILL what is
        left of its process group; extra nodes first, the head last."""
        for proc in reversed(self.nodes):
            group: list[psutil.Process] = []  # psutil refuses to kill a reused pid
            with contextlib.suppress(psutil.Error):
                group = psutil.Process(proc.pid).children(recursive=True)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=40)
            for child in group:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.nodes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
