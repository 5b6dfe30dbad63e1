"""Skill tags of a puzzle, from its syntax tree: the descriptors of co-evolved puzzles.

:func:`skill_tags` reads a puzzle's source with :func:`ast.parse` and never runs it, so the
engine may call it on an LLM's text (sources longer than :data:`MAX_SOURCE_CHARS` get no tags).
Each tag is 0 or 1, in the order of :data:`SKILLS`:

``loops``
    a ``for`` or ``while`` statement, or a comprehension.
``strings``
    a string literal (docstrings aside), a parameter annotated ``str``, or a call of a ``str``
    method (``upper``, ``split``, ``join``, ...).
``arithmetic``
    ``*``, ``/``, ``//``, ``%`` or ``**``, or a call of ``abs``, ``divmod``, ``pow``, ``round``
    or anything of the ``math`` module.
``recursion``
    a function that calls itself by name.
``collections``
    a list, set or dict display or comprehension, indexing or slicing, or a call of ``len``,
    ``list``, ``set``, ``dict``, ``tuple``, ``zip``, ``enumerate``, ``range`` or a container
    method (``append``, ``items``, ...).
``logic``
    an ``if`` statement or expression, ``and``/``or``, or ``not``.
``search``
    ``sorted``, ``min``, ``max``, ``any``, ``all``, ``.sort``, ``.index``, ``.find``, or an
    ``in``/``not in`` test.
"""

from __future__ import annotations

import ast

__all__ = ["MAX_SOURCE_CHARS", "SKILLS", "skill_tags"]

SKILLS: tuple[str, ...] = (
    "loops",
    "strings",
    "arithmetic",
    "recursion",
    "collections",
    "logic",
    "search",
)
"""The skill tags, in descriptor order."""

MAX_SOURCE_CHARS = 20_000
"""Sources longer than this are not parsed (every tag is 0)."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STR_METHODS = _words(
    "upper lower split rsplit join replace count startswith endswith strip lstrip rstrip "
    "isdigit isalpha isalnum isupper islower capitalize title swapcase zfill center ljust "
    "rjust partition splitlines format"
)
_CONTAINER_CALLS = _words("len list set dict tuple zip enumerate range frozenset")
_CONTAINER_METHODS = _words(
    "append extend insert pop remove add discard update items keys values setdefault"
)
_MATH_CALLS = frozenset({"abs", "divmod", "pow", "round"})
_SEARCH_CALLS = frozenset({"sorted", "min", "max", "any", "all"})
_SEARCH_METHODS = frozenset({"sort", "index", "find", "rfind", "bisect"})
_ARITH_OPS = (ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the constant nodes that are docstrings (not string operations)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                out.add(id(body[0].value))
    return out


def _called_name(call: ast.Call) -> tuple[str | None, str | None]:
    """``(name, attribute)``: ``f(...)`` gives ``("f", None)``, ``x.m(...)`` gives
    ``(None, "m")`` (``("math", "m")`` when ``x`` is the name ``math``)."""
    fn = call.func
    if isinstance(fn, ast.Name):
        return fn.id, None
    if isinstance(fn, ast.Attribute):
        base = fn.value.id if isinstance(fn.value, ast.Name) else None
        return base, fn.attr
    return None, None


def _recursive(tree: ast.Module) -> bool:
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and _called_name(node) == (fn.name, None):
                return True
    return False


def skill_tags(source: str) -> tuple[int, ...]:
    """The skill tags of a puzzle's source (see the module docstring), one 0/1 per
    :data:`SKILLS` name. A source that does not parse, or is longer than
    :data:`MAX_SOURCE_CHARS`, has every tag 0. Never runs the source; never raises."""
    found = dict.fromkeys(SKILLS, 0)
    if not isinstance(source, str) or len(source) > MAX_SOURCE_CHARS:
        return tuple(found.values())
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return tuple(found.values())
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.For | ast.While | ast.AsyncFor | ast.comprehension):
            found["loops"] = 1
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found["strings"] = 1
        if (
            isinstance(node, ast.arg)
            and isinstance(node.annotation, ast.Name)
            and node.annotation.id == "str"
        ):
            found["strings"] = 1
        if isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, _ARITH_OPS):
            found["arithmetic"] = 1
        if isinstance(node, ast.List | ast.Set | ast.Dict | ast.ListComp | ast.SetComp):
            found["collections"] = 1
        if isinstance(node, ast.DictComp | ast.Subscript):
            found["collections"] = 1
        if isinstance(node, ast.If | ast.IfExp | ast.BoolOp):
            found["logic"] = 1
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found["logic"] = 1
        if isinstance(node, ast.Compare) and any(
            isinstance(op, ast.In | ast.NotIn) for op in node.ops
        ):
            found["search"] = 1
        if isinstance(node, ast.Call):
            name, attr = _called_name(node)
            if attr is None:
                found["arithmetic"] |= name in _MATH_CALLS
                found["collections"] |= name in _CONTAINER_CALLS
                found["search"] |= name in _SEARCH_CALLS
            else:
                found["arithmetic"] |= name == "math"
                found["strings"] |= attr in _STR_METHODS
                found["collections"] |= attr in _CONTAINER_METHODS
                found["search"] |= attr in _SEARCH_METHODS
    found["recursion"] = int(_recursive(tree))
    return tuple(int(v) for v in found.values())
