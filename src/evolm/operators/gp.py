"""A genetic-programming mutation that edits the parent's syntax tree, with no LLM involved.

ELM (Lehman et al. 2022, section 3) measures LLM mutation against the classic alternative:
random, local edits to a program's abstract syntax tree. :class:`GPMutation` is that baseline.
It parses the parent with :mod:`ast`, applies one or more small edits chosen at random, and
writes the tree back out with :func:`ast.unparse`, so the child is **reformatted and loses every
comment** of the parent (docstrings are kept; they are part of the tree).

Kinds of edit (:data:`KINDS`); each picks one applicable site of the whole module uniformly:

========== ===============================================================================
kind       edit
========== ===============================================================================
constant   change one number literal (never a bool, string or docstring). An int moves by
           +-1 (half the time), by +-2..5 (a quarter) or becomes another int in -3..5; a
           float is multiplied by ``exp(N(0, sigma))`` (three quarters of the time, and
           never for 0.0) or moved by ``N(0, sigma)``, then rounded to 4 significant digits.
           ``-3`` counts as one literal.
binop      replace an arithmetic operator (``+ - * / // % **``, also in ``x += ...``) with
           another of the seven. ``**`` is not guarded: a huge power only costs the child its
           evaluation, which the sandbox's time and memory limits end.
compare    replace a comparison operator (``< <= > >= == !=``) with another of the six.
boolop     swap ``and`` and ``or``.
unaryop    remove a unary ``not``, ``-``, ``+`` or ``~`` (keeping its operand), or negate the
           condition of an ``if``, ``while``, conditional expression or ``assert`` with ``not``.
name       replace a variable read (a ``Name`` in load context) with another name used in the
           same function (read or written there) or one of its parameters; comprehensions
           count as part of their function; a lambda or class body is its own scope.
duplicate  insert a copy of a statement right after it. Statements whose copy could never
           change behaviour are not sites: bare literals (docstrings), ``pass``, imports,
           ``global``/``nonlocal``, ``def``/``class``, ``return``, ``raise``, ``break``,
           ``continue``.
delete     delete a statement from a body that holds more than one (a body is never left
           empty). Never the top-level ``def`` of the domain's function, a bare literal or a
           ``pass``.
swap       swap two adjacent statements of a body (neither a bare literal).
========== ===============================================================================

``from __future__`` imports are never duplicated, deleted or moved. Every edit is applied to a
copy of the tree; the child is kept only if its text compiles (``compile``, which never runs
it), still defines the domain's function at top level and differs from the parent's unparsed
text. Up to four sites of the chosen kind are tried that way, then the other kinds in a random
order. With ``mutations > 1`` the edits are applied one after another (they can undo
each other); if a later one finds nothing to do, the child carries the edits made so far. All
randomness comes from the ``rng`` passed to :meth:`GPMutation.propose`, so a seeded generator
gives the same child every time.
"""

from __future__ import annotations

import ast
import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from evolm.domains.base import DomainContext
from evolm.operators.base import Operator, Proposal, choice_weights
from evolm.types import Individual

__all__ = ["KINDS", "GPMutation", "Mutant"]

KINDS: tuple[str, ...] = (
    "constant",
    "binop",
    "compare",
    "boolop",
    "unaryop",
    "name",
    "duplicate",
    "delete",
    "swap",
)
"""The edit kinds :class:`GPMutation` knows, in their default order."""

_SITE_TRIES = 4
_FLOAT_DIGITS = 4
_SMALL_INTS = tuple(range(-3, 6))

_ARITH: tuple[type[ast.operator], ...] = (
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
)
_COMPARE: tuple[type[ast.cmpop], ...] = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_SYMBOL: dict[type[ast.AST], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.And: "and",
    ast.Or: "or",
    ast.Not: "not",
    ast.USub: "-",
    ast.UAdd: "+",
    ast.Invert: "~",
}
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
# statements whose copy, inserted right after them, can never change what the program does
_NO_OP_COPY = (
    ast.Pass,
    ast.Import,
    ast.ImportFrom,
    ast.Global,
    ast.Nonlocal,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Return,
    ast.Raise,
    ast.Break,
    ast.Continue,
)

_Site = Callable[[np.random.Generator], str]
"""Applies one edit to the tree it was collected from (in place); returns what it did."""


@dataclass(frozen=True)
class Mutant:
    """What :meth:`GPMutation.mutate` made: the child's ``code`` and a description of each
    edit in ``applied``, or ``code`` None and the ``error`` saying why there is no child."""

    code: str | None
    applied: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class _Slot:
    """One node of the tree and where it hangs: ``parent.field`` or ``parent.field[index]``."""

    node: ast.AST
    parent: ast.AST | None
    field: str
    index: int | None
    scope: ast.AST


def _walk(tree: ast.Module) -> list[_Slot]:
    """Every node in pre-order (iteratively, so deep trees cannot overflow the stack), with the
    innermost scope each one is evaluated in (the body of a function, lambda or class belongs
    to it; its arguments, defaults and decorators to the scope around it)."""
    out: list[_Slot] = []
    stack: list[_Slot] = [_Slot(tree, None, "", None, tree)]
    while stack:
        slot = stack.pop()
        out.append(slot)
        node = slot.node
        children: list[_Slot] = []
        for field, value in ast.iter_fields(node):
            scope = node if isinstance(node, _SCOPES) and field == "body" else slot.scope
            if isinstance(value, ast.AST):
                children.append(_Slot(value, node, field, None, scope))
            elif isinstance(value, list):
                children.extend(
                    _Slot(item, node, field, i, scope)
                    for i, item in enumerate(value)
                    if isinstance(item, ast.AST)
                )
        stack.extend(reversed(children))
    return out


def _replace(slot: _Slot, new: ast.AST) -> None:
    if slot.index is None:
        setattr(slot.parent, slot.field, new)
    else:
        getattr(slot.parent, slot.field)[slot.index] = new


def _where(node: ast.AST) -> str:
    line = getattr(node, "lineno", None)
    return f" (line {line})" if line is not None else ""


def _is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


def _number(value: int | float) -> ast.expr:
    """A literal for ``value``; negative numbers become ``-(literal)`` as the parser makes them."""
    if value < 0 or (isinstance(value, float) and math.copysign(1.0, value) < 0):
        return ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=-value))
    return ast.Constant(value=value)


def _new_int(x: int, rng: np.random.Generator) -> int:
    r = rng.random()
    sign = 1 if rng.random() < 0.5 else -1
    if r < 0.5:
        return x + sign
    if r < 0.75:
        return x + sign * int(rng.integers(2, 6))
    choices = [v for v in _SMALL_INTS if v != x]
    return choices[int(rng.integers(len(choices)))]


def _new_float(x: float, sigma: float, rng: np.random.Generator) -> float:
    for _ in range(16):
        if x == 0.0 or rng.random() < 0.25:
            v = x + float(rng.normal(0.0, sigma))
        else:
            v = x * math.exp(float(rng.normal(0.0, sigma)))
        v = float(f"{v:.{_FLOAT_DIGITS}g}")
        if math.isfinite(v) and v != x:
            return v + 0.0  # no negative zero
    return x / 2.0 if x != 0.0 else sigma


def _is_bare_literal(stmt: ast.AST) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


def _is_future(stmt: ast.AST) -> bool:
    return isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"


def _defines(tree: ast.Module, function_name: str) -> bool:
    return any(isinstance(node, _FUNCTIONS) and node.name == function_name for node in tree.body)


def _statement(node: ast.stmt) -> str:
    return f"{type(node).__name__.lower()} statement{_where(node)}"


class _Collector:
    """The sites of each kind in one tree (the tree is edited in place by the sites)."""

    def __init__(self, tree: ast.Module, function_name: str, sigma: float) -> None:
        self.tree = tree
        self.function_name = function_name
        self.sigma = sigma
        self.slots = _walk(tree)

    def sites(self, kind: str) -> list[_Site]:
        return getattr(self, f"_{kind}")()

    # -- expressions ---------------------------------------------------------------------------
    def _constant(self) -> list[_Site]:
        sites: list[_Site] = []
        for slot in self.slots:
            node = slot.node
            if (
                isinstance(node, ast.UnaryOp)
                and isinstance(node.op, ast.USub)
                and _is_number(node.operand)
            ):
                value = -node.operand.value  # type: ignore[attr-defined]
            elif _is_number(node) and not (
                isinstance(slot.parent, ast.UnaryOp) and isinstance(slot.parent.op, ast.USub)
            ):
                value = node.value  # type: ignore[attr-defined]
            else:
                continue
            sites.append(self._constant_site(slot, value))
        return sites

    def _constant_site(self, slot: _Slot, value: int | float) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            if isinstance(value, int):
                new: int | float = _new_int(value, rng)
            else:
                new = _new_float(value, self.sigma, rng)
            replacement = _number(new)
            ast.copy_location(replacement, slot.node)
            _replace(slot, replacement)
            return f"constant: {value!r} -> {new!r}{_where(slot.node)}"

        return apply

    def _binop(self) -> list[_Site]:
        sites: list[_Site] = []
        for slot in self.slots:
            node = slot.node
            if isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _ARITH:
                sites.append(self._binop_site(node))
        return sites

    @staticmethod
    def _binop_site(node: ast.BinOp | ast.AugAssign) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            old = type(node.op)
            choices = [op for op in _ARITH if op is not old]
            new = choices[int(rng.integers(len(choices)))]
            node.op = new()
            return f"binop: {_SYMBOL[old]} -> {_SYMBOL[new]}{_where(node)}"

        return apply

    def _compare(self) -> list[_Site]:
        sites: list[_Site] = []
        for slot in self.slots:
            node = slot.node
            if isinstance(node, ast.Compare):
                sites.extend(
                    self._compare_site(node, i)
                    for i, op in enumerate(node.ops)
                    if type(op) in _COMPARE
                )
        return sites

    @staticmethod
    def _compare_site(node: ast.Compare, i: int) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            old = type(node.ops[i])
            choices = [op for op in _COMPARE if op is not old]
            new = choices[int(rng.integers(len(choices)))]
            node.ops[i] = new()
            return f"compare: {_SYMBOL[old]} -> {_SYMBOL[new]}{_where(node)}"

        return apply

    def _boolop(self) -> list[_Site]:
        return [self._boolop_site(s.node) for s in self.slots if isinstance(s.node, ast.BoolOp)]

    @staticmethod
    def _boolop_site(node: ast.BoolOp) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            old = type(node.op)
            new: type[ast.boolop] = ast.Or if old is ast.And else ast.And
            node.op = new()
            return f"boolop: {_SYMBOL[old]} -> {_SYMBOL[new]}{_where(node)}"

        return apply

    def _unaryop(self) -> list[_Site]:
        sites: list[_Site] = []
        for slot in self.slots:
            node = slot.node
            if isinstance(node, ast.UnaryOp):
                if isinstance(node.op, ast.USub | ast.UAdd) and _is_number(node.operand):
                    continue  # a signed literal: the constant kind's business
                sites.append(self._remove_unary_site(slot, node))
            elif isinstance(node, ast.If | ast.While | ast.IfExp | ast.Assert):
                test = node.test
                if not (isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)):
                    sites.append(self._negate_site(node))
        return sites

    @staticmethod
    def _remove_unary_site(slot: _Slot, node: ast.UnaryOp) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            _replace(slot, node.operand)
            return f"unaryop: removed {_SYMBOL[type(node.op)]}{_where(node)}"

        return apply

    @staticmethod
    def _negate_site(node: ast.If | ast.While | ast.IfExp | ast.Assert) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            node.test = ast.copy_location(ast.UnaryOp(op=ast.Not(), operand=node.test), node.test)
            return f"unaryop: negated the {type(node).__name__.lower()} condition{_where(node)}"

        return apply

    def _name(self) -> list[_Site]:
        names: dict[int, set[str]] = {}
        for slot in self.slots:
            node = slot.node
            if isinstance(node, ast.Name):
                names.setdefault(id(slot.scope), set()).add(node.id)
            if isinstance(node, (*_FUNCTIONS, ast.Lambda)):
                a = node.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
                params += [p for p in (a.vararg, a.kwarg) if p is not None]
                names.setdefault(id(node), set()).update(p.arg for p in params)
        sites: list[_Site] = []
        for slot in self.slots:
            node = slot.node
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                others = sorted(names[id(slot.scope)] - {node.id})
                if others:
                    sites.append(self._name_site(node, others))
        return sites

    @staticmethod
    def _name_site(node: ast.Name, others: list[str]) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            old, node.id = node.id, others[int(rng.integers(len(others)))]
            return f"name: {old} -> {node.id}{_where(node)}"

        return apply

    # -- statements ----------------------------------------------------------------------------
    def _bodies(self) -> list[tuple[ast.AST, list[ast.stmt]]]:
        """Every statement list of the tree (module, function and block bodies), in order."""
        seen: set[tuple[int, str]] = set()
        out: list[tuple[ast.AST, list[ast.stmt]]] = []
        for slot in self.slots:
            if slot.index is None or slot.parent is None or not isinstance(slot.node, ast.stmt):
                continue
            key = (id(slot.parent), slot.field)
            if key not in seen:
                seen.add(key)
                out.append((slot.parent, getattr(slot.parent, slot.field)))
        return out

    def _movable(self, stmt: ast.stmt) -> bool:
        return not (_is_bare_literal(stmt) or _is_future(stmt))

    def _duplicate(self) -> list[_Site]:
        sites: list[_Site] = []
        for _, body in self._bodies():
            for i, stmt in enumerate(body):
                if self._movable(stmt) and not isinstance(stmt, _NO_OP_COPY):
                    sites.append(self._duplicate_site(body, i))
        return sites

    @staticmethod
    def _duplicate_site(body: list[ast.stmt], i: int) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            body.insert(i + 1, copy.deepcopy(body[i]))
            return f"duplicate: {_statement(body[i])}"

        return apply

    def _delete(self) -> list[_Site]:
        sites: list[_Site] = []
        for parent, body in self._bodies():
            if len(body) < 2:
                continue
            for i, stmt in enumerate(body):
                protected = (
                    isinstance(parent, ast.Module)
                    and isinstance(stmt, _FUNCTIONS)
                    and stmt.name == self.function_name
                )
                if self._movable(stmt) and not protected and not isinstance(stmt, ast.Pass):
                    sites.append(self._delete_site(body, i))
        return sites

    @staticmethod
    def _delete_site(body: list[ast.stmt], i: int) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            stmt = body.pop(i)
            return f"delete: {_statement(stmt)}"

        return apply

    def _swap(self) -> list[_Site]:
        sites: list[_Site] = []
        for _, body in self._bodies():
            for i in range(len(body) - 1):
                if self._movable(body[i]) and self._movable(body[i + 1]):
                    sites.append(self._swap_site(body, i))
        return sites

    @staticmethod
    def _swap_site(body: list[ast.stmt], i: int) -> _Site:
        def apply(rng: np.random.Generator) -> str:
            body[i], body[i + 1] = body[i + 1], body[i]
            return f"swap: {_statement(body[i + 1])} and the next"

        return apply


class GPMutation(Operator):
    """Mutate one parent with random syntax-tree edits (ELM's genetic-programming baseline).

    Its proposals carry finished code (``request`` None), or no code and an ``error`` when no
    edit could be made; it never calls a model and implements no :meth:`finish` (the base
    class's raises NotImplementedError). See the module docstring for the edit kinds and how
    sites are chosen.

    Args:
        context: the domain's prompt context; only ``function_name`` is used (the child must
            still define it at top level, and its ``def`` is never deleted).
        mode: accepted for a uniform operator signature (``"chat"`` or ``"completion"``);
            ignored.
        mutations: edits per child: an int >= 1, or ``(low, high)`` with ``1 <= low <= high``
            to draw the number uniformly from ``low..high`` for each child.
        kinds: the edit kinds to use (a subset of :data:`KINDS`); default all of them.
        weights: relative probability of trying each kind first (one per kind, finite, >= 0,
            not all zero); default uniform. A kind of weight 0 is never used, not even as a
            fallback.
        sigma: scale of float-constant changes (log-normal factor and Gaussian step), > 0.

    Raises:
        ValueError: bad mode, mutations, kinds (unknown, repeated or empty; the message lists
            the known ones), weights or sigma.
    """

    name = "gp"
    num_parents = 1
    uses_llm = False

    def __init__(
        self,
        context: DomainContext,
        mode: str = "chat",
        *,
        mutations: int | tuple[int, int] = 1,
        kinds: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
        sigma: float = 0.5,
    ) -> None:
        super().__init__(context, mode)
        self.mutations = self._check_mutations(mutations)
        if kinds is None:
            kinds = KINDS
        if isinstance(kinds, str):
            raise ValueError(f"kinds must be a list of kind names, not one string ({kinds!r})")
        self.kinds = tuple(kinds)
        if not self.kinds:
            raise ValueError(f"kinds must not be empty; known kinds: {', '.join(KINDS)}")
        for kind in self.kinds:
            if kind not in KINDS:
                raise ValueError(
                    f"unknown GP mutation kind {kind!r}; known kinds: {', '.join(KINDS)}"
                )
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"kinds must not repeat, got {list(self.kinds)}")
        self.weights = choice_weights(
            weights, len(self.kinds), f"kind ({len(self.kinds)}: {', '.join(self.kinds)})"
        )
        if isinstance(sigma, bool) or not isinstance(sigma, int | float):
            raise ValueError(f"sigma must be a number > 0, got {sigma!r}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        self.sigma = float(sigma)

    @staticmethod
    def _check_mutations(mutations: int | tuple[int, int]) -> tuple[int, int]:
        def is_int(v: object) -> bool:
            return isinstance(v, int | np.integer) and not isinstance(v, bool)

        if is_int(mutations):
            low = high = int(mutations)  # type: ignore[arg-type]
        elif (
            isinstance(mutations, tuple | list)
            and len(mutations) == 2
            and all(is_int(v) for v in mutations)
        ):
            low, high = (int(v) for v in mutations)
        else:
            raise ValueError(f"mutations must be an int or a (low, high) pair, got {mutations!r}")
        if not 1 <= low <= high:
            raise ValueError(f"mutations must satisfy 1 <= low <= high, got {mutations!r}")
        return low, high

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Mutate the single parent with :meth:`mutate`.

        Raises:
            ValueError: not exactly one parent.
        """
        if len(parents) != self.num_parents:
            raise ValueError(f"operator {self.name!r} takes 1 parent, got {len(parents)}")
        parent = parents[0]
        mutant = self.mutate(parent.program.code, rng)
        if mutant.code is None:
            return Proposal((parent.id,), None, error=mutant.error, parents=(parent,))
        return Proposal((parent.id,), None, code=mutant.code, parents=(parent,))

    def mutate(self, code: str, rng: np.random.Generator) -> Mutant:
        """Apply the configured number of random edits to ``code``; never raises for bad code.

        Returns:
            the child (unparsed source ending in a newline) with one description per edit, or
            no code and the reason: the parent does not parse, does not define the function
            at top level, or offers no site whose edit gives a valid, different program.
        """
        fn = self.context.function_name
        try:
            tree = ast.parse(code)
        except SyntaxError as exc:
            return Mutant(
                None, error=f"parent does not parse: SyntaxError at line {exc.lineno}: {exc.msg}"
            )
        except (ValueError, RecursionError, MemoryError) as exc:
            return Mutant(None, error=f"parent does not parse: {type(exc).__name__}: {exc}")
        if not _defines(tree, fn):
            return Mutant(None, error=f"parent defines no function {fn}() at top level")
        try:
            text = ast.unparse(tree)
        except (ValueError, RecursionError) as exc:
            return Mutant(None, error=f"parent cannot be unparsed: {type(exc).__name__}: {exc}")
        low, high = self.mutations
        count = low if low == high else int(rng.integers(low, high + 1))
        applied: list[str] = []
        for _ in range(count):
            step = self._step(tree, text, rng)
            if isinstance(step, str):
                if applied:
                    break
                return Mutant(None, error=step)
            tree, text, description = step
            applied.append(description)
        return Mutant(text + "\n", tuple(applied))

    def _kind_order(self, rng: np.random.Generator) -> list[str]:
        first = int(rng.choice(len(self.kinds), p=self.weights))
        rest = [i for i in rng.permutation(len(self.kinds)) if i != first and self.weights[i] > 0]
        return [self.kinds[first]] + [self.kinds[int(i)] for i in rest]

    def _step(
        self, tree: ast.Module, text: str, rng: np.random.Generator
    ) -> tuple[ast.Module, str, str] | str:
        """One edit: the new tree, its text and a description, or why none could be made."""
        fn = self.context.function_name
        order = self._kind_order(rng)
        problem: str | None = None
        try:
            for kind in order:
                work = copy.deepcopy(tree)
                sites = _Collector(work, fn, self.sigma).sites(kind)
                if not sites:
                    continue
                picks = rng.permutation(len(sites))[:_SITE_TRIES]
                for attempt, pick in enumerate(picks):
                    if attempt:
                        work = copy.deepcopy(tree)
                        sites = _Collector(work, fn, self.sigma).sites(kind)
                    description = sites[int(pick)](rng)
                    new_text, problem = self._check(work, text)
                    if new_text is not None:
                        return work, new_text, description
        except RecursionError:
            return "program is nested too deeply to mutate"
        if problem is None:
            names = ", ".join(repr(k) for k in order)
            return f"no site for mutation {names}"
        return f"no valid mutation: {problem}"

    def _check(self, tree: ast.Module, before: str) -> tuple[str | None, str]:
        """The edited tree's text if it compiles, defines the function and differs from
        ``before``; else None and the reason."""
        fn = self.context.function_name
        if not _defines(tree, fn):
            return None, f"the edit removed {fn}()"
        ast.fix_missing_locations(tree)
        try:
            text = ast.unparse(tree)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(text, "<gp-mutation>", "exec", dont_inherit=True)
        except SyntaxError as exc:
            return None, f"the edit gives a SyntaxError: {exc.msg}"
        except (ValueError, OverflowError, MemoryError) as exc:
            return None, f"the edit gives an unusable program: {type(exc).__name__}: {exc}"
        if text == before:
            return None, "the edit does not change the program"
        return text, ""
