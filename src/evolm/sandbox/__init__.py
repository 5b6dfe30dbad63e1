"""Sandboxed evaluation of untrusted programs: fork-server workers behind Landlock and seccomp.

See docs/sandbox.md for the design, the tiers and what each restriction blocks.
"""

from evolm.sandbox.pool import SandboxPool
from evolm.sandbox.probe import doctor_report, probe_tiers
from evolm.sandbox.tiers import TIERS, SandboxUnavailable, TierProbe

__all__ = [
    "TIERS",
    "SandboxPool",
    "SandboxUnavailable",
    "TierProbe",
    "doctor_report",
    "probe_tiers",
]
