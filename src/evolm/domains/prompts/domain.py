"""The ``prompts`` domain class: an instruction is scored by the task model's accuracy.

See :mod:`evolm.domains.prompts` for the whole design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from evolm.domains.base import Domain, DomainContext
from evolm.domains.prompts.data import Item, Splits, Task, get_task, split_items
from evolm.llm.base import Completion, LLMError, Request
from evolm.llm.client import LLMCallFailed
from evolm.types import DescriptorSpace, Evaluation, Status

__all__ = [
    "MAX_CHARS",
    "MAX_WORDS",
    "PromptsDomain",
    "SplitScore",
    "TaskModel",
    "TaskModelFailed",
]

MAX_CHARS = 600
"""The longest instruction scored; a longer one is ``invalid``."""
MAX_WORDS = 40
"""The ``words`` descriptor's upper bound (MAX_CHARS characters hold fewer words)."""
ANSWER_TOKENS = 16
"""``max_tokens`` of a task-model call: answers are a word or a number."""
_SHOWN = 40
"""Characters of each answer kept in an evaluation's extras."""
_CONTEXT_EXAMPLES = 3


class TaskModel(Protocol):
    """What scoring needs of a client: :class:`evolm.llm.client.LLMClient` is one. ``generate``
    answers one request and raises when the call fails."""

    async def generate(self, request: Request) -> Completion: ...


@dataclass(frozen=True)
class SplitScore:
    """How the task model did with one instruction on one split.

    Attributes:
        correct: per item (split order), whether the answer matched the target.
        well_formed: per item, whether the answer had the task's form (a number, one word, ...).
        answers: per item, the model's raw answer.
    """

    correct: tuple[bool, ...]
    well_formed: tuple[bool, ...]
    answers: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.correct)

    @property
    def format_share(self) -> float:
        return sum(self.well_formed) / len(self.well_formed)


class TaskModelFailed(RuntimeError):
    """A task-model call failed while scoring a split (the message names the item)."""


class PromptsDomain(Domain):
    """Evolve the instruction a task model is given for a bundled task (see the package docs).

    Args:
        task: the bundled task (:data:`~evolm.domains.prompts.data.TASKS`).
        validation_size: items whose accuracy is the fitness.
        test_size: held-out items, scored only by :meth:`test_accuracy`.
        shots: train examples shown to the task model before each input (0 to 8).
        task_model: ``"completion"`` (the instruction, shots and input as one text the model
            continues after ``Output:``) or ``"chat"`` (the same text as one user message).

    Raises:
        ValueError: an unknown task or task model format, sizes that leave fewer than 3 train
            items, or ``shots`` outside 0..8.
    """

    name = "prompts"
    eval_timeout = 300.0
    qd_offset = 0.0
    scoring = "llm"
    llm_role = "task"
    fitness_bounds = (0.0, 1.0)
    descriptors_in_space = True

    def __init__(
        self,
        task: str = "antonyms",
        validation_size: int = 20,
        test_size: int = 50,
        shots: int = 0,
        task_model: str = "completion",
    ) -> None:
        self.task: Task = get_task(task)
        self.splits: Splits = split_items(self.task, validation_size, test_size)
        if isinstance(shots, bool) or not isinstance(shots, int) or not 0 <= shots <= 8:
            raise ValueError(f"prompts shots must be an int from 0 to 8, got {shots!r}")
        if shots + _CONTEXT_EXAMPLES > len(self.splits.train):
            raise ValueError(
                f"prompts shots={shots} needs {shots + _CONTEXT_EXAMPLES} train items but the "
                f"{task} task leaves {len(self.splits.train)}; lower validation_size or test_size"
            )
        if task_model not in ("completion", "chat"):
            raise ValueError(
                f'prompts task_model must be "completion" or "chat", got {task_model!r}'
            )
        self.shots = shots
        self.task_model = task_model

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("words", "format_share"), ((0.0, float(MAX_WORDS)), (0.0, 1.0)))

    def seeds(self) -> list[str]:
        return list(self.task.seeds)

    def context(self) -> DomainContext:
        """The writer model's context: the task's summary and three train examples (never a
        validation or test item)."""
        shown = self.splits.train[-_CONTEXT_EXAMPLES:]
        examples = "\n".join(f"Input: {it.input}\nOutput: {it.target}" for it in shown)
        description = (
            f"An instruction tells a small language model how to do the task '{self.task.name}': "
            f"{self.task.summary}. The model reads the instruction, then an input, and must "
            f"reply with the output alone on one line. Examples of the task:\n{examples}\n"
            "Write a short, clear instruction that makes the model give the right output."
        )
        return DomainContext(
            description=description,
            function_name="instruction",
            language="text",
            file_name="instruction.txt",
        )

    def prepare(self, code: str) -> str:
        """The instruction stripped of surrounding whitespace.

        Raises:
            ValueError: it is empty or longer than :data:`MAX_CHARS` characters.
        """
        text = code.strip()
        if not text:
            raise ValueError("the instruction is empty")
        if len(text) > MAX_CHARS:
            raise ValueError(
                f"the instruction has {len(text)} characters; at most {MAX_CHARS} are scored"
            )
        return text

    def shot_items(self) -> tuple[Item, ...]:
        """The train examples shown to the task model before each input."""
        return self.splits.train[: self.shots]

    def task_request(self, instruction: str, item: Item, seed: int = 0) -> Request:
        """The task-model request for ``item`` under ``instruction``: greedy, at most
        :data:`ANSWER_TOKENS` tokens, stopping at a newline."""
        shots = "".join(f"Input: {it.input}\nOutput: {it.target}\n\n" for it in self.shot_items())
        text = f"{instruction.strip()}\n\n{shots}Input: {item.input}\nOutput:"
        common: dict[str, Any] = {
            "max_tokens": ANSWER_TOKENS,
            "temperature": 0.0,
            "top_p": 1.0,
            "stop": ("\n",),
            "seed": seed,
        }
        if self.task_model == "chat":
            return Request(kind="chat", messages=({"role": "user", "content": text},), **common)
        return Request(kind="completion", prompt=text, **common)

    async def score_split(
        self, instruction: str, items: tuple[Item, ...], client: TaskModel, seed: int = 0
    ) -> SplitScore:
        """Ask the task model every item of ``items`` under ``instruction``, one call each, in
        order, and score the answers.

        Raises:
            TaskModelFailed: a call failed (the client raised); the message names the item.
        """
        answers: list[str] = []
        for i, item in enumerate(items):
            try:
                completion = await client.generate(self.task_request(instruction, item, seed))
            except (LLMCallFailed, LLMError) as exc:
                raise TaskModelFailed(
                    f"the task model's call for item {i + 1} of {len(items)} failed: {exc}"
                ) from exc
            answers.append(completion.text)
        return SplitScore(
            correct=tuple(
                self.task.correct(a, it.target) for a, it in zip(answers, items, strict=True)
            ),
            well_formed=tuple(self.task.well_formed(a) for a in answers),
            answers=tuple(answers),
        )

    async def assess(self, text: str, seed: int, client: TaskModel) -> Evaluation:
        """Score instruction ``text`` on the validation split (``scoring = "llm"``).

        Fitness is the validation accuracy; descriptors are the instruction's word count
        (clipped to :data:`MAX_WORDS`) and the share of answers in the task's form. Extras:
        ``validation_accuracy``, ``format_share``, ``correct`` (per item) and ``answers`` (each
        cut to 40 characters). A failed task-model call gives an ``error`` evaluation; an empty
        or over-long instruction an ``invalid`` one.
        """
        try:
            instruction = self.prepare(text)
        except ValueError as exc:
            return Evaluation.failure(Status.INVALID, str(exc))
        try:
            score = await self.score_split(instruction, self.splits.validation, client, seed)
        except TaskModelFailed as exc:
            return Evaluation.failure(Status.ERROR, str(exc))
        words = min(len(instruction.split()), MAX_WORDS)
        return Evaluation(
            status=Status.OK,
            fitness=score.accuracy,
            descriptors=(float(words), score.format_share),
            extras={
                "validation_accuracy": score.accuracy,
                "format_share": score.format_share,
                "correct": list(score.correct),
                "answers": [a[:_SHOWN] for a in score.answers],
            },
        )

    async def test_accuracy(self, instruction: str, client: TaskModel, seed: int = 0) -> float:
        """Accuracy of ``instruction`` on the held-out test split. Never part of fitness: call
        it for the best instructions after a run (``evolm prompt-test``) to see overfitting.

        Raises:
            TaskModelFailed: a task-model call failed.
            ValueError: the instruction is empty or too long.
        """
        score = await self.score_split(self.prepare(instruction), self.splits.test, client, seed)
        return score.accuracy
