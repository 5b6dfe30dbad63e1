"""LLM-scored domains through the engine: judge calls stored with their role, charged to the
budget's tokens (not its LLM calls), counted as judge_calls, replayed, and rebuilt on resume."""

from __future__ import annotations

import asyncio
import json

from evolm.config import load_config
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.llm.replay import ReplayLLM
from evolm.runner import Runner
from evolm.scheduler.rebuild import build_archive, rebuild_archive
from evolm.store import RunStore

JUDGED = "tests.judged_domain:JudgedDomain"


def config(**over):
    base = {
        "seed": 3,
        "domain": {"name": JUDGED},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": 2, "init_batches": 1},
        "budget": {"evaluations": 22},
    }
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(overrides=base)


def run(cfg, path, llm=None, judge=None, resume=False):
    store = RunStore(path)
    eng = Runner(cfg, store, llm=llm or FakeLLM(responder=mutating_responder), judge=judge)
    result = asyncio.run(eng.run(resume=resume))
    return eng, store, result


def elites(archive):
    return sorted((e["id"], e["fitness"], e["cell"]) for e in archive.export())


def roles(store):
    return [c.completion.extras.get("role") for c in store.llm_calls()]


def test_judge_calls_are_stored_with_their_role_and_charged_apart(tmp_path):
    _, store, result = run(config(), tmp_path / "r.db")
    assert result.status == "completed"
    rows = list(store.export_rows())
    assert len(rows) == 22 and all(r["status"] == "ok" for r in rows)
    calls = list(store.llm_calls())
    judged = [c for c in calls if c.completion.extras.get("role") == "judge"]
    mutations = [c for c in calls if "role" not in c.completion.extras]
    # one judge call per candidate (seeds too), one mutation per non-seed candidate
    assert len(judged) == 22 and len(mutations) == 20
    for c in judged:
        request = json.loads(c.request_json)
        assert request["options"] == [" yes", " no"] and request["kind"] == "completion"
        probs = c.completion.extras["option_probs"]
        assert abs(sum(probs.values()) - 1) < 1e-9
    # batch 0's calls are its seeds' judge calls, in order; the fitness is P(yes)
    seed_calls = [c for c in calls if c.batch == 0]
    assert [c.completion.extras["role"] for c in seed_calls] == ["judge", "judge"]
    for row, call in zip(rows[:2], seed_calls, strict=True):
        assert row["code"].strip() in json.loads(call.request_json)["prompt"]
        assert row["fitness"] == call.completion.extras["option_probs"][" yes"]
    totals = store.llm_totals()
    assert totals["calls"] == 20 and totals["judge_calls"] == 22
    snap = result.snapshot
    assert snap is not None and snap.llm_calls == 20 and snap.judge_calls == 22
    all_tokens = sum(c.completion.tokens_in + c.completion.tokens_out for c in calls)
    assert (
        snap.tokens
        == all_tokens
        > sum(c.completion.tokens_in + c.completion.tokens_out for c in mutations)
    )
    assert store.last_step().judge_calls == 22
    sandbox = store.sandbox_events()[-1]
    assert sandbox.info == {"scoring": "llm"}


def test_the_llm_call_budget_counts_mutations_only(tmp_path):
    _, store, result = run(config(budget={"evaluations": None, "llm_calls": 8}), tmp_path / "r.db")
    assert result.status == "completed" and "LLM-call budget 8" in result.reason
    assert store.llm_totals()["calls"] == 8
    assert store.llm_totals()["judge_calls"] == 8 + 2


def test_a_token_budget_includes_judge_calls(tmp_path):
    _, store, result = run(config(budget={"evaluations": None, "tokens": 400}), tmp_path / "r.db")
    assert result.status == "completed" and "token budget 400" in result.reason
    totals = store.llm_totals()
    assert totals["tokens_in"] + totals["tokens_out"] >= 400


def test_replay_from_the_run_database_gives_the_same_archive(tmp_path):
    a, sa, _ = run(config(), tmp_path / "a.db")
    sa.close()
    b, sb, res = run(config(), tmp_path / "b.db", llm=ReplayLLM(tmp_path / "a.db"))
    assert res.status == "completed"
    assert elites(a.archive) == elites(b.archive)
    assert roles(sb) == roles(RunStore(tmp_path / "a.db", readonly=True))


def test_a_separate_judge_backend_answers_the_judge_calls(tmp_path):
    judge = FakeLLM(model="judge-model", option_weight=lambda prompt, o: 1.0)
    eng, store, _ = run(config(), tmp_path / "r.db", judge=judge)
    assert len(judge.requests) == 22 and all(r.options for r in judge.requests)
    assert all(ind.evaluation.fitness == 0.5 for ind in eng.archive)
    models = {c.completion.model for c in store.llm_calls() if c.completion.extras.get("role")}
    assert models == {"judge-model"}


def test_resume_rebuilds_the_archive_and_the_budget(tmp_path):
    full, sf, _ = run(config(budget={"evaluations": 30}), tmp_path / "full.db")
    _part, s1, _ = run(config(budget={"evaluations": 14}), tmp_path / "p.db")
    s1.close()
    cfg = config(budget={"evaluations": 30})
    resumed, s2, res = run(cfg, tmp_path / "p.db", resume=True)
    assert res.status == "completed"
    assert elites(resumed.archive) == elites(full.archive)
    assert s2.llm_totals()["judge_calls"] == sf.llm_totals()["judge_calls"] == 30
    assert res.snapshot is not None and res.snapshot.judge_calls == 30
    assert res.snapshot.llm_calls == 28
    rebuilt = build_archive(cfg, resumed.domain)
    rebuild_archive(rebuilt, s2)
    assert elites(rebuilt) == elites(resumed.archive)


def test_a_failed_judge_call_makes_the_candidate_an_error_and_the_run_goes_on(tmp_path):
    def weight(prompt: str, option: str) -> float:
        return 0.0 if "return 0.5" not in prompt.rsplit("Text:", 1)[-1] else 1.0

    # every text but the first seed gets no positive weight: its options call fails
    _, store, result = run(config(), tmp_path / "r.db", judge=FakeLLM(option_weight=weight))
    assert result.status == "completed"
    rows = list(store.export_rows())
    failed = [r for r in rows if r["status"] == "error"]
    assert failed and all(r["error"].startswith("judge call failed: ") for r in failed)
    errors = [c for c in store.llm_calls() if c.completion.error]
    assert errors and all(c.completion.extras["role"] == "judge" for c in errors)


def test_assess_raising_blames_the_domain(tmp_path):
    from evolm.runner import EvaluatorFailed

    cfg = config(domain={"params": {"n_seeds": 1}})
    eng = Runner(cfg, RunStore(tmp_path / "r.db"), llm=FakeLLM(responder=mutating_responder))
    seeds = eng.domain.seeds

    eng.domain.seeds = lambda: [s.replace("return", "return  # FAIL\n    return") for s in seeds()]
    result = asyncio.run(eng.run())
    # a seed the domain cannot score stops the run before its budget, naming the cause
    assert result.status == "failed" and EvaluatorFailed.__name__ in (result.error or "")
    assert "assess() raised RuntimeError: this text breaks the scorer" in (result.error or "")


def test_llm_totals_of_a_database_older_than_call_extras():
    from importlib import resources

    cassette = resources.files("evolm") / "cassettes" / "quickstart-image.db"
    with RunStore(str(cassette), readonly=True) as store:
        totals = store.llm_totals()
        assert totals["judge_calls"] == 0 and totals["calls"] == len(list(store.llm_calls())) > 0
