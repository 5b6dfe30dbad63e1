"""Co-evolution of puzzles and solutions (ACES-like): the sandbox side, the prompts, the fake.

:class:`PuzzleCoevolveDomain` is what ``[domain] name = "puzzles"`` with ``params = { mode =
"coevolve" }`` builds; :class:`evolm.coevolution.CoevolutionRunner` drives the run. A puzzle
candidate is a pair written by the LLM: ``def f(answer: T, ...instance) -> bool`` and a reference
solution ``def g(...)``, in one source. Checking it takes sandbox jobs of two kinds, each a
program text whose first line the engine writes (:func:`solve_job`, :func:`check_job`):

``# evolm-coevolve: solve``
    runs ``g()`` (a pair's reference, or a solver's attempt) in the child and returns its answer
    as plain data (``extras["answer"]``), with the solution's code features as descriptors.
``# evolm-coevolve: check <answer as JSON>``
    calls the puzzle's ``f`` on that answer in another child: ``fitness`` 1.0 and
    ``extras["solved"]`` True when ``f`` returns True.

So a solution never shares a process with the ``f`` that judges it, and can no more fake a
verdict than in solve mode; both run only in sandboxed children. The engine treats puzzles as
data: it parses the LLM's text (as it parses every completion) to split ``f`` from ``g``, to read
the answer type and to compute the skill tags (:func:`~evolm.domains.puzzles.skills.skill_tags`),
and never runs it.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from evolm.domains.base import Domain, DomainContext
from evolm.domains.program import ProgramFailure, call_program, describe_exception, load_function
from evolm.domains.puzzles.puzzle import (
    Puzzle,
    check_answer,
    code_features,
    plain_answer,
    puzzles_from_data,
    solution_header,
)
from evolm.domains.puzzles.skills import SKILLS
from evolm.llm.base import Request
from evolm.operators.base import Operator, Proposal, Result, check_sampling
from evolm.operators.extract import extract_code
from evolm.types import DescriptorSpace, Evaluation, Individual, Status

__all__ = [
    "SOLVER_INTRO",
    "WRITER_INTRO",
    "PuzzleCoevolveDomain",
    "PuzzleSolver",
    "PuzzleWriter",
    "check_job",
    "fake_answer",
    "solve_job",
    "split_pair",
]

_JOB = "# evolm-coevolve: "
WRITER_INTRO = "Here are programming puzzles in Python, each with its solution."
"""The first line of a puzzle-writing prompt (chat mode)."""
SOLVER_INTRO = "Solve a programming puzzle in Python."
"""The first line of a solving prompt (chat mode)."""
_SYSTEM = "You are an expert Python programmer. You write programming puzzles and solve them."
_FORMAT = (
    "A puzzle is a function `f` whose first parameter is the answer, annotated with its type "
    "(int, float, str, bool or list[...] of those), and whose other parameters have default "
    "values (the instance); f returns True when the answer is right. Its solution is a function "
    "`g` that takes the same instance parameters with the same defaults and returns an answer "
    "for which f returns True."
)
_STOP = ("\n```", "\nif __name__", "\n# ")
MAX_SOLVED_SHOWN = 200


def solve_job(code: str) -> str:
    """The sandbox job that runs ``code``'s ``g()`` and returns its answer."""
    return f"{_JOB}solve\n{code}"


def check_job(f_source: str, answer: Any) -> str:
    """The sandbox job that calls ``f_source``'s ``f`` on ``answer`` (plain data)."""
    return f"{_JOB}check {json.dumps(answer)}\n{f_source}"


def split_pair(source: str) -> tuple[str, str]:
    """``(f part, g part)`` of a puzzle-and-solution source: the ``def g`` at module level (the
    last one) is the solution; everything else is the puzzle. Parses, never runs.

    Raises:
        ValueError: the source does not parse.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"the puzzle does not parse: {exc}") from exc
    lines = source.splitlines(keepends=True)
    gs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "g"]
    if not gs:
        return source.rstrip() + "\n", ""
    g = gs[-1]
    start = min([g.lineno, *(d.lineno for d in g.decorator_list)]) - 1
    end = g.end_lineno or g.lineno
    g_src = "".join(lines[start:end])
    f_src = "".join(lines[:start] + lines[end:])
    return f_src.strip("\n") + "\n", g_src.strip("\n") + "\n"


class PuzzleCoevolveDomain(Domain):
    """Co-evolve puzzles and their solutions (see the module docstring and docs/domains.md).

    Args:
        mode: ``"coevolve"`` (the factory :func:`evolm.domains.puzzles.puzzle_domain` passes it).
        k: solver attempts per puzzle (an int >= 1); difficulty = 1 - solved / k.
        grades: the library grades of the seed puzzles (default 1 and 2).
        names: seed puzzles by name instead (from the library, or from ``puzzles``).
        puzzles: seed puzzles inline, as data in the puzzle-file format; each needs its ``g``.

    Raises:
        ValueError: a bad ``k``, grade or name, or no seed puzzle with a reference solution.
    """

    name = "puzzles"
    eval_timeout = 5.0
    qd_offset = 0.0
    scoring = "in_process"
    fitness_bounds = (0.0, 1.0)
    descriptors_in_space = True

    def __init__(
        self,
        mode: str = "coevolve",
        k: int = 4,
        grades: Sequence[int] = (1, 2),
        names: list[str] | None = None,
        puzzles: list[dict[str, Any]] | None = None,
    ) -> None:
        if mode != "coevolve":
            raise ValueError(f"PuzzleCoevolveDomain takes mode 'coevolve', got {mode!r}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 64:
            raise ValueError(
                f"puzzles k (solver attempts per puzzle) must be an int 1..64, got {k!r}"
            )
        from evolm.domains.puzzles import puzzle_set

        pool = puzzles_from_data(puzzles, "the puzzles parameter") if puzzles else None
        if names is not None:
            chosen = puzzle_set(names=names, puzzles=puzzles)
        else:
            bad = [g for g in grades if isinstance(g, bool) or g not in range(1, 6)]
            if bad or not grades:
                raise ValueError(f"puzzles grades must be ints from 1 to 5, got {list(grades)!r}")
            chosen = [p for p in (pool or puzzle_set()) if p.grade in set(grades)]
        chosen = [p for p in chosen if p.g]
        if not chosen:
            raise ValueError(
                "co-evolution needs seed puzzles with a reference solution g; none of the "
                "puzzles selected has one (give puzzles with a g, or other grades or names)"
            )
        self.k = k
        self.seed_puzzles: list[Puzzle] = chosen

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(SKILLS, tuple((0.0, 1.0) for _ in SKILLS))

    def seeds(self) -> list[str]:
        """The seed puzzles, each as its ``f`` followed by its reference ``g``."""
        return [f"{p.f.rstrip()}\n\n\n{p.g.rstrip()}\n" for p in self.seed_puzzles]

    def context(self) -> DomainContext:
        return DomainContext(
            description="Write a new programming puzzle with its solution. " + _FORMAT,
            function_name="f",
            file_name="puzzle.py",
        )

    def evaluate(self, code: str, seed: int = 0) -> Evaluation:
        """Run one job (see the module docstring); in the sandbox's child only."""
        head, _, body = code.partition("\n")
        if head == f"{_JOB}solve":
            return _solve(body, seed)
        if head.startswith(f"{_JOB}check "):
            return _check(head[len(_JOB) + 6 :], body)
        return Evaluation.failure(
            Status.INVALID,
            "co-evolution evaluates only its own jobs (a solve or a check); this program is "
            "neither",
        )


def _solve(code: str, seed: int) -> Evaluation:
    features = code_features(code) or (0, 0)
    fn = load_function(code, "g", seed)
    if isinstance(fn, ProgramFailure):
        return Evaluation.failure(fn.status, fn.error)
    value, failure = call_program(fn)
    if failure is not None:
        return Evaluation.failure(failure.status, f"g() raised: {failure.error}")
    answer, why = plain_answer(value)
    if why is not None:
        return Evaluation.failure(Status.INVALID, f"g() returned {why}, not plain data")
    return Evaluation(
        Status.OK,
        fitness=0.0,
        descriptors=(float(features[0]), float(features[1])),
        extras={"answer": answer},
    )


def _check(answer_json: str, f_source: str) -> Evaluation:
    try:
        answer = json.loads(answer_json)
        kind = Puzzle("candidate", 3, f_source).answer_type
    except ValueError as exc:
        return Evaluation.failure(Status.INVALID, f"not a puzzle: {exc}")
    why = check_answer(answer, kind)
    if why is not None:
        return Evaluation.failure(Status.INVALID, f"g() returned an answer f cannot take: {why}")
    f = load_function(f_source, "f", 0)
    if isinstance(f, ProgramFailure):
        return Evaluation.failure(f.status, f"the puzzle's f does not load: {f.error}")
    try:
        verdict = f(answer)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return Evaluation.failure(Status.INVALID, f"f raised {describe_exception(exc)}")
    solved = verdict is True
    return Evaluation(
        Status.OK, fitness=1.0 if solved else 0.0, descriptors=(), extras={"solved": solved}
    )


# -- prompts ---------------------------------------------------------------------------------
class _PuzzleOperator(Operator):
    """Shared sampling settings and request building of the writer and the solver."""

    def __init__(
        self,
        context: DomainContext,
        mode: str = "chat",
        *,
        max_tokens: int = 512,
        temperature: float = 0.8,
        top_p: float = 0.95,
        repeat_penalty: float = 1.0,
    ) -> None:
        super().__init__(context, mode)
        check_sampling(max_tokens, temperature, top_p, repeat_penalty)
        self.max_tokens = max_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.repeat_penalty = float(repeat_penalty)

    def _request(self, body: str, rng: np.random.Generator) -> Request:
        common: dict[str, Any] = {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": int(rng.integers(2**31)),
            "repeat_penalty": self.repeat_penalty,
        }
        if self.mode == "chat":
            messages = ({"role": "system", "content": _SYSTEM}, {"role": "user", "content": body})
            return Request(kind="chat", messages=messages, **common)
        return Request(kind="completion", prompt=body, stop=_STOP, **common)


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


class PuzzleWriter(_PuzzleOperator):
    """Write a new puzzle with its solution from ``num_parents`` example puzzles (ACES-style:
    the examples few-shot, then "different from these, and harder")."""

    name = "puzzle_writer"
    num_parents = 2

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """The writing request showing ``parents``' code (puzzle and solution) as examples."""
        codes = [p.program.code for p in parents]
        if self.mode == "chat":
            shown = "\n\n".join(f"Puzzle {i + 1}:\n{_fenced(c)}" for i, c in enumerate(codes))
            body = (
                f"{WRITER_INTRO} {_FORMAT}\n\n{shown}\n\nWrite a new puzzle that is different "
                "from these and harder to solve, with its solution g. Reply with one fenced "
                "python code block holding `def f(...)` and `def g(...)`."
            )
            prefix = ""
        else:
            shown = "\n\n".join(f"# Puzzle {i + 1}\n{c.rstrip()}\n" for i, c in enumerate(codes))
            body = (
                "# Programming puzzles. " + _FORMAT + "\n\n" + shown + f"\n# Puzzle "
                f"{len(codes) + 1} (new: different from the ones above, and harder)\ndef f("
            )
            prefix = "def f("
        return Proposal(
            tuple(p.id for p in parents),
            self._request(body, rng),
            parents=tuple(parents),
            prefix=prefix,
        )

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """The puzzle-and-solution source (it must define ``f``; ``g`` may be missing)."""
        return extract_code(completion, "f", prefix=proposal.prefix)


class PuzzleSolver(_PuzzleOperator):
    """Solve one puzzle, showing solved puzzles (puzzle, solution) as few-shot examples."""

    name = "solver"
    num_parents = 1

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Not used: the solver is asked per puzzle, with :meth:`propose_for`."""
        raise NotImplementedError("the solver is asked per puzzle: use propose_for")

    def propose_for(
        self,
        puzzle: Individual,
        f_source: str,
        examples: Sequence[tuple[str, str]],
        rng: np.random.Generator,
    ) -> Proposal:
        """The solving request for ``puzzle`` (whose ``f`` is ``f_source``), after the
        ``(f, g)`` ``examples``."""
        header = solution_header(Puzzle("candidate", 3, f_source))
        if self.mode == "chat":
            shown = "".join(
                f"Example puzzle:\n{_fenced(f)}\nIts solution:\n{_fenced(g)}\n\n"
                for f, g in examples
            )
            body = (
                f"{SOLVER_INTRO} {_FORMAT}\n\n{shown}Write `{header[4:-1]}` for this puzzle; "
                "it is called with no arguments and must return plain data. Reply with one "
                f"fenced python code block.\n\nPuzzle:\n{_fenced(f_source)}"
            )
            prefix = ""
        else:
            shown = "".join(
                f"# Puzzle\n{f.rstrip()}\n# Solution\n{g.rstrip()}\n\n" for f, g in examples
            )
            body = f"# {_FORMAT}\n\n{shown}# Puzzle\n{f_source.rstrip()}\n# Solution\n{header}\n"
            prefix = header + "\n"
        return Proposal((puzzle.id,), self._request(body, rng), parents=(puzzle,), prefix=prefix)

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """The solution's source (it must define ``g``)."""
        return extract_code(completion, "g", prefix=proposal.prefix)


# -- the fake model's answers ----------------------------------------------------------------
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_DEFAULT = re.compile(r"(\w+)=(-?\d+)")


def fake_answer(text: str, seed: int | None) -> str | None:
    """What the fake model answers to a co-evolution prompt (chat mode), or None for other
    prompts. Deterministic in ``text`` and ``seed``.

    Writing: the last example with one integer default of ``f`` changed, in ``g`` too (three
    times in four; otherwise ``g`` keeps the old value and is likely wrong). Solving: for an
    ``int`` answer, ``g`` holds a copy of ``f`` and searches ``range(0, R)`` for an answer, R
    drawn from 10, 100, 1000 and 10000, so some attempts solve a puzzle and some do not; for
    other answer types, the type's plainest value.
    """
    if not (text.startswith(WRITER_INTRO) or text.startswith(SOLVER_INTRO)):
        return None
    blocks = _FENCE.findall(text)
    if not blocks:
        return "```python\n```"
    rng = random.Random(f"{seed}:{text}")
    code = blocks[-1].rstrip("\n")
    if text.startswith(WRITER_INTRO):
        return f"Here is a new puzzle.\n```python\n{_fake_variant(code, rng)}\n```"
    return f"Here is my solution.\n```python\n{_fake_solution(code, rng)}\n```"


def _fake_variant(code: str, rng: random.Random) -> str:
    lines = code.splitlines()
    fi = next((i for i, ln in enumerate(lines) if ln.startswith("def f(")), None)
    if fi is None:
        return code
    defaults = list(_DEFAULT.finditer(lines[fi]))
    if not defaults:
        return code
    m = rng.choice(defaults)
    name, old = m.group(1), int(m.group(2))
    new = old + rng.choice([-3, -2, -1, 1, 2, 3, 5, 7])
    lines[fi] = lines[fi][: m.start()] + f"{name}={new}" + lines[fi][m.end() :]
    if rng.random() < 0.75:
        for i, ln in enumerate(lines):
            if ln.startswith("def g("):
                lines[i] = re.sub(rf"\b{name}=-?\d+", f"{name}={new}", ln)
    return "\n".join(lines)


def _fake_solution(f_code: str, rng: random.Random) -> str:
    try:
        kind = Puzzle("candidate", 3, f_code).answer_type
    except ValueError:
        return "def g():\n    return 0"
    if kind != ("int",):
        default = {"int": 0, "float": 0.0, "str": "", "bool": False, "list": []}[kind[0]]
        return f"def g():\n    return {default!r}"
    bound = rng.choice([10, 100, 1000, 10000])
    inner = "\n".join("    " + ln if ln.strip() else ln for ln in f_code.splitlines())
    return (
        f"def g():\n{inner}\n    for x in range({bound}):\n        if f(x):\n"
        "            return x\n    return 0"
    )
