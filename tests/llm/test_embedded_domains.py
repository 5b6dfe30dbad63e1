"""The code domains end to end on the embedded model (SmolLM2-135M through llama.cpp): the
puzzles preset and the circle-packing task each run a short budget of real
calls, and what they store is what the domain promises. Slow (real model calls): `.ci/run`
runs them with the other slow tests of tests/llm."""

from __future__ import annotations

from pathlib import Path

import pytest

import evolm
from evolm.store import RunStore
from evolm.types import Status

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _evaluated(db: Path) -> list:
    with RunStore(db, readonly=True) as store:
        return list(store.evaluated())


def test_puzzles_preset_runs_on_the_embedded_model(tmp_path: Path) -> None:
    db = tmp_path / "puzzles.db"
    result = evolm.run(
        {"domain": {"params": {"puzzle": "concat_words"}}, "budget": {"llm_calls": 8}},
        preset="puzzles",
        out=db,
    )
    assert result.status == "completed", result
    rows = _evaluated(db)
    called = [r for r in rows if r.program.prompt_hash is not None]
    assert 0 < len(called) <= 8
    # every call answered (no failed call), and the domain scored what the model wrote
    assert not any((r.evaluation.error or "").startswith("LLM call failed") for r in called)
    assert any(r.evaluation.status is Status.OK for r in called)
    assert all(r.fitness in (0.0, 1.0) for r in rows if r.evaluation.ok)


def test_circle_packing_task_runs_on_the_embedded_model(tmp_path: Path) -> None:
    db = tmp_path / "packing.db"
    result = evolm.run(
        {
            "domain": {"name": "task", "params": {"path": str(ROOT / "examples/circle_packing")}},
            "budget": {"llm_calls": 4},
        },
        preset="task",
        out=db,
    )
    assert result.status == "completed", result
    rows = _evaluated(db)
    seed = next(r for r in rows if r.program.batch == 0)
    assert seed.evaluation.ok and seed.fitness == pytest.approx(1.490102, abs=1e-6)
    # whatever the model wrote, the code outside the EVOLVE-BLOCK is the seed's
    head = seed.program.code.split("# EVOLVE-BLOCK-START")[0]
    tail = seed.program.code.split("# EVOLVE-BLOCK-END")[1]
    for r in rows:
        if "EVOLVE-BLOCK-START" in r.program.code:
            assert r.program.code.startswith(head) and r.program.code.endswith(tail)
        if r.evaluation.ok:
            assert 0.0 <= r.fitness <= 3.0
