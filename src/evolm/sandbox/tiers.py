"""Sandbox tiers: how a zygote is launched, and which tiers work on this machine.

From strongest to weakest:

``bwrap``
    Each zygote runs under bubblewrap in new pid, network, IPC, UTS (and cgroup) namespaces, on a
    file system holding only read-only binds of the Python install, the ``sys.path`` entries and
    the system libraries, with ``--die-with-parent``. When the run is root, bubblewrap creates the
    namespaces with root's privileges and the zygote switches to uid/gid 65534 before it imports
    anything from the domain, so neither it nor its children hold a capability or root's uid.
    Children add Landlock and seccomp as on every tier.
``userns``
    No bubblewrap: the zygote unshares its own user, network, IPC and UTS namespaces (no network
    at all, not even loopback), then children add Landlock and seccomp.
``landlock``
    Landlock, seccomp and resource limits in each child; nothing around the zygote.
``weak``
    seccomp and resource limits only, no Landlock: programs can read whatever the user can. Only
    with an explicit opt-in (``allow_weak=True``, ``--allow-weak-sandbox`` on the command line).

Which tiers work here is found out by :mod:`evolm.sandbox.probe`, which tries them with a real
pool; this module only knows how a tier launches a zygote, so it imports neither.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from evolm.sandbox import landlock
from evolm.sandbox.policy import seccomp_available

__all__ = [
    "NOBODY",
    "TIERS",
    "SandboxUnavailable",
    "TierProbe",
    "bwrap_version",
    "launch_command",
    "precheck",
    "sandbox_paths",
    "system_paths",
    "zygote_env",
]

TIERS = ("bwrap", "userns", "landlock", "weak")
"""Tier names, strongest first."""

NOBODY = 65534
"""The uid and gid a root run's zygotes switch to under bubblewrap."""

_SYSTEM_READ = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ld.so.cache",
    "/etc/localtime",
)
_DEVICES_READ = ("/dev/urandom", "/dev/random", "/dev/zero")
_DEVICES_WRITE = ("/dev/null",)
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "BLIS_NUM_THREADS",
)
_BOOT = "from evolm.sandbox.zygote import main; main()"
_EVOLM_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SandboxUnavailable(RuntimeError):
    """The requested sandbox tier cannot work here; the message says why and what to do."""


@dataclass(frozen=True)
class TierProbe:
    """Outcome of trying one tier: whether it works and why (or why not)."""

    tier: str
    ok: bool
    reason: str


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def bwrap_version(path: str) -> str:
    """``bubblewrap X.Y.Z`` as the binary reports it, or an empty string."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def precheck(tier: str) -> str | None:
    """Why ``tier`` cannot work without even trying it, or None."""
    if tier not in TIERS:
        return f"unknown sandbox tier {tier!r}; choose one of {', '.join(TIERS)} or 'auto'"
    ok, why = seccomp_available()
    if not ok:
        return why
    if tier == "weak":
        return None
    if landlock.abi_version() < 1:
        return (
            "Landlock is not available (Linux 5.13+ with landlock in the lsm= boot list is "
            "needed); pass --allow-weak-sandbox to run with seccomp and rlimits only"
        )
    if tier == "bwrap" and _bwrap() is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    return None


def _domain_location(domain: str | None) -> list[str]:
    """Where the module of a ``package.module:Class`` domain lives (its top-level package)."""
    if not domain or ":" not in domain:
        return []
    top = domain.partition(":")[0].split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [os.path.abspath(p) for p in spec.submodule_search_locations]
    return [os.path.abspath(spec.origin)] if spec.origin else []


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without duplicates and without entries nested inside another entry."""
    out: list[str] = []
    for p in sorted(set(paths)):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


def sandbox_paths(domain: str | None, workdir: str) -> tuple[list[str], list[str]]:
    """(``sys.path`` for the zygote, read-only paths for children and bubblewrap).

    Every ``sys.path`` entry that exists stays readable, except the working directory (``''``
    or an entry equal to it): from there only the domain's own top-level package or module is
    visible, so a run directory holding keys or data is not exposed to programs. The Python
    install (prefixes and the interpreter) and the system libraries are readable too. Entries
    that contain ``workdir`` (the pool's own directory, e.g. ``/tmp`` when a script there is
    run) are left out.
    """
    cwd = os.path.realpath(os.getcwd())
    zygote_path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    read: list[str] = []
    for p in zygote_path:
        if os.path.exists(p) and os.path.realpath(p) != cwd:
            read.append(p)
    read += _domain_location(domain)
    exe = os.path.abspath(sys.executable)
    read += [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    read += [os.path.dirname(exe), os.path.dirname(os.path.realpath(exe))]
    work = os.path.realpath(workdir)
    read = [
        p
        for p in read
        if os.path.exists(p) and not (work + "/").startswith(os.path.realpath(p).rstrip("/") + "/")
    ]
    return zygote_path, _outermost(read)


def system_paths() -> tuple[list[str], list[str]]:
    """(read-only, writable) system files and devices children may open."""
    read = [p for p in _SYSTEM_READ + _DEVICES_READ if os.path.lexists(p)]
    return read, [p for p in _DEVICES_WRITE if os.path.exists(p)]


def zygote_env(sandbox_id: str, home: str) -> dict[str, str]:
    """The whole environment of a zygote: no inherited variable, one BLAS thread."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "EVOLM_SANDBOX": sandbox_id,
    }
    env.update(dict.fromkeys(_THREAD_VARS, "1"))
    return env


def launch_command(
    tier: str, fds: tuple[int, int], read: list[str], zdir: str, env: dict[str, str]
) -> list[str]:
    """The argv that starts a zygote of ``tier`` talking over the inherited pipe ends ``fds``."""
    # the zygote runs the engine's own evolm, even where another one is installed (-I ignores
    # PYTHONPATH, and an editable install may point at another checkout)
    boot = f"import sys; sys.path.insert(0, {_EVOLM_ROOT!r}); {_BOOT}"
    python = [os.path.abspath(sys.executable), "-I", "-B", "-c", boot, *map(str, fds)]
    if tier != "bwrap":
        return python
    bwrap = _bwrap()
    if bwrap is None:
        raise SandboxUnavailable("bubblewrap is not installed (apt-get install bubblewrap)")
    args = [
        bwrap,
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]
    if os.geteuid() != 0:
        args.append("--unshare-user")
    # the fresh mounts first, so that binds below /tmp (say) are not hidden by them
    args.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
    made: set[str] = {"/", "/proc", "/dev", "/tmp"}
    bound: list[str] = []

    def parents(path: str) -> None:
        for parent in reversed(Path(path).parents):
            p = str(parent)
            if p in made or any(p == b or p.startswith(b + "/") for b in bound):
                continue
            args.extend(["--perms", "0755", "--dir", p])
            made.add(p)

    for path in _outermost(read + [p for p in _SYSTEM_READ if os.path.lexists(p)]):
        parents(path)
        if os.path.islink(path) and os.path.dirname(path) == "/":
            args.extend(["--symlink", os.readlink(path), path])  # merged-/usr links
        else:
            args.extend(["--ro-bind", path, path])
        bound.append(path)
        made.add(path)
    parents(zdir)
    args.extend(["--bind", zdir, zdir, "--chdir", zdir, "--clearenv"])
    for key, value in env.items():
        args.extend(["--setenv", key, value])
    return [*args, "--", *python]
