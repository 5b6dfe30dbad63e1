"""A stand-in task model for ``--llm fake`` runs of the ``prompts`` domain.

:func:`fake_task_answer` answers a task-model request (:meth:`PromptsDomain.task_request`: an
instruction, optional ``Input:``/``Output:`` shots, then ``Input: X`` and ``Output:``) the way a
weak model might, so that a fake run shows instructions being selected:

- the instruction's words pick the task the stand-in attempts (``opposite``/``antonym``:
  antonyms; ``letter``/``initial``: first letter; ``positive``/``negative``/``sentiment``:
  sentiment; ``larger``/``bigger``/``greater``: the larger number; ``solve``/``problem``/
  ``count``/``number``: arithmetic); an instruction with none of them gets the input echoed;
- the instruction's **skill**, a number in [0.2, 1) from a hash of its normalised words, is the
  share of items answered right: an item is right when a hash of its input is below the skill
  (so a more skilled instruction gets a superset of the items right); the others are answered
  with the input echoed.

Equal requests give equal answers; every other prompt gets None (the caller answers as before).
"""

from __future__ import annotations

import hashlib
import re

from evolm.domains.prompts.data import TASKS

__all__ = ["fake_task_answer"]

_REQUEST = re.compile(
    r"\A(?P<instruction>.*?)\n\n(?:Input: [^\n]*\nOutput: [^\n]*\n\n)*"
    r"Input: (?P<input>[^\n]*)\nOutput:\Z",
    re.DOTALL,
)
_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("antonyms", ("opposite", "antonym")),
    ("first_letter", ("letter", "initial")),
    ("sentiment", ("positive", "negative", "sentiment")),
    ("larger_number", ("larger", "bigger", "greater")),
    ("arithmetic", ("solve", "problem", "count", "number")),
)


def _unit(text: str) -> float:
    """A number in [0, 1) from a hash of ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32


def _attempted(instruction: str) -> str | None:
    lowered = instruction.lower()
    return next((task for task, words in _KEYWORDS if any(w in lowered for w in words)), None)


def _right(task: str, given: str) -> str | None:
    if task == "first_letter":
        return given[:1].lower() or None
    if task == "larger_number":
        numbers = [int(n) for n in re.findall(r"-?\d+", given)]
        return str(max(numbers)) if numbers else None
    return next((it.target for it in TASKS[task].items if it.input == given), None)


def fake_task_answer(prompt: str) -> str | None:
    """The stand-in task model's answer to ``prompt`` (see the module docstring), or None when
    ``prompt`` is not a task-model request."""
    m = _REQUEST.match(prompt)
    if m is None:
        return None
    instruction, given = m.group("instruction").strip(), m.group("input").strip()
    task = _attempted(instruction)
    if task is None:
        return f" {given}"
    skill = 0.2 + 0.8 * _unit(" ".join(re.findall(r"[a-z]+", instruction.lower())))
    right = _right(task, given)
    if right is None or _unit(given) >= skill:
        return f" {given}"
    return f" {right}"
