"""The 4-Parity domain: repair a bugged function that should compute the parity of four bits.

ELM (Lehman et al. 2022, section 3) compares LLM mutation with genetic-programming mutation on a
small program repair task: a correct parity function has up to five bugs injected, and each
operator must evolve it back to a working program. This is our own version of that task.

The correct program (:data:`CORRECT_PROGRAM`)::

    def parity(b1, b2, b3, b4):
        \"\"\"Return 1 if an odd number of the four bits are 1, and 0 otherwise.\"\"\"
        bit_sum = sum([b1, b2, b3, b4])
        return bit_sum % 2

The five bugs (:data:`BUGS`); the first four rename a variable where it is read:

===  ================================================  =====================================
bug  change                                            effect on its own
===  ================================================  =====================================
1    ``b1`` is summed as ``b``                         NameError on every input (0 of 16)
2    ``b3`` is summed in place of ``b2``               parity of ``b1, b4`` only (8 of 16)
3    ``bit_sum`` is returned as ``bitsum``             NameError on every input (0 of 16)
4    ``b2`` is summed in place of ``b4``               parity of ``b1, b3`` only (8 of 16)
5    ``% 2`` became ``% 3``                            right only for sums 0 and 1 (5 of 16)
===  ================================================  =====================================

Every bug can be undone by one GP edit (a ``name`` edit for bugs 1 to 4, a ``constant`` edit for
bug 5), and every non-empty set of bugs leaves the program wrong on at least one input. With
fewer than five bugs, ``bug_seed`` picks which: the ``bugs``-element subsets of ``1..5`` in
:func:`itertools.combinations` order, ``bug_seed`` taken modulo their number (so ``bug_seed=0``
is bugs ``1..bugs``); this is stable across Python and numpy versions.

Scoring: :meth:`ParityDomain.run` calls ``parity`` on all 16 inputs in the program's sandboxed
child and sends back the answers, and :meth:`ParityDomain.score` scores them in a process that
never runs the program (``scoring = "separate"``). An input counts as
right when the call returns an ``int``, ``bool`` or numpy integer or bool equal to the true
parity; an exception or a value of another type counts it wrong (the first such problem is kept
in the extras). Fitness is the fraction right, in [0, 1] (``qd_offset`` 0). The two behaviour
descriptors are the fractions right on the 8 even-parity and on the 8 odd-parity inputs, so a
program that always answers 0 and one that always answers 1 land in different cells.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolm.domains.base import Domain, DomainContext
from evolm.domains.program import (
    ProgramFailure,
    describe_exception,
    load_function,
    program_line,
)
from evolm.types import DescriptorSpace, Evaluation, Status

__all__ = [
    "BUGS",
    "CORRECT_PROGRAM",
    "INPUTS",
    "ParityDomain",
    "ParityScore",
    "bug_ids",
    "parity_program",
    "random_parity_program",
    "score_answers",
    "score_function",
]

INPUTS: tuple[tuple[int, int, int, int], ...] = tuple(
    (a, b, c, d) for a, b, c, d in itertools.product((0, 1), repeat=4)
)
"""The 16 inputs, in ``itertools.product`` order."""

BUGS: dict[int, str] = {
    1: "b1 is summed as b (NameError)",
    2: "b3 is summed in place of b2",
    3: "bit_sum is returned as bitsum (NameError)",
    4: "b2 is summed in place of b4",
    5: "% 2 became % 3",
}
"""The bugs :func:`parity_program` can inject, by number."""

_TEMPLATE = '''def parity(b1, b2, b3, b4):
    """Return 1 if an odd number of the four bits are 1, and 0 otherwise."""
    bit_sum = sum([{t1}, {t2}, {t3}, {t4}])
    return {total} % {modulus}
'''
_MAX_ANSWER = 2**31
"""Answers at least this large are stored as None (they are wrong anyway)."""
_MAX_PROBLEM_CHARS = 2000


def bug_ids(bugs: int, bug_seed: int = 0) -> tuple[int, ...]:
    """The bug numbers (sorted) that ``bugs`` and ``bug_seed`` select (see the module docstring).

    Raises:
        ValueError: ``bugs`` is not an int in 0..5, or ``bug_seed`` not an int >= 0.
    """
    if isinstance(bugs, bool) or not isinstance(bugs, int | np.integer) or not 0 <= bugs <= 5:
        raise ValueError(f"parity bugs must be an int from 0 to 5, got {bugs!r}")
    if isinstance(bug_seed, bool) or not isinstance(bug_seed, int | np.integer) or bug_seed < 0:
        raise ValueError(f"parity bug_seed must be an int >= 0, got {bug_seed!r}")
    subsets = list(itertools.combinations(range(1, 6), int(bugs)))
    return subsets[int(bug_seed) % len(subsets)]


def parity_program(bugs: int, bug_seed: int = 0) -> str:
    """Source of the parity program with ``bugs`` bugs injected (0: :data:`CORRECT_PROGRAM`).

    Raises:
        ValueError: as :func:`bug_ids`.
    """
    chosen = set(bug_ids(bugs, bug_seed))
    return _TEMPLATE.format(
        t1="b" if 1 in chosen else "b1",
        t2="b3" if 2 in chosen else "b2",
        t3="b3",
        t4="b2" if 4 in chosen else "b4",
        total="bitsum" if 3 in chosen else "bit_sum",
        modulus=3 if 5 in chosen else 2,
    )


CORRECT_PROGRAM: str = parity_program(0)
"""The bug-free program."""


def _true_parity(bits: tuple[int, ...]) -> int:
    return sum(bits) % 2


@dataclass(frozen=True)
class ParityScore:
    """How a parity function did on the 16 inputs.

    Attributes:
        answers: per input (in :data:`INPUTS` order), what came back as an int when it was an
            int-like value below 2**31 in size, else None.
        right: per input, whether the answer was right.
        first_problem: the first exception or unusable return value, described, or None.
    """

    answers: tuple[int | None, ...]
    right: tuple[bool, ...]
    first_problem: str | None

    @property
    def correct(self) -> int:
        return sum(self.right)

    @property
    def fixed(self) -> bool:
        return all(self.right)

    @property
    def fitness(self) -> float:
        return self.correct / len(INPUTS)

    @property
    def descriptors(self) -> tuple[float, float]:
        """Fractions right on the even-parity and on the odd-parity inputs."""
        even = [r for bits, r in zip(INPUTS, self.right, strict=True) if _true_parity(bits) == 0]
        odd = [r for bits, r in zip(INPUTS, self.right, strict=True) if _true_parity(bits) == 1]
        return sum(even) / len(even), sum(odd) / len(odd)


def _as_int(value: Any) -> int | None:
    """``value`` as a plain int if it is an int, bool, numpy integer or numpy bool, else None
    (also when its conversion misbehaves, as an int subclass's may)."""
    if not isinstance(value, int | np.integer | np.bool_):
        return None
    try:
        answer = int(value)
    except KeyboardInterrupt:
        raise
    except BaseException:
        return None
    return answer if type(answer) is int else None


def score_function(fn: Callable[..., Any]) -> ParityScore:
    """Call ``fn`` on the 16 inputs and score it. This runs ``fn`` **in the calling process**:
    use it for trusted functions (tests, reference solutions); untrusted programs are called by
    :meth:`ParityDomain.run` inside a sandbox worker. Never raises for a misbehaving ``fn``
    (``KeyboardInterrupt`` excepted)."""
    answers: list[int | None] = []
    right: list[bool] = []
    first: str | None = None
    for bits in INPUTS:
        call = f"parity{bits}"
        try:
            value = fn(*bits)
        except KeyboardInterrupt:
            raise
        except SystemExit as exc:
            line = program_line(exc)
            problem = f"{call} called exit()" + (f" (line {line})" if line is not None else "")
            answers.append(None)
            right.append(False)
            first = first or problem
            continue
        except BaseException as exc:  # a program may raise anything; that input is just wrong
            answers.append(None)
            right.append(False)
            first = first or f"{call} raised {describe_exception(exc)}"
            continue
        answer = _as_int(value)
        if answer is None:
            answers.append(None)
            right.append(False)
            first = first or f"{call} returned {type(value).__name__}; expected the int 0 or 1"
        else:
            answers.append(answer if abs(answer) < _MAX_ANSWER else None)
            right.append(answer == _true_parity(bits))
    return ParityScore(tuple(answers), tuple(right), first)


def score_answers(answers: Any, first_problem: Any = None) -> ParityScore | str:
    """Score 16 answers (in :data:`INPUTS` order) as :func:`score_function` would have, or say
    why they are not answers: each must be None or an int (not bool) below 2**31 in size, and
    ``first_problem`` None or a string. For data a program sent back, which may be forged."""
    if not isinstance(answers, list | tuple) or len(answers) != len(INPUTS):
        what = f"{len(answers)} values" if isinstance(answers, list | tuple) else "no list"
        return f"expected {len(INPUTS)} answers (ints or None), got {what}"
    for a in answers:
        if a is not None and (type(a) is not int or abs(a) >= _MAX_ANSWER):
            return f"answers must be ints below 2**31 in size or None, got {type(a).__name__}"
    if first_problem is not None and not isinstance(first_problem, str):
        return f"first_problem must be a string or None, got {type(first_problem).__name__}"
    right = tuple(
        a is not None and a == _true_parity(b) for a, b in zip(answers, INPUTS, strict=True)
    )
    problem = None if first_problem is None else first_problem[:_MAX_PROBLEM_CHARS]
    return ParityScore(tuple(answers), right, problem)


# -- random programs (random search) ------------------------------------------------------------
_GATES = ("^", "&", "|")
_LEAVES = ("b1", "b2", "b3", "b4")


def _circuit(rng: np.random.Generator, depth: int) -> str:
    """A random expression of the four input bits: XOR, AND and OR gates (``^ & |``) and
    NOT (``1 - e``), at most ``depth`` gates deep. Every value it takes is the int 0 or 1."""
    if depth == 0 or rng.random() < 0.25:
        return _LEAVES[int(rng.integers(len(_LEAVES)))]
    if rng.random() < 0.15:
        return f"(1 - {_circuit(rng, depth - 1)})"
    gate = _GATES[int(rng.integers(len(_GATES)))]
    return f"({_circuit(rng, depth - 1)} {gate} {_circuit(rng, depth - 1)})"


def random_parity_program(rng: np.random.Generator) -> str:
    """A random ``parity`` program: one circuit of XOR, AND, OR and NOT gates over the four
    bits, up to four gates deep. The same generator state gives the same program."""
    body = _circuit(rng, int(rng.integers(1, 5)))
    if body.startswith("(") and body.endswith(")") and not body.startswith("(1 - "):
        body = body[1:-1]
    return f"def parity(b1, b2, b3, b4):\n    return {body}\n"


class ParityDomain(Domain):
    """Repair a bugged 4-bit parity function (ELM's 4-Parity experiment).

    Args:
        bugs: how many of the five bugs (:data:`BUGS`) the seed carries, 0 to 5.
        bug_seed: which ``bugs`` of the five, when fewer than five (see the module docstring);
            an int >= 0.
        bits: number of input bits; only 4 is supported.

    Raises:
        ValueError: ``bugs`` outside 0..5, a negative or non-int ``bug_seed``, or ``bits``
            other than 4.
    """

    name = "parity"
    eval_timeout = 2.0
    qd_offset = 0.0
    scoring = "separate"
    fitness_bounds = (0.0, 1.0)
    descriptors_in_space = True

    def __init__(self, bugs: int = 5, bug_seed: int = 0, bits: int = 4) -> None:
        if bits != 4 or isinstance(bits, bool):
            raise ValueError(f"the parity domain supports only bits=4, got {bits!r}")
        self.bug_ids = bug_ids(bugs, bug_seed)
        self.bugs = int(bugs)
        self.bug_seed = int(bug_seed)
        self.bits = 4

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("even_correct", "odd_correct"), ((0.0, 1.0), (0.0, 1.0)))

    def seeds(self) -> list[str]:
        return [parity_program(self.bugs, self.bug_seed)]

    def context(self) -> DomainContext:
        description = (
            "The Python function `parity(b1, b2, b3, b4)` should return the parity of its four "
            "input bits (each the int 0 or 1): 0 when an even number of them are 1, and 1 when "
            "an odd number are. The current version has bugs. Fix it so that it returns the "
            "right answer, as an int, for every one of the 16 possible inputs. The score is the "
            "fraction of the 16 inputs answered correctly; an input on which the function "
            "raises an exception counts as wrong."
        )
        api = (
            "# parity(b1, b2, b3, b4) takes four ints, each 0 or 1, and returns 0 or 1 as an int.\n"
        )
        return DomainContext(
            description=description,
            function_name="parity",
            api=api,
            file_name="parity.py",
            random_program=self.random_program,
        )

    def random_program(self, rng: np.random.Generator) -> str:
        """A random circuit of logic gates (see :func:`random_parity_program`), for random
        search."""
        return random_parity_program(rng)

    def run(self, code: str, seed: int = 0) -> dict[str, Any] | Evaluation:
        """Run ``code`` in a fresh namespace and call its ``parity`` on the 16 inputs:
        ``{"answers": [16 ints or None], "first_problem": str or None}``, or the failed
        evaluation when the program does not load.

        ``random`` and ``numpy.random`` are reseeded with ``seed`` first. Never raises for bad
        code (``KeyboardInterrupt`` excepted): a syntax error or a missing or non-callable
        ``parity`` is ``invalid``; an exception or ``exit()`` while the module runs is
        ``error``; exceptions inside ``parity`` only make those inputs wrong.
        """
        fn = load_function(code, "parity", seed)
        if isinstance(fn, ProgramFailure):
            return Evaluation.failure(fn.status, fn.error)
        result = score_function(fn)
        return {"answers": list(result.answers), "first_problem": result.first_problem}

    def score(self, data: Any, seed: int = 0) -> Evaluation:
        """Score what :meth:`run` returned (validated: it may be forged). Extras: ``correct``
        (int), ``fixed`` (bool), ``answers`` (16 ints or None, in :data:`INPUTS` order) and
        ``first_problem`` (str or None)."""
        if not isinstance(data, dict) or set(data) != {"answers", "first_problem"}:
            return Evaluation.failure(
                Status.INVALID, "parity data must be a map of answers and first_problem"
            )
        score = score_answers(data["answers"], data["first_problem"])
        if isinstance(score, str):
            return Evaluation.failure(Status.INVALID, f"invalid parity data: {score}")
        extras = {
            "correct": score.correct,
            "fixed": score.fixed,
            "answers": list(score.answers),
            "first_problem": score.first_problem,
        }
        return Evaluation(
            status=Status.OK,
            fitness=score.fitness,
            descriptors=score.descriptors,
            extras=extras,
        )
