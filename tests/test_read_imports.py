"""Reading a run (``evolm status``, ``evolm export``) imports neither the runner nor the
sandbox pool nor any LLM client library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import evolm
from evolm.llm.fake import FakeLLM, mutating_responder

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("evolm.runner", "evolm.engine", "evolm.sandbox.pool", "llama_cpp", "openai")

_CHILD = """
import json, sys
from typer.testing import CliRunner
from evolm.cli import app
for args in (["status", sys.argv[1]], ["export", sys.argv[1]]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best program" in result.output or args[0] == "export", result.output
print(json.dumps(sorted(sys.modules)))
"""


def test_status_and_export_import_no_runner_sandbox_or_llm_client(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    cfg = {
        "seed": 1,
        "domain": {"name": "tests.toy_domain:ToyDomain"},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": 2, "workers": 1, "init_batches": 1},
        "budget": {"evaluations": 8},
    }
    evolm.run(cfg, out=db, llm=FakeLLM(responder=mutating_responder))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(db)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "evolm.scheduler.rebuild" in modules  # the status really rebuilt the archive
    assert not [m for m in HEAVY if m in modules]


_RUN_CHILD = """
import json, sys
import evolm
from evolm.config import load_config
cfg = load_config(
    preset="image",
    overrides={
        "llm": {"backend": "fake"},
        "engine": {"workers": 1},
        "budget": {"evaluations": 12},
    },
)
result = evolm.run(cfg, out=sys.argv[1])
assert result.status == "completed", result
assert result.snapshot.evaluations >= 12, result.snapshot
print(json.dumps(sorted(sys.modules)))
"""

RUN_HEAVY = ("torch", "sklearn", "numba", "ribs", "transformers", "scipy", "pandas")


def test_grid_run_on_fake_llm_imports_no_torch_sklearn_numba(tmp_path: Path) -> None:
    """A whole image-preset run with the fake LLM, in a fresh interpreter, never loads torch,
    scikit-learn, numba or pyribs (the grid archive indexes cells with numpy alone)."""
    out = subprocess.run(
        [sys.executable, "-c", _RUN_CHILD, str(tmp_path / "r.db")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "evolm.archives.grid" in modules and "evolm.sandbox.pool" in modules
    assert [m for m in RUN_HEAVY if m in modules] == []
