"""`evolm run` against an OpenAI-compatible server that answers every request with HTTP 500:
the run fails with a non-zero exit and names the server's error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from evolm.store import RunStore

from .openai_server import OpenAIServer, error_reply

ROOT = Path(__file__).resolve().parents[2]
TOY = "tests.toy_domain:ToyDomain"


def test_evolm_run_fails_when_every_llm_call_fails(server: OpenAIServer, tmp_path: Path) -> None:
    server.default = error_reply(500, "the model crashed")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[llm]\nbackend = "openai"\nmodel = "m"\nbase_url = "{server.url}"\nmax_retries = 0\n'
        "\n[engine]\nworkers = 1\n"
    )
    db = tmp_path / "r.db"
    proc = subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", "run", TOY,
         "--config", str(cfg), "--budget-llm-calls", "200",
         "--out", str(db), "-q"],
        cwd=ROOT, env={**os.environ}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "run failed: every LLM call failed: gave up after 1 attempt; last error: HTTP 500: " \
        "the model crashed" in out  # fmt: skip
    assert 0 < len(server.hits) < 200  # it stopped long before the budget
    with RunStore(db, readonly=True) as store:
        assert store.run_info()["status"] == "failed"
        assert store.llm_totals()["calls"] == len(server.hits)
