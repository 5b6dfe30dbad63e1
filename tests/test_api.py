"""The top-level Python API."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import evolm
from evolm.config import BudgetConfig, ConfigError
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.store import RunStore

TOY = "tests.toy_domain:ToyDomain"


def test_run_and_resume_from_python(tmp_path):
    db = tmp_path / "r.db"
    fake = {"backend": "fake"}
    res = evolm.run({"llm": fake, "budget": {"evaluations": 12}, "seed": 2}, preset="image", out=db)
    assert res.status == "completed" and res.snapshot.evaluations == 12
    with pytest.raises(FileExistsError, match=r"evolm\.resume"):
        evolm.run({"llm": fake, "budget": {"evaluations": 12}}, preset="image", out=db)
    res = evolm.resume(db, budget={"evaluations": 20})
    assert res.status == "completed" and res.snapshot.evaluations == 20


def toy_run(evaluations: int) -> dict[str, Any]:
    return {
        "seed": 1,
        "domain": {"name": TOY},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": 2, "workers": 2, "init_batches": 1},
        "budget": {"evaluations": evaluations, "llm_calls": 500},
    }


def test_resume_extends_the_budget_and_stores_it(tmp_path):
    db = tmp_path / "r.db"
    res = evolm.run(toy_run(12), out=db, llm=FakeLLM(responder=mutating_responder))
    assert res.status == "completed" and res.snapshot.evaluations == 12
    with pytest.raises(ConfigError, match="evaluationz"):
        evolm.resume(db, budget={"evaluationz": 20}, llm=FakeLLM(responder=mutating_responder))
    with RunStore(db, readonly=True) as s:  # a refused budget changes nothing
        assert s.run_info()["config"]["budget"]["evaluations"] == 12 and len(s.resumes()) == 0
    llm = FakeLLM(responder=mutating_responder)
    res = evolm.resume(db, budget=BudgetConfig(evaluations=20), llm=llm)
    assert res.status == "completed" and res.snapshot.evaluations == 20 and llm.requests
    with RunStore(db, readonly=True) as s:
        budget = s.run_info()["config"]["budget"]
        assert budget["evaluations"] == 20 and budget["llm_calls"] == 500  # the rest is kept
        assert s.last_step().evaluations == 20 and len(s.resumes()) == 1
        assert sum(s.counts().values()) == 20


def test_import_evolm_is_cheap():
    code = "import sys, evolm; print('ribs' in sys.modules, 'evolm.runner' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_run_and_resume_take_the_writer_lock(tmp_path):
    from evolm.runlock import RunLock, RunLocked

    db = tmp_path / "r.db"
    evolm.run(toy_run(8), out=db, llm=FakeLLM(responder=mutating_responder))
    before = db.read_bytes()
    with RunLock(db, command="another writer"):  # as a live `evolm resume` would hold it
        with pytest.raises(RunLocked, match=rf"{db} is being written by process \d+ \(another"):
            evolm.resume(db, budget={"evaluations": 12})
        with pytest.raises(RunLocked, match="another writer"):
            evolm.run(toy_run(8), out=tmp_path / "r.db")
    assert db.read_bytes() == before
    assert not (tmp_path / "r.db.lock").exists()  # released, and the file removed
    res = evolm.resume(db, budget={"evaluations": 12}, llm=FakeLLM(responder=mutating_responder))
    assert res.status == "completed" and res.snapshot.evaluations == 12


def test_a_run_failing_before_it_begins_leaves_no_database(tmp_path, monkeypatch):
    (tmp_path / "broken_domain.py").write_text(
        "from tests.toy_domain import ToyDomain\n\n"
        "class Broken(ToyDomain):\n"
        "    def __init__(self, **kw):\n"
        "        raise RuntimeError('cannot build')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = {**toy_run(8), "domain": {"name": "broken_domain:Broken"}}
    db = tmp_path / "r.db"
    with pytest.raises(Exception, match="cannot build"):
        evolm.run(cfg, out=db, llm=FakeLLM(responder=mutating_responder))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("r.db")) == []


def test_resume_leaves_a_foreign_file_as_it_was(tmp_path):
    import sqlite3

    from evolm.store import StoreError

    foreign = tmp_path / "notes.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE notes (t TEXT)")
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not an evolm run database"):
        evolm.resume(foreign)
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
