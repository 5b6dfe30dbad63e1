"""What the command line says when things go wrong: damaged or foreign databases, a full disk,
a second writer, a killed run, a domain that fails or exits, bad config files. Each gets a
one-paragraph message (no traceback on the screen) and no data already stored is lost."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evolm.store import RunStore
from tests.test_cli import ROOT, TOY, _start, _wait_for_steps, evolm, write_config

PY = sys.executable


def _rows(db: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("programs", "evaluations", "llm_calls", "events")
        }
    finally:
        con.close()


def _clean_error(
    p: subprocess.CompletedProcess, *needles: str, listing: bool = False
) -> str | None:
    """Check a refusal: exit 2, one paragraph naming ``needles``, no traceback on the screen
    (a config error may list several keys: ``listing``). Returns the log file the message
    names for the traceback, if it names one."""
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    for needle in needles:
        assert needle in p.stderr, p.stderr
    assert p.stderr.startswith("error: ") and (listing or p.stderr.count("\n") == 1), p.stderr
    m = re.search(r"traceback (?:is )?in (\S+?\.log)", p.stderr)
    if m is None:
        return None
    assert "Traceback" in Path(m.group(1)).read_text()
    return m.group(1)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("run") / "good.db"
    evolm("run", "image", "--llm", "fake", "--budget-evals", "8", "--out", db, "-q")
    return db


def test_non_utf8_config_names_the_file(tmp_path):
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes("seed = 4\n# café\n".encode("latin-1"))
    p = evolm("run", "image", "--config", cfg, "--llm", "fake", "--out", tmp_path / "r.db",
              check=False)  # fmt: skip
    _clean_error(p, str(cfg), "not UTF-8", "line 2")
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1"])
def test_eval_timeout_must_be_finite_and_positive(tmp_path, value):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[engine]\neval_timeout = {value}\n")
    p = evolm("run", "image", "--config", cfg, "--llm", "fake", "--budget-evals", "4",
              "--out", tmp_path / "r.db", check=False)  # fmt: skip
    _clean_error(p, "engine.eval_timeout", listing=True)  # a config error lists every key
    assert not (tmp_path / "r.db").exists()


def _tamper(src: Path, dst: Path, how: str) -> None:
    shutil.copy(src, dst)
    if how == "pages":  # garbage over every page but the first (the header stays valid)
        size = dst.stat().st_size
        rng = random.Random(0)
        with open(dst, "r+b") as fh:
            for offset in range(4096, size, 4096):
                fh.seek(offset)
                fh.write(rng.randbytes(4096))
        return
    con = sqlite3.connect(dst)
    if how == "config":
        con.execute("UPDATE runs SET config_json = '{not json'")
    elif how == "parents":
        con.execute("UPDATE programs SET parent_ids = '[0,' WHERE id = 3")
    else:
        con.execute("UPDATE events SET payload = '[[[' WHERE kind = 'step'")
    con.commit()
    con.close()


@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("pages", "is damaged (database disk image is malformed)"),
        ("config", "the run's configuration (config_json) is not valid JSON"),
        ("step", "(step) is not valid JSON"),
        ("parents", "program 3's parent_ids is not valid JSON"),
    ],
)
def test_damaged_database_gets_a_message_naming_file_and_fault(tmp_path, finished_run, how,
                                                               needle):  # fmt: skip
    db = tmp_path / "bad.db"
    _tamper(finished_run, db, how)
    before = db.read_bytes()
    commands = [["status", db], ["resume", db, "-q"]]
    if how in ("pages", "parents"):  # export reads programs only (not config or events)
        commands.insert(1, ["export", db])
    for args in commands:
        p = evolm(*args, check=False)
        _clean_error(p, str(db), needle)
    assert db.read_bytes() == before  # resume refused it without writing to it
    assert not Path(f"{db}.lock").exists()


def test_resume_refuses_foreign_and_empty_files_without_touching_them(tmp_path):
    foreign = tmp_path / "foreign.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE notes (text TEXT)")
    con.commit()
    con.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path in (foreign, empty):
        before = path.read_bytes()
        p = evolm("resume", path, check=False)
        _clean_error(p, f"{path} is not an evolm run database")
        assert path.read_bytes() == before
    con = sqlite3.connect(foreign)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert tables == {"notes"}  # no evolm table was added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "foreign.db"]


def test_an_empty_run_database_is_explained_and_replaced_by_a_new_run(tmp_path):
    db = tmp_path / "orphan.db"
    RunStore(db).close()  # what a process killed before its run began leaves behind
    p = evolm("resume", db, check=False)
    _clean_error(p, f"{db} holds no run", "delete it")
    p = evolm("run", "image", "--llm", "fake", "--budget-evals", "4", "--out", db, "-q")
    assert "removed" in p.stderr and "run completed" in p.stderr
    with RunStore(db, readonly=True) as s:
        assert s.run_info()["status"] == "completed"


def _domain_module(tmp_path: Path, body: str) -> dict[str, str]:
    (tmp_path / "faulty_domain.py").write_text(textwrap.dedent(body))
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


TOY_BASED = """
    import sys
    from tests.toy_domain import ToyDomain

    {top}

    class Faulty(ToyDomain):
        built = 0

        def __init__(self, **kw):
            Faulty.built += 1
            {init}
            super().__init__(**kw)
"""


@pytest.mark.parametrize(
    ("top", "init", "needles"),
    [
        ("sys.exit(3)", "pass", ["faulty_domain:Faulty", "sys.exit(3)", "never exit"]),
        ("", "sys.exit('bye')", ["sys.exit('bye')", "replace the sys.exit call"]),
        ("", "raise RuntimeError('no GPU here')", ["failed to load", "no GPU here"]),
        # the engine builds the domain again for the run, after creating the database: that
        # failure leaves no database behind
        ("", "if Faulty.built > 1: raise RuntimeError('second build')", ["second build"]),
    ],
)
def test_a_domain_failing_or_exiting_in_the_engine_gets_a_message_and_leaves_no_database(
    tmp_path, top, init, needles
):
    env = _domain_module(tmp_path, TOY_BASED.format(top=top, init=init))
    db = tmp_path / "r.db"
    p = evolm("run", "faulty_domain:Faulty", "--llm", "fake", "--budget-evals", "4",
              "--out", db, "-q", check=False, env=env)  # fmt: skip
    log = _clean_error(p, *needles)
    if "second build" in needles:  # failed with the database open: its traceback is beside it
        assert log == f"{db}.log"
    assert not db.exists() and not Path(f"{db}-wal").exists()
    assert not Path(f"{db}.lock").exists()


def test_single_writer_lock_and_status_of_a_killed_run(tmp_path):
    cfg = write_config(tmp_path / "c.toml", evals=100_000, latency=0.2)  # killed long before
    db = tmp_path / "live.db"
    proc = _start(cfg, db)
    try:
        _wait_for_steps(db, 2, proc)
        before = _rows(db)["llm_calls"]
        for args in (["run", TOY, "--config", cfg, "--out", db, "-q"], ["resume", db, "-q"]):
            p = evolm(*args, check=False)
            _clean_error(
                p, f"{db} is being written by process {proc.pid} (evolm run {TOY} --config"
            )
        st = evolm("status", db).stdout
        assert f"running (written by process {proc.pid})" in st
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with RunStore(db, readonly=True) as s:
        assert s.run_info()["status"] == "running"  # what the database says after kill -9
        assert len({c.id for c in s.llm_calls()}) >= before  # nothing was duplicated or lost
    st = evolm("status", db).stdout
    assert "interrupted (the process is gone; continue with" in st
    with RunStore(db, readonly=True) as s:
        target = s.evaluation_totals()["evaluations"] + 12
    evolm("resume", db, "--budget-evals", target, "-q")  # the lock died with the process
    with RunStore(db, readonly=True) as s:
        assert s.run_info()["status"] == "completed"
        assert s.evaluation_totals()["evaluations"] == target
    assert "completed" in evolm("status", db).stdout and not Path(f"{db}.lock").exists()


def _userns_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    p = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
         "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || mount -t tmpfs -o size=64k "
         "tmpfs /tmp"],
        capture_output=True,
    )  # fmt: skip
    return p.returncode == 0


@pytest.mark.skipif(not _userns_tmpfs(), reason="needs unshare and a tmpfs in a user namespace")
def test_full_disk_at_resume_and_at_creation_says_so(tmp_path, finished_run):
    # A real full disk: a 256 KiB tmpfs mounted in a private user and mount namespace, holding
    # a copy of a finished run and a file that takes the rest of the space.
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    evolm_cmd = f"{PY} -c 'from evolm.cli import app; app()'"
    script = f"""
        mount -t tmpfs -o size=256k tmpfs {mnt}
        cp {finished_run} {mnt}/run.db
        dd if=/dev/zero of={mnt}/fill bs=4k 2>/dev/null
        {evolm_cmd} resume {mnt}/run.db --budget-evals 40 -q; echo "resume rc=$?"
        {evolm_cmd} run image --llm fake --budget-evals 8 --out {mnt}/new.db -q; echo "run rc=$?"
        rm {mnt}/fill
        {PY} -c 'import sqlite3; c = sqlite3.connect("{mnt}/run.db"); print("programs", \\
            c.execute("SELECT COUNT(*) FROM programs").fetchone()[0])'
        ls {mnt}
    """
    p = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", textwrap.dedent(script)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out, err = p.stdout, p.stderr
    assert "resume rc=2" in out and "run rc=2" in out, (out, err)
    assert "Traceback" not in err
    assert f"cannot write {mnt}/run.db: the disk is full" in err
    assert f"cannot write {mnt}/new.db: the disk is full" in err
    assert f"programs {_rows(finished_run)['programs']}" in out  # nothing stored was lost
    assert "new.db" not in out.split("programs")[-1]  # no database left from the failed run


def test_a_domain_failing_in_the_sandbox_at_start_leaves_nothing_to_resume(tmp_path):
    # The domain loads in the engine but exits in every sandbox worker: the run stops before
    # it begins, and a rerun with the same --out starts afresh (it is not told to resume).
    db = tmp_path / "r.db"
    args = ["run", "tests.sandbox.start_domains:ExitsInWorker", "--llm", "fake",
            "--budget-evals", "4", "--out", db, "-q"]  # fmt: skip
    for _ in range(2):
        p = evolm(*args, check=False)
        assert p.returncode == 2 and "called sys.exit(3)" in p.stderr, p.stderr
        assert "evolm resume" not in p.stderr and "already exists" not in p.stderr
        assert sorted(x.name for x in tmp_path.iterdir()) == []
