"""The command line, driven as a user would: real processes, real signals, real files."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evolm.config import RunConfig
from evolm.domains.base import get_domain
from evolm.scheduler.rebuild import build_archive, rebuild_archive
from evolm.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TOY = "tests.toy_domain:ToyDomain"


def evolm(*args, check=True, timeout=120, env=None):
    proc = subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", *map(str, args)],
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_config(path: Path, evals: int, latency: float = 0.0) -> Path:
    path.write_text(
        f"""
seed = 4
[domain]
name = "{TOY}"
[archive]
kind = "grid"
bins = [6, 6]
[llm]
backend = "fake"
latency = {latency}
concurrency = 4
[engine]
batch_size = 4
workers = 2
[budget]
evaluations = {evals}
"""
    )
    return path


def elites_of(db: Path):
    with RunStore(db, readonly=True) as store:
        cfg = RunConfig.model_validate(store.run_info()["config"])
        archive = build_archive(cfg, get_domain(cfg.domain.name, cfg.domain.params))
        rebuild_archive(archive, store)
        return sorted((e["id"], e["fitness"], e["cell"]) for e in archive.export())


def test_run_status_export(tmp_path):
    db = tmp_path / "run.db"
    p = evolm(
        "run", "image", "--llm", "fake", "--budget-evals", "20", "--out", db, "--seed", "3", "-q"
    )
    assert "run completed" in p.stderr and str(db) in p.stderr
    st = evolm("status", db)
    assert "QD score" in st.stdout and "coverage" in st.stdout and "best program" in st.stdout
    assert "mean_g ^" in st.stdout  # heatmap of descriptors 0 and 1 (mean_r, mean_g)
    wide = evolm("status", db, env={"COLUMNS": "300"}).stdout  # a table cell on one line
    evaluation = next(line for line in wide.splitlines() if "evaluation" in line)
    assert "sandbox" in evaluation and "scored apart from the program" in evaluation
    out = evolm("export", db, "--format", "jsonl").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 20
    assert {"id", "parent_ids", "status", "fitness", "code", "operator"} <= set(rows[0])
    out = evolm("export", db, "--format", "csv").stdout
    crow = list(csv.DictReader(io.StringIO(out)))
    assert len(crow) == 20 and crow[-1]["parent_ids"] != ""


def test_operator_mix_from_the_command_line_and_its_status_table(tmp_path):
    db = tmp_path / "mix.db"
    cfg = write_config(tmp_path / "c.toml", evals=40)
    ops = ["--operator", "prompt_mutation", "--operator", "lmx", "--operator", "search_replace"]
    evolm("run", TOY, "--config", cfg, *ops, "--bandit", "thompson", "--out", db, "-q")
    with RunStore(db, readonly=True) as store:
        totals = store.arm_totals()
        kinds = {r["operator"] for r in store.export_rows() if r["batch"] > 0}
    assert set(totals) == {"prompt_mutation@fake", "lmx@fake", "search_replace@fake"}
    assert kinds <= {"prompt_mutation", "lmx", "search_replace"} and len(kinds) >= 2
    assert sum(t["chosen"] for t in totals.values()) == 40 - 2
    st = evolm("status", db).stdout
    assert "operators (ELM Fig. 11c" in st and "inserted" in st
    assert "prompt_mutation, lmx, search_replace (thompson)" in st
    table = st[st.index("operators (ELM Fig. 11c") :]
    line = next(x for x in table.splitlines() if "prompt_mutation" in x)
    n = int(totals["prompt_mutation@fake"]["chosen"])
    assert f" {n} " in line and "fake" in line
    bad = evolm("run", TOY, "--config", cfg, "--operator", "crossbreed", check=False)
    assert bad.returncode == 2 and "unknown operator 'crossbreed'" in bad.stderr


def test_invalid_config_fails_before_the_run_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[archive]\nkind = "hexgrid"\n[engine]\nbatch_sise = 3\n')
    db = tmp_path / "r.db"
    p = evolm("run", "image", "--config", cfg, "--out", db, check=False)
    assert p.returncode == 2
    assert "archive.kind" in p.stderr and "grid" in p.stderr and "cvt" in p.stderr
    assert "engine.batch_sise" in p.stderr and "unknown key" in p.stderr
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "image", "--preset", "nope"], "unknown preset"),
        (["run", "nodomain", "--budget-evals", "5"], "unknown domain"),
        (["run", "image", "--llm", "gpt"], "--llm 'gpt' is not understood"),
        (["run", "image", "--budget-evals", "-1"], "budget.evaluations"),
        (
            [
                "run",
                "image",
                "--llm",
                "llama_cpp",
                "--lora",
                "/nonexistent/a.gguf",
                "-q",
                "--budget-llm-calls",
                "1",
                "--out",
                "/tmp/evolm-never-written.db",
            ],
            "LoRA adapter /nonexistent/a.gguf does not exist",
        ),
        (
            [
                "run",
                "image",
                "--llm",
                "llama_cpp",
                "--lora",
                "package:nope",
                "-q",
                "--budget-llm-calls",
                "1",
                "--out",
                "/tmp/evolm-never-written.db",
            ],
            "no adapter named 'nope' ships with evolm",
        ),
        (["run", "image", "--evaluate-on", "dask"], "unknown evaluator 'dask'"),
        (["status", "/nonexistent/run.db"], "does not exist"),
        (["export", "/nonexistent/run.db"], "does not exist"),
    ],
)
def test_clear_errors(args, needle):
    p = evolm(*args, check=False)
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr


def test_existing_output_is_never_overwritten(tmp_path):
    db = tmp_path / "r.db"
    evolm("run", "image", "--llm", "fake", "--budget-evals", "6", "--out", db, "-q")
    before = db.read_bytes()
    p = evolm("run", "image", "--llm", "fake", "--budget-evals", "6", "--out", db, check=False)
    assert p.returncode == 2 and "already exists" in p.stderr
    assert db.read_bytes() == before


def test_error_text_is_the_same_at_every_terminal_width(tmp_path):
    # A long path with brackets (rich markup syntax) in an error: printed whole, on one line,
    # with its brackets, whatever COLUMNS says.
    deep = tmp_path / ("a-rather-long-directory-name-for-the-run-[1]-" * 3)
    deep.mkdir()
    db = deep / "run.db"
    db.write_bytes(b"")
    errs = []
    for width in ("40", "300"):
        p = evolm("run", "image", "--llm", "fake", "--out", db, check=False, env={"COLUMNS": width})
        assert p.returncode == 2
        errs.append(p.stderr)
    assert errs[0] == errs[1]
    line = next(x for x in errs[0].splitlines() if "already exists" in x)
    assert f"error: {db} already exists; continue it with `evolm resume {db}`" in line


def _wait_for_steps(db: Path, n: int, proc, timeout=60.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.communicate()}")
        if db.exists():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                k = con.execute("SELECT COUNT(*) FROM events WHERE kind='step'").fetchone()[0]
                con.close()
                if k >= n:
                    return
            except sqlite3.Error:
                pass
        time.sleep(0.05)
    raise AssertionError("run made no progress")


def _start(cfg: Path, db: Path):
    return subprocess.Popen(
        [sys.executable, "-c", "from evolm.cli import app; app()", "run", TOY,
         "--config", str(cfg), "--out", str(db), "-q"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip


def test_kill_9_then_resume_rebuilds_the_same_archive(tmp_path):
    cfg = write_config(tmp_path / "c.toml", evals=42, latency=0.05)
    ref = tmp_path / "ref.db"
    evolm("run", TOY, "--config", cfg, "--out", ref, "-q")

    db = tmp_path / "killed.db"
    proc = _start(cfg, db)
    _wait_for_steps(db, 4, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # engine and its workers, no chance to clean up
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with RunStore(db, readonly=True) as s:
        told = sum(s.counts().values())
        assert 0 < told < 42 and s.run_info()["status"] == "running"
    evolm("resume", db, "-q")
    with RunStore(db, readonly=True) as s:
        assert s.run_info()["status"] == "completed"
        assert sum(s.counts().values()) == 42
        assert len(s.resumes()) == 1
    assert elites_of(db) == elites_of(ref)


def test_ctrl_c_stores_what_is_done_and_resume_finishes(tmp_path):
    cfg = write_config(tmp_path / "c.toml", evals=200, latency=0.05)
    db = tmp_path / "int.db"
    proc = _start(cfg, db)
    _wait_for_steps(db, 3, proc)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "evolm resume" in err.decode()
    with RunStore(db, readonly=True) as s:
        assert s.run_info()["status"] == "interrupted"
        n = sum(s.counts().values())
        assert 0 < n < 200 and "pending" not in s.counts()
    evolm("resume", db, "--budget-evals", "60", "-q")
    with RunStore(db, readonly=True) as s:
        assert sum(s.counts().values()) == 60 and s.run_info()["status"] == "completed"


def test_quickstart_replays_the_shipped_real_model_cassette_exactly(tmp_path):
    """`--preset quickstart` replays the README Quickstart's recorded run (the embedded model
    with the shipped adapter): same programs, same archive, and the model's own programs in it."""
    from evolm.llm.build import resolve_cassette

    db = tmp_path / "qs.db"
    p = evolm("run", "image", "--preset", "quickstart", "--out", db)
    assert "run completed" in p.stderr and "LLM-call budget 64 spent" in p.stderr
    cassette = Path(resolve_cassette("package:quickstart-image"))
    assert elites_of(db) == elites_of(cassette)
    with RunStore(db, readonly=True) as s, RunStore(cassette, readonly=True) as c:
        assert s.llm_totals()["calls"] == 64
        rows = list(s.export_rows())
        assert [r["code"] for r in rows] == [r["code"] for r in c.export_rows()]
        recorded = c.run_info()["config"]["llm"]
        assert recorded["backend"] == "llama_cpp" and recorded["lora"] == "shipped"
    # status names the model the calls used and the adapter, though the config left both implicit
    assert "llama_cpp / smollm2-135m-instruct + LoRA shipped" in evolm("status", cassette).stdout
    # what the README says the Quickstart shows: programs the model wrote entered the archive,
    # and the best of them beats every seed
    seeds = [r["fitness"] for r in rows if r["operator"] == "seed"]
    written = [r for r in rows if r["operator"] in ("search_replace", "prompt_mutation")]
    assert any(r["add_status"] in (1, 2) for r in written)
    assert max(r["fitness"] for r in written if r["fitness"] is not None) > max(seeds)
