"""An evaluator that returns NaN, infinite or overflowing values: those candidates are rejected
with the reason, the run completes, its QD score stays finite and ``evolm status`` reads it."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from collections.abc import Sequence

import pytest

from evolm.config import load_config
from evolm.evaluators import EvalJob, Evaluator
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.runner import Runner
from evolm.store import RunStore
from evolm.types import FITNESS_LIMIT, DescriptorSpace, Evaluation, Status

TOY = "tests.toy_domain:ToyDomain"
NAN, INF = float("nan"), float("inf")

#: (fitness, descriptors, words the rejection must name), one per bad kind.
BAD = (
    (NAN, (0.1, 0.1), "fitness is not finite"),
    (INF, (0.1, 0.1), "fitness is not finite"),
    (1.7e308, (0.3, 0.3), "beyond the limit"),
    (-1.7e308, (0.4, 0.4), "beyond the limit"),
    (0.0, (NAN, 0.2), "descriptors are not all finite"),
    (0.0, (0.2, -INF), "descriptors are not all finite"),
)


class BadValues(Evaluator):
    """Scores in this process: every even program id after the seeds gets one of :data:`BAD`,
    the others a plain, finite score."""

    name = "bad-values"

    def __init__(self) -> None:
        super().__init__()
        self.expected: dict[int, str] = {}

    async def start(self) -> None:
        pass

    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        out = []
        for job in jobs:
            i = job.program.id
            if i >= 2 and i % 2 == 0:
                fitness, desc, why = BAD[(i // 2) % len(BAD)]
                self.expected[i] = why
            else:
                fitness, desc = -float(i % 7), ((i % 10) / 10, (i % 3) / 3)
            out.append(Evaluation(Status.OK, fitness, desc))
        return out

    def close(self) -> None:
        pass


@pytest.mark.parametrize("archive", ["grid", "cvt", "deep_grid", "population", "best_of_n"])
def test_bad_values_reject_only_their_candidate(tmp_path, archive):
    extra = {"bins": [5, 5]} if archive in ("grid", "deep_grid") else {}
    if archive == "cvt":
        extra = {"cells": 16}
    cfg = load_config(
        overrides={
            "seed": 3,
            "domain": {"name": TOY},
            "archive": {"kind": archive, **extra},
            "engine": {"batch_size": 4},
            "budget": {"evaluations": 40},
        }
    )
    ev = BadValues()
    store = RunStore(tmp_path / "r.db")
    result = asyncio.run(
        Runner(cfg, store, llm=FakeLLM(responder=mutating_responder), evaluator=ev).run()
    )
    assert result.status == "completed", result.reason
    assert result.snapshot is not None and result.snapshot.evaluations == 40
    assert math.isfinite(result.snapshot.qd_score) and result.snapshot.elites > 0
    rows = {r["id"]: r for r in store.export_rows()}
    assert len(ev.expected) >= len(BAD)  # every kind of bad value came up
    for pid, why in ev.expected.items():
        row = rows[pid]
        assert row["status"] == "rejected"
        assert why in row["error"]
    ok = [r for pid, r in rows.items() if pid not in ev.expected]
    assert ok and all(r["status"] == "ok" for r in ok)
    store.close()
    if archive != "grid":
        return
    status = subprocess.run(
        [
            sys.executable,
            "-c",
            "from evolm.cli import app; app()",
            "status",
            str(tmp_path / "r.db"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert "completed" in status.stdout and "rejected" in status.stdout


SPACE = DescriptorSpace(("a", "b"), ((0.0, 1.0), (0.0, 1.0)))


@pytest.mark.parametrize(("fitness", "desc", "why"), BAD)
def test_checked_rejects_and_drops_the_bad_values(fitness, desc, why):
    ev = Evaluation(Status.OK, fitness, desc).checked(SPACE)
    assert ev.status is Status.REJECTED and why in (ev.error or "")
    assert ev.fitness is None and ev.descriptors is None  # nothing unstorable is kept


def test_values_at_the_limit_are_accepted():
    ev = Evaluation(Status.OK, -FITNESS_LIMIT, (1.7e308, 0.5)).checked(SPACE)
    assert ev.ok and ev.fitness == -FITNESS_LIMIT  # huge descriptors are clipped, not rejected
