"""The ``prompts`` domain: evolve the instruction a task model is given.

A candidate's text (``Program.code``) is an instruction such as "Answer with the antonym of the
word.". Its fitness is the accuracy a **task model** (the run's judge model, by default the
run's ``[llm]``: the embedded SmolLM2-135M) reaches with it on a bundled task's validation
split, as in OpenELM's prompt environment and Honovich et al.'s instruction induction (2022).
Texts are never executed, so no sandbox is involved: ``scoring = "llm"``, and the runner calls
:meth:`PromptsDomain.assess` in the engine with an LLM client that records, budgets and replays
every task-model call like any other LLM call.

Tasks (:mod:`evolm.domains.prompts.data`), each made by evolm's own code with no download:
``antonyms`` (157 pairs), ``arithmetic`` (240 one-step word problems), ``sentiment`` (160
sentences), ``first_letter`` (314 words) and ``larger_number`` (200 pairs of integers). Each
splits deterministically into disjoint train / validation / test items.

Scoring: per validation item, one greedy task-model call (temperature 0, at most 16 tokens,
stopping at a newline) on the instruction, ``shots`` train examples and the item's input; the
answer is normalised and compared exactly with the target.

- fitness: validation accuracy, in [0, 1];
- descriptor ``words``: the instruction's word count, clipped to 0..40 (terse vs detailed);
- descriptor ``format_share``: the share of answers in the task's form (a number, one word, one
  letter, "positive"/"negative"), in [0, 1]. It varies with the instruction independently of
  accuracy (an instruction can get the model to answer with one word, wrongly, or to answer
  right inside a sentence, which exact match scores wrong), so the archive keeps instructions
  that control the answer's form apart from those that only hit the right content.

No leakage: the test split is scored only by :meth:`PromptsDomain.test_accuracy` (``evolm
prompt-test RUN.db`` after a run), never in fitness; the writer model's context
(:meth:`PromptsDomain.context`) shows train items only, and the task model's few-shot examples
are train items.
"""

from __future__ import annotations

from evolm.domains.prompts.data import TASKS, Item, Splits, Task, get_task, normalise, split_items
from evolm.domains.prompts.domain import (
    MAX_CHARS,
    MAX_WORDS,
    PromptsDomain,
    SplitScore,
    TaskModel,
    TaskModelFailed,
)
from evolm.domains.prompts.report import (
    BackendTaskModel,
    PromptTestRow,
    best_instructions,
    prompt_test,
)

__all__ = [
    "MAX_CHARS",
    "MAX_WORDS",
    "TASKS",
    "BackendTaskModel",
    "Item",
    "PromptTestRow",
    "PromptsDomain",
    "SplitScore",
    "Splits",
    "Task",
    "TaskModel",
    "TaskModelFailed",
    "best_instructions",
    "get_task",
    "normalise",
    "prompt_test",
    "split_items",
]
