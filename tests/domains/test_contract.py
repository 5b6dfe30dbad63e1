"""The domain contract, over every registered domain, through the real sandbox.

Every domain: describes itself (a context whose function its seeds define, a descriptor space;
an LLM-scored text domain, ``scoring = "llm"``, only this part, as it never uses the sandbox),
scores each of its seeds ``ok`` with a finite fitness and ``space.dim`` finite descriptors, gives
the same evaluation for the same program and seed, and turns garbage programs into failure
values (never an exception, never ``ok``).
"""

from __future__ import annotations

import ast
import asyncio

import pytest

from evolm.domains.base import DOMAINS, get_domain
from evolm.sandbox import SandboxPool
from evolm.types import Status

# Never ok: no function to call.
GARBAGE = {
    "syntax error": "def f(:\n    return 1\n",
    "prose": "Here is an improved version of the program that should work better.",
    "empty": "",
    "no such function": "def something_else():\n    return 1\n",
    "module raises": "raise RuntimeError('boom')\ndef {fn}(*args, **kwargs):\n    return 1\n",
}
# A failure value, or (where the domain scores per case, like parity) an ok score that passes
# the archive's checks.
MISBEHAVING = {
    "function raises": "def {fn}(*args, **kwargs):\n    raise RuntimeError('boom')\n",
    "wrong type": "def {fn}(*args, **kwargs):\n    return object()\n",
}


def _evaluate(name: str, programs: list[tuple[str, int]], timeout: float) -> list:
    async def go() -> list:
        async with SandboxPool(name, {}, workers=1, timeout=timeout) as pool:
            return [await pool.evaluate(code, seed) for code, seed in programs]

    return asyncio.run(go())


@pytest.mark.parametrize("name", DOMAINS.names())
def test_domain_contract(name: str) -> None:
    dom = get_domain(name)
    ctx, space = dom.context(), dom.descriptor_space
    assert ctx.description.strip() and ctx.function_name.isidentifier()
    assert space.dim == len(space.names) == len(space.bounds) >= 1
    assert all(lo < hi for lo, hi in space.bounds)
    seeds = dom.seeds()
    assert seeds, f"{name} has no seed programs"
    if dom.scoring == "llm":
        # Scored in the engine by LLM calls (texts are never run): no sandbox part applies;
        # the domain's own tests assess them with a stand-in client.
        assert all(s.strip() for s in seeds) and ctx.language == "text"
        assert asyncio.iscoroutinefunction(dom.assess)
        return
    for code in seeds:
        defined = {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)}
        assert ctx.function_name in defined

    garbage = [g.format(fn=ctx.function_name) for g in (*GARBAGE.values(), *MISBEHAVING.values())]
    programs = [(code, 3) for code in seeds] + [(seeds[0], 3)] + [(g, 3) for g in garbage]
    results = _evaluate(name, programs, timeout=dom.eval_timeout)
    seed_results, again = results[: len(seeds)], results[len(seeds)]
    bad = results[len(seeds) + 1 : len(seeds) + 1 + len(GARBAGE)]
    odd = results[len(seeds) + 1 + len(GARBAGE) :]

    for ev in seed_results:
        assert ev.status is Status.OK, ev.error
        checked = ev.checked(
            space, dom.fitness_bounds, descriptors_in_space=dom.descriptors_in_space
        )
        assert checked.status is Status.OK, checked.error
        assert len(checked.descriptors) == space.dim
    same = seed_results[0]
    assert (again.status, again.fitness, again.descriptors) == (
        same.status,
        same.fitness,
        same.descriptors,
    )
    for label, ev in zip(GARBAGE, bad, strict=True):
        assert ev.status is not Status.OK, f"{name}: {label} was scored ok"
        assert ev.error, f"{name}: {label} failed without a reason"
    for label, ev in zip(MISBEHAVING, odd, strict=True):
        if ev.status is Status.OK:
            assert ev.checked(space).status is Status.OK, f"{name}: {label}: {ev}"
        else:
            assert ev.error, f"{name}: {label} failed without a reason"
