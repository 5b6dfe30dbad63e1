"""The 4-Parity domain: bug injection, scoring on the 16 inputs, failures, the sandbox."""

from __future__ import annotations

import ast
import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from evolm.domains.base import get_domain, registered_domains
from evolm.domains.parity import (
    BUGS,
    CORRECT_PROGRAM,
    INPUTS,
    ParityDomain,
    bug_ids,
    parity_program,
    score_function,
)
from evolm.sandbox import SandboxPool, SandboxUnavailable
from evolm.types import Evaluation, Status


def program(body: str) -> str:
    return "def parity(b1, b2, b3, b4):\n" + "".join(f"    {line}\n" for line in body.split("\n"))


def true_parity(bits: tuple[int, ...]) -> int:
    return bin(int("".join(map(str, bits)), 2)).count("1") % 2


@pytest.fixture(scope="module")
def domain() -> ParityDomain:
    return ParityDomain(bugs=0)


def test_registered_and_built_by_name() -> None:
    assert "parity" in registered_domains()
    d = get_domain("parity", {"bugs": 3, "bug_seed": 4})
    assert isinstance(d, ParityDomain)
    assert (d.bugs, d.bug_seed, d.bits) == (3, 4, 4)
    assert d.qd_offset == 0.0
    assert d.eval_timeout == 2.0
    assert get_domain("parity").bugs == 5


def test_inputs_are_all_sixteen() -> None:
    assert len(INPUTS) == 16 and set(INPUTS) == set(itertools.product((0, 1), repeat=4))


def test_correct_program_is_fixed(domain: ParityDomain) -> None:
    assert parity_program(0) == CORRECT_PROGRAM
    assert domain.seeds() == [CORRECT_PROGRAM]
    ev = domain.evaluate(CORRECT_PROGRAM)
    assert ev.status is Status.OK, ev.error
    assert ev.fitness == 1.0 and ev.descriptors == (1.0, 1.0)
    assert ev.extras["correct"] == 16 and ev.extras["fixed"] is True
    assert ev.extras["answers"] == [true_parity(bits) for bits in INPUTS]
    assert ev.extras["first_problem"] is None


def test_bug_selection() -> None:
    assert bug_ids(5) == (1, 2, 3, 4, 5)
    assert bug_ids(0) == ()
    assert bug_ids(2) == (1, 2)  # bug_seed 0: the first bugs
    subsets = {bug_ids(2, s) for s in range(10)}
    assert subsets == set(itertools.combinations(range(1, 6), 2))
    assert bug_ids(2, 10) == bug_ids(2, 0)  # taken modulo the number of subsets
    assert [bug_ids(1, s) for s in range(5)] == [(1,), (2,), (3,), (4,), (5,)]
    assert set(BUGS) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("bugs", range(1, 6))
def test_every_bugged_program_parses_and_fails(bugs: int) -> None:
    n_subsets = len(list(itertools.combinations(range(5), bugs)))
    programs = set()
    for bug_seed in range(n_subsets):
        d = ParityDomain(bugs=bugs, bug_seed=bug_seed)
        (code,) = d.seeds()
        programs.add(code)
        ast.parse(code)
        assert "def parity(b1, b2, b3, b4):" in code
        ev = d.evaluate(code)
        assert ev.status is Status.OK, ev.error
        assert 0.0 <= ev.fitness < 1.0  # type: ignore[operator]
        assert ev.extras["fixed"] is False
    assert len(programs) == n_subsets


def test_single_bugs() -> None:
    def fitness(bug: int) -> float:
        d = ParityDomain(bugs=1, bug_seed=bug - 1)
        assert d.bug_ids == (bug,)
        return d.evaluate(d.seeds()[0]).fitness  # type: ignore[return-value]

    assert "sum([b, b2, b3, b4])" in parity_program(1, 0)
    assert fitness(1) == 0.0  # NameError everywhere
    assert fitness(3) == 0.0
    assert fitness(2) == 0.5  # parity of two of the bits
    assert fitness(4) == 0.5


def test_mod_three_bug_scores_what_it_should() -> None:
    code = parity_program(1, bug_seed=4)
    assert "% 3" in code and "% 2" not in code
    # From first principles: the program answers (number of ones) mod 3.
    expected = sum(sum(bits) % 3 == true_parity(bits) for bits in INPUTS) / 16
    ev = ParityDomain(bugs=1, bug_seed=4).evaluate(code)
    assert ev.fitness == expected
    even = [b for b in INPUTS if true_parity(b) == 0]
    odd = [b for b in INPUTS if true_parity(b) == 1]
    assert ev.descriptors == (
        sum(sum(b) % 3 == 0 for b in even) / 8,
        sum(sum(b) % 3 == 1 for b in odd) / 8,
    )
    assert ev.extras["answers"] == [sum(b) % 3 for b in INPUTS]


def test_name_error_seed_is_ok_with_zero_fitness() -> None:
    d = ParityDomain()
    ev = d.evaluate(d.seeds()[0])
    assert ev.status is Status.OK
    assert ev.fitness == 0.0 and ev.descriptors == (0.0, 0.0)
    assert ev.extras["answers"] == [None] * 16
    assert ev.extras["first_problem"] == (
        "parity(0, 0, 0, 0) raised NameError: name 'b' is not defined (line 3)"
    )


@pytest.mark.parametrize(
    ("body", "fitness", "descriptors"),
    [
        ("return 0", 0.5, (1.0, 0.0)),
        ("return 1", 0.5, (0.0, 1.0)),
        ("return (b1 + b2 + b3 + b4) % 2 == 1", 1.0, (1.0, 1.0)),  # bools count
        ("return b1 ^ b2 ^ b3 ^ b4", 1.0, (1.0, 1.0)),
        ("return 1 - (b1 + b2 + b3 + b4) % 2", 0.0, (0.0, 0.0)),
    ],
)
def test_descriptors_split_even_and_odd(
    domain: ParityDomain, body: str, fitness: float, descriptors: tuple[float, float]
) -> None:
    ev = domain.evaluate(program(body))
    assert ev.status is Status.OK, ev.error
    assert ev.fitness == fitness and ev.descriptors == descriptors
    assert ev.checked(domain.descriptor_space).ok


def test_descriptor_space(domain: ParityDomain) -> None:
    space = domain.descriptor_space
    assert space.names == ("even_correct", "odd_correct")
    assert space.bounds == ((0.0, 1.0), (0.0, 1.0))


@pytest.mark.parametrize(
    ("body", "right", "problem"),
    [
        # raises on the inputs with b1 == 1 only: those 8 are wrong, the rest are right
        (
            "if b1:\n    raise ValueError('no')\nreturn (b2 + b3 + b4) % 2",
            8,
            "parity(1, 0, 0, 0) raised ValueError: no (line 3)",
        ),
        ("return str((b1 + b2 + b3 + b4) % 2)", 0, "parity(0, 0, 0, 0) returned str"),
        ("return float((b1 + b2 + b3 + b4) % 2)", 0, "returned float; expected the int 0 or 1"),
        ("return None", 0, "returned NoneType"),
        ("return [0]", 0, "returned list"),
        ("import numpy as np\nreturn np.int64((b1 + b2 + b3 + b4) % 2)", 16, None),
        ("import numpy as np\nreturn np.bool_((b1 + b2 + b3 + b4) % 2)", 16, None),
        ("return 10 ** 40 + (b1 + b2 + b3 + b4) % 2", 0, None),
        ("import sys\nsys.exit(1)", 0, "parity(0, 0, 0, 0) called exit() (line 3)"),
        ("return 1 // 0", 0, "ZeroDivisionError"),
    ],
)
def test_inputs_that_raise_or_return_the_wrong_type_are_wrong(
    domain: ParityDomain, body: str, right: int, problem: str | None
) -> None:
    ev = domain.evaluate(program(body))
    assert ev.status is Status.OK, ev.error
    assert ev.extras["correct"] == right
    assert ev.fitness == right / 16
    if problem is None:
        assert ev.extras["first_problem"] is None
    else:
        assert problem in ev.extras["first_problem"]


def test_huge_answers_are_not_stored(domain: ParityDomain) -> None:
    ev = domain.evaluate(program("return 10 ** 40"))
    assert ev.extras["answers"] == [None] * 16


def test_int_subclass_with_broken_conversion_is_wrong(domain: ParityDomain) -> None:
    code = (
        "class Odd(int):\n"
        "    def __int__(self):\n"
        "        raise RuntimeError('no')\n\n"
        "def parity(b1, b2, b3, b4):\n"
        "    return Odd((b1 + b2 + b3 + b4) % 2)\n"
    )
    ev = domain.evaluate(code)
    assert ev.status is Status.OK
    assert ev.extras["correct"] == 0
    assert "returned Odd; expected the int 0 or 1" in ev.extras["first_problem"]


def test_missing_function_is_invalid(domain: ParityDomain) -> None:
    ev = domain.evaluate("def parity4(b1, b2, b3, b4):\n    return 0\n")
    assert ev.status is Status.INVALID
    assert ev.error == "program defines no function parity()"


def test_not_callable_is_invalid(domain: ParityDomain) -> None:
    ev = domain.evaluate("parity = 3\n")
    assert ev.status is Status.INVALID and "parity is a int" in ev.error  # type: ignore[operator]


def test_syntax_error_is_invalid(domain: ParityDomain) -> None:
    ev = domain.evaluate("def parity(b1, b2, b3, b4:\n    return 0\n")
    assert ev.status is Status.INVALID
    assert ev.error.startswith("SyntaxError at line 1:")  # type: ignore[union-attr]


def test_module_level_exception_is_error(domain: ParityDomain) -> None:
    ev = domain.evaluate("raise RuntimeError('boom')\n" + CORRECT_PROGRAM)
    assert ev.status is Status.ERROR and ev.error == "RuntimeError: boom (line 1)"


def test_module_level_exit_is_error(domain: ParityDomain) -> None:
    ev = domain.evaluate("import sys\nsys.exit(0)\n")
    assert ev.status is Status.ERROR and ev.error == "program called exit() (line 2)"


def test_wrong_arity_counts_every_input_wrong(domain: ParityDomain) -> None:
    ev = domain.evaluate("def parity(bits):\n    return sum(bits) % 2\n")
    assert ev.status is Status.OK and ev.fitness == 0.0
    assert "TypeError" in ev.extras["first_problem"]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"bugs": 6}, "0 to 5"),
        ({"bugs": -1}, "0 to 5"),
        ({"bugs": 2.0}, "0 to 5"),
        ({"bugs": True}, "0 to 5"),
        ({"bug_seed": -1}, "bug_seed"),
        ({"bug_seed": "a"}, "bug_seed"),
        ({"bits": 3}, "only bits=4"),
        ({"bits": 8}, "only bits=4"),
    ],
)
def test_bad_parameters(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_domain("parity", params)


def test_unknown_parameter() -> None:
    with pytest.raises(ValueError, match="bad parameters"):
        get_domain("parity", {"width": 4})


def test_context() -> None:
    ctx = ParityDomain().context()
    assert ctx.function_name == "parity" and ctx.file_name == "parity.py"
    assert "parity(b1, b2, b3, b4)" in ctx.description
    assert "16" in ctx.description
    assert ctx.api.startswith("#")


def functions() -> list[Callable[..., Any]]:
    return [
        lambda a, b, c, d: (a + b + c + d) % 2,
        lambda a, b, c, d: 0,
        lambda a, b, c, d: 1 / 0,
        lambda a, b, c, d: np.int8(a ^ b ^ c ^ d),
    ]


def test_score_function_on_trusted_functions() -> None:
    good, zero, raising, numpy = (score_function(f) for f in functions())
    assert good.fixed and good.correct == 16 and good.fitness == 1.0
    assert zero.correct == 8 and zero.descriptors == (1.0, 0.0)
    assert raising.correct == 0 and raising.first_problem is not None
    assert raising.first_problem.startswith("parity(0, 0, 0, 0) raised ZeroDivisionError")
    assert numpy.fixed


def test_evaluation_agrees_with_score_function(domain: ParityDomain) -> None:
    for bugs in range(6):
        code = parity_program(bugs)
        namespace: dict[str, Any] = {}
        exec(compile(code, "<program>", "exec"), namespace)  # our own program: trusted
        expected = score_function(namespace["parity"])
        ev = domain.evaluate(code)
        assert (ev.fitness, ev.descriptors) == (expected.fitness, expected.descriptors)


def test_same_result_in_the_sandbox() -> None:
    codes = [parity_program(k, s) for k, s in ((0, 0), (1, 4), (2, 1), (5, 0))]
    codes += ["def parity(b1, b2, b3, b4):\n    while True:\n        pass\n"]
    local = [ParityDomain(bugs=2).evaluate(code) for code in codes[:-1]]

    async def remote() -> list[Evaluation]:
        async with SandboxPool("parity", {"bugs": 2}, workers=1, timeout=1.0) as pool:
            return [await pool.evaluate(code, 0) for code in codes]

    try:
        results = asyncio.run(remote())
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox tier works here: {exc}")
    for ev, want in zip(results, local, strict=False):
        assert ev.status is Status.OK, ev.error
        assert (ev.fitness, ev.descriptors) == (want.fitness, want.descriptors)
        assert ev.extras["correct"] == want.extras["correct"]
        assert ev.extras["fixed"] == want.extras["fixed"]
    assert results[0].extras["fixed"] is True
    assert results[-1].status is Status.TIMEOUT


# --- two-phase scoring: score() validates what run() sent back --------------------------------


def test_run_sends_answers_and_score_scores_them(domain: ParityDomain) -> None:
    data = domain.run(program("return (b1 + b2) % 2"))
    assert isinstance(data, dict) and len(data["answers"]) == len(INPUTS)
    ev = domain.score(data)
    ref = score_function(lambda b1, b2, b3, b4: (b1 + b2) % 2)
    assert ev.ok and ev.fitness == ref.fitness and ev.descriptors == ref.descriptors
    assert ev.extras["answers"] == list(ref.answers)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([0] * 16, "map of answers"),
        ({"answers": [0] * 15, "first_problem": None}, "16 answers"),
        ({"answers": [True] * 16, "first_problem": None}, "got bool"),
        ({"answers": [2**40] * 16, "first_problem": None}, "below 2**31"),
        ({"answers": [0.0] * 16, "first_problem": None}, "got float"),
        ({"answers": [0] * 16, "first_problem": 3}, "first_problem must be a string"),
        ({"answers": [0] * 16, "first_problem": None, "fitness": 1.0}, "map of answers"),
    ],
)
def test_score_rejects_forged_answers(domain: ParityDomain, data: Any, words: str) -> None:
    ev = domain.score(data)
    assert ev.status is Status.INVALID and words in ev.error
