"""The sandbox pool's temporary directories: named after their owner, removed on every exit path.

A pool keeps its zygotes' home and scratch directories and their stderr logs under one directory
``evolm-sandbox-<pid>-<start>-<random>`` in the temp directory, where ``<pid>`` is the engine's
process id and ``<start>`` that process's start time (clock ticks since boot, from
``/proc/<pid>/stat``), so a reused pid is not mistaken for the owner. The pool removes it when it
closes, and an ``atexit`` hook removes it when the interpreter exits without closing the pool. A
process killed outright (``kill -9``, or a SIGTERM without a handler) leaves it behind; the next
pool to start removes every such directory whose owner is gone (:func:`remove_stale`). Directories
of live processes, of other users and without an owner in their name are never touched.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile

__all__ = ["PREFIX", "make_root", "owner_alive", "remove_stale", "remove_tree"]

PREFIX = "evolm-sandbox-"
_OWNED = re.compile(rf"^{re.escape(PREFIX)}(\d+)-(\d+)-")
_live: dict[str, int] = {}  # this process's directories -> the pid that made them


def _start_time(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def owner_alive(pid: int, start: int) -> bool:
    """Whether process ``pid`` exists and started at ``start`` (so it is the same process)."""
    return _start_time(pid) == start


def make_root() -> str:
    """Create the calling process's new sandbox directory (mode 0700) and return its path.

    It is removed at interpreter exit if it still exists then (see :func:`remove_tree`).
    """
    pid = os.getpid()
    start = _start_time(pid)
    root = tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-{start if start is not None else 0}-")
    _live[root] = pid
    return root


def remove_tree(path: str) -> None:
    """Remove ``path`` and everything under it, unlocking directories a program made
    unreadable (mode 000) first if needed; never raises."""
    _live.pop(path, None)
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return
    for top, dirs, _ in os.walk(path):
        for d in dirs:
            sub = os.path.join(top, d)
            if not os.path.islink(sub):
                with contextlib.suppress(OSError):
                    os.chmod(sub, 0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    shutil.rmtree(path, ignore_errors=True)


def remove_stale(tmpdir: str | None = None) -> list[str]:
    """Remove the sandbox directories in ``tmpdir`` (default: the temp directory) whose owner
    process is gone; returns the paths removed.

    Only directories named ``evolm-sandbox-<pid>-<start>-...`` and owned by this user are
    considered; one is removed when no process ``<pid>`` started at ``<start>`` exists.
    """
    base = tmpdir or tempfile.gettempdir()
    removed: list[str] = []
    uid = os.geteuid()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        m = _OWNED.match(entry.name)
        if m is None or entry.path in _live:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or st.st_uid != uid:
            continue
        if owner_alive(int(m.group(1)), int(m.group(2))):
            continue
        remove_tree(entry.path)
        removed.append(entry.path)
    return removed


@atexit.register
def _remove_live() -> None:
    for root, pid in list(_live.items()):
        if pid == os.getpid():  # not in a forked child, whose parent still uses it
            remove_tree(root)
