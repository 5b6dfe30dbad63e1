"""Recorded runs for the report's tests, made once per session through the real CLI with the
fake LLM and small budgets: one run of every registered domain, a CVT run, a run whose every
program fails, a run that failed (every LLM call failed), and a run killed with SIGKILL (kept
as it was) and then resumed."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOY = "tests.toy_domain:ToyDomain"

DOMAIN_RUNS = {
    "image": ["image"],
    "image-cvt": ["image", "--preset", "image-cvt"],
    "image-ga": ["image", "--set", "archive.kind=population"],
    "parity": ["parity"],
    "poetry": ["poetry"],
    "prompts": ["prompts"],
    "puzzles": ["puzzles"],
    "sodarace": ["sodarace"],
    "task": [str(ROOT / "examples" / "circle_packing")],
}
"""Runs of every registered domain (``task`` through the circle packing example), and of the
image domain on a CVT archive and on a GA population (no cells)."""


def evolm(*args: object, check: bool = True, timeout: float = 240, env: dict | None = None):
    proc = subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report-runs")


@pytest.fixture(scope="session")
def domain_runs(runs_dir: Path) -> dict[str, Path]:
    out = {}
    for name, args in DOMAIN_RUNS.items():
        db = runs_dir / f"{name}.db"
        evolm("run", *args, "--llm", "fake", "--budget-evals", 24, "--seed", 1, "--out", db, "-q")
        out[name] = db
    return out


@pytest.fixture(scope="session")
def all_fail_run(runs_dir: Path) -> Path:
    db = runs_dir / "all-fail.db"
    dom = "tests.report.failing_domain:AlwaysFails"
    evolm("run", dom, "--llm", "fake", "--budget-evals", 12, "--out", db, "-q")
    return db


@pytest.fixture(scope="session")
def failed_run(runs_dir: Path) -> Path:
    """Every LLM call fails (nothing listens on the port): the run ends with status failed."""
    cfg = runs_dir / "dead.toml"
    cfg.write_text(
        '[llm]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
        "max_retries = 0\n\n[engine]\nworkers = 1\n"
    )
    db = runs_dir / "failed.db"
    proc = evolm(
        "run", TOY, "--config", cfg, "--budget-llm-calls", 50, "--out", db, "-q",
        check=False, env={"OPENAI_API_KEY": "unused"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    return db


def _steps(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT COUNT(*) FROM events WHERE kind='step'").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="session")
def killed_and_resumed(runs_dir: Path) -> tuple[Path, Path]:
    """A run killed with SIGKILL after a few batches (a copy kept as it was left) and the same
    run resumed to the end."""
    cfg = runs_dir / "toy.toml"
    cfg.write_text(
        f'seed = 4\n[domain]\nname = "{TOY}"\n[archive]\nkind = "grid"\nbins = [6, 6]\n'
        '[llm]\nbackend = "fake"\nlatency = 0.05\nconcurrency = 4\n'
        "[engine]\nbatch_size = 4\nworkers = 2\n[budget]\nevaluations = 60\n"
    )
    db = runs_dir / "resumed.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from evolm.cli import app; app()", "run", TOY,
         "--config", str(cfg), "--out", str(db), "-q"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    t0 = time.monotonic()
    while _steps(db) < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 120, "the run made no progress"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = runs_dir / "killed.db"
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db}{suffix}")
        if src.exists():
            shutil.copy(src, f"{killed}{suffix}")
    evolm("resume", db, "-q")
    return killed, db
