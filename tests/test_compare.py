"""``evolm compare`` and :mod:`evolm.experiment`: real runs with the fake model on the toy
domain, each stored in its own run database, counted row by row."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evolm.cli import app
from evolm.comparison import format_table, interval, ratios, summarise
from evolm.config import ConfigError
from evolm.experiment import (
    ArmSpec,
    Experiment,
    ExperimentBudget,
    PlannedRun,
    check_budget,
    parse_arm,
    plan_runs,
    run_experiment,
)
from evolm.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TOY = "tests.toy_domain:ToyDomain"
FAST = ["engine.batch_size=4", "engine.workers=1", "archive.bins=[5, 5]"]


def evolm(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def experiment_event(db: Path) -> dict:
    with RunStore(db, readonly=True) as store:
        (event,) = [e["payload"] for e in store.events("experiment")]
    return event


# -- arm specs ---------------------------------------------------------------------------------


def test_arm_spec_items_and_quoting():
    arm = parse_arm('rw=preset:embedded;config:a.toml;operators=[{kind="rewrite"}];x.y="a;b"')
    assert arm.name == "rw" and arm.preset == "embedded" and arm.files == ("a.toml",)
    assert arm.assignments == ('operators=[{kind="rewrite"}]', 'x.y="a;b"')
    assert parse_arm("base=") == ArmSpec("base", text="base=")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("preset:embedded", "write NAME=SPEC"),
        ("map-elites", "write NAME=SPEC"),
        ("a=preset:x;preset:y", "two presets"),
        ("a=archive", "items are preset:NAME, config:FILE.toml or KEY=VALUE"),
        ("a=budget.llm_calls=3", "set by the comparison"),
        ("a=seed=3", "set by the comparison"),
        ("gp=", "built-in baseline"),
        ("a=x=[1, 2", "unclosed"),
    ],
)
def test_bad_arm_spec_names_the_fix(text, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_arm(text)


def test_bad_arm_configs_fail_before_any_run(tmp_path):
    out = tmp_path / "cmp"
    cli = CliRunner()
    common = ["compare", "image", "--llm", "fake", "--budget-llm-calls", "4", "--out", out]
    res = cli.invoke(app, [*map(str, common), "--arm", "x=archive.binz=3"])
    assert res.exit_code == 2 and "arm x" in res.output and "archive.binz" in res.output
    res = cli.invoke(app, [*map(str, common), "--arm", "x=preset:sodarace"])
    assert res.exit_code == 2 and "is for the domain sodarace, not image" in res.output
    res = cli.invoke(app, [*map(str, common), "--arm", 'rw=operators.kinds=["rewrite"]'])
    assert res.exit_code == 2 and 'operators=[{kind="rewrite"}]' in res.output
    res = cli.invoke(app, [*map(str, common), "--arm", 'gp-only=operators=[{kind="gp"}]'])
    assert res.exit_code == 2 and "--budget-evals" in res.output and "no LLM operator" in res.output
    res = cli.invoke(app, [*map(str, common[:-2]), "--budget-evals", "4", "--out", str(out)])
    assert res.exit_code == 2 and "exactly one budget" in res.output
    res = cli.invoke(app, [*map(str, common), "--arm", "a=", "--seeds", "x"])
    assert res.exit_code == 2 and "0,1,2" in res.output
    assert not out.exists() or not list(out.glob("*.db"))


# -- the table on known numbers ----------------------------------------------------------------


def test_intervals_and_ratios_on_known_numbers():
    runs = [{"qd_score": q, "coverage": 0.5, "best_fitness": None} for q in (1.0, 2.0, 3.0)]
    s = summarise(runs)
    # mean 2, sd 1, t(0.975, df=2) = 4.302652729749464: half-width 4.3027 / sqrt(3)
    assert s["qd_score"]["mean"] == pytest.approx(2.0)
    assert s["qd_score"]["half"] == pytest.approx(4.302652729749464 / math.sqrt(3))
    assert s["coverage"] == {"mean": 0.5, "half": 0.0, "n": 3}
    assert s["best_fitness"] is None and interval([4.0]) == {"mean": 4.0, "half": None, "n": 1}
    ref = summarise([{"qd_score": 4.0}, {"qd_score": 4.0}])
    assert ratios(s, ref)["qd_score"] == pytest.approx(0.5)
    assert ratios(ref, summarise([{"qd_score": 0.0}]))["qd_score"] is None  # no ratio to 0
    table = format_table([{"label": "me", "runs": runs, "summary": s, "ratio_first": None}])
    assert "| me " in table and "2 ± 2.484" in table and "0.5 ± 0" in table


def test_budget_check_names_the_run():
    arm = ArmSpec("me", text="me=")
    exp = Experiment({"name": TOY}, [arm], [0], ExperimentBudget("llm_calls", 10), Path("o"))
    from evolm.config import RunConfig

    cfg = RunConfig.model_validate({"domain": {"name": TOY}, "budget": {"llm_calls": 10}})
    run = PlannedRun(arm, 0, Path("o/me-seed0.db"), {}, cfg)
    done = {"status": "completed", "reason": "LLM-call budget 10 spent", "evaluations": 12}
    assert check_budget(exp, run, {**done, "llm_calls": 10}) is None
    note = check_budget(exp, run, {**done, "llm_calls": 9})
    assert note is not None and "me-seed0.db" in note and "9 LLM calls" in note
    early = {**done, "llm_calls": 4, "reason": "target fitness 0 reached (0)"}
    assert check_budget(exp, run, early) is None
    failed = {**done, "llm_calls": 10, "status": "failed", "reason": "boom"}
    tokens = dataclasses.replace(exp, budget=ExperimentBudget("tokens", 100))
    cfg_t = RunConfig.model_validate({"domain": {"name": TOY}, "budget": {"tokens": 100}})
    run_t = PlannedRun(arm, 0, Path("o/me-seed0.db"), {}, cfg_t)
    assert check_budget(tokens, run_t, {**done, "tokens": 130, "tokens_before_tail": 90}) is None
    late = check_budget(tokens, run_t, {**done, "tokens": 230, "tokens_before_tail": 130})
    assert late is not None and "went on past the budget" in late
    under = check_budget(tokens, run_t, {**done, "tokens": 90, "tokens_before_tail": 50})
    assert under is not None and "90 tokens" in under
    assert "ended failed: boom" in (check_budget(exp, run, failed) or "")


# -- real runs ---------------------------------------------------------------------------------


def test_equal_budgets_baselines_rerun_and_resume(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", TOY, "--llm", "fake", "--budget-llm-calls", "10", "--seeds", "0,1"]
    args += [arg for item in FAST for arg in ("--set", item)]
    args += ["--arm", "me=", "--baselines", "all"]
    args += ["--out", out, "--report"]
    p = evolm(*args)
    assert p.returncode == 0, p.stderr
    assert "random search skipped" in p.stderr and "warning" not in p.stderr
    # --report: the report of every run, or a note while this evolm has no `evolm report`
    assert f"report: {out / 'report.html'}" in p.stderr or "no `evolm report`" in p.stderr
    labels = ["me", "best-of-n", "ga", "gp"]
    for label in labels:
        assert f"| {label} " in p.stdout
    for seed in (0, 1):
        seed_evals = rows(out / f"me-seed{seed}.db", "evaluations")
        assert seed_evals == 2 + 10  # the toy domain's 2 seeds, then one candidate per call
        for label in labels:
            db = out / f"{label}-seed{seed}.db"
            calls = rows(db, "llm_calls")
            assert calls == (0 if label == "gp" else 10), (db, calls)
            assert rows(db, "evaluations") == seed_evals, db
            event = experiment_event(db)
            assert event["label"] == label and event["seed"] == seed
            assert event["baseline"] == (None if label == "me" else label)
        with RunStore(out / f"best-of-n-seed{seed}.db", readonly=True) as store:
            assert store.run_info()["config"]["archive"]["kind"] == "best_of_n"
        gp_budget = experiment_event(out / f"gp-seed{seed}.db")["budget"]
        assert gp_budget == {"evaluations": seed_evals}
    result = json.loads((out / "compare.json").read_text())
    assert [a["label"] for a in result["arms"]] == labels
    assert result["skipped"][0]["label"] == "random" and result["warnings"] == []
    assert all(r["budget_ok"] for a in result["arms"] for r in a["runs"])
    md = (out / "compare.md").read_text()
    assert "| me " in md and "±" in md

    # A rerun skips every finished run: nothing is run again.
    before = {db: db.stat().st_mtime_ns for db in out.glob("*.db")}
    p = evolm(*args)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("already finished") == 8
    assert {db: db.stat().st_mtime_ns for db in out.glob("*.db")} == before

    # A run that died midway (status running, its last batches lost) is resumed to its budget.
    db = out / "ga-seed1.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "DELETE FROM evaluations WHERE program_id IN (SELECT id FROM programs WHERE batch >= 2)"
        )
        conn.execute("DELETE FROM programs WHERE batch >= 2")
        conn.execute("DELETE FROM llm_calls WHERE batch >= 2")
        conn.execute("DELETE FROM events WHERE kind = 'end' OR (kind = 'step' AND batch >= 2)")
        conn.execute("UPDATE runs SET status = 'running'")
    assert rows(db, "llm_calls") == 4
    p = evolm(*args)
    assert p.returncode == 0, p.stderr
    assert "resuming ga seed 1" in p.stderr and p.stderr.count("already finished") == 7
    assert rows(db, "llm_calls") == 10 and rows(db, "evaluations") == 12
    with RunStore(db, readonly=True) as store:
        assert store.run_info()["status"] == "completed" and len(store.resumes()) == 1


def test_token_budget_and_gp_at_matched_evaluations(tmp_path):
    exp = Experiment(
        domain={"name": TOY},
        arms=[parse_arm("me=")],
        seeds=[3],
        budget=ExperimentBudget("tokens", 1000),
        out=tmp_path,
        baselines=["gp"],
        llm={"backend": "fake"},
        assignments=FAST,
    )
    lines: list[str] = []
    result = run_experiment(exp, log=lines.append)
    me, gp = result["arms"]
    (run,) = me["runs"]
    assert run["tokens"] >= 1000 and run["budget_ok"]
    with sqlite3.connect(tmp_path / "me-seed3.db") as conn:
        tokens = conn.execute("SELECT SUM(tokens_in + tokens_out) FROM llm_calls").fetchone()[0]
        # the batches asked before the budget was spent (pipeline_depth 2) still finish
        settled = conn.execute(
            "SELECT COALESCE(SUM(tokens_in + tokens_out), 0) FROM llm_calls WHERE batch <= "
            "(SELECT MAX(batch)"
            " FROM llm_calls) - 2"
        ).fetchone()[0]
    assert tokens == run["tokens"] and 0 < settled == run["tokens_before_tail"] < 1000
    assert gp["runs"][0]["evaluations"] == run["evaluations"] and gp["runs"][0]["llm_calls"] == 0
    assert rows(tmp_path / "gp-seed3.db", "llm_calls") == 0


def test_ctrl_c_stops_the_experiment_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", TOY, "--llm", "fake", "--budget-llm-calls", "24", "--seeds", "0,1"]
    args += [arg for item in [*FAST, "llm.latency=0.2"] for arg in ("--set", item)]
    args += ["--arm", "me=", "--out", out]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-c", "from evolm.cli import app; app()", *map(str, args)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = out / "me-seed0.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the first run has told a batch or two
        try:
            if db.exists() and rows(db, "llm_calls") >= 4:
                break
        except sqlite3.OperationalError:  # created, its tables not yet
            pass
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again" in err.decode()
    assert not (out / "me-seed1.db").exists()  # the experiment stopped, not just the run
    with RunStore(db, readonly=True) as store:
        assert store.run_info()["status"] == "interrupted"
    p = evolm(*args)
    assert p.returncode == 0 and "resuming me seed 0" in p.stderr, p.stderr
    assert rows(db, "llm_calls") == 24 and rows(out / "me-seed1.db", "llm_calls") == 24


def test_plan_skips_baselines_that_do_not_apply(tmp_path):
    exp = Experiment(
        domain={"name": "poetry"},
        arms=[parse_arm("lmx=")],
        seeds=[0, 1],
        budget=ExperimentBudget("llm_calls", 8),
        out=tmp_path,
        baselines=["best-of-n", "gp", "random"],
        preset="poetry-lexicon",
    )
    runs, skipped = plan_runs(exp)
    assert [(r.label, r.seed) for r in runs] == [
        ("lmx", 0),
        ("best-of-n", 0),
        ("lmx", 1),
        ("best-of-n", 1),
    ]
    assert {s["label"] for s in skipped} == {"gp", "random"}
    assert "text, not Python programs" in next(s for s in skipped if s["label"] == "gp")["reason"]
    assert all(r.config is not None and r.config.budget.llm_calls == 8 for r in runs)
    assert runs[1].config is not None and runs[1].config.archive.kind == "best_of_n"
    assert runs[2].config is not None and runs[2].config.seed == 1


def test_a_run_that_misses_its_budget_is_named_in_a_warning(tmp_path):
    # A replay of a cassette recorded on another domain cannot answer: every call fails, the run
    # ends "failed" after 0 of its 8 LLM calls, and compare says so as soon as the run ends.
    cassette = ROOT / "src" / "evolm" / "cassettes" / "quickstart-image.db"
    out = tmp_path / "cmp"
    args = ["compare", TOY, "--llm", f"replay:{cassette}", "--budget-llm-calls", "8"]
    args += ["--seeds", "0", "--arm", "me=", "--out", out]
    args += [arg for item in FAST for arg in ("--set", item)]
    p = evolm(*args)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("warning: run me-seed0.db"))
    assert "ended failed" in lines[at] and "CassetteMiss" in lines[at]
    assert at < next(i for i, line in enumerate(lines) if line.startswith("written:"))
    result = json.loads((out / "compare.json").read_text())
    (run,) = result["arms"][0]["runs"]
    assert (
        run["budget_ok"] is False and run["llm_calls"] == rows(out / "me-seed0.db", "llm_calls") < 8
    )
    assert result["warnings"] == [lines[at].removeprefix("warning: ")]


def test_random_search_baseline_on_image_matches_the_first_arms_evaluations(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "image", "--llm", "fake", "--budget-llm-calls", "8", "--seeds", "0"]
    args += ["--set", "engine.batch_size=4", "--set", "engine.workers=1"]
    args += ["--arm", "me=", "--baselines", "random", "--out", out]
    p = evolm(*args)
    assert p.returncode == 0, p.stderr
    assert "skipped" not in p.stderr and "warning" not in p.stderr
    assert "| me " in p.stdout and "| random " in p.stdout
    me, rnd = out / "me-seed0.db", out / "random-seed0.db"
    evals = rows(me, "evaluations")
    assert evals == 4 + 8  # the image domain's 4 seeds, then one candidate per call
    assert rows(rnd, "evaluations") == evals and rows(rnd, "llm_calls") == 0
    event = experiment_event(rnd)
    assert event["baseline"] == "random" and event["budget"] == {"evaluations": evals}
    assert event["reference"] == str(me)
    with sqlite3.connect(rnd) as conn:
        programs = conn.execute("SELECT operator, parent_ids, code FROM programs").fetchall()
    seeds = [r for r in programs if r[0] == "seed"]
    drawn = [r for r in programs if r[0] != "seed"]
    assert len(seeds) == 4 and len(drawn) == 8
    assert {r[0] for r in drawn} == {"random"} and all(r[1] == "[]" for r in drawn)
    assert len({r[2] for r in drawn}) == 8  # eight different random programs
    with RunStore(rnd, readonly=True) as store:
        config = store.run_info()["config"]
    assert [o["kind"] for o in config["operators"]] == ["random"]
    assert config["archive"]["bins"] == [6, 6, 6]  # the first arm's archive (the image preset)
    result = json.loads((out / "compare.json").read_text())
    assert [a["label"] for a in result["arms"]] == ["me", "random"] and result["skipped"] == []
    (run,) = result["arms"][1]["runs"]
    assert run["budget_ok"] and run["llm_calls"] == 0 and run["evaluations"] == evals


def test_plan_matches_random_search_to_the_first_arm_where_a_generator_exists(tmp_path):
    exp = Experiment(
        domain={"name": "image"},
        arms=[parse_arm("me=")],
        seeds=[0, 1],
        budget=ExperimentBudget("llm_calls", 8),
        out=tmp_path,
        baselines=["random"],
        llm={"backend": "fake"},
    )
    runs, skipped = plan_runs(exp)
    assert skipped == []
    assert [(r.label, r.seed) for r in runs] == [("me", 0), ("random", 0), ("me", 1), ("random", 1)]
    for run in runs[1::2]:  # budgets come from the first arm's run of the same seed, once it ran
        assert run.config is None and run.arm.baseline == "random"
        assert run.reference == str(tmp_path / f"me-seed{run.seed}.db")
        assert run.data["operators"] == [{"kind": "random"}] and run.data["models"] == []
    toy = dataclasses.replace(exp, domain={"name": TOY}, assignments=FAST)
    runs, skipped = plan_runs(toy)
    assert [r.label for r in runs] == ["me", "me"]
    (skip,) = skipped
    assert skip["label"] == "random" and "no random program generator" in skip["reason"]
    assert "image, parity and sodarace have one" in skip["reason"]


def test_a_run_stored_by_an_earlier_evolm_is_the_same_configuration():
    # A key a later evolm added (with its default) is not a difference; a changed value is.
    from evolm.config import load_config
    from evolm.experiment import _same_config

    cfg = load_config(overrides={"domain": {"name": TOY}, "llm": {"backend": "fake"}})
    stored = cfg.model_dump(mode="json")
    del stored["engine"]["evaluator"]  # what a run stored before the key existed holds
    assert _same_config(stored, cfg) == []
    stored["archive"]["bins"] = [3, 3]
    assert _same_config(stored, cfg) == ["archive"]
