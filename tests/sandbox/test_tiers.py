"""Tier probing and selection, the weak-tier opt-in, and the doctor report."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from evolm.sandbox import (
    TIERS,
    SandboxPool,
    SandboxUnavailable,
    TierProbe,
    doctor_report,
    probe_tiers,
    tiers,
)
from evolm.sandbox import landlock as ll
from evolm.sandbox import (
    probe as tier_probing,
)
from tests.sandbox.harness import TOY


@pytest.fixture
def fresh_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget cached probe results for the duration of a test."""
    monkeypatch.setattr(tier_probing, "_probes", {})


def start(pool: SandboxPool) -> SandboxPool:
    async def go() -> SandboxPool:
        try:
            await pool.start()
            assert (await pool.evaluate("def f():\n    return 3\n")).ok
        finally:
            pool.close()
        return pool

    return asyncio.run(go())


def test_every_tier_is_probed_with_a_reason() -> None:
    probes = probe_tiers()
    assert [p.tier for p in probes] == list(TIERS) == ["bwrap", "userns", "landlock", "weak"]
    assert all(isinstance(p, TierProbe) and p.reason for p in probes)
    if ll.abi_version() > 0:
        assert {p.tier: p.ok for p in probes}["landlock"], probes


def test_auto_selects_the_strongest_working_tier() -> None:
    first_ok = next(p for p in probe_tiers() if p.ok)
    pool = start(SandboxPool(TOY, workers=1))
    assert pool.tier == first_ok.tier and pool.tier_reason == first_ok.reason


def test_weak_tier_needs_an_explicit_opt_in() -> None:
    with pytest.raises(SandboxUnavailable, match="--allow-weak-sandbox"):
        start(SandboxPool(TOY, workers=1, tier="weak"))
    pool = start(SandboxPool(TOY, workers=1, tier="weak", allow_weak=True))
    assert pool.tier == "weak"


def test_forcing_a_tier_that_cannot_work_says_why(
    monkeypatch: pytest.MonkeyPatch, fresh_probes: None
) -> None:
    monkeypatch.setattr(tiers, "_bwrap", lambda: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        start(SandboxPool(TOY, workers=1, tier="bwrap"))
    (probe,) = probe_tiers(("bwrap",))
    assert not probe.ok and "bubblewrap is not installed" in probe.reason


def test_without_landlock_auto_refuses_unless_weak_is_allowed(
    monkeypatch: pytest.MonkeyPatch, fresh_probes: None
) -> None:
    monkeypatch.setattr(tiers.landlock, "abi_version", lambda: 0)
    with pytest.raises(SandboxUnavailable, match="--allow-weak-sandbox"):
        start(SandboxPool(TOY, workers=1))
    with pytest.raises(SandboxUnavailable, match="Landlock is not available"):
        start(SandboxPool(TOY, workers=1, tier="landlock"))
    pool = start(SandboxPool(TOY, workers=1, allow_weak=True))
    assert pool.tier == "weak" and "seccomp" in pool.tier_reason


def test_doctor_report_rows() -> None:
    rows = doctor_report()
    assert all(len(r) == 3 and all(isinstance(x, str) for x in r) for r in rows)
    checks = [r[0] for r in rows]
    for name in ("kernel", "landlock", "seccomp", "user namespaces", "bubblewrap"):
        assert name in checks
    assert [f"tier {t}" for t in TIERS] == [c for c in checks if c.startswith("tier ")]
    selected = dict((r[0], r[1]) for r in rows)["selected tier"]
    assert selected == next((p.tier for p in probe_tiers() if p.ok and p.tier != "weak"), "none")


def test_children_see_only_the_domain_package_of_the_working_directory(tmp_path) -> None:
    sys_path, read = tiers.sandbox_paths(TOY, str(tmp_path))
    cwd = os.path.realpath(os.getcwd())
    assert cwd not in map(os.path.realpath, read)
    assert os.path.join(cwd, "tests") in read  # where tests.toy_domain lives
    assert os.path.realpath(sys.base_prefix) in map(os.path.realpath, read)
    assert not any(str(tmp_path).startswith(p.rstrip("/") + "/") for p in read)
    assert cwd in sys_path or os.getcwd() in sys_path  # the zygote can still import it


def test_bwrap_command(tmp_path) -> None:
    if tiers._bwrap() is None:
        pytest.skip("bubblewrap is not installed")
    _, read = tiers.sandbox_paths(TOY, str(tmp_path))
    env = tiers.zygote_env("id", str(tmp_path))
    argv = tiers.launch_command("bwrap", (5, 6), read, str(tmp_path), env)
    for flag in ("--die-with-parent", "--unshare-net", "--unshare-pid", "--clearenv"):
        assert flag in argv
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    assert os.path.realpath(os.getcwd()) not in binds
    assert [b for b in binds if argv[argv.index(b) - 1] == "--bind"] == [str(tmp_path)]
    assert argv[-2:] == ["5", "6"]
