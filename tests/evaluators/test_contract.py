"""The evaluator protocol: the sandbox evaluator's contract, and a user evaluator injected into a
real run (through the real sandbox) that also measures the pipeline's overlap structurally."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from evolm.config import load_config
from evolm.evaluators import EvalJob, Evaluator, build_evaluator
from evolm.evaluators.local import SandboxEvaluator
from evolm.llm.base import Completion, Request
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.runner import Runner
from evolm.store import RunStore
from evolm.types import Evaluation, Program, Status

TOY = "tests.toy_domain:ToyDomain"


def sandbox() -> Evaluator:
    return SandboxEvaluator(TOY, workers=2, timeout=2.0)


def from_config() -> Evaluator:
    cfg = load_config(overrides={"domain": {"name": TOY}, "engine": {"workers": 2}})
    from evolm.domains.base import get_domain

    return build_evaluator(cfg, get_domain(TOY))


EVALUATORS = {"sandbox": sandbox, "from_config": from_config}


def job(code: str, seed: int = 0, pid: int = 0) -> EvalJob:
    return EvalJob(Program(id=pid, code=code), seed, 2.0)


async def _evaluate(ev: Evaluator, jobs: Sequence[EvalJob]) -> list[Evaluation]:
    await ev.start()
    try:
        return await ev.evaluate(jobs)
    finally:
        ev.close()
        ev.close()  # closing twice is safe


@pytest.mark.parametrize("make", EVALUATORS.values(), ids=EVALUATORS.keys())
def test_evaluator_contract(make):
    jobs = [
        job("def f():\n    return 3\n", pid=1),
        job("import random\ndef f():\n    return random.random()\n", seed=7, pid=2),
        job("def f(:\n", pid=3),  # syntax error
        job("def f():\n    raise RuntimeError('boom')\n", pid=4),
        job("def f():\n    while True: pass\n", pid=5),
        job("import random\ndef f():\n    return random.random()\n", seed=7, pid=6),
    ]
    evs = asyncio.run(_evaluate(make(), jobs))
    assert len(evs) == len(jobs)
    assert evs[0].ok and evs[0].fitness == 0.0  # in order: f() == 3 is the optimum
    assert evs[1].ok and evs[1].fitness == evs[5].fitness  # same seed, same evaluation
    assert evs[2].status is Status.ERROR and evs[3].status is Status.ERROR
    assert evs[4].status is Status.TIMEOUT
    assert make().info == {}  # details appear once started


def test_sandbox_evaluator_reports_its_tier():
    async def go():
        ev = sandbox()
        await ev.start()
        ev.close()
        return ev.info

    info = asyncio.run(go())
    assert info["tier"] in ("bwrap", "userns", "landlock", "weak") and info["reason"]


class Counting(Evaluator):
    """A user evaluator: the sandbox underneath, counting jobs in flight."""

    name = "counting"

    def __init__(self, inner: Evaluator, llm: SlowLLM) -> None:
        super().__init__()
        self.inner, self.llm = inner, llm
        self.now = self.peak = self.jobs = self.during_llm = 0
        self.closed = False

    async def start(self) -> None:
        await self.inner.start()
        self.info = {"inner": self.inner.name, **self.inner.info}

    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        self.now += 1
        self.jobs += len(jobs)
        self.peak = max(self.peak, self.now)
        self.during_llm += int(self.llm.now > 0)
        try:
            return await self.inner.evaluate(jobs)
        finally:
            self.now -= 1

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class SlowLLM(FakeLLM):
    """The fake backend with a pause per call, counting calls in flight."""

    def __init__(self) -> None:
        super().__init__(responder=mutating_responder, concurrency=4)
        self.now = 0

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.now += 1
        try:
            await asyncio.sleep(0.05)
            return await super().generate(requests)
        finally:
            self.now -= 1


def test_an_injected_evaluator_runs_the_whole_run_and_overlaps_with_sampling(tmp_path):
    cfg = load_config(
        overrides={
            "seed": 3,
            "domain": {"name": TOY},
            "archive": {"kind": "grid", "bins": [5, 5]},
            "engine": {"batch_size": 4, "pipeline_depth": 2, "workers": 2},
            "budget": {"evaluations": 26},
        }
    )
    llm = SlowLLM()
    ev = Counting(SandboxEvaluator(TOY, workers=2, timeout=2.0), llm)
    store = RunStore(tmp_path / "r.db")
    result = asyncio.run(Runner(cfg, store, llm=llm, evaluator=ev).run())
    assert result.status == "completed"
    assert ev.jobs == sum(1 for r in store.export_rows() if r["status"] != "invalid")
    # Structural overlap: several evaluations at once, and evaluations while calls are out.
    assert ev.peak >= 2 and ev.during_llm > 0
    # Whoever builds an evaluator closes it: the runner did not close this one.
    assert not ev.closed
    (event,) = store.sandbox_events()
    assert event.evaluator == "counting" and event.info["inner"] == "sandbox"
    ev.close()


def test_engine_evaluator_chooses_where_programs_run():
    from evolm.domains.base import get_domain
    from evolm.evaluators.ray_cluster import RayEvaluator

    def built(spec: str) -> Evaluator:
        cfg = load_config(overrides={"domain": {"name": TOY}, "engine": {"evaluator": spec}})
        return build_evaluator(cfg, get_domain(TOY))

    assert isinstance(built("sandbox"), SandboxEvaluator)
    ray_default, ray_at = built("ray"), built("ray:10.0.0.5:6379")
    assert isinstance(ray_default, RayEvaluator) and ray_default.address is None
    assert isinstance(ray_at, RayEvaluator) and ray_at.address == "10.0.0.5:6379"
    # what the nodes receive: the domain by importable class, and its worker parameters
    assert ray_at.spec == TOY and ray_at.pool_args["timeout"] == 2.0
    for bad in ("ray:", "dask", "local"):
        with pytest.raises(ValueError, match=r"unknown evaluator .*ray:ADDRESS"):
            built(bad)
