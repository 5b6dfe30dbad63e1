"""A run whose LLM calls all fail ends ``failed``, naming the last error; a run in which some
call answered completes as before."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from evolm.config import load_config
from evolm.evaluators import EvalJob, Evaluator
from evolm.llm.base import Completion, LLMBackend, Request
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.runner import Runner, RunResult
from evolm.scheduler import ALL_CALLS_FAILED_STOP
from evolm.store import RunStore
from evolm.types import Evaluation, Status

TOY = "tests.toy_domain:ToyDomain"


class Scores(Evaluator):
    """Scores by program id in this process, never running the program's code."""

    name = "scores"

    async def start(self) -> None:
        pass

    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        return [
            Evaluation(Status.OK, -float(j.program.id % 5), ((j.program.id % 7) / 7, 0.5))
            for j in jobs
        ]

    def close(self) -> None:
        pass


class Down(LLMBackend):
    """A backend whose every call fails, the way a server that answers 500 does."""

    name = "down"

    def __init__(self) -> None:
        super().__init__("down-model", concurrency=4)
        self.calls = 0

    async def _generate_one(self, request: Request) -> Completion:
        self.calls += 1
        return Completion(text="", model=self.model, error=f"HTTP 500: boom {self.calls}")


class GoesDown(FakeLLM):
    """Answers the first ``ok`` calls, then raises on every call."""

    def __init__(self, ok: int) -> None:
        super().__init__(responder=mutating_responder)
        self.ok, self.calls = ok, 0

    async def _generate_one(self, request: Request) -> Completion:
        self.calls += 1
        if self.calls > self.ok:
            raise ConnectionError("server went away")
        return await super()._generate_one(request)


def config(**budget: int):
    return load_config(
        overrides={
            "seed": 2,
            "domain": {"name": TOY},
            "archive": {"kind": "grid", "bins": [5, 5]},
            "engine": {"batch_size": 4, "pipeline_depth": 2},
            "budget": budget,
        }
    )


def run(store: RunStore, llm: LLMBackend, *, resume: bool = False, **budget: int) -> RunResult:
    runner = Runner(config(**budget), store, llm=llm, evaluator=Scores())
    return asyncio.run(runner.run(resume=resume))


def test_a_run_whose_calls_all_fail_stops_early_and_fails(tmp_path):
    store = RunStore(tmp_path / "r.db")
    llm = Down()
    result = run(store, llm, llm_calls=400)
    assert result.status == "failed"
    assert result.error == result.reason
    assert result.reason.startswith(f"every LLM call failed: HTTP 500: boom {llm.calls} (")
    assert f"({llm.calls} calls, none answered" in result.reason
    # it stopped after ALL_CALLS_FAILED_STOP calls, plus the batches already in flight
    assert ALL_CALLS_FAILED_STOP <= llm.calls <= ALL_CALLS_FAILED_STOP + 4 * 2
    assert store.llm_totals()["calls"] == llm.calls
    assert store.run_info()["status"] == "failed"
    invalid = [r for r in store.export_rows() if r["batch"] > 0]
    assert invalid and all(r["status"] == "invalid" for r in invalid)

    # Resume replays the stored batches, reaches the same stop and asks nothing more.
    again = Down()
    resumed = run(store, again, resume=True, llm_calls=400)
    assert resumed.status == "failed" and resumed.reason == result.reason
    assert again.calls == 0 and store.llm_totals()["calls"] == llm.calls
    store.close()


def test_a_budget_spent_before_the_stop_still_fails_the_run(tmp_path):
    store = RunStore(tmp_path / "r.db")
    result = run(store, Down(), llm_calls=3)
    assert result.status == "failed"
    assert result.reason.startswith("every LLM call failed: HTTP 500: boom")
    assert "(3 calls, none answered" in result.reason
    store.close()


def test_a_run_in_which_some_call_answered_completes(tmp_path):
    store = RunStore(tmp_path / "r.db")
    llm = GoesDown(ok=2)
    result = run(store, llm, llm_calls=40)
    assert result.status == "completed" and result.reason == "LLM-call budget 40 spent"
    assert llm.calls == 40
    errors = [r["error"] or "" for r in store.export_rows()]
    assert sum("LLM call failed: ConnectionError: server went away" in e for e in errors) == 38
    store.close()
