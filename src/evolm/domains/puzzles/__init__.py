"""The ``puzzles`` domain: programming puzzles in the P3 format, solve mode.

A puzzle is ``def f(answer: T, ...instance) -> bool`` (see :mod:`evolm.domains.puzzles.puzzle`);
a program solves it by defining ``def g(...)`` whose return value, called with no arguments,
makes ``f`` return True. One run solves one puzzle: ``puzzle`` names it, from the shipped
library (:data:`~evolm.domains.puzzles.library.LIBRARY`) or from a user's ``file``; with only
``grade`` given, ``index`` picks one puzzle of that grade (library order). To cover a set, run
once per puzzle (:func:`puzzle_set` lists them).

Two-phase scoring (``scoring = "separate"``): :meth:`PuzzleDomain.run` runs ``g()`` in the
program's sandboxed child and sends back its answer, refused unless it is plain data
(:func:`~evolm.domains.puzzles.puzzle.plain_answer`: exact built-in types, bounded size), so an
object whose ``__eq__`` always says True never reaches ``f``. :meth:`PuzzleDomain.score` checks
the answer against the type ``f`` declares and calls the puzzle's own ``f`` on it in the scoring
process, which never runs the program; the sandbox's deadline bounds ``g`` and ``f`` together.
Fitness is 1.0 when ``f(answer)`` is True and 0.0 otherwise (no partial credit).

Statuses: ``g`` raising or calling ``exit()`` is ``error``; an answer that is not plain data,
not of ``f``'s answer type, or on which ``f`` raises is ``invalid`` (the reason names ``f``);
running past the deadline is ``timeout``.

Descriptors, from the program's syntax tree (:func:`~evolm.domains.puzzles.puzzle.code_features`):
``loops`` (for/while statements and comprehension clauses, clipped to 0..8) and ``ast_nodes``
(all nodes, clipped to 0..400). They are computed in the program's child, before it runs, and
sent with the answer: a hostile program could forge them within their bounds, never its fitness.
"""

from __future__ import annotations

from typing import Any

from evolm.domains.base import Domain, DomainContext
from evolm.domains.program import (
    ProgramFailure,
    call_program,
    describe_exception,
    load_function,
)
from evolm.domains.puzzles.library import LIBRARY
from evolm.domains.puzzles.puzzle import (
    Puzzle,
    check_answer,
    code_features,
    default_answer,
    load_puzzle_file,
    plain_answer,
    puzzles_from_data,
    solution_header,
)
from evolm.types import DescriptorSpace, Evaluation, Status

__all__ = ["DEFAULT_PUZZLE", "LIBRARY", "Puzzle", "PuzzleDomain", "puzzle_domain", "puzzle_set"]

DEFAULT_PUZZLE = "digit_sum"
"""The library puzzle solved when no parameter picks one."""

MAX_LOOPS = 8
MAX_NODES = 400
_MAX_SHOWN = 200


def puzzle_set(
    file: str | None = None,
    grade: int | None = None,
    names: list[str] | None = None,
    puzzles: list[dict[str, Any]] | None = None,
) -> list[Puzzle]:
    """The puzzles of the library, of a user's ``file``, or given inline as ``puzzles`` (data
    in the puzzle-file format), keeping only ``grade`` and ``names`` when given, in order.

    Raises:
        ValueError: both ``file`` and ``puzzles``, bad puzzles, a grade outside 1..5, or an
            unknown name (the message lists the known ones).
    """
    if file is not None and puzzles is not None:
        raise ValueError("give the puzzles domain a puzzle file or inline puzzles, not both")
    source = "the puzzle library"
    if file is not None:
        chosen = load_puzzle_file(file)
        source = f"puzzle file {file}"
    elif puzzles is not None:
        chosen = puzzles_from_data(puzzles, "the puzzles parameter")
        source = "the puzzles parameter"
    else:
        chosen = list(LIBRARY)
    return _select(chosen, source, grade, names)


def puzzle_domain(mode: str = "solve", **params: Any) -> Domain:
    """The ``puzzles`` domain of the registry: :class:`PuzzleDomain` (``mode = "solve"``, the
    default) or, with ``mode = "coevolve"``,
    :class:`~evolm.domains.puzzles.coevolve.PuzzleCoevolveDomain` (puzzles and solutions evolved
    together by :class:`evolm.coevolution.CoevolutionRunner`); ``params`` go to the class.

    Raises:
        ValueError: an unknown mode, or bad parameters for the mode's class.
    """
    if mode == "solve":
        return PuzzleDomain(**params)
    if mode == "coevolve":
        from evolm.domains.puzzles.coevolve import PuzzleCoevolveDomain

        return PuzzleCoevolveDomain(mode, **params)
    raise ValueError(f"puzzles mode must be 'solve' or 'coevolve', got {mode!r}")


def _select(
    puzzles: list[Puzzle], source: str, grade: int | None, names: list[str] | None
) -> list[Puzzle]:
    if grade is not None:
        if isinstance(grade, bool) or grade not in range(1, 6):
            raise ValueError(f"puzzles grade must be an int from 1 to 5, got {grade!r}")
        puzzles = [p for p in puzzles if p.grade == grade]
    if names is not None:
        known = {p.name: p for p in puzzles}
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(
                f"no puzzle named {missing[0]!r} in {source}"
                + (f" at grade {grade}" if grade is not None else "")
                + f"; known: {', '.join(sorted(known))}"
            )
        puzzles = [known[n] for n in names]
    return puzzles


def _worked_examples(target: Puzzle, count: int) -> str:
    """``count`` solved puzzles of the library (the easiest first, never ``target`` nor one
    with the same ``f``), each as its ``f`` and a solution ``g``: the few-shot prompt of the
    P3 paper, which small models need to see what a solution looks like."""
    shown: list[str] = []
    for p in sorted(LIBRARY, key=lambda q: q.grade):
        if len(shown) >= count:
            break
        if p.name != target.name and p.f != target.f and p.g:
            shown.append(f"# Solved example {len(shown) + 1}:\n{p.f.rstrip()}\n\n{p.g.rstrip()}\n")
    return "\n".join(shown) + ("\n" if shown else "")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


class PuzzleDomain(Domain):
    """Solve one programming puzzle (P3 format): evolve ``g`` so that ``f(g())`` is True.

    Args:
        puzzle: the puzzle's name (in the library, or in ``file``). Default: ``digit_sum``, or
            the puzzle ``index`` picks when ``grade`` or ``file`` is given.
        grade: with no ``puzzle``, pick among the puzzles of this grade (1 to 5).
        index: with no ``puzzle``, which of the selected puzzles (an int >= 0, default 0).
        file: path of a user's puzzle file (JSON, see :mod:`evolm.domains.puzzles.puzzle`),
            used in place of the library. The engine reads it; sandbox workers, which cannot
            read the user's files, get the chosen puzzle inline (:meth:`worker_params`).
        puzzles: the puzzles inline, as data in the puzzle-file format (a list of dicts),
            used in place of the library; this is what a run's workers can rebuild.

    Raises:
        ValueError: an unknown puzzle, a bad grade or index, or a bad puzzle file.
    """

    name = "puzzles"
    eval_timeout = 5.0
    qd_offset = 0.0
    scoring = "separate"
    fitness_bounds = (0.0, 1.0)
    descriptors_in_space = True

    def __init__(
        self,
        puzzle: str | None = None,
        grade: int | None = None,
        index: int = 0,
        file: str | None = None,
        puzzles: list[dict[str, Any]] | None = None,
        examples: int = 2,
    ) -> None:
        if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
            raise ValueError(f"puzzles examples must be an int >= 0, got {examples!r}")
        self.examples = examples
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"puzzles index must be an int >= 0, got {index!r}")
        if puzzle is not None:
            chosen = puzzle_set(file, grade, [puzzle], puzzles)[0]
        elif grade is None and file is None and puzzles is None:
            chosen = puzzle_set(names=[DEFAULT_PUZZLE])[0]
        else:
            pool = puzzle_set(file, grade, None, puzzles)
            if not pool:
                raise ValueError(f"no puzzle of grade {grade} in the puzzles given")
            if index >= len(pool):
                raise ValueError(
                    f"puzzles index {index} is out of range: the selection holds {len(pool)} "
                    f"puzzles ({', '.join(p.name for p in pool)})"
                )
            chosen = pool[index]
        self.puzzle: Puzzle = chosen
        self._kind = chosen.answer_type
        self._f: Any = None

    def worker_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with a puzzle ``file`` replaced by the chosen puzzle, inline: a sandbox
        worker cannot read the user's file, and needs only the one puzzle."""
        if params.get("file") is None:
            return params
        p = self.puzzle
        chosen = {"name": p.name, "grade": p.grade, "f": p.f, "g": p.g, "tags": list(p.tags)}
        kept = {k: v for k, v in params.items() if k not in ("file", "grade", "index", "puzzle")}
        return {**kept, "puzzle": p.name, "puzzles": [chosen]}

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(
            ("loops", "ast_nodes"), ((0.0, float(MAX_LOOPS)), (0.0, float(MAX_NODES)))
        )

    def seeds(self) -> list[str]:
        """One valid, wrong-for-any-real-puzzle solution: ``g`` returning the answer type's
        plainest value (0, ``""``, ``[]``, ...)."""
        default = default_answer(self._kind)
        return [f"{solution_header(self.puzzle)}\n    return {default!r}\n"]

    def context(self) -> DomainContext:
        p = self.puzzle
        description = (
            "Solve a programming puzzle. The puzzle is the Python function `f` below: find an "
            f"answer of type `{p.answer_type_text}` for which `f` returns True. Write a function "
            f"`{solution_header(p)[4:-1]}` that computes and returns such an answer; it is called "
            "with no arguments and its parameters' defaults are the puzzle's instance. Return "
            "plain data only (ints, floats, strings, bools, lists). The score is 1 when "
            "f(g()) is True and 0 otherwise."
        )
        api = _worked_examples(p, self.examples)
        api += f"# The puzzle (do not change it; your program defines g):\n{p.f.rstrip()}\n"
        return DomainContext(
            description=description, function_name="g", api=api, file_name="solution.py"
        )

    def run(self, code: str, seed: int = 0) -> dict[str, Any] | Evaluation:
        """Call the program's ``g()`` (in the program's child) and return ``{"answer": plain
        data, "loops": int, "nodes": int}``, or the failed evaluation: a program that does not
        load (as :func:`~evolm.domains.program.load_function`), ``g`` raising (``error``), or an
        answer that is not plain data (``invalid``)."""
        features = code_features(code) or (0, 0)
        fn = load_function(code, "g", seed)
        if isinstance(fn, ProgramFailure):
            return Evaluation.failure(fn.status, fn.error)
        value, failure = call_program(fn)
        if failure is not None:
            return Evaluation.failure(failure.status, f"g() raised: {failure.error}")
        answer, why = plain_answer(value)
        if why is not None:
            return Evaluation.failure(
                Status.INVALID,
                f"g() returned {why}, not plain data; answers must be None, bool, int, float, "
                "str, or lists/tuples/dicts of those",
            )
        return {"answer": answer, "loops": features[0], "nodes": features[1]}

    def _compiled_f(self) -> Any:
        if self._f is None:
            namespace: dict[str, Any] = {"__name__": "__evolm_puzzle__"}
            exec(compile(self.puzzle.f, f"<puzzle {self.puzzle.name}>", "exec"), namespace)
            self._f = namespace["f"]
        return self._f

    def score(self, data: Any, seed: int = 0) -> Evaluation:
        """Check the answer's type and call the puzzle's ``f`` on it (validated: ``data`` may
        be forged). Extras: ``puzzle`` (name), ``grade``, ``solved`` (bool) and ``answer`` (its
        repr, cut to 200 characters)."""
        if (
            not isinstance(data, dict)
            or set(data) != {"answer", "loops", "nodes"}
            or any(type(data[k]) is not int or data[k] < 0 for k in ("loops", "nodes"))
        ):
            return Evaluation.failure(
                Status.INVALID, "puzzle data must be a map of answer, loops and nodes"
            )
        answer, why = plain_answer(data["answer"])
        why = why or check_answer(answer, self._kind)
        if why is not None:
            return Evaluation.failure(
                Status.INVALID, f"g() returned an answer f cannot take: {why}"
            )
        try:
            f = self._compiled_f()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the puzzle itself is broken, not the program
            return Evaluation.failure(
                Status.ERROR,
                f"the puzzle {self.puzzle.name}'s f does not load: {describe_exception(exc)}; "
                "fix the puzzle's source",
            )
        try:
            verdict = f(answer)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the answer broke f: not a solution
            return Evaluation.failure(
                Status.INVALID,
                f"f raised {describe_exception(exc)} on the answer {_shown(answer)}",
            )
        solved = verdict is True
        return Evaluation(
            status=Status.OK,
            fitness=1.0 if solved else 0.0,
            descriptors=(
                float(min(data["loops"], MAX_LOOPS)),
                float(min(data["nodes"], MAX_NODES)),
            ),
            extras={
                "puzzle": self.puzzle.name,
                "grade": self.puzzle.grade,
                "solved": solved,
                "answer": _shown(answer),
            },
        )
