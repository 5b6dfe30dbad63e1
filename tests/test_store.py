"""The run database: schema, migrations, round trips, read-only use, bad files."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from evolm.llm.base import Completion, Request
from evolm.store import (
    MAX_COMPLETION_CHARS,
    MAX_ERROR_CHARS,
    MAX_EXTRAS_CHARS,
    MAX_EXTRAS_DEPTH,
    MIGRATIONS,
    RunStore,
    StoreError,
    describe_db_error,
)
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


def test_evaluation_extras_and_errors_are_capped_with_the_truncation_recorded(tmp_path):
    s = _store(tmp_path)
    s.add_programs([Program(id=i, code="c") for i in range(3)])
    forged = {f"k{i}": "x" * 1000 for i in range(25_000)}  # ~25 MB of extras
    small = {"cells": [1, 2, 3]}
    long_error = "boom " * 10_000
    s.add_evaluations(
        [
            (0, Evaluation(Status.OK, 1.0, (0.5,), forged), 2),
            (1, Evaluation(Status.OK, 2.0, (0.5,), small), 2),
            (2, Evaluation(Status.ERROR, None, None, error=long_error), None),
        ]
    )
    stored = {ind.program.id: ind.evaluation for ind in s.evaluated()}
    cut = stored[0].extras
    assert cut["truncated"] == len(_json_text(forged)) > MAX_EXTRAS_CHARS
    assert cut["keys"] == [f"k{i}" for i in range(20)]
    assert stored[0].fitness == 1.0 and stored[0].descriptors == (0.5,)  # the scores are kept
    assert stored[1].extras == small  # extras under the cap are stored whole
    row = s._conn.execute("SELECT length(extras), length(error) FROM evaluations").fetchall()
    assert max(r[0] for r in row) <= MAX_EXTRAS_CHARS
    err = stored[2].error
    more = len(long_error) - MAX_ERROR_CHARS
    assert err.startswith("boom boom") and err.endswith(f"... [{more} more characters]")


def _json_text(obj):
    import json

    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def test_deeply_nested_extras_are_stored_without_recursion_error(tmp_path):
    s = _store(tmp_path)
    s.add_programs([Program(id=0, code="c")])
    deep: list = []
    node = deep
    for _ in range(100_000):  # far deeper than Python's recursion limit
        node.append([])
        node = node[0]
    s.add_evaluations([(0, Evaluation(Status.OK, 1.0, (0.5,), {"deep": deep, "n": 3}), 2)])
    s.close()
    with RunStore(tmp_path / "run.db") as again:  # what a resume reads back
        (ind,) = again.evaluated()
    got = ind.evaluation.extras
    assert got["n"] == 3
    depth, node = 0, got["deep"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert node == f"<nested deeper than {MAX_EXTRAS_DEPTH} levels>"
    assert depth == MAX_EXTRAS_DEPTH - 1  # the extras dict itself is the first level


def test_a_long_completion_is_stored_cut_and_does_not_replay_as_whole(tmp_path):
    from evolm.llm.replay import ReplayLLM, TruncatedCompletion

    s = _store(tmp_path)
    short_req = Request(kind="completion", prompt="short", seed=1)
    long_req = Request(kind="completion", prompt="long", seed=1)
    huge = "def f():\n    return 3\n" + "#" * (MAX_COMPLETION_CHARS + 5000)
    s.add_llm_call(0, short_req, Completion("def f(): return 1", "m"))
    cid = s.add_llm_call(0, long_req, Completion(huge, "m", extras={"attempts": 1}))
    _, stored = s.llm_call(cid)
    assert stored.text == huge[:MAX_COMPLETION_CHARS]
    assert stored.extras == {"attempts": 1, "response_truncated": len(huge)}
    s.close()
    replay = ReplayLLM(tmp_path / "run.db")
    assert replay._take(short_req).text == "def f(): return 1"  # whole answers replay as before
    with pytest.raises(TruncatedCompletion, match=f"was {len(huge)} characters long"):
        replay._take(long_req)


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("UPDATE runs SET config_json = 'nope'", "configuration (config_json) is not valid JSON"),
        ("UPDATE runs SET config_json = '[1]'", "is not a JSON object"),
        ("UPDATE events SET payload = '{' WHERE kind = 'step'", "(step) is not valid JSON"),
        (
            "UPDATE events SET payload = '[1, 2]' WHERE kind = 'step'",
            "a 'step' event does not hold",
        ),
        ("UPDATE evaluations SET extras = '{x'", "the evaluation of program 0 (extras)"),
    ],
)
def test_tampered_json_names_the_file_and_the_place(tmp_path, sql, needle):
    from evolm.events import StepEvent

    s = _store(tmp_path)
    s.add_programs([Program(id=0, code="c")])
    s.add_evaluations([(0, Evaluation(Status.OK, 1.0, (0.5,)), 2)])
    s.add_event(StepEvent.kind, {"qd": 1.0}, batch=0)
    s.close()
    with sqlite3.connect(tmp_path / "run.db") as con:
        con.execute(sql)
    with RunStore(tmp_path / "run.db", readonly=True) as ro, pytest.raises(StoreError) as err:
        ro.run_info()
        ro.steps()
        list(ro.evaluated())
    assert str(tmp_path / "run.db") in str(err.value) and needle in str(err.value)


def test_opening_for_resume_checks_before_writing(tmp_path):
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE notes (t TEXT)")
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not an evolm run database"):
        RunStore(foreign, create=False)
    assert foreign.read_bytes() == before
    RunStore(tmp_path / "orphan.db").close()  # created, its run never began
    with pytest.raises(StoreError, match=r"holds no run: .* delete it"):
        RunStore(tmp_path / "orphan.db", create=False)


def test_a_full_disk_is_named_as_such():
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    assert "the disk is full" in describe_db_error("r.db", full)
    assert "the disk is full" in describe_db_error("r.db", OSError(errno.ENOSPC, "No space"))
    bad = sqlite3.DatabaseError("database disk image is malformed")
    bad.sqlite_errorcode = sqlite3.SQLITE_CORRUPT
    assert "r.db is damaged" in describe_db_error("r.db", bad)
