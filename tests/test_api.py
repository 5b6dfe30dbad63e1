"""The top-level Python API."""

from __future__ import annotations

import subprocess
import sys

import pytest

import evolm
from evolm.store import RunStore


def test_run_and_resume_from_python(tmp_path):
    db = tmp_path / "r.db"
    fake = {"backend": "fake"}
    res = evolm.run({"llm": fake, "budget": {"evaluations": 12}, "seed": 2}, preset="image", out=db)
    assert res.status == "completed" and res.snapshot.evaluations == 12
    with pytest.raises(FileExistsError, match=r"evolm\.resume"):
        evolm.run({"llm": fake, "budget": {"evaluations": 12}}, preset="image", out=db)
    with RunStore(db) as s:
        s.conn.execute(
            "UPDATE runs SET config_json = json_set(config_json, '$.budget.evaluations', 20)"
        )
    res = evolm.resume(db)
    assert res.status == "completed" and res.snapshot.evaluations == 20


def test_import_evolm_is_cheap():
    code = "import sys, evolm; print('ribs' in sys.modules, 'evolm.engine' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
