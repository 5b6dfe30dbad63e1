"""Random search: the domains' random program generators (run through the real sandbox) and
the ``random`` operator that samples them."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from functools import cache

import numpy as np
import pytest

from evolm.domains.base import Domain, DomainContext, get_domain, operator_context
from evolm.operators import OPERATORS, RandomSearch, make_operator
from evolm.sandbox import SandboxPool, SandboxUnavailable
from evolm.types import Evaluation
from tests.toy_domain import ToyDomain

GENERATORS = ("image", "sodarace", "parity")
N = 20


@cache
def _domain(name: str) -> Domain:
    return get_domain(name)


def _programs(name: str, n: int = N) -> list[str]:
    domain = _domain(name)
    return [domain.random_program(np.random.default_rng(seed)) for seed in range(n)]  # type: ignore[attr-defined]


def _cell(domain: Domain, descriptors: tuple[float, ...], bins: int = 4) -> tuple[int, ...]:
    """The cell of a ``bins``-per-descriptor grid over the domain's descriptor space."""
    space = domain.descriptor_space
    out = []
    for v, (lo, hi) in zip(descriptors, space.bounds, strict=True):
        out.append(min(bins - 1, max(0, int((v - lo) / (hi - lo) * bins))))
    return tuple(out)


@pytest.mark.parametrize("name", GENERATORS)
def test_random_programs_mostly_run_ok_in_the_sandbox_and_are_diverse(name: str) -> None:
    codes = _programs(name)
    domain = _domain(name)

    async def remote() -> list[Evaluation]:
        timeout = domain.eval_timeout
        async with SandboxPool(name, {}, workers=1, timeout=timeout) as pool:
            return [await pool.evaluate(code, 0) for code in codes]

    try:
        results = asyncio.run(remote())
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox tier works here: {exc}")
    ok = [ev for ev in results if ev.ok]
    share = len(ok) / len(results)
    failures = [ev.error for ev in results if not ev.ok]
    assert share >= 0.5, (share, failures[:3])
    cells = {_cell(domain, ev.descriptors) for ev in ok}
    # several niches of a coarse grid (parity has 2 descriptors of 9 values each)
    assert len(cells) >= (3 if name == "parity" else 5), (name, sorted(cells))
    if name != "parity":  # a circuit that does not XOR all four bits is right on half the inputs
        fitnesses = {round(float(ev.fitness), 6) for ev in ok}  # type: ignore[arg-type]
        assert len(fitnesses) >= 5, (name, sorted(fitnesses))
    # different programs (a small circuit such as `return b1` can come up twice)
    assert len(set(codes)) >= (15 if name == "parity" else N)


@pytest.mark.parametrize("name", GENERATORS)
def test_the_same_generator_state_gives_the_same_program(name: str) -> None:
    domain = _domain(name)
    for seed in range(5):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert domain.random_program(a) == domain.random_program(b)  # type: ignore[attr-defined]
        assert a.bit_generator.state == b.bit_generator.state
    assert _programs(name, 5) == _programs(name, 5)


@pytest.mark.parametrize("name", GENERATORS)
def test_the_domains_context_carries_its_generator_and_prompts_ignore_it(name: str) -> None:
    domain = _domain(name)
    ctx = domain.context()
    assert ctx.random_program is not None
    assert ctx.random_program(np.random.default_rng(3)) == _programs(name, 4)[3]
    without = dataclasses.replace(ctx, random_program=None)
    assert without == ctx and repr(without) == repr(ctx)  # no part of what prompts are built from


def test_the_operator_proposes_parentless_random_programs() -> None:
    ctx = _domain("image").context()
    op = make_operator("random", ctx)
    assert OPERATORS["random"] is RandomSearch
    assert op.uses_llm is False and op.num_parents == 0
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    assert op.select_parents(None, "uniform", rng) == []  # type: ignore[arg-type]
    assert rng.bit_generator.state == state  # choosing no parents draws nothing
    proposal = op.propose([], np.random.default_rng(7))
    assert proposal.parent_ids == () and proposal.request is None and proposal.error is None
    assert proposal.code == _programs("image", 8)[7]


def test_a_domain_without_a_generator_is_refused_by_name() -> None:
    ctx = DomainContext(description="Return a number.", function_name="f")
    with pytest.raises(ValueError, match="image, parity, sodarace") as err:
        RandomSearch(ctx)
    assert "random_program(rng)" in str(err.value)
    with pytest.raises(ValueError, match="has none"):
        make_operator("random", ToyDomain().context())
    with pytest.raises(ValueError, match="mode must be"):
        RandomSearch(_domain("parity").context(), "poem")


def test_a_user_domain_needs_only_the_method() -> None:
    class Generating(ToyDomain):
        def random_program(self, rng: np.random.Generator) -> str:
            return f"def f():\n    return {float(rng.uniform(0, 6))!r}\n"

    ctx = operator_context(Generating())
    assert Generating().context().random_program is None
    code = RandomSearch(ctx).propose([], np.random.default_rng(1)).code
    assert code is not None and Generating().evaluate(code).ok
    assert operator_context(ToyDomain()).random_program is None


def test_a_failing_generator_gives_an_error_not_an_exception() -> None:
    def broken(rng: np.random.Generator) -> str:
        raise RuntimeError("out of ideas")

    ctx = DomainContext(description="x", function_name="f", random_program=broken)
    proposal = RandomSearch(ctx).propose([], np.random.default_rng(0))
    assert proposal.code is None and "out of ideas" in (proposal.error or "")
    blank = DomainContext(description="x", function_name="f", random_program=lambda rng: " ")
    proposal = RandomSearch(blank).propose([], np.random.default_rng(0))
    assert proposal.code is None and "not a program's text" in (proposal.error or "")


def test_a_run_of_random_search_stores_parentless_candidates(tmp_path) -> None:
    import evolm

    db = tmp_path / "random.db"
    overrides = {
        "domain": {"name": "parity"},
        "operators": [{"kind": "random"}],
        "llm": {"backend": "fake"},
        "engine": {"batch_size": 4, "workers": 1},
        "budget": {"evaluations": 9},
    }
    result = evolm.run(overrides, out=db)
    assert result.status == "completed"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT operator, parent_ids, generation FROM programs").fetchall()
        calls = conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0]
    assert calls == 0 and len(rows) == 9
    assert rows[0][0] == "seed"  # parity has one seed
    assert {r[0] for r in rows[1:]} == {"random"}
    assert all(r[1] == "[]" and r[2] == 0 for r in rows)
