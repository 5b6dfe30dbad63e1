"""Landlock through its three system calls, called with ctypes.

Landlock (Linux 5.13+) lets an unprivileged process give up file-system access, and on newer
kernels TCP bind/connect (ABI 4) and signals or abstract unix sockets aimed outside its own
domain (ABI 6). A zygote builds one ruleset at start-up (read-only paths, an optional writable
scratch directory) and every child enforces it on itself with :func:`restrict_self` after setting
``no_new_privs``. Everything the ruleset handles and no rule allows is denied.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from collections.abc import Iterable

__all__ = ["abi_version", "build_ruleset", "restrict_self"]

_SYS_CREATE_RULESET = 444  # the same number on every architecture
_SYS_ADD_RULE = 445
_SYS_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

# Access rights on files and directories (uapi/linux/landlock.h).
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
TRUNCATE = 1 << 14  # ABI 3
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | (1 << 15)

# Network (ABI 4) and scoping (ABI 6).
_NET_BIND_TCP = 1 << 0
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1

READ = READ_FILE | READ_DIR
READ_WRITE = READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | TRUNCATE

_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(nr: int, *args: object) -> int:
    res = int(_libc.syscall(ctypes.c_long(nr), *args))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is missing or disabled."""
    try:
        return _syscall(
            _SYS_CREATE_RULESET, ctypes.c_void_p(None), ctypes.c_size_t(0), _CREATE_RULESET_VERSION
        )
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
            return 0
        raise


def _handled_fs(abi: int) -> int:
    bits = 13  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        bits = 14  # REFER
    if abi >= 3:
        bits = 15  # TRUNCATE
    if abi >= 5:
        bits = 16  # IOCTL_DEV
    return (1 << bits) - 1


def build_ruleset(read: Iterable[str], write: Iterable[str], abi: int) -> int:
    """Create a ruleset for ``abi`` and return its file descriptor.

    Args:
        read: files and directories (with everything beneath them) that stay readable.
        write: directories that stay readable and writable.
        abi: the Landlock ABI to target (from :func:`abi_version`, at least 1).

    Paths that do not exist are skipped. Every file-system right the ABI knows, TCP bind and
    connect (ABI >= 4), and signals and abstract unix sockets outside the domain (ABI >= 6) are
    denied except where a path rule allows them.

    Raises:
        OSError: the kernel refused the ruleset or a rule.
    """
    if abi < 1:
        raise OSError(errno.EOPNOTSUPP, "Landlock is not available")
    fs = _handled_fs(abi)
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    attr = ctypes.create_string_buffer(struct.pack("<QQQ", fs, net, scoped)[:size], size)
    fd = _syscall(_SYS_CREATE_RULESET, attr, ctypes.c_size_t(size), 0)
    try:
        for paths, rights in ((read, READ), (write, READ_WRITE)):
            for path in paths:
                _add_path(fd, path, rights & fs)
    except BaseException:
        os.close(fd)
        raise
    os.set_inheritable(fd, False)
    return fd


def _add_path(ruleset_fd: int, path: str, rights: int) -> None:
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(pfd).st_mode):
            rights &= _FILE_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("<Qi", rights, pfd), 12)
        _syscall(_SYS_ADD_RULE, ruleset_fd, _RULE_PATH_BENEATH, rule, 0)
    finally:
        os.close(pfd)


def restrict_self(ruleset_fd: int) -> None:
    """Enforce the ruleset on the calling thread (needs ``no_new_privs`` first)."""
    _syscall(_SYS_RESTRICT_SELF, ruleset_fd, 0)
