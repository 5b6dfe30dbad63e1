"""Domains registered by name in the user's own module work in sandbox workers.

Workers start a fresh interpreter and never import the user's module by themselves, so the pool
builds the domain once in the calling process and names its class to the workers as
``package.module:Class``; a class no worker can import fails at pool start, naming the fix.
"""

from __future__ import annotations

import asyncio

import pytest

import evolm
from evolm.domains.base import register_domain
from evolm.sandbox import SandboxPool
from evolm.sandbox.pool import worker_domain_spec
from evolm.store import RunStore
from evolm.types import Status
from tests import registered_domain
from tests.toy_domain import ToyDomain


def evaluate(domain: str, params: dict, code: str):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with SandboxPool(domain, params, workers=1, timeout=5.0) as pool:
            return await pool.evaluate(code, 0)

    return asyncio.run(go())


def test_a_registered_name_is_sent_as_its_class() -> None:
    assert worker_domain_spec(registered_domain.NAME) == (
        "tests.registered_domain:RegisteredToyDomain"
    )
    assert worker_domain_spec("tests.toy_domain:ToyDomain") == "tests.toy_domain:ToyDomain"


def test_a_registered_user_domain_evaluates_in_a_worker_with_its_params() -> None:
    ev = evaluate(registered_domain.NAME, {"offset": 10.0}, "def f():\n    return 3.0\n")
    # fitness 0 at 3, shifted by the offset the worker was built with
    assert ev.status is Status.OK and ev.fitness == 10.0, ev.error


def test_a_class_defined_inside_a_function_fails_at_pool_start_naming_the_fix() -> None:
    @register_domain("test_local_toy")
    class LocalToy(ToyDomain):
        name = "test_local_toy"

    with pytest.raises(ValueError, match=r"test_local_toy.*<locals>.*importable module"):
        evaluate("test_local_toy", {}, "def f():\n    return 3.0\n")


def test_a_class_defined_in_main_fails_at_pool_start() -> None:
    main_toy = type("MainToy", (ToyDomain,), {"__module__": "__main__", "name": "test_main_toy"})
    register_domain("test_main_toy")(main_toy)
    with pytest.raises(ValueError, match=r"__main__:MainToy.*in __main__.*importable module"):
        worker_domain_spec("test_main_toy")


def test_bad_params_for_a_class_domain_are_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"bad parameters.*nope"):
        worker_domain_spec("tests.toy_domain:ToyDomain", {"nope": 1})


def test_a_run_of_a_registered_user_domain_through_the_sandbox(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "r.db"
    result = evolm.run(
        {
            "seed": 3,
            "domain": {"name": registered_domain.NAME, "params": {"offset": 5.0}},
            "llm": {"backend": "fake", "model": "fake"},
            "archive": {"kind": "grid", "bins": [4, 4]},
            "engine": {"batch_size": 4, "workers": 1},
            "budget": {"evaluations": 10},
        },
        out=db,
    )
    assert result.status == "completed", result.error
    with RunStore(db, readonly=True) as store:
        evaluated = list(store.evaluated())
    assert len(evaluated) == 10
    ok = [ind.evaluation for ind in evaluated if ind.evaluation.ok]
    # every fitness carries the offset, so each was scored by RegisteredToyDomain(offset=5)
    assert ok and all(ev.fitness is not None and ev.fitness <= 5.0 for ev in ok)
    assert max(ev.fitness for ev in ok if ev.fitness is not None) > 0.0
