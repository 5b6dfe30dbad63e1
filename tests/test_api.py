"""The top-level Python API."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import evolm
from evolm.config import BudgetConfig, ConfigError
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.store import RunStore

TOY = "tests.toy_domain:ToyDomain"


def test_run_and_resume_from_python(tmp_path):
    db = tmp_path / "r.db"
    fake = {"backend": "fake"}
    res = evolm.run({"llm": fake, "budget": {"evaluations": 12}, "seed": 2}, preset="image", out=db)
    assert res.status == "completed" and res.snapshot.evaluations == 12
    with pytest.raises(FileExistsError, match=r"evolm\.resume"):
        evolm.run({"llm": fake, "budget": {"evaluations": 12}}, preset="image", out=db)
    res = evolm.resume(db, budget={"evaluations": 20})
    assert res.status == "completed" and res.snapshot.evaluations == 20


def toy_run(evaluations: int) -> dict[str, Any]:
    return {
        "seed": 1,
        "domain": {"name": TOY},
        "archive": {"kind": "grid", "bins": [5, 5]},
        "engine": {"batch_size": 4, "pipeline_depth": 2, "workers": 2, "init_batches": 1},
        "budget": {"evaluations": evaluations, "llm_calls": 500},
    }


def test_resume_extends_the_budget_and_stores_it(tmp_path):
    db = tmp_path / "r.db"
    res = evolm.run(toy_run(12), out=db, llm=FakeLLM(responder=mutating_responder))
    assert res.status == "completed" and res.snapshot.evaluations == 12
    with pytest.raises(ConfigError, match="evaluationz"):
        evolm.resume(db, budget={"evaluationz": 20}, llm=FakeLLM(responder=mutating_responder))
    with RunStore(db, readonly=True) as s:  # a refused budget changes nothing
        assert s.run_info()["config"]["budget"]["evaluations"] == 12 and len(s.resumes()) == 0
    llm = FakeLLM(responder=mutating_responder)
    res = evolm.resume(db, budget=BudgetConfig(evaluations=20), llm=llm)
    assert res.status == "completed" and res.snapshot.evaluations == 20 and llm.requests
    with RunStore(db, readonly=True) as s:
        budget = s.run_info()["config"]["budget"]
        assert budget["evaluations"] == 20 and budget["llm_calls"] == 500  # the rest is kept
        assert s.last_step().evaluations == 20 and len(s.resumes()) == 1
        assert sum(s.counts().values()) == 20


def test_import_evolm_is_cheap():
    code = "import sys, evolm; print('ribs' in sys.modules, 'evolm.runner' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
