"""Puzzles as data: the :class:`Puzzle` record, answer types, plain-data checks, code features.

A puzzle (P3 format) is the source of ``def f(answer: T, ...instance) -> bool``: its first
parameter is the answer, annotated with the answer's type ``T``; its other parameters carry the
instance as defaults. A solution is ``def g(...)`` called with no arguments, whose return value
makes ``f`` return True. Nothing here runs a puzzle or a solution: this module only parses
sources, so the engine's process can use it (loading, prompts, seeds, validation), and so can
co-evolution, which treats puzzles as data too.

Answer types (:func:`parse_answer_type`): ``int``, ``float``, ``str``, ``bool`` and ``list[T]``
(also spelled ``List[T]``) of an answer type, nested to any depth.

A user's puzzle file (:func:`load_puzzle_file`) is JSON: a list of objects with ``name`` (an
identifier, unique in the file), ``f`` (the source), and optionally ``grade`` (1 to 5; default
3), ``g`` (a reference solution's source) and ``tags`` (a list of strings).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_ANSWER_ITEMS",
    "MAX_INT_BITS",
    "AnswerType",
    "Puzzle",
    "check_answer",
    "code_features",
    "default_answer",
    "load_puzzle_file",
    "parse_answer_type",
    "plain_answer",
    "puzzles_from_data",
    "solution_header",
]

AnswerType = tuple[str, ...]
"""An answer type as a path: ``("int",)``, ``("list", "str")``, ``("list", "list", "int")``."""

MAX_ANSWER_ITEMS = 100_000
"""At most this many values (list items and scalars together) in one answer."""
MAX_ANSWER_CHARS = 1_000_000
"""At most this many characters in all the strings of one answer."""
MAX_INT_BITS = 63
"""An int in an answer must be below 2**63 in size (the result codec's limit)."""

_SCALARS = {"int", "float", "str", "bool"}


def parse_answer_type(annotation: ast.expr | None) -> AnswerType:
    """The answer type an annotation spells (see the module docstring).

    Raises:
        ValueError: no annotation, or one that is not a supported answer type.
    """
    if annotation is None:
        raise ValueError("f's first parameter (the answer) has no type annotation")
    if isinstance(annotation, ast.Name) and annotation.id in _SCALARS:
        return (annotation.id,)
    if (
        isinstance(annotation, ast.Subscript)
        and isinstance(annotation.value, ast.Name)
        and annotation.value.id in ("list", "List")
    ):
        return ("list", *parse_answer_type(annotation.slice))
    raise ValueError(
        f"unsupported answer type {ast.unparse(annotation)!r}: use int, float, str, bool or "
        "list[T] of those"
    )


def _type_text(kind: AnswerType) -> str:
    return kind[0] if len(kind) == 1 else f"list[{_type_text(kind[1:])}]"


def default_answer(kind: AnswerType) -> Any:
    """The plainest value of ``kind``: 0, 0.0, ``""``, False or ``[]``."""
    return {"int": 0, "float": 0.0, "str": "", "bool": False, "list": []}[kind[0]]


def _find_f(tree: ast.Module) -> ast.FunctionDef:
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "f"]
    if not found:
        raise ValueError("the puzzle source defines no function f")
    return found[-1]


@dataclass(frozen=True)
class Puzzle:
    """One puzzle: data only (nothing here runs it).

    Attributes:
        name: an identifier, unique within a puzzle set.
        grade: difficulty from 1 (trivial) to 5 (hard).
        f: source of ``def f(answer: T, ...instance) -> bool``.
        g: source of a reference solution ``def g(...)``, or ``""`` when none is known.
        tags: skill tags (e.g. ``"strings"``, ``"recursion"``).

    Raises:
        ValueError: a bad name or grade, ``f`` that does not parse or defines no ``f`` whose
            first parameter has a supported answer type, or ``g`` that does not parse.
    """

    name: str
    grade: int
    f: str
    g: str = ""
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a puzzle name must be an identifier, got {self.name!r}")
        if isinstance(self.grade, bool) or not isinstance(self.grade, int):
            raise ValueError(f"puzzle {self.name}: grade must be an int from 1 to 5")
        if not 1 <= self.grade <= 5:
            raise ValueError(f"puzzle {self.name}: grade must be 1 to 5, got {self.grade}")
        try:
            fn = _find_f(ast.parse(self.f))
            if self.g:
                ast.parse(self.g)
        except SyntaxError as exc:
            raise ValueError(f"puzzle {self.name}: source does not parse: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"puzzle {self.name}: {exc}") from exc
        params = fn.args.posonlyargs + fn.args.args
        if not params:
            raise ValueError(f"puzzle {self.name}: f takes no answer parameter")
        try:
            parse_answer_type(params[0].annotation)
        except ValueError as exc:
            raise ValueError(f"puzzle {self.name}: {exc}") from exc

    @property
    def answer_type(self) -> AnswerType:
        """The answer's type, from the annotation of ``f``'s first parameter."""
        fn = _find_f(ast.parse(self.f))
        return parse_answer_type((fn.args.posonlyargs + fn.args.args)[0].annotation)

    @property
    def answer_type_text(self) -> str:
        """The answer type as Python spells it, e.g. ``list[int]``."""
        return _type_text(self.answer_type)

    def to_dict(self) -> dict[str, Any]:
        """The puzzle as JSON-ready data, in the puzzle-file format."""
        return {
            "name": self.name,
            "grade": self.grade,
            "f": self.f,
            "g": self.g,
            "tags": list(self.tags),
        }


def solution_header(puzzle: Puzzle) -> str:
    """``def g(<f's instance parameters, with their defaults>):`` for ``puzzle``."""
    fn = _find_f(ast.parse(puzzle.f))
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(a.arg) for a in (fn.args.posonlyargs + fn.args.args)[1:]],
        vararg=None,
        kwonlyargs=[ast.arg(a.arg) for a in fn.args.kwonlyargs],
        kw_defaults=list(fn.args.kw_defaults),
        kwarg=None,
        defaults=list(fn.args.defaults[-len(fn.args.args[1:]) :] if fn.args.args[1:] else []),
    )
    return f"def g({ast.unparse(args)}):"


def plain_answer(value: Any) -> tuple[Any, str | None]:
    """``value`` as plain data (tuples become lists), or ``(None, why not)``.

    Plain: None, bool, int (below 2**63 in size), float, str, and lists, tuples and dicts with
    str keys of those; at most :data:`MAX_ANSWER_ITEMS` values and :data:`MAX_ANSWER_CHARS`
    string characters. Types are checked exactly (``type(v) is int``), so a subclass that
    overrides ``__eq__`` is refused. Never raises, never calls the value's methods.
    """
    budget = [MAX_ANSWER_ITEMS, MAX_ANSWER_CHARS]

    def conv(v: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError(f"more than {MAX_ANSWER_ITEMS} values")
        if depth > 20:
            raise ValueError("nested more than 20 levels deep")
        t = type(v)
        if v is None or t is bool or t is float:
            return v
        if t is int:
            if v.bit_length() > MAX_INT_BITS:
                raise ValueError(f"an int of {v.bit_length()} bits (at most {MAX_INT_BITS})")
            return v
        if t is str:
            budget[1] -= len(v)
            if budget[1] < 0:
                raise ValueError(f"more than {MAX_ANSWER_CHARS} characters of strings")
            return v
        if t is list or t is tuple:
            return [conv(x, depth + 1) for x in v]
        if t is dict:
            out = {}
            for k, x in v.items():
                if type(k) is not str:
                    raise ValueError("a dict with a non-str key")
                out[conv(k, depth + 1)] = conv(x, depth + 1)
            return out
        raise ValueError(f"a {t.__name__} object")

    try:
        return conv(value, 0), None
    except ValueError as exc:
        return None, str(exc)
    except RecursionError:
        return None, "nested too deeply"


def check_answer(value: Any, kind: AnswerType) -> str | None:
    """Why ``value`` is not of answer type ``kind``, or None when it is (exact types: a bool is
    not an int; an int is accepted for float)."""
    head = kind[0]
    t = type(value)
    if head == "list":
        if t is not list:
            return f"expected {_type_text(kind)}, got {t.__name__}"
        for item in value:
            why = check_answer(item, kind[1:])
            if why:
                return why
        return None
    if head == "float" and t in (int, float):
        return None
    if t.__name__ != head or t not in (int, float, str, bool):
        return f"expected {_type_text(kind)}, got {t.__name__}"
    return None


_LOOPS = (ast.For, ast.While, ast.AsyncFor, ast.comprehension)


def code_features(code: str) -> tuple[int, int] | None:
    """``(loops, nodes)`` of ``code``'s syntax tree, or None when it does not parse.

    ``loops``: ``for`` and ``while`` statements plus comprehension clauses (each ``for`` in a
    comprehension counts). ``nodes``: every node of the tree. Both are raw counts; the domain
    clips them to its descriptor bounds.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    loops = nodes = 0
    for node in ast.walk(tree):
        nodes += 1
        loops += isinstance(node, _LOOPS)
    return loops, nodes


def puzzles_from_data(raw: Any, where: str = "puzzle data") -> list[Puzzle]:
    """Puzzles from data in the puzzle-file format (a list of objects; see the module
    docstring), as read from JSON or given inline as a domain parameter.

    Raises:
        ValueError: data of the wrong shape, or a bad or duplicated puzzle; the message starts
            with ``where`` and names the item.
    """
    if not isinstance(raw, list) or not raw:
        raise ValueError(
            f"{where} must be a non-empty list of puzzles, each an object with "
            '"name" and "f" (and optionally "grade", "g", "tags")'
        )
    puzzles: list[Puzzle] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"name", "f"} <= set(item):
            raise ValueError(f'{where}: item {i} is not an object with "name" and "f"')
        unknown = set(item) - {"name", "grade", "f", "g", "tags"}
        if unknown:
            raise ValueError(f"{where}: item {i} has unknown keys {sorted(unknown)}")
        tags = item.get("tags", [])
        if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
            raise ValueError(f"{where}: item {i}: tags must be a list of strings")
        if not isinstance(item["f"], str) or not isinstance(item.get("g", ""), str):
            raise ValueError(f"{where}: item {i}: f and g must be source strings")
        try:
            puzzles.append(
                Puzzle(
                    item["name"], item.get("grade", 3), item["f"], item.get("g", ""), tuple(tags)
                )
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
    names = [p.name for p in puzzles]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{where}: duplicate puzzle names {dupes}")
    return puzzles


def load_puzzle_file(path: str | Path) -> list[Puzzle]:
    """Read a user's puzzle file (JSON; format in the module docstring).

    Raises:
        ValueError: the file cannot be read, is not JSON of the expected shape, or holds a bad
            or duplicated puzzle; the message names the file and the puzzle.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read puzzle file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"puzzle file {path} is not valid JSON: {exc}") from exc
    return puzzles_from_data(raw, f"puzzle file {path}")
