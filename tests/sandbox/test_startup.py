"""A domain that raises, exits, crashes or hangs while a sandbox worker starts gets a one-paragraph
DomainStartError naming the domain, what happened in the worker and the fix (no traceback)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evolm.cli import app
from evolm.sandbox import DomainStartError, SandboxPool, SandboxUnavailable
from evolm.sandbox.startup import START_TIMEOUT_ENV, hung_at, start_timeout
from tests.sandbox.harness import wait_no_processes


def start(domain: str, **kw: object) -> DomainStartError:
    pool = SandboxPool(domain, {}, workers=1, timeout=2.0, **kw)  # type: ignore[arg-type]

    async def go() -> None:
        async with pool:
            pass

    with pytest.raises(DomainStartError) as info:
        asyncio.run(go())
    assert not wait_no_processes(pool.sandbox_id), "the failed start left worker processes"
    err = info.value
    assert isinstance(err, SandboxUnavailable) and isinstance(err, ValueError)
    assert err.domain == domain
    assert "\n" not in str(err) and "Traceback" not in str(err)
    return err


def test_a_domain_whose_init_raises_in_the_worker() -> None:
    err = start("tests.sandbox.start_domains:RaisesInWorker")
    text = str(err)
    assert (
        "'tests.sandbox.start_domains:RaisesInWorker' failed to start in a sandbox worker" in text
    )
    assert "FileNotFoundError: weights.bin is not readable here" in text
    assert "start_domains.py:" in text and "in __init__" in text  # where it was raised
    assert "pass plain data to the domain through its params" in text  # the fix
    assert "FileNotFoundError" in err.worker_traceback and "Traceback" in err.worker_traceback


def test_a_domain_module_that_raises_at_import_in_the_worker() -> None:
    err = start("tests.sandbox.start_import_fails:ImportFails")
    assert "JSONDecodeError" in str(err), err
    assert "start_import_fails.py:12 in <module>" in str(err)  # the user's line, not json's
    assert "start_import_fails.py" in err.worker_traceback


def test_a_domain_calling_sys_exit_in_the_worker() -> None:
    err = start("tests.sandbox.start_domains:ExitsInWorker")
    assert "called sys.exit(3)" in str(err), err
    assert "start_domains.py:" in str(err)
    assert "remove the sys.exit call" in str(err)


def test_a_domain_that_kills_its_worker_while_starting() -> None:
    err = start("tests.sandbox.start_domains:CrashesInWorker")
    assert "exited with code 9 while it imported or built" in str(err), err
    assert "about to crash" in str(err)  # the worker's stderr


def test_a_domain_import_that_hangs_names_the_domain_the_line_and_the_setting() -> None:
    err = start("tests.sandbox.start_import_hangs:ImportHangs", start_timeout=3.0)
    text = str(err)
    assert "did not finish starting in a sandbox worker within 3 s" in text, text
    assert "start_import_hangs.py:" in text and "in wait_for_server" in text
    assert f"{START_TIMEOUT_ENV}=<seconds>" in text
    assert "TimeoutError" not in text and "doctor" not in text


def test_a_constructor_that_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(START_TIMEOUT_ENV, "2.5")
    err = start("tests.sandbox.start_domains:HangsInWorker")
    assert "within 2.5 s" in str(err) and "in __init__" in str(err), err


@pytest.mark.parametrize(
    ("domain", "says"),
    [("ExitsInWorker", "called sys.exit(3)"), ("RaisesInWorker", "FileNotFoundError")],
)
def test_evolm_run_reports_it_in_one_paragraph(tmp_path: Path, domain: str, says: str) -> None:
    args = ["run", f"tests.sandbox.start_domains:{domain}", "--llm", "fake", "--budget-evals", "4"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r.db"), "-q"])
    assert result.exit_code == 2, result.output
    message = result.output[result.output.index("error: ") :]
    assert says in message and domain in message
    assert "Traceback" not in result.output
    assert message.splitlines()[0].endswith(".") or "stderr ended with" in message


def test_the_start_timeout_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(START_TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=f"{START_TIMEOUT_ENV} must be a positive number"):
        start_timeout()
    monkeypatch.setenv(START_TIMEOUT_ENV, "7")
    assert start_timeout() == 7.0 and start_timeout(1.5) == 1.5
    with pytest.raises(ValueError, match="start_timeout must be"):
        SandboxPool("toy", start_timeout=float("inf"))


def test_hung_at_skips_import_machinery() -> None:
    dump = (
        "Current thread 0x00007f (most recent call first):\n"
        '  File "<frozen importlib._bootstrap>", line 488 in _call_with_frames_removed\n'
        '  File "/x/mod.py", line 12 in <module>\n'
    )
    assert hung_at(dump) == "/x/mod.py:12 in <module>"
    assert hung_at("no dump here") == ""
