"""The single-writer lock of a run database, and where tracebacks go.

A run or a resume holds an exclusive ``flock`` on a side file ``RUN.db.lock`` for as long as it
writes ``RUN.db``. The operating system drops the lock when the process ends, however it ends
(kill -9 included), so a held lock means a live writer and a free one means none. The lock file
records the holder's pid, host and command line, for the message a second writer gets. Readers
(``evolm status``, ``export``, ``show``) take no lock; ``status`` only probes it to tell a running
run from one whose process is gone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from evolm.store import StoreError

__all__ = ["RunLock", "RunLocked", "lock_holder", "lock_path", "log_path", "log_traceback"]


class RunLocked(StoreError):
    """Another live process holds the run database's lock."""


def lock_path(db: str | Path) -> Path:
    """The lock file of run database ``db``: ``RUN.db.lock`` next to it."""
    return Path(f"{db}.lock")


def log_path(db: str | Path) -> Path:
    """The log file of run database ``db`` (tracebacks of failures): ``RUN.db.log``."""
    return Path(f"{db}.log")


def _describe(info: dict[str, Any]) -> str:
    pid = info.get("pid", "?")
    host = info.get("host")
    cmd = info.get("command") or "?"
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"process {pid}{where} ({cmd})"


def _read_info(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _command_line() -> str:
    """This process's command, as a user would type it (``evolm run ...``)."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if prog in ("-c", "-m", "__main__.py"):
        prog = "evolm"  # python -c / -m entry points of evolm.cli
    return " ".join([prog, *sys.argv[1:]])


def lock_holder(db: str | Path) -> dict[str, Any] | None:
    """Who writes run database ``db`` now: the holder's ``{"pid", "host", "command", "since"}``
    (possibly partial), or None when no live process holds its lock. Creates nothing."""
    try:
        fd = os.open(lock_path(db), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _read_info(fd) or {"pid": None}
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    """The exclusive lock on run database ``db`` (a context manager; also :meth:`acquire` and
    :meth:`release`). It never waits: a second writer is refused at once.

    Args:
        db: the run database the lock guards.
        command: what the holder is doing, for the message another writer gets (default: this
            process's command line).

    Raises:
        RunLocked: from :meth:`acquire`, when a live process holds the lock (the message names
            its pid and command).
    """

    def __init__(self, db: str | Path, command: str | None = None) -> None:
        self.db = Path(db)
        self.path = lock_path(db)
        self.command = command or _command_line()
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (no-op when already held by this object)."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                info = _read_info(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise RunLocked(
                    f"{self.db} is being written by {_describe(info)}: one run database has one "
                    "writer at a time. Wait for it to finish (`evolm status "
                    f"{self.db}` shows its progress), stop it (Ctrl-C or kill "
                    f"{info.get('pid', 'PID')}), or write to another --out file"
                ) from None
            # The previous holder may have unlinked the file between our open and flock: the
            # lock then guards a dead inode, so try again on the current file.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.time(),
        }
        self._fd = fd
        try:  # who holds it, for the message a second writer gets (the lock holds without it)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:
            pass
        return self

    def release(self) -> None:
        """Drop the lock and remove the lock file (no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def log_traceback(db: str | Path | None, exc: BaseException, what: str) -> Path | None:
    """Append ``exc``'s traceback, with the time and command, to ``RUN.db.log`` (or, where that
    cannot be written, ``evolm-error.log`` in the temp directory); returns the file, or None
    when nowhere could be written."""
    import tempfile

    text = (
        f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {what}\n"
        f"command: {' '.join(sys.argv)}\n"
        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    candidates = [log_path(db)] if db is not None else []
    candidates.append(Path(tempfile.gettempdir()) / "evolm-error.log")
    for path in candidates:
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(text)
            return path
        except OSError:
            continue
    return None
