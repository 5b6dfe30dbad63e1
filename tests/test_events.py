"""Typed event records: the JSON they store is the JSON the run wrote, and old rows still read."""

from __future__ import annotations

from importlib import resources

import pytest

import evolm
from evolm.events import (
    EVENT_TYPES,
    EndEvent,
    FinetuneRoundEvent,
    ResumeEvent,
    SandboxEvent,
    StepEvent,
)
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.store import RunStore

TOY = "tests.toy_domain:ToyDomain"


@pytest.fixture(scope="module")
def toy_db(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A finished, then resumed, real toy run (sandbox and fake LLM)."""
    db = tmp_path_factory.mktemp("events") / "r.db"
    cfg = {
        "seed": 4,
        "domain": {"name": TOY},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": 2, "workers": 2, "init_batches": 1},
        "budget": {"evaluations": 12},
    }
    evolm.run(cfg, out=db, llm=FakeLLM(responder=mutating_responder))
    evolm.resume(db, budget={"evaluations": 16}, llm=FakeLLM(responder=mutating_responder))
    return db


def test_every_stored_event_reads_back_to_the_same_json(toy_db) -> None:  # type: ignore[no-untyped-def]
    with RunStore(toy_db, readonly=True) as store:
        rows = list(store.events())
    assert {e["kind"] for e in rows} == {"sandbox", "step", "end", "resume"}
    for e in rows:
        record = EVENT_TYPES[e["kind"]].from_payload(e["payload"], e["batch"])  # type: ignore[attr-defined]
        assert record.to_payload() == e["payload"], e["kind"]
        assert record.row_batch == e["batch"]


def test_the_typed_reads_agree_with_the_rows(toy_db) -> None:  # type: ignore[no-untyped-def]
    with RunStore(toy_db, readonly=True) as store:
        raw_steps = [e for e in store.events("step")]
        steps = store.steps()
        assert [s.batch for s in steps] == [e["batch"] for e in raw_steps]
        assert [s.qd_score for s in steps] == [e["payload"]["qd_score"] for e in raw_steps]
        last = store.last_step()
        assert last == steps[-1] and last.evaluations == 16
        assert all(isinstance(i, tuple) and len(i) == 2 for s in steps for i in s.inserted)
        assert [s.batch for s in store.steps(max_batch=1)] == [0, 1]
        (resume,) = store.resumes()
        assert resume.from_batch == store.steps(max_batch=resume.from_batch - 1)[-1].batch + 1
        end = store.end_event()
        assert isinstance(end, EndEvent) and end.status == "completed"
        assert "evaluation budget" in end.reason and end.selector["kind"]
        sandboxes = store.sandbox_events()
        assert len(sandboxes) == 2 and all(s.evaluator == "sandbox" for s in sandboxes)
        assert all(s.info["tier"] for s in sandboxes)
        assert store.finetune_rounds() == []


def test_rows_of_older_databases_read_with_defaults() -> None:
    # the shipped quickstart cassette predates the evaluator protocol: no "evaluator" key
    path = resources.files("evolm.cassettes") / "quickstart-image.db"
    with resources.as_file(path) as db, RunStore(db, readonly=True) as store:
        (sandbox,) = store.sandbox_events()
        steps = store.steps()
        raw = [e["payload"] for e in store.events("step")]
    assert sandbox.evaluator == "sandbox" and sandbox.info["tier"]
    assert [s.elites for s in steps] == [p["elites"] for p in raw] and steps
    old = StepEvent.from_payload({"elites": 3, "qd_score": 1.5, "elapsed": 2.0}, batch=7)
    assert (old.batch, old.elites, old.num_elites, old.arms, old.inserted) == (7, 3, 3, {}, ())
    assert ResumeEvent.from_payload({"from_batch": 5}).dropped_in_flight == 0
    round_ = FinetuneRoundEvent.from_payload({"round": 1, "status": "ok"}, batch=9)
    assert round_.ok and round_.batch == 9 and round_.adapter is None and round_.applied == ()


def test_recorded_events_are_what_the_dict_writers_stored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = [
        StepEvent(3, 10, 200, 0.5, 12, 4, 1.25, 8.0, 0.16, 3.5, {"ok": 4}, ((9, "NEW"),), 4,
                  {"a@m": {"chosen": 4.0}}),
        EndEvent("completed", "done", 3.5, {"kind": "ucb", "arms": {}}),
        ResumeEvent(4, 2),
        SandboxEvent("sandbox", {"tier": "landlock", "reason": "works"}),
        FinetuneRoundEvent(3, 1, "failed", error="boom", databases=("x.db",)),
    ]  # fmt: skip
    with RunStore(tmp_path / "r.db") as store:
        for e in events:
            store.record(e)
        rows = list(store.events())
    assert [(r["kind"], r["batch"]) for r in rows] == [
        ("step", 3), ("end", None), ("resume", None), ("sandbox", None), ("finetune_round", 3)
    ]  # fmt: skip
    assert rows[0]["payload"]["inserted"] == [[9, "NEW"]]
    assert rows[3]["payload"] == {"tier": "landlock", "reason": "works", "evaluator": "sandbox"}
    assert rows[4]["payload"]["databases"] == ["x.db"] and rows[4]["payload"]["error"] == "boom"
    for r, e in zip(rows, events, strict=True):
        assert type(e).from_payload(r["payload"], r["batch"]) == e
