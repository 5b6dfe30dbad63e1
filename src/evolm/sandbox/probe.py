"""Which sandbox tiers work on this machine, found out by trying them.

A tier is reported as working only when a real :class:`~evolm.sandbox.pool.SandboxPool` of that
tier started and ran a probe child that came back with the restrictions in force. The pool uses
this module to choose a tier (``tier="auto"``) and hands itself in as ``pool``, so this module
never imports it: the imports run ``tiers <- probe <- pool`` without a circle.
:func:`evolm.sandbox.probe_tiers` and :func:`evolm.sandbox.doctor_report` bind ``pool``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from evolm.sandbox import tiers as _tiers
from evolm.sandbox.tiers import TIERS, SandboxUnavailable, TierProbe

if TYPE_CHECKING:
    from evolm.sandbox.pool import SandboxPool

    PoolFactory = Callable[..., SandboxPool]
    """What builds the probe's pool: :class:`~evolm.sandbox.pool.SandboxPool` itself."""

__all__ = ["choose_tier", "doctor_report", "probe_tiers"]

_probes: dict[str, TierProbe] = {}
_probe_lock = threading.Lock()


def _probe(tier: str, pool_factory: PoolFactory) -> TierProbe:
    why = _tiers.precheck(tier)
    if why is not None:
        return TierProbe(tier, False, why)

    async def go() -> TierProbe:
        pool = pool_factory(None, workers=1, timeout=10.0, tier=tier, allow_weak=True)
        try:
            await pool.start()
            ev = await pool.evaluate("", 0)
        except SandboxUnavailable as exc:
            return TierProbe(tier, False, str(exc))
        finally:
            pool.close()
        if not ev.ok:
            return TierProbe(tier, False, f"the probe program failed: {ev.error}")
        uid, blocked = ev.extras.get("uid"), ev.extras.get("write_blocked")
        if tier != "weak" and not blocked:
            return TierProbe(tier, False, "a probe child could still write to its directory")
        return TierProbe(tier, True, _works(tier, uid))

    return asyncio.run(go())


def _works(tier: str, uid: object) -> str:
    abi = _tiers.landlock.abi_version()
    child = f"children add Landlock ABI {abi} and seccomp, and run as uid {uid}"
    if tier == "bwrap":
        path = _tiers._bwrap() or "bwrap"
        as_root = f", switched from root to uid {_tiers.NOBODY}" if os.geteuid() == 0 else ""
        return (
            f"{_tiers.bwrap_version(path) or path} works: zygotes run in new pid, net, ipc and uts "
            f"namespaces on a read-only file system{as_root}; {child}"
        )
    if tier == "userns":
        return f"zygotes run in their own user, network, ipc and uts namespaces; {child}"
    if tier == "landlock":
        return f"Landlock ABI {abi}, seccomp and rlimits in each child (uid {uid})"
    return "seccomp and rlimits only: programs can read every file this user can"


def probe_tiers(
    tiers: tuple[str, ...] = TIERS, refresh: bool = False, *, pool: PoolFactory
) -> list[TierProbe]:
    """Try each tier (once per process unless ``refresh``) and say whether it works and why.

    Each probe starts a real zygote of that tier (a one-worker ``pool``) and runs a probe child
    in it, so a tier is reported as working only when it actually worked. Safe to call with an
    event loop running.
    """
    out: list[TierProbe] = []
    for tier in tiers:
        with _probe_lock:
            if refresh or tier not in _probes:
                # a thread of its own, so that asyncio.run works even under a running loop
                with ThreadPoolExecutor(1) as executor:
                    _probes[tier] = executor.submit(_probe, tier, pool).result()
            out.append(_probes[tier])
    return out


def choose_tier(allow_weak: bool, *, pool: PoolFactory) -> TierProbe:
    """The strongest working tier (tried with ``pool``); ``weak`` only when allowed.

    Raises:
        SandboxUnavailable: nothing with Landlock works and ``allow_weak`` is False.
    """
    failed = []
    for tier in TIERS[:-1]:
        (probe,) = probe_tiers((tier,), pool=pool)
        if probe.ok:
            return probe
        failed.append(f"{tier}: {probe.reason}")
    if allow_weak:
        (probe,) = probe_tiers(("weak",), pool=pool)
        if probe.ok:
            return probe
        failed.append(f"weak: {probe.reason}")
    raise SandboxUnavailable(
        "no sandbox tier with Landlock works on this machine ("
        + "; ".join(failed)
        + "). Pass --allow-weak-sandbox (allow_weak=True) to run programs with seccomp and "
        "rlimits only, knowing that they can then read every file this user can"
    )


def doctor_report(*, pool: PoolFactory) -> list[tuple[str, str, str]]:
    """Rows (check, result, detail) describing the sandbox on this machine, for ``evolm doctor``
    (tiers tried with ``pool``)."""
    rows = [("kernel", platform.release(), platform.machine())]
    abi = _tiers.landlock.abi_version()
    rows.append(
        (
            "landlock",
            f"ABI {abi}" if abi else "unavailable",
            "TCP rules need ABI 4, signal and abstract-socket scoping ABI 6"
            if abi
            else "Linux 5.13+ with landlock in the lsm= boot list",
        )
    )
    ok, why = _tiers.seccomp_available()
    rows.append(("seccomp", "available" if ok else "unavailable", why))
    rows.append(("user namespaces", *_userns_status()))
    path = _tiers._bwrap()
    rows.append(
        (
            "bubblewrap",
            (_tiers.bwrap_version(path) or path) if path else "not installed",
            path or "apt-get install bubblewrap",
        )
    )
    rows.append(("running as", f"uid {os.geteuid()}", "root" if os.geteuid() == 0 else ""))
    for probe in probe_tiers(pool=pool):
        rows.append((f"tier {probe.tier}", "works" if probe.ok else "unavailable", probe.reason))
    try:
        chosen = choose_tier(allow_weak=False, pool=pool)
        rows.append(("selected tier", chosen.tier, chosen.reason))
    except SandboxUnavailable as exc:
        rows.append(("selected tier", "none", str(exc)))
    return rows


def _userns_status() -> tuple[str, str]:
    """Kernel knobs that can forbid unprivileged user namespaces, and whether one does."""
    knobs = (
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    )
    details = []
    blocked = False
    for path, forbidding in knobs:
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        details.append(f"{Path(path).name}={value}")
        blocked = blocked or value == forbidding
    return ("restricted" if blocked else "allowed"), ", ".join(details)
