"""The run database: schema, migrations, round trips, read-only use, bad files."""

from __future__ import annotations

import sqlite3

import pytest

from evolm.llm.base import Completion, Request
from evolm.store import MIGRATIONS, RunStore, StoreError
from evolm.types import Evaluation, Individual, Program, Status


def _store(tmp_path) -> RunStore:
    s = RunStore(tmp_path / "run.db")
    s.create_run(seed=3, domain="image", config={"seed": 3}, versions={"evolm": "x"})
    return s


def test_new_database_has_schema_wal_and_migrations(tmp_path):
    s = _store(tmp_path)
    assert s.migrations == [name for name, _ in MIGRATIONS]
    with sqlite3.connect(f"file:{s.path}?mode=ro", uri=True) as peek:  # the file, from outside
        mode = peek.execute("PRAGMA journal_mode").fetchone()[0]
        tables = {r[0] for r in peek.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert mode == "wal"
    assert {"runs", "programs", "evaluations", "llm_calls", "events"} <= tables
    info = s.run_info()
    assert info["seed"] == 3 and info["config"] == {"seed": 3} and info["status"] == "running"


def test_reopen_does_not_reapply_migrations(tmp_path):
    _store(tmp_path).close()
    s = RunStore(tmp_path / "run.db")
    assert len(s.migrations) == len(MIGRATIONS)
    assert s.run_info()["domain"] == "image"


def test_second_run_in_same_file_is_refused(tmp_path):
    s = _store(tmp_path)
    with pytest.raises(StoreError, match="already holds a run"):
        s.create_run(seed=1, domain="image", config={}, versions={})


def test_programs_evaluations_and_llm_calls_round_trip(tmp_path):
    s = _store(tmp_path)
    req = Request(messages=({"role": "user", "content": "hi"},), seed=7)
    comp = Completion(text="```python\nx=1\n```", model="m", tokens_in=3, tokens_out=5, cost=0.5)
    with s.transaction():
        call = s.add_llm_call(1, req, comp)
        s.add_programs(
            [
                Program(id=0, code="seed", batch=0),
                Program(
                    id=1,
                    code="x=1",
                    parent_ids=(0,),
                    operator="op",
                    batch=1,
                    generation=1,
                    llm_call_id=call,
                    seed=11,
                ),
                Program(id=2, code="", parent_ids=(0,), operator="op", batch=1),
            ]
        )
        s.add_evaluations(
            [
                (0, Evaluation(Status.OK, 1.0, (0.1, 0.2), {"k": [1, 2]}), 2),
                (1, Evaluation.failure(Status.TIMEOUT, "too slow"), 0),
            ]
        )
    inds = list(s.evaluated())
    assert [i.program.id for i in inds] == [0, 1]
    assert inds[0].evaluation.descriptors == (0.1, 0.2)
    assert inds[0].evaluation.extras == {"k": [1, 2]}
    assert inds[1].program.parent_ids == (0,) and inds[1].program.seed == 11
    assert inds[1].evaluation.status is Status.TIMEOUT
    assert isinstance(s.program(2), Program)  # unevaluated programs are kept
    assert isinstance(s.program(0), Individual)
    assert s.counts() == {"ok": 1, "timeout": 1, "pending": 1}
    totals = s.llm_totals()
    assert totals["calls"] == 1 and totals["tokens_out"] == 5 and totals["cost"] == 0.5
    (call,) = s.llm_calls()
    assert call.request_key == req.key() and call.seed == 7 and call.request == req


def test_transaction_rolls_back_everything_on_error(tmp_path):
    s = _store(tmp_path)
    with pytest.raises(sqlite3.IntegrityError), s.transaction():
        s.add_programs([Program(id=5, code="a")])
        s.add_programs([Program(id=5, code="b")])  # duplicate id
    assert s.max_program_id() == -1


def test_extras_are_stored_as_strict_json(tmp_path):
    import numpy as np

    s = _store(tmp_path)
    s.add_programs([Program(id=0, code="a")])
    extras = {"x": float("nan"), "y": np.arange(3), "z": np.float32(1.5), "o": object, "i": -np.inf}
    s.add_evaluations([(0, Evaluation(Status.OK, 1.0, (1.0,), extras), 2)])
    (ind,) = s.evaluated()
    got = ind.evaluation.extras
    assert got["x"] == "nan" and got["y"] == [0, 1, 2] and got["z"] == 1.5 and got["i"] == "-inf"
    assert got["o"].startswith("<class")


def test_delete_unevaluated_after_drops_only_in_flight(tmp_path):
    s = _store(tmp_path)
    s.add_programs([Program(id=i, code="c", batch=i // 2) for i in range(6)])
    s.add_evaluations([(i, Evaluation(Status.OK, 0.0, (0.0,)), 2) for i in range(3)])
    assert s.delete_unevaluated_after(1) == 2  # ids 4, 5 (batch 2); id 3 (batch 1) kept
    assert s.max_program_id() == 3


def test_events_round_trip(tmp_path):
    s = _store(tmp_path)
    s.add_event("step", {"qd": 1.5}, batch=0)
    s.add_event("step", {"qd": 2.5}, batch=1)
    assert [e["payload"]["qd"] for e in s.events("step")] == [1.5, 2.5]
    assert s.last_event("step")["batch"] == 1
    assert s.last_event("nothing") is None


def test_readonly_and_bad_files(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        RunStore(tmp_path / "missing.db", readonly=True)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="not an evolm run database"):
        RunStore(bad)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE t(x)").connection.commit()
    with pytest.raises(StoreError, match="not an evolm run database"):
        RunStore(empty, readonly=True)
    _store(tmp_path).close()
    ro = RunStore(tmp_path / "run.db", readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        ro.add_event("x", {})


def test_database_from_newer_evolm_is_refused(tmp_path):
    _store(tmp_path).close()
    with sqlite3.connect(tmp_path / "run.db") as con:  # as a newer evolm would leave it
        con.execute("INSERT INTO schema_migrations VALUES ('9999_future', 0)")
    with pytest.raises(StoreError, match="newer evolm"):
        RunStore(tmp_path / "run.db")


def test_llm_call_extras_are_stored_and_bounded(tmp_path):
    s = _store(tmp_path)
    req = Request(kind="completion", prompt="p", seed=1)
    small = s.add_llm_call(0, req, Completion("a", "m", extras={"attempts": 2, "queued_s": 0.5}))
    big = s.add_llm_call(0, req, Completion("b", "m", extras={"blob": "x" * 10_000}))
    none = s.add_llm_call(0, req, Completion("c", "m"))
    assert s.llm_call(small)[1].extras == {"attempts": 2, "queued_s": 0.5}
    assert s.llm_call(big)[1].extras == {"truncated": len('{"blob":""}') + 10_000}
    assert s.llm_call(none)[1].extras == {}
    assert next(s.llm_calls()).completion.extras == {"attempts": 2, "queued_s": 0.5}


def test_a_database_from_before_call_extras_reads_and_migrates(tmp_path):
    s = _store(tmp_path)
    old = s.path
    req = Request(kind="completion", prompt="p", seed=1)
    s.add_llm_call(0, req, Completion("a", "m", extras={"attempts": 1}))
    s.close()
    # Make the file what the first schema wrote: no extras column, one migration applied.
    con = sqlite3.connect(old)
    with con:
        con.execute("ALTER TABLE llm_calls DROP COLUMN extras_json")
        con.execute("DELETE FROM schema_migrations WHERE name = '0002_llm_call_extras'")
    con.close()
    with RunStore(old, readonly=True) as ro:
        assert [c.completion.text for c in ro.llm_calls()] == ["a"]
        assert next(ro.llm_calls()).completion.extras == {}
    with RunStore(old) as rw:  # opened for writing: migrated, old rows kept
        assert rw.migrations == [name for name, _ in MIGRATIONS]
        assert next(rw.llm_calls()).completion.text == "a"
