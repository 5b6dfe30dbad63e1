"""Sandbox temp directories: removed on every exit path; stale ones of killed engines are removed
by the next pool to start, and only those whose owner process is gone."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from evolm.sandbox import SandboxPool
from evolm.sandbox.tempdirs import PREFIX, owner_alive, remove_stale

ROOT = Path(__file__).resolve().parents[2]

_HOLDER = """
import asyncio, sys
from evolm.sandbox import SandboxPool

async def main():
    pool = SandboxPool("tests.toy_domain:ToyDomain", workers=1)
    await pool.start()
    ev = await pool.evaluate("def f():\\n    return 3.0\\n")
    assert ev.status.value == "ok", ev
    print(pool._root, flush=True)
    if sys.argv[1] == "exit":
        sys.exit(0)  # without closing the pool
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def holder(tmp: Path, mode: str = "hold") -> tuple[subprocess.Popen[str], str]:
    """A process holding a started pool whose directory is in ``tmp``; and that directory."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, mode],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    root = proc.stdout.readline().strip()
    assert root.startswith(str(tmp / PREFIX)), root
    return proc, root


def sandbox_dirs(tmp: Path) -> set[str]:
    return {str(p) for p in tmp.glob(PREFIX + "*")}


def test_kill_9_leaves_a_directory_the_next_pool_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, live_root = holder(tmp_path)
    killed, killed_root = holder(tmp_path)
    try:
        killed.kill()
        killed.wait(timeout=10)
        assert os.path.isdir(killed_root)  # kill -9 runs no clean-up
        # a pid reused by another process (ours) with a different start time, and a directory
        # without an owner in its name (an older evolm's): the first goes, the second stays
        reused = tmp_path / f"{PREFIX}{os.getpid()}-1-abcd"
        (reused / "z0").mkdir(parents=True)
        legacy = tmp_path / f"{PREFIX}k2j3h4"
        legacy.mkdir()
        locked = tmp_path / f"{PREFIX}999999999-5-x" / "z0" / "scratch" / "locked"
        locked.mkdir(parents=True)
        locked.chmod(0)  # a program left an unreadable directory behind

        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

        async def go() -> set[str]:
            async with SandboxPool("tests.toy_domain:ToyDomain", workers=1) as pool:
                assert pool._root is not None and os.path.isdir(pool._root)
                return {pool._root}

        own = asyncio.run(go())
        assert sandbox_dirs(tmp_path) == {live_root, str(legacy)}
        assert not own & sandbox_dirs(tmp_path)  # its own directory went at close
    finally:
        live.kill()
        live.wait(timeout=10)
    assert remove_stale(str(tmp_path)) == [live_root]
    assert sandbox_dirs(tmp_path) == {str(legacy)}


def test_owner_alive_tells_a_reused_pid() -> None:
    with open(f"/proc/{os.getpid()}/stat") as f:
        start = int(f.read().rsplit(")", 1)[1].split()[19])
    assert owner_alive(os.getpid(), start)
    assert not owner_alive(os.getpid(), start + 1)
    assert not owner_alive(999_999_999, start)


def test_exiting_without_closing_the_pool_removes_its_directory(tmp_path: Path) -> None:
    proc, root = holder(tmp_path, "exit")
    assert proc.wait(timeout=30) == 0
    assert not os.path.exists(root)
    assert sandbox_dirs(tmp_path) == set()


def _evaluated(db: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return bool(con.execute("SELECT count(*) FROM evaluations").fetchone()[0])
    except sqlite3.Error:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_cli_run_removes_its_directories(tmp_path: Path, sig: int) -> None:
    db = tmp_path / "run.db"
    config = tmp_path / "run.toml"
    config.write_text("[engine]\nworkers = 1\n")
    cmd = [
        sys.executable, "-c", "from evolm.cli import app; app()", "run",
        "tests.toy_domain:ToyDomain", "--llm", "fake", "--budget-evals", "1000000",
        "--config", str(config), "--out", str(db), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not _evaluated(db):
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        assert sandbox_dirs(tmp_path), "the running engine has no sandbox directory"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err
    assert sandbox_dirs(tmp_path) == set()
