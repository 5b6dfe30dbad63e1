"""Several operators and models in one run: arms, the bandit, per-arm stats, exact resume."""

from __future__ import annotations

import asyncio

import pytest

from evolm.config import ConfigError, load_config
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.runner import Runner
from evolm.store import RunStore

TOY = "tests.toy_domain:ToyDomain"
MIX = [
    {"kind": "prompt_mutation"},
    {"kind": "lmx", "params": {"k": 2}},
    {"kind": "rewrite", "weight": 0.5},
]


def mix_config(bandit: str = "ucb1", evaluations: int = 50, **over):
    base = {
        "seed": 3,
        "domain": {"name": TOY},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": 2, "workers": 2, "init_batches": 1},
        "budget": {"evaluations": evaluations},
        "operators": MIX,
        "bandit": {"kind": bandit},
        **over,
    }
    return load_config(overrides=base)


def fake() -> FakeLLM:
    return FakeLLM(responder=mutating_responder)


def run(cfg, path, *, resume=False, stop_after=None, models=None):
    store = RunStore(path)
    eng = Runner(cfg, store, llm=fake(), models=models)
    if stop_after is not None:
        eng.on_step = lambda snap: eng.request_stop() if snap.batch == stop_after else None
    result = asyncio.run(eng.run(resume=resume))
    return eng, store, result


def elites(archive):
    return sorted((e["id"], e["fitness"], e["cell"]) for e in archive.export())


@pytest.mark.parametrize("bandit", ["fixed", "ucb1", "thompson"])
def test_arms_are_chosen_recorded_and_rewarded(tmp_path, bandit):
    eng, store, result = run(mix_config(bandit), tmp_path / "r.db")
    assert result.status == "completed"
    labels = {a.label for a in eng.arms}
    assert labels == {"prompt_mutation@fake", "lmx@fake", "rewrite@fake"}
    rows = {r["id"]: r for r in store.export_rows()}
    steps = [s for s in store.steps() if s.batch > 0]
    totals = {}
    for step in steps:
        arms = step.arms
        batch_rows = [r for r in rows.values() if r["batch"] == step.batch]
        assert sum(a["chosen"] for a in arms.values()) == len(batch_rows)
        for label, a in arms.items():
            assert a["inserted"] <= a["valid"] <= a["parsed"] <= a["chosen"]
            for k, v in a.items():
                totals.setdefault(label, {}).setdefault(k, 0)
                totals[label][k] += v
    ops = {r["operator"] for r in rows.values() if r["batch"] > 0}
    assert ops == {"prompt_mutation", "lmx", "rewrite"}
    lmx_rows = [r for r in rows.values() if r["operator"] == "lmx"]
    assert all(len(r["parent_ids"]) == 2 for r in lmx_rows)
    state = eng.selector.state()
    for label, t in totals.items():
        assert state[label]["pulls"] == t["chosen"] and state[label]["reward"] == t["inserted"]
    end = store.end_event().selector
    assert end["kind"] == bandit and end["arms"] == state


def test_same_seed_same_run_with_a_bandit(tmp_path):
    a, sa, _ = run(mix_config("thompson"), tmp_path / "a.db")
    b, sb, _ = run(mix_config("thompson"), tmp_path / "b.db")
    assert elites(a.archive) == elites(b.archive)
    ops = [[r["operator"] for r in s.export_rows()] for s in (sa, sb)]
    assert ops[0] == ops[1]


@pytest.mark.parametrize("bandit", ["ucb1", "thompson"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, bandit):
    full, fs, _ = run(mix_config(bandit), tmp_path / "full.db")
    _, s1, r1 = run(mix_config(bandit), tmp_path / "p.db", stop_after=4)
    assert r1.status == "interrupted"
    s1.close()
    resumed, s2, r2 = run(mix_config(bandit), tmp_path / "p.db", resume=True)
    assert r2.status == "completed"
    assert elites(resumed.archive) == elites(full.archive)
    assert resumed.selector.state() == full.selector.state()
    assert [r["operator"] for r in s2.export_rows()] == [r["operator"] for r in fs.export_rows()]


def test_several_models_make_arms_and_share_requests_by_weight(tmp_path):
    cfg = mix_config(
        "fixed",
        evaluations=62,
        operators=[{"kind": "prompt_mutation"}],
        llm={"backend": "fake", "name": "small", "weight": 3.0},
        models=[{"backend": "fake", "model": "other", "name": "big", "weight": 1.0}],
    )
    other = FakeLLM(model="other", responder=mutating_responder)
    eng, store, _ = run(cfg, tmp_path / "r.db", models=[other])
    assert [a.label for a in eng.arms] == ["prompt_mutation@small", "prompt_mutation@big"]
    assert [a.weight for a in eng.arms] == [0.75, 0.25]
    models = [r["model"] for r in store.export_rows() if r["batch"] > 0]
    assert set(models) == {"fake", "other"} and models.count("fake") > models.count("other")


def test_operators_need_unique_labels():
    with pytest.raises(ConfigError, match="operator labels repeat"):
        mix_config(operators=[{"kind": "lmx"}, {"kind": "lmx", "params": {"k": 3}}])
    cfg = mix_config(
        operators=[{"kind": "lmx"}, {"kind": "lmx", "name": "lmx5", "params": {"k": 5}}]
    )
    assert [o.name or o.kind for o in cfg.operator_list()] == ["lmx", "lmx5"]


def repairing_responder(request):
    """Answers in each operator's own format with the edit that fixes ``% 3`` (bug 5)."""
    text = request.prompt or request.messages[-1]["content"]
    if "unified diff" in text or "<DFF>" in text:
        return (
            "Here is the fix.\n```diff\n--- a/parity.py\n+++ b/parity.py\n@@ -3,2 +3,2 @@\n"
            "     bit_sum = sum([b1, b2, b3, b4])\n"
            "-    return bit_sum % 3\n+    return bit_sum % 2\n```"
        )
    if "SEARCH" in text:
        return (
            "<<<<<<< SEARCH\n    return bit_sum % 3\n=======\n"
            "    return bit_sum % 2\n>>>>>>> REPLACE\n"
        )
    return "```python\ndef parity(b1, b2, b3, b4):\n    return (b1 + b2 + b3 + b4) % 2\n```"


def test_every_operator_end_to_end_on_parity(tmp_path):
    kinds = ["prompt_mutation", "rewrite", "elm_diff", "search_replace", "lmx", "gp"]
    cfg = load_config(
        overrides={
            "seed": 0,
            "domain": {"name": "parity", "params": {"bugs": 1, "bug_seed": 4}},  # bug 5 only
            "archive": {"kind": "grid", "bins": 9},
            "engine": {"batch_size": 6, "workers": 2, "init_batches": 1},
            "operators": [{"kind": k} for k in kinds],
            "bandit": {"kind": "fixed"},
            "budget": {"evaluations": 61},
        }
    )
    store = RunStore(tmp_path / "r.db")
    eng = Runner(cfg, store, llm=FakeLLM(responder=repairing_responder))
    result = asyncio.run(eng.run())
    assert result.status == "completed"
    totals = store.arm_totals()
    assert set(totals) == {f"{k}@fake" for k in kinds[:-1]} | {"gp"}
    rows = [r for r in store.export_rows() if r["batch"] > 0]
    by_op = {k: [r for r in rows if r["operator"] == k] for k in kinds}
    assert all(by_op[k] for k in kinds), {k: len(v) for k, v in by_op.items()}
    for k in ("elm_diff", "search_replace"):  # edits applied to the parent fix it
        fixed = [r for r in by_op[k] if r["status"] == "ok" and r["fitness"] == 1.0]
        assert fixed and all("return bit_sum % 2" in r["code"] for r in fixed)
        assert all('"""Return 1 if an odd' in r["code"] for r in fixed)  # the rest untouched
    assert all(r["model"] is None and r["llm_call_id"] is None for r in by_op["gp"])
    assert all(len(r["parent_ids"]) == 3 for r in by_op["lmx"])
    assert eng.archive.stats.max_fitness == 1.0


def test_several_samples_per_prompt_give_distinct_gp_children(tmp_path):
    cfg = load_config(
        overrides={
            "seed": 0,
            "domain": {"name": "parity", "params": {"bugs": 2}},
            "archive": {"kind": "grid", "bins": 9},
            "llm": {"samples_per_prompt": 4},
            "engine": {"batch_size": 8, "workers": 2, "init_batches": 1},
            "operators": [{"kind": "gp", "params": {"mutations": [1, 2]}}],
            "budget": {"evaluations": 17},
        }
    )
    _, store, _ = run(cfg, tmp_path / "r.db")
    rows = [r for r in store.export_rows() if r["batch"] > 0]
    assert len(rows) == 16 and all(r["operator"] == "gp" for r in rows)
    for start in range(0, 16, 4):  # each group of 4 shares its parent, not its code
        group = rows[start : start + 4]
        assert len({r["parent_ids"][0] for r in group}) == 1
        assert len({r["code"] for r in group}) > 1
