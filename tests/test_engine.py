"""The engine end to end: runs, budgets, determinism, replay, failures, resume."""

from __future__ import annotations

import asyncio
import time

import pytest

from evolm.config import load_config
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.runner import Runner
from evolm.scheduler.rebuild import build_archive, rebuild_archive
from evolm.store import RunStore
from evolm.types import AddStatus, Status

TOY = "tests.toy_domain:ToyDomain"


def toy_config(**over):
    base = {
        "seed": 1,
        "domain": {"name": TOY},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": 2, "workers": 2, "init_batches": 1},
        "budget": {"evaluations": 30},
    }
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(overrides=base)


def run_engine(cfg, path, llm=None, resume=False):
    store = RunStore(path)
    eng = Runner(cfg, store, llm=llm or FakeLLM(responder=mutating_responder))
    result = asyncio.run(eng.run(resume=resume))
    return eng, store, result


def elites(archive):
    return sorted((e["id"], e["fitness"], e["cell"]) for e in archive.export())


def test_run_stores_every_candidate_with_lineage(tmp_path):
    eng, store, result = run_engine(toy_config(), tmp_path / "r.db")
    assert result.status == "completed" and "evaluation budget" in result.reason
    rows = list(store.export_rows())
    assert len(rows) == 30
    ids = {r["id"] for r in rows}
    for r in rows:
        assert r["status"] is not None
        assert all(p in ids for p in r["parent_ids"])
        if r["batch"] > 0:
            assert r["parent_ids"] and r["operator"] == "prompt_mutation"
            assert r["llm_call_id"] is not None
    assert store.llm_totals()["calls"] == 30 - 2  # seeds need no LLM call
    qd = [s.qd_score for s in store.steps()]
    assert qd == sorted(qd)  # elitist insertion never lowers the QD score
    assert len(eng.archive) > 2
    info = store.run_info()
    assert info["status"] == "completed" and info["versions"]["ribs"]
    # inserted programs carry their archive status
    added = [r for r in rows if r["add_status"] in (AddStatus.NEW, AddStatus.IMPROVED)]
    assert {r["id"] for r in added} >= {ind.program.id for ind in eng.archive}


def test_same_seed_same_archive_different_seed_differs(tmp_path):
    a, _, _ = run_engine(toy_config(), tmp_path / "a.db")
    b, _, _ = run_engine(toy_config(), tmp_path / "b.db")
    c, _, _ = run_engine(toy_config(seed=2), tmp_path / "c.db")
    assert elites(a.archive) == elites(b.archive)
    assert elites(a.archive) != elites(c.archive)


def test_replay_reproduces_the_archive(tmp_path):
    from evolm.llm.replay import ReplayLLM

    a, sa, _ = run_engine(toy_config(), tmp_path / "a.db")
    sa.close()
    b, sb, res = run_engine(toy_config(), tmp_path / "b.db", llm=ReplayLLM(tmp_path / "a.db"))
    assert res.status == "completed"
    assert elites(a.archive) == elites(b.archive)
    codes_b = [r["code"] for r in sb.export_rows()]
    codes_a = [r["code"] for r in RunStore(tmp_path / "a.db", readonly=True).export_rows()]
    assert codes_a == codes_b


def test_replay_miss_fails_clearly_and_keeps_what_was_stored(tmp_path):
    from evolm.llm.replay import ReplayLLM

    _, sa, _ = run_engine(toy_config(), tmp_path / "a.db")
    sa.close()
    cfg = toy_config(seed=5)  # other seed: other prompts
    _, sb, res = run_engine(cfg, tmp_path / "b.db", llm=ReplayLLM(tmp_path / "a.db"))
    assert res.status == "failed" and "cassette" in res.error.lower()
    assert sb.run_info()["status"] == "failed"
    assert sb.counts().get("ok", 0) >= 1  # the seed batch survived


@pytest.mark.parametrize(
    ("budget", "check"),
    [
        ({"llm_calls": 10, "evaluations": None}, lambda s: s.llm_totals()["calls"] == 10),
        ({"evaluations": 13}, lambda s: sum(s.counts().values()) == 13),
        ({"evaluations": None, "tokens": 500}, lambda s: s.llm_totals()["tokens_in"] > 0),
    ],
)
def test_budgets_stop_where_they_say(tmp_path, budget, check):
    _, store, result = run_engine(toy_config(budget=budget), tmp_path / "r.db")
    assert result.status == "completed"
    assert check(store)
    if "tokens" in budget:
        t = store.llm_totals()
        used = t["tokens_in"] + t["tokens_out"]
        assert used >= 500
        # stops within the batches already in flight
        per_call = used / t["calls"]
        assert used <= 500 + per_call * 4 * 2 + per_call


def test_target_fitness_stops_the_run(tmp_path):
    replies = ["```python\ndef f():\n    return 3.0\n```"] * 200
    cfg = toy_config(budget={"evaluations": 200, "target_fitness": -1e-9})
    _, store, result = run_engine(cfg, tmp_path / "r.db", llm=FakeLLM(replies=replies))
    assert result.status == "completed" and "target fitness" in result.reason
    assert sum(store.counts().values()) < 30


def test_wall_time_budget(tmp_path):
    cfg = toy_config(budget={"evaluations": None, "wall_time": 1.5}, llm={"latency": 0.2})
    t0 = time.monotonic()
    _, store, result = run_engine(
        cfg, tmp_path / "r.db", llm=FakeLLM(responder=mutating_responder, latency=0.2)
    )
    assert result.status == "completed" and "wall-time" in result.reason
    assert time.monotonic() - t0 < 6
    assert store.run_info()["status"] == "completed"


def test_llm_failures_and_garbage_are_recorded_and_the_run_goes_on(tmp_path):
    class Flaky(FakeLLM):
        async def _generate_one(self, request):
            if request.seed % 3 == 0:
                raise ConnectionError("server went away")
            return await super()._generate_one(request)

    replies = ["no code here, sorry"] * 5
    llm = Flaky(replies=replies, responder=mutating_responder)
    _, store, result = run_engine(toy_config(), tmp_path / "r.db", llm=llm)
    assert result.status == "completed"
    rows = list(store.export_rows())
    errors = [r["error"] for r in rows if r["status"] == "invalid"]
    assert any("LLM call failed" in e for e in errors)
    assert any("no" in e.lower() and "f()" in e for e in errors)
    assert store.llm_totals()["errors"] >= 1
    assert any(r["status"] == "ok" and r["batch"] > 0 for r in rows)


def test_hung_programs_time_out_without_stalling(tmp_path):
    hang = "```python\ndef f():\n    while True:\n        pass\n```"
    cfg = toy_config(engine={"eval_timeout": 0.3}, budget={"evaluations": 14})
    t0 = time.monotonic()
    _, store, result = run_engine(
        cfg, tmp_path / "r.db", llm=FakeLLM(replies=[hang] * 4, responder=mutating_responder)
    )
    assert result.status == "completed"
    assert store.counts().get("timeout") == 4
    assert time.monotonic() - t0 < 10


def test_nan_fitness_is_rejected(tmp_path):
    nan = "```python\ndef f():\n    return float('nan')\n```"
    cfg = toy_config(budget={"evaluations": 10})
    _, store, _ = run_engine(
        cfg, tmp_path / "r.db", llm=FakeLLM(replies=[nan] * 3, responder=mutating_responder)
    )
    rejected = [r for r in store.export_rows() if r["status"] == Status.REJECTED.value]
    assert len(rejected) == 3 and "not finite" in rejected[0]["error"]


def test_llm_sampling_overlaps_evaluation(tmp_path):
    cfg = toy_config(budget={"evaluations": 26}, llm={"concurrency": 8})
    t0 = time.monotonic()
    run_engine(
        cfg,
        tmp_path / "r.db",
        llm=FakeLLM(responder=mutating_responder, latency=0.25, concurrency=8),
    )
    elapsed = time.monotonic() - t0
    # 24 LLM calls of 0.25 s: serial would take 6 s; batches of 4 with 2 in flight take ~1.5 s
    assert elapsed < 4.0


def test_resume_in_process_equals_uninterrupted(tmp_path):
    full, _, _ = run_engine(toy_config(budget={"evaluations": 40}), tmp_path / "full.db")
    _part, s1, _ = run_engine(toy_config(budget={"evaluations": 22}), tmp_path / "p.db")
    s1.close()
    cfg = toy_config(budget={"evaluations": 40})
    resumed, s2, res = run_engine(cfg, tmp_path / "p.db", resume=True)
    assert res.status == "completed"
    assert elites(resumed.archive) == elites(full.archive)
    rebuilt = build_archive(cfg, resumed.domain)
    rebuild_archive(rebuilt, s2)
    assert elites(rebuilt) == elites(resumed.archive)


def test_numpy_and_nan_extras_from_the_sandbox_are_stored(tmp_path):
    code = (
        "```python\nimport numpy as np\n\ndef f():\n"
        "    return {'a': np.arange(3), 'b': float('nan')}\n```"
    )
    cfg = toy_config(budget={"evaluations": 6})
    _, store, result = run_engine(
        cfg, tmp_path / "r.db", llm=FakeLLM(replies=[code] * 4, responder=mutating_responder)
    )
    assert result.status == "completed"
    extras = [i.evaluation.extras for i in store.evaluated() if i.program.batch > 0]
    assert {"a": [0, 1, 2], "b": "nan"} in extras


class _ClosingFake(FakeLLM):
    closed = False

    async def aclose(self) -> None:
        self.closed = True


class _Recorder:
    """A hook that records every told batch and what the store held when it ran."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []

    async def after_tell(self, runner, told) -> None:
        stored = len(list(runner.store.export_rows()))
        self.seen.append((told.index, told.snapshot.evaluations, stored))


def test_hooks_run_after_every_told_batch_once_it_is_stored(tmp_path):
    hook = _Recorder()
    store = RunStore(tmp_path / "r.db")
    llm = _ClosingFake(responder=mutating_responder)
    eng = Runner(toy_config(), store, llm=llm, hooks=[hook])
    result = asyncio.run(eng.run())
    assert result.status == "completed"
    assert [s[0] for s in hook.seen] == list(range(len(hook.seen)))  # every batch, in order
    assert all(evaluations == stored for _, evaluations, stored in hook.seen)
    assert hook.seen[-1][1] == 30
    assert not llm.closed  # the runner closes only the backends it built


def test_the_runner_closes_the_backends_it_built(tmp_path, monkeypatch):
    built = []

    def build(config, llm_config=None):
        llm = _ClosingFake(responder=mutating_responder)
        built.append(llm)
        return llm

    monkeypatch.setattr("evolm.llm.build.build_backend", build)
    eng = Runner(toy_config(), RunStore(tmp_path / "r.db"))
    asyncio.run(eng.run())
    assert len(built) == 1 and built[0].closed
