"""Sandboxed evaluation of untrusted programs: fork-server workers behind Landlock and seccomp.

See docs/sandbox.md for the design, the tiers and what each restriction blocks.
"""

from __future__ import annotations

from evolm.sandbox import probe as _probe
from evolm.sandbox.pool import SandboxPool
from evolm.sandbox.startup import DomainStartError
from evolm.sandbox.tiers import TIERS, SandboxUnavailable, TierProbe

__all__ = [
    "TIERS",
    "DomainStartError",
    "SandboxPool",
    "SandboxUnavailable",
    "TierProbe",
    "doctor_report",
    "probe_tiers",
]


def probe_tiers(tiers: tuple[str, ...] = TIERS, refresh: bool = False) -> list[TierProbe]:
    """Try each tier (once per process unless ``refresh``) and say whether it works and why.

    Each probe starts a real one-worker :class:`SandboxPool` of that tier and runs a probe child
    in it, so a tier is reported as working only when it actually worked. Safe to call with an
    event loop running.
    """
    return _probe.probe_tiers(tiers, refresh, pool=SandboxPool)


def doctor_report() -> list[tuple[str, str, str]]:
    """Rows (check, result, detail) describing the sandbox on this machine, for ``evolm doctor``."""
    return _probe.doctor_report(pool=SandboxPool)
