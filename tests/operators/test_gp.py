"""GPMutation: every child is a valid program, each kind makes the edit it names, determinism,
failures as error proposals, and a property test on random arithmetic programs."""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolm.domains.base import DomainContext, get_domain
from evolm.domains.image import ImageDomain
from evolm.domains.parity import CORRECT_PROGRAM, parity_program
from evolm.operators.base import Proposal
from evolm.operators.gp import KINDS, GPMutation
from evolm.types import Evaluation, Individual, Program, Status

FEATURES = '''from __future__ import annotations

import math

SCALE = 2.5  # a comment that unparse drops


def helper(x: float, k: int = 3) -> float:
    """Helper docstring 42."""
    total = 0.0
    for i in range(k):
        total += x ** i / math.factorial(i)
    else:
        total -= 1
    return total


def f(a, b=-2, *args, flag=True, **kw):
    """The target function."""
    global SCALE
    if a > b and not flag:
        a = -a
    elif a <= 0 or b != 1:
        b = b * 2 - 1
    while a < 10:
        a += 1
        if a == 7:
            break
    values = [v * SCALE for v in (a, b) if v >= 0]
    g = lambda t: t + 1
    try:
        r = a // b % 3
    except ZeroDivisionError:
        r = 0
    finally:
        pass
    assert r is not None
    return sum(values) + g(r) + helper(a) + (1 if r > 2 else 0) + (~r)
'''

NESTED = """def f(n):
    def inner(m):
        nonlocal n
        n = n + m
        return n
    match n:
        case 0:
            return 1
        case -1:
            return -1.5
        case _:
            pass
    async def later():
        return ~n
    class Box:
        size = 3
        def area(self):
            return self.size * self.size
    return inner(2) + Box().area()
"""

GLOBALS = """G = 0


def f():
    global G
    G = 1
    return G
"""

TINY = "def f():\n    return 1\n"
NOTHING = "def f():\n    pass\n"


def _programs() -> list[tuple[str, str]]:
    """(function name, code) for every program the tests mutate."""
    out = [("draw", code) for code in ImageDomain(size=16).seeds()]
    out += [("make_walker", code) for code in get_domain("sodarace").seeds()]
    out += [("parity", parity_program(k)) for k in range(6)]
    out += [("f", code) for code in (FEATURES, NESTED, GLOBALS, TINY)]
    return out


PROGRAMS = _programs()


def op_for(function_name: str, **kw: object) -> GPMutation:
    return GPMutation(DomainContext(description="test", function_name=function_name), **kw)  # type: ignore[arg-type]


def individual(code: str, pid: int = 3) -> Individual:
    return Individual(Program(id=pid, code=code), Evaluation(Status.OK, 0.0, (0.0,)))


def defines(code: str, function_name: str) -> bool:
    tree = ast.parse(code)
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function_name
        for node in tree.body
    )


def canonical(code: str) -> str:
    return ast.unparse(ast.parse(code))


# -- what an edit did, told from the parent and child trees ----------------------------------
def is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


class Numbers(ast.NodeTransformer):
    """Replace every number literal (``-3`` counting as one) by a marker; keep their values."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, ast.USub) and is_number(node.operand):
            self.values.append(-node.operand.value)  # type: ignore[attr-defined]
            return ast.Name(id="NUM", ctx=ast.Load())
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if is_number(node):
            self.values.append(node.value)
            return ast.Name(id="NUM", ctx=ast.Load())
        return node


class Ops(ast.NodeTransformer):
    """Replace every operator of one family by a fixed one; keep the originals."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.values: list[object] = []

    def generic_visit(self, node: ast.AST) -> ast.AST:
        node = super().generic_visit(node)
        if self.family == "binop" and isinstance(node, ast.BinOp | ast.AugAssign):
            self.values.append(type(node.op))
            node.op = ast.BitXor()
        elif self.family == "compare" and isinstance(node, ast.Compare):
            self.values.extend(type(op) for op in node.ops)
            node.ops = [ast.Is() for _ in node.ops]
        elif self.family == "boolop" and isinstance(node, ast.BoolOp):
            self.values.append(type(node.op))
            node.op = ast.And()
        elif self.family == "name" and isinstance(node, ast.Name):
            self.values.append(node.id)
            node.id = "NAME"
        return node


def normalised(code: str, transformer: Numbers | Ops) -> tuple[str, list[object]]:
    tree = transformer.visit(ast.parse(code))
    return ast.dump(tree), transformer.values


def exactly_one_differs(parent: str, child: str, make: Callable[[], Numbers | Ops]) -> bool:
    shape_p, values_p = normalised(parent, make())
    shape_c, values_c = normalised(child, make())
    if shape_p != shape_c or len(values_p) != len(values_c):
        return False
    return sum(a != b for a, b in zip(values_p, values_c, strict=True)) == 1


def statement_lists(tree: ast.AST) -> list[list[ast.stmt]]:
    return [
        value
        for node in ast.walk(tree)
        for _, value in ast.iter_fields(node)
        if isinstance(value, list) and value and all(isinstance(v, ast.stmt) for v in value)
    ]


def one_removed(big: str, small: str, *, copy_of_previous: bool = False) -> bool:
    """Removing one statement of ``big`` gives ``small`` (with ``copy_of_previous``: one
    that repeats the statement before it)."""
    tree, target = ast.parse(big), ast.dump(ast.parse(small))
    for body in statement_lists(tree):
        for i in range(len(body)):
            if copy_of_previous and (i == 0 or ast.dump(body[i]) != ast.dump(body[i - 1])):
                continue
            stmt = body.pop(i)
            same = ast.dump(tree) == target
            body.insert(i, stmt)
            if same:
                return True
    return False


def one_swapped(parent: str, child: str) -> bool:
    tree, target = ast.parse(parent), ast.dump(ast.parse(child))
    for body in statement_lists(tree):
        for i in range(len(body) - 1):
            body[i], body[i + 1] = body[i + 1], body[i]
            same = ast.dump(tree) == target
            body[i], body[i + 1] = body[i + 1], body[i]
            if same:
                return True
    return False


def one_unary_removed(big: str, small: str) -> bool:
    """Replacing one unary operation of ``big`` by its operand gives ``small``."""
    tree, target = ast.parse(big), ast.dump(ast.parse(small))
    for node in list(ast.walk(tree)):
        for field, value in ast.iter_fields(node):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if not isinstance(item, ast.UnaryOp):
                    continue
                swapped = copy.deepcopy(tree)
                # find the same position in the copy by walking both trees in step
                for a, b in zip(ast.walk(tree), ast.walk(swapped), strict=True):
                    if a is node:
                        holder = getattr(b, field)
                        if isinstance(value, list):
                            holder[i] = holder[i].operand
                        else:
                            setattr(b, field, holder.operand)
                        break
                if ast.dump(swapped) == target:
                    return True
    return False


def edit_matches(kind: str, parent: str, child: str) -> bool:
    if kind == "constant":
        return exactly_one_differs(parent, child, Numbers)
    if kind in ("binop", "compare", "boolop", "name"):
        return exactly_one_differs(parent, child, lambda: Ops(kind))
    if kind == "duplicate":
        return one_removed(child, parent, copy_of_previous=True)
    if kind == "delete":
        return one_removed(parent, child)
    if kind == "swap":
        return one_swapped(parent, child)
    assert kind == "unaryop"
    return one_unary_removed(parent, child) or one_unary_removed(child, parent)


# -- construction ------------------------------------------------------------------------------
def test_class_attributes() -> None:
    op = op_for("f")
    assert (op.name, op.num_parents, op.uses_llm) == ("gp", 1, False)
    assert op.kinds == KINDS
    assert op.weights == pytest.approx([1 / len(KINDS)] * len(KINDS))
    with pytest.raises(NotImplementedError, match="does not call an LLM"):
        op.finish(Proposal(parent_ids=(1,), request=None, code=TINY), "")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mutations": 0}, "1 <= low <= high"),
        ({"mutations": (3, 2)}, "1 <= low <= high"),
        ({"mutations": (0, 2)}, "1 <= low <= high"),
        ({"mutations": True}, "int or a"),
        ({"mutations": 1.5}, "int or a"),
        ({"mutations": (1, 2, 3)}, "int or a"),
        ({"kinds": ["constant", "rename"]}, r"unknown GP mutation kind 'rename'.*constant, binop"),
        ({"kinds": []}, "must not be empty; known kinds: constant"),
        ({"kinds": "constant"}, "not one string"),
        ({"kinds": ["swap", "swap"]}, "must not repeat"),
        ({"kinds": ["swap", "delete"], "weights": [1.0]}, "one number per kind"),
        ({"weights": [1.0] * (len(KINDS) - 1) + [-1.0]}, "not all zero"),
        ({"weights": [0.0] * len(KINDS)}, "not all zero"),
        ({"weights": [float("nan")] * len(KINDS)}, "finite"),
        ({"weights": ["a"] * len(KINDS)}, "numbers"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": float("inf")}, "sigma"),
        ({"sigma": "big"}, "sigma"),
        ({"mode": "diff"}, "mode"),
    ],
)
def test_bad_parameters(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        op_for("f", **kw)


def test_mutation_ranges_are_accepted() -> None:
    assert op_for("f", mutations=3).mutations == (3, 3)
    assert op_for("f", mutations=(1, 4)).mutations == (1, 4)
    assert op_for("f", mutations=[2, 2]).mutations == (2, 2)  # type: ignore[arg-type]
    op = op_for("f", kinds=["name", "swap"], weights=[3, 1])
    assert op.weights == pytest.approx([0.75, 0.25])


# -- every child is a program -------------------------------------------------------------------
@pytest.mark.parametrize(("function_name", "code"), PROGRAMS)
def test_every_proposal_is_a_valid_program_or_an_error(function_name: str, code: str) -> None:
    op = op_for(function_name, mutations=(1, 3))
    before = canonical(code)
    for seed in range(40):
        proposal = op.propose([individual(code)], np.random.default_rng(seed))
        assert proposal.parent_ids == (3,)
        assert proposal.request is None
        if proposal.code is None:
            assert proposal.error
            continue
        assert proposal.error is None
        assert proposal.code.endswith("\n")
        compile(proposal.code, "<child>", "exec")
        assert defines(proposal.code, function_name)
        single = op_for(function_name).propose([individual(code)], np.random.default_rng(seed))
        assert single.code is not None and canonical(single.code) != before


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_makes_the_edit_it_names(kind: str) -> None:
    made = 0
    for function_name, code in PROGRAMS:
        op = op_for(function_name, kinds=[kind])
        parent = canonical(code)
        for seed in range(15):
            mutant = op.mutate(code, np.random.default_rng(seed))
            if mutant.code is None:
                assert mutant.error == f"no site for mutation {kind!r}", mutant.error
                continue
            made += 1
            assert len(mutant.applied) == 1 and mutant.applied[0].startswith(f"{kind}: ")
            assert defines(mutant.code, function_name)
            assert edit_matches(kind, parent, mutant.code), (kind, mutant.applied, mutant.code)
    assert made >= 15


def test_edit_checkers_reject_other_kinds() -> None:
    # the checkers above are not vacuous: a constant edit is not a binop edit, and so on
    parent = canonical(FEATURES)
    for kind in KINDS:
        child = op_for("f", kinds=[kind]).mutate(FEATURES, np.random.default_rng(1)).code
        assert child is not None
        others = [k for k in KINDS if k != kind and edit_matches(k, parent, child)]
        assert others == [], (kind, others)


def test_constant_never_touches_bools_strings_or_docstrings() -> None:
    code = 'def f():\n    """Doc 12."""\n    x = "7"\n    return (x, True, None, 7)\n'
    op = op_for("f", kinds=["constant"])
    for seed in range(30):
        mutant = op.mutate(code, np.random.default_rng(seed))
        assert mutant.code is not None
        tree = ast.parse(mutant.code)
        assert ast.get_docstring(tree.body[0]) == "Doc 12."  # type: ignore[arg-type]
        assert "'7'" in mutant.code and "True" in mutant.code and "None" in mutant.code
        assert "7)" not in mutant.code


def test_constant_values() -> None:
    op = op_for("f", kinds=["constant"])
    ints, floats = set(), set()
    for seed in range(200):
        for code, found in (
            ("def f():\n    return -3\n", ints),
            ("def f():\n    return 0.5\n", floats),
        ):
            mutant = op.mutate(code, np.random.default_rng(seed))
            assert mutant.code is not None
            (value,) = normalised(mutant.code, Numbers())[1]
            found.add(value)
    assert all(isinstance(v, int) and v != -3 for v in ints)
    assert {-4, -2} <= ints  # +-1 steps
    assert ints & set(range(-3, 6))  # small replacements
    assert all(isinstance(v, float) and v != 0.5 and np.isfinite(v) for v in floats)
    assert all(float(f"{v:.4g}") == v for v in floats)  # rounded to 4 significant digits
    assert any(v > 0.5 for v in floats) and any(v < 0.5 for v in floats)


def test_zero_float_moves() -> None:
    mutant = op_for("f", kinds=["constant"]).mutate(
        "def f():\n    return 0.0\n", np.random.default_rng(0)
    )
    assert mutant.code is not None
    (value,) = normalised(mutant.code, Numbers())[1]
    assert isinstance(value, float) and value != 0.0


def test_name_uses_only_names_of_the_same_function() -> None:
    code = "def helper(p, q):\n    return p - q\n\n\ndef f(a, b):\n    c = a + b\n    return c\n"
    op = op_for("f", kinds=["name"])
    for seed in range(40):
        mutant = op.mutate(code, np.random.default_rng(seed))
        assert mutant.code is not None
        helper, f = ast.parse(mutant.code).body
        assert {n.id for n in ast.walk(helper) if isinstance(n, ast.Name)} <= {"p", "q"}
        assert {n.id for n in ast.walk(f) if isinstance(n, ast.Name)} <= {"a", "b", "c"}


def test_name_has_no_site_without_another_name() -> None:
    mutant = op_for("f", kinds=["name"]).mutate(
        "def f(x):\n    return x\n", np.random.default_rng(0)
    )
    assert mutant.code is None and mutant.error == "no site for mutation 'name'"


def test_target_function_is_never_deleted() -> None:
    code = "import math\n\n\ndef helper():\n    return 1\n\n\ndef f():\n    return helper()\n"
    op = op_for("f", kinds=["delete"])
    deleted = set()
    for seed in range(40):
        mutant = op.mutate(code, np.random.default_rng(seed))
        assert mutant.code is not None and defines(mutant.code, "f")
        deleted.add(mutant.applied[0])
    assert any("functiondef" in d for d in deleted) and any("import" in d for d in deleted)


def test_single_statement_bodies_are_not_emptied() -> None:
    mutant = op_for("f", kinds=["delete"]).mutate(
        "def f():\n    return 1\n", np.random.default_rng(0)
    )
    assert mutant.code is None and mutant.error == "no site for mutation 'delete'"


def test_future_imports_and_docstrings_stay_first() -> None:
    code = (
        '"""Module doc."""\nfrom __future__ import annotations\nimport math\nX = 1\n\n\n'
        'def f():\n    """Doc."""\n    y = 2\n    return y\n'
    )
    op = op_for("f", kinds=["swap", "delete", "duplicate"])
    for seed in range(40):
        mutant = op.mutate(code, np.random.default_rng(seed))
        assert mutant.code is not None
        tree = ast.parse(mutant.code)
        assert ast.get_docstring(tree) == "Module doc."
        assert isinstance(tree.body[1], ast.ImportFrom) and tree.body[1].module == "__future__"
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
        assert ast.get_docstring(fn) == "Doc."


def test_edits_that_do_not_compile_are_skipped() -> None:
    # swapping `global G` below `G = 1` is a SyntaxError; the other swap site must be used
    op = op_for("f", kinds=["swap"])
    for seed in range(20):
        mutant = op.mutate(GLOBALS, np.random.default_rng(seed))
        assert mutant.code is not None
        compile(mutant.code, "<child>", "exec")
        assert mutant.code.index("global G") < mutant.code.index("G = 1")


def test_fallback_to_another_kind() -> None:
    op = op_for("f", kinds=["constant", "binop"], weights=[100.0, 1.0])
    mutant = op.mutate("def f(a, b):\n    return a + b\n", np.random.default_rng(0))
    assert mutant.code is not None and mutant.applied[0].startswith("binop: + -> ")


def test_zero_weight_kind_is_not_a_fallback() -> None:
    op = op_for("f", kinds=["constant", "binop"], weights=[1.0, 0.0])
    mutant = op.mutate("def f(a, b):\n    return a + b\n", np.random.default_rng(0))
    assert mutant.code is None and mutant.error == "no site for mutation 'constant'"


def test_no_site_at_all_is_an_error_proposal() -> None:
    proposal = op_for("f").propose([individual(NOTHING)], np.random.default_rng(0))
    assert proposal.code is None and proposal.request is None
    assert proposal.error is not None and proposal.error.startswith("no site for mutation ")
    for kind in KINDS:
        assert repr(kind) in proposal.error


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("def f(:\n    return 1\n", "parent does not parse: SyntaxError at line 1"),
        ("x = 1\0\n", "parent does not parse: "),
        ("def g():\n    return 1\n", "parent defines no function f() at top level"),
        ("class A:\n    def f(self):\n        return 1\n", "parent defines no function f()"),
    ],
)
def test_bad_parent_is_an_error_proposal(code: str, error: str) -> None:
    proposal = op_for("f").propose([individual(code, pid=9)], np.random.default_rng(0))
    assert proposal.parent_ids == (9,)
    assert proposal.code is None and proposal.request is None
    assert proposal.error is not None and proposal.error.startswith(error)


@pytest.mark.parametrize("depth", [900, 5000])
def test_deeply_nested_parent_is_an_error_not_a_crash(depth: int) -> None:
    code = "def f():\n    return " + "-" * depth + "1\n"
    proposal = op_for("f").propose([individual(code)], np.random.default_rng(0))
    assert proposal.code is None
    assert proposal.error is not None and "RecursionError" in proposal.error


def test_wrong_number_of_parents() -> None:
    with pytest.raises(ValueError, match="takes 1 parent, got 2"):
        op_for("f").propose([individual(TINY), individual(TINY)], np.random.default_rng(0))


def test_comments_are_dropped_docstrings_kept() -> None:
    mutant = op_for("helper", kinds=["constant"]).mutate(FEATURES, np.random.default_rng(0))
    assert mutant.code is not None
    assert "#" not in mutant.code
    assert '"""Helper docstring 42."""' in mutant.code


# -- determinism and counts -----------------------------------------------------------------------
def test_same_seed_same_child() -> None:
    op = op_for("f", mutations=(1, 4))
    for seed in range(10):
        a = op.propose([individual(FEATURES)], np.random.default_rng(seed))
        b = op.propose([individual(FEATURES)], np.random.default_rng(seed))
        assert a == b
    children = {
        op.propose([individual(FEATURES)], np.random.default_rng(s)).code for s in range(20)
    }
    assert len(children) >= 15


def test_number_of_edits() -> None:
    op = op_for("f", mutations=(2, 4))
    counts = {len(op.mutate(FEATURES, np.random.default_rng(s)).applied) for s in range(40)}
    assert counts == {2, 3, 4}
    assert len(op_for("f", mutations=3).mutate(FEATURES, np.random.default_rng(0)).applied) == 3


def test_later_edits_that_find_nothing_keep_earlier_ones() -> None:
    # two delete sites; after one deletion the body holds one statement, so no site is left
    code = "def f():\n    x = 1\n    return 2\n"
    mutant = op_for("f", kinds=["delete"], mutations=3).mutate(code, np.random.default_rng(0))
    assert mutant.code is not None and len(mutant.applied) == 1


# -- the parity bugs are one GP edit away from the fix ------------------------------------------
@pytest.mark.parametrize(
    ("bug", "kind"), [(1, "name"), (2, "name"), (3, "name"), (4, "name"), (5, "constant")]
)
def test_each_parity_bug_can_be_undone_by_one_edit(bug: int, kind: str) -> None:
    code = parity_program(1, bug_seed=bug - 1)
    op = op_for("parity", kinds=[kind])
    target = canonical(CORRECT_PROGRAM)
    assert any(
        op.mutate(code, np.random.default_rng(seed)).code == target + "\n" for seed in range(400)
    )


# -- property test ------------------------------------------------------------------------------
_leaf = st.one_of(
    st.integers(-20, 20).map(str),
    st.floats(-10, 10, allow_nan=False).map(lambda v: repr(round(v, 3))),
    st.sampled_from(["x", "y", "z"]),
)
_expr = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda s: f"-{s}"),
    ),
    max_leaves=6,
)
_cond = st.tuples(_expr, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), _expr).map(" ".join)


@st.composite
def arithmetic_programs(draw: st.DrawFn) -> str:
    return (
        "def f(x, y):\n"
        f"    z = {draw(_expr)}\n"
        f"    if {draw(_cond)} {draw(st.sampled_from(['and', 'or']))} {draw(_cond)}:\n"
        f"        z = {draw(_expr)}\n"
        f"    return z\n"
    )


@settings(max_examples=150, deadline=None)
@given(
    code=arithmetic_programs(),
    seed=st.integers(0, 2**32),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4, unique=True),
)
def test_property_children_of_random_programs_are_valid(
    code: str, seed: int, kinds: list[str]
) -> None:
    op = op_for("f", kinds=kinds, mutations=(1, 3))
    mutant = op.mutate(code, np.random.default_rng(seed))
    if mutant.code is None:
        assert mutant.error
        return
    compile(mutant.code, "<child>", "exec")
    assert defines(mutant.code, "f")
    assert 1 <= len(mutant.applied) <= 3
    assert all(a.split(":")[0] in kinds for a in mutant.applied)
    again = op.mutate(code, np.random.default_rng(seed))
    assert again == mutant
