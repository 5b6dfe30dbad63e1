"""What a forked child does to itself before it runs a program, in order.

1. its own process group (so one ``killpg`` reaches everything it is);
2. a parent-death signal (SIGKILL when its zygote goes away);
3. stdin, stdout and stderr on ``/dev/null``;
4. every inherited file descriptor closed except the result pipe (moved to fd 3) and the
   Landlock ruleset (fd 4, closed once enforced);
5. resource limits: CPU seconds, address space, file size, open files, no core dumps, and the
   number of processes when not root (the uid's current count plus a few);
6. every capability dropped (a root zygote, or one that owns a user namespace, has some; the
   zygote has already emptied the bounding set);
7. ``no_new_privs``;
8. Landlock (see :mod:`evolm.sandbox.landlock`);
9. seccomp: a deny list compiled once per zygote by libseccomp (through ``pyseccomp``), plus a
   small filter, filled in per child with its pid, that lets signals reach only the child.

The seccomp filter keeps libseccomp's architecture check: a system call made through another ABI
(``int 0x80``, x32) kills the process. Denied calls fail with ``EPERM`` (``clone3`` with
``ENOSYS`` so that threads fall back to ``clone``, which is allowed only with ``CLONE_THREAD``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import math
import os
import resource
import signal
import struct
import sys
from dataclasses import dataclass

from evolm.sandbox import landlock

__all__ = [
    "DENIED_SYSCALLS",
    "ChildPolicy",
    "SeccompFilter",
    "drop_bounding_set",
    "process_limit",
    "seccomp_available",
]

RESULT_FD = 3
_RULESET_FD = 4
FILE_SIZE_LIMIT = 16 * 1024 * 1024
OPEN_FILES_LIMIT = 64
EXTRA_PROCESSES = 64

DENIED_SYSCALLS = (
    # new programs and processes (threads are allowed through clone with CLONE_THREAD)
    "execve",
    "execveat",
    "fork",
    "vfork",
    # sockets of every family
    "socket",
    "socketpair",
    # other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "process_mrelease",
    "kcmp",
    "pidfd_open",
    "pidfd_send_signal",
    "pidfd_getfd",
    "tkill",
    "setsid",
    "setpgid",
    "move_pages",
    "migrate_pages",
    # namespaces and mounts
    "mount",
    "umount2",
    "unshare",
    "setns",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "name_to_handle_at",
    "open_by_handle_at",
    # kernel attack surface
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "personality",
    "fanotify_init",
    "lookup_dcookie",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    # the machine itself
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "syslog",
    "quotactl",
    "quotactl_fd",
    "iopl",
    "ioperm",
    "vhangup",
    "nfsservctl",
)

_CLONE_THREAD = 0x00010000
_F_SETOWN, _F_SETOWN_EX = 8, 15
# TIOCSTI, TIOCLINUX, TIOCSCTTY, TIOCSPGRP, FIOSETOWN, SIOCSPGRP
_DENIED_IOCTLS = (0x5412, 0x541C, 0x540E, 0x5410, 0x8901, 0x8902)
# Signals may only go to the child itself: kill(0 or own pid), tgkill and rt_(tg)sigqueueinfo
# (own pid).
_SIGNAL_SYSCALLS = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")

_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_SECCOMP = 22
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_SECCOMP_MODE_FILTER = 2
_CAP_SETPCAP = 8
_CAP_VERSION_3 = 0x20080522

_RET_ALLOW = 0x7FFF0000
_RET_EPERM = 0x00050000 | errno.EPERM

_libc = ctypes.CDLL(None, use_errno=True)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _check(res: int, what: str) -> None:
    if res != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg2: int | ctypes.c_void_p = 0, arg3: int = 0) -> int:
    a2 = arg2 if isinstance(arg2, ctypes.c_void_p) else ctypes.c_ulong(arg2)
    return int(_libc.prctl(option, a2, ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)))


def seccomp_available() -> tuple[bool, str]:
    """Whether a filter can be built here: ``pyseccomp`` importable and libseccomp found."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError) as exc:
        return False, (
            f"pyseccomp unavailable ({exc}); run `pip install pyseccomp` and "
            "`apt-get install libseccomp2`"
        )
    return True, f"pyseccomp {pyseccomp.__version__} on {pyseccomp._libseccomp_path}"


class SeccompFilter:
    """The deny list compiled to BPF once; :meth:`load` installs it in the calling process.

    Raises:
        OSError: libseccomp is missing or refused a rule.
    """

    def __init__(self) -> None:
        import pyseccomp as sc

        f = sc.SyscallFilter(sc.ALLOW)
        f.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        deny = sc.ERRNO(errno.EPERM)

        def nr(name: str) -> int:
            return int(sc.resolve_syscall(sc.Arch.NATIVE, name))

        for name in DENIED_SYSCALLS:
            if nr(name) >= 0:  # not every call exists on every architecture
                f.add_rule(deny, name)
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
        if nr("clone3") >= 0:
            f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        for cmd in (_F_SETOWN, _F_SETOWN_EX):
            f.add_rule(deny, "fcntl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, cmd))
        for req in _DENIED_IOCTLS:
            f.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, req))
        # a child that cleared its parent-death signal could outlive a killed zygote
        f.add_rule(deny, "prctl", sc.Arg(0, sc.MASKED_EQ, 0xFFFFFFFF, _PR_SET_PDEATHSIG))
        memfd = os.memfd_create("evolm-seccomp")
        try:
            with os.fdopen(os.dup(memfd), "w+b") as out:
                f.export_bpf(out)
            self._main = os.pread(memfd, 1 << 20, 0)
        finally:
            os.close(memfd)
        self._arch = int(sc.system_arch())
        self._signal_nrs = tuple(nr(n) for n in _SIGNAL_SYSCALLS if nr(n) >= 0)
        self._main_buf = ctypes.create_string_buffer(self._main, len(self._main))
        self._main_prog = _SockFprog(len(self._main) // 8, ctypes.addressof(self._main_buf))
        sig, self._pid_offset = self._signal_filter()
        self._sig_buf = ctypes.create_string_buffer(sig, len(sig))
        self._sig_prog = _SockFprog(len(sig) // 8, ctypes.addressof(self._sig_buf))

    def _signal_filter(self) -> tuple[bytes, int]:
        """BPF allowing the signal calls only when their first argument is 0 or the caller's
        pid, and the byte offset where :meth:`load` writes that pid."""
        ld, jeq, ret = 0x20, 0x15, 0x06
        arg0_low = 16 if sys.byteorder == "little" else 20
        n = len(self._signal_nrs)
        # 0: ld arch; 1: not native -> allow (the main filter kills it); 2: ld nr;
        # 3..3+n-1: a signal call -> check; then allow; check: ld arg0 low; == pid or 0 -> allow.
        check = 3 + n + 1
        allow = check + 4
        prog = [
            (ld, 0, 0, 4),
            (jeq, 0, allow - 2, self._arch),
            (ld, 0, 0, 0),
        ]
        for i, s in enumerate(self._signal_nrs):
            prog.append((jeq, check - (3 + i) - 1, 0, s))
        prog += [
            (ret, 0, 0, _RET_ALLOW),
            (ld, 0, 0, arg0_low),
            (jeq, 2, 0, 0),  # k: the pid, written per child
            (jeq, 1, 0, 0),
            (ret, 0, 0, _RET_EPERM),
            (ret, 0, 0, _RET_ALLOW),
        ]
        pid_offset = (check + 1) * 8 + 4
        return b"".join(struct.pack("=HBBI", *insn) for insn in prog), pid_offset

    def load(self) -> None:
        """Install the deny list and this process's signal filter (``no_new_privs`` first)."""
        struct.pack_into("=I", self._sig_buf, self._pid_offset, os.getpid())
        for prog in (self._main_prog, self._sig_prog):
            _check(_prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog)), "seccomp")


def _capabilities() -> tuple[_CapHeader, ctypes.Array[_CapData]]:
    hdr = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    return hdr, data


def drop_bounding_set() -> None:
    """Empty the capability bounding set, if allowed to (done once, by the zygote)."""
    _, data = _capabilities()
    if data[0].effective & (1 << _CAP_SETPCAP):
        cap = 0
        while _prctl(_PR_CAPBSET_DROP, cap) == 0:
            cap += 1


def _drop_capabilities() -> None:
    hdr, data = _capabilities()
    if not any(d.effective or d.permitted or d.inheritable for d in data):
        return
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    _check(_libc.capset(ctypes.byref(hdr), (_CapData * 2)()), "capset")


def process_limit() -> int | None:
    """``RLIMIT_NPROC`` for children: the tasks this uid has now plus :data:`EXTRA_PROCESSES`.

    The limit counts every task of the uid, so a fixed small number would stop a program from
    starting even one thread on a busy account. None for root, whom the limit does not bind.
    """
    uid = os.getuid()
    if uid == 0:
        return None
    tasks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
            if int(fields[b"Uid"].split()[0]) == uid:
                tasks += int(fields[b"Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return tasks + EXTRA_PROCESSES


def _vm_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class ChildPolicy:
    """Everything a zygote prepares once so that a child can lock itself down quickly.

    Attributes:
        seccomp: the compiled deny list.
        ruleset_fd: a Landlock ruleset, or None on the weak tier.
        devnull_fd: an open ``/dev/null``.
        max_processes: ``RLIMIT_NPROC`` for children, or None (root, whom it does not bind).
        result_fd_ready: set in the child once the result pipe sits at ``RESULT_FD``.
    """

    seccomp: SeccompFilter
    ruleset_fd: int | None
    devnull_fd: int
    max_processes: int | None
    result_fd_ready: bool = False

    def limits(self, timeout: float, memory_mb: int | None) -> list[tuple[int, int, int]]:
        """The (resource, soft, hard) limits of a child about to run for ``timeout`` seconds.

        The address-space limit is the zygote's current size plus ``memory_mb`` MiB, since a
        forked child starts as large as its zygote.
        """
        cpu = math.ceil(timeout) + 1
        out = [
            (resource.RLIMIT_CPU, cpu, cpu + 1),
            (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT, FILE_SIZE_LIMIT),
            (resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT, OPEN_FILES_LIMIT),
            (resource.RLIMIT_CORE, 0, 0),
        ]
        if memory_mb:
            size = _vm_bytes() + memory_mb * 1024 * 1024
            out.append((resource.RLIMIT_AS, size, size))
        if self.max_processes is not None:
            out.append((resource.RLIMIT_NPROC, self.max_processes, self.max_processes))
        return out

    def enter(self, zygote_pid: int, result_fd: int, limits: list[tuple[int, int, int]]) -> None:
        """Apply every restriction, in the documented order, to the calling (forked) process.

        Raises:
            OSError: a step failed; the caller must not run the program then.
        """
        os.setpgid(0, 0)
        _check(_prctl(_PR_SET_PDEATHSIG, signal.SIGKILL), "PR_SET_PDEATHSIG")
        if os.getppid() != zygote_pid:  # the zygote died before the line above
            os._exit(1)
        for fd in (0, 1, 2):
            os.dup2(self.devnull_fd, fd)
        keep = [result_fd] + ([self.ruleset_fd] if self.ruleset_fd is not None else [])
        moved = [_dup_above(fd, 10) for fd in keep]
        os.dup2(moved[0], RESULT_FD)
        self.result_fd_ready = True
        if len(moved) > 1:
            os.dup2(moved[1], _RULESET_FD)
        os.closerange(RESULT_FD + len(moved), 1 << 30)
        for res, soft, hard in limits:
            resource.setrlimit(res, (soft, hard))
        _drop_capabilities()
        _check(_prctl(_PR_SET_NO_NEW_PRIVS, 1), "PR_SET_NO_NEW_PRIVS")
        if self.ruleset_fd is not None:
            landlock.restrict_self(_RULESET_FD)
            os.close(_RULESET_FD)
        self.seccomp.load()


def _dup_above(fd: int, low: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
