"""The ``prompts`` domain: bundled tasks and their splits, the scorer's normalisation, assess with
a stand-in task model, no leakage of validation or test items, and ``evolm prompt-test``."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evolm.config import RunConfig
from evolm.domains.base import get_domain, registered_domains
from evolm.domains.prompts import (
    MAX_CHARS,
    TASKS,
    PromptsDomain,
    best_instructions,
    get_task,
    normalise,
    split_items,
)
from evolm.llm.base import Completion, LLMBackend, Request
from evolm.llm.client import LLMCallFailed
from evolm.store import RunStore
from evolm.types import Evaluation, Program, Status

ROOT = Path(__file__).resolve().parents[2]
_INPUT = re.compile(r"Input: (.*)\nOutput:\Z", re.DOTALL)


def _request_text(request: Request) -> str:
    return request.prompt if request.kind == "completion" else request.messages[-1]["content"]


def _asked(request: Request) -> str:
    """The input a task-model request asks about (the last ``Input:`` line of its text)."""
    text = _request_text(request)
    return _INPUT.search(text.rsplit("\n\n", 1)[-1]).group(1)  # type: ignore[union-attr]


def _targets(task: str) -> dict[str, str]:
    return {it.input: it.target for it in get_task(task).items}


class StandIn:
    """A deterministic task model that records what it was sent: it answers ``target`` for the
    inputs in ``knows`` and a chatty wrong sentence for the others; ``fail_on`` raises."""

    def __init__(
        self, dom: PromptsDomain, knows: set[str] | None = None, fail_on: str | None = None
    ) -> None:
        self.knows = knows
        self.fail_on = fail_on
        self.requests: list[Request] = []
        self.targets = _targets(dom.task.name)

    async def generate(self, request: Request) -> Completion:
        self.requests.append(request)
        asked = _asked(request)
        if asked == self.fail_on:
            raise LLMCallFailed("the task model's server went away")
        if self.knows is None or asked in self.knows:
            return Completion(f" {self.targets[asked]}", model="stand-in")
        return Completion(" Sure, here is my best guess about it", model="stand-in")


class OracleLLM(LLMBackend):
    """A task-model backend for ``evolm prompt-test --llm tests.domains.test_prompts:OracleLLM``:
    right on every antonyms item when the instruction says "opposite", else silent."""

    name = "oracle"

    def __init__(self, model: str = "oracle", concurrency: int = 1, seed: int = 0) -> None:
        super().__init__(model, concurrency, seed=seed)
        self.targets = _targets("antonyms")

    async def _generate_one(self, request: Request) -> Completion:
        known = "opposite" in _request_text(request)
        return Completion(self.targets[_asked(request)] if known else "", model=self.model)


def _assess(dom: PromptsDomain, text: str, client: StandIn, seed: int = 0) -> Evaluation:
    return asyncio.run(dom.assess(text, seed, client))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_splits_are_deterministic_disjoint_and_sized(name: str) -> None:
    task = get_task(name)
    assert len(task.items) >= 150 and len({it.input for it in task.items}) == len(task.items)
    a, b = split_items(task, 20, 50), split_items(task, 20, 50)
    assert a == b
    assert (len(a.validation), len(a.test)) == (20, 50)
    inputs = [{it.input for it in part} for part in (a.train, a.validation, a.test)]
    assert not (inputs[0] & inputs[1] or inputs[0] & inputs[2] or inputs[1] & inputs[2])
    assert set().union(*inputs) == {it.input for it in task.items}
    # the test split depends on test_size alone: a bigger validation split takes from train
    c = split_items(task, 35, 50)
    assert c.test == a.test and c.validation[:20] == a.validation


def test_every_task_is_scored_by_its_own_targets_and_seeds_are_plain_text() -> None:
    assert "prompts" in registered_domains()
    for task in TASKS.values():
        assert all(task.correct(it.target, it.target) for it in task.items)
        assert all(task.well_formed(it.target) for it in task.items), task.name
        assert len(task.seeds) >= 3 and all(s.strip() and len(s) < MAX_CHARS for s in task.seeds)
    antonyms = [w for it in get_task("antonyms").items for w in (it.input, it.target)]
    assert len(antonyms) == len(set(antonyms)), "a word in two antonym pairs crosses splits"
    sentiment = [it.target for it in get_task("sentiment").items]
    assert sentiment.count("positive") == sentiment.count("negative")


@pytest.mark.parametrize(
    ("raw", "numeric", "want"),
    [
        (' "Cold." ', False, "cold"),
        ("Answer: Cold!\nand more text", False, "cold"),
        ("\n\n  The answer is   NEGATIVE  ", False, "negative"),
        ("Output: 1,204.", True, "1204"),
        ("+41", True, "41"),
        ("(b)", False, "b"),
        ("the cold one", False, "the cold one"),
        ("Answer", False, "answer"),
        ("the answer is: 7", True, "7"),
        ("", False, ""),
    ],
)
def test_normalise(raw: str, numeric: bool, want: str) -> None:
    assert normalise(raw, numeric=numeric) == want


def test_scorer_is_exact_after_normalisation() -> None:
    arithmetic, antonyms = get_task("arithmetic"), get_task("antonyms")
    assert arithmetic.correct(" 1,204.\n", "1204") and not arithmetic.correct("12040", "1204")
    assert not arithmetic.correct("It is 1204", "1204")
    assert antonyms.correct("'Cold'", "cold") and not antonyms.correct("colder", "cold")
    assert antonyms.well_formed("Cold.") and not antonyms.well_formed("it is cold")
    assert get_task("first_letter").well_formed("A") and not get_task("first_letter").well_formed(
        "ab"
    )


def test_bad_parameters_name_the_problem_and_fix() -> None:
    with pytest.raises(ValueError, match=r"no task 'poems'.*antonyms, arithmetic"):
        get_domain("prompts", {"task": "poems"})
    with pytest.raises(ValueError, match="fewer than 3 for training; lower them"):
        get_domain("prompts", {"task": "antonyms", "validation_size": 100, "test_size": 56})
    with pytest.raises(ValueError, match="validation_size must be an int >= 1"):
        get_domain("prompts", {"validation_size": 0})
    with pytest.raises(ValueError, match="shots must be an int from 0 to 8"):
        get_domain("prompts", {"shots": 9})
    with pytest.raises(ValueError, match='task_model must be "completion" or "chat"'):
        get_domain("prompts", {"task_model": "json"})


@pytest.mark.parametrize("task_model", ["completion", "chat"])
def test_assess_scores_validation_accuracy_and_answer_form(task_model: str) -> None:
    dom = get_domain(
        "prompts", {"task": "antonyms", "validation_size": 12, "task_model": task_model}
    )
    assert isinstance(dom, PromptsDomain)
    known = {it.input for i, it in enumerate(dom.splits.validation) if i % 3 == 0}
    client = StandIn(dom, knows=known)
    instruction = "  Reply with the antonym.  "
    ev = _assess(dom, instruction, client, seed=7)
    assert ev.status is Status.OK, ev.error
    right = [it.input in known for it in dom.splits.validation]
    assert ev.fitness == pytest.approx(sum(right) / 12) and 0 < sum(right) < 12
    assert ev.descriptors == (4.0, pytest.approx(sum(right) / 12))  # the wrong answers are chatty
    assert ev.extras["correct"] == right
    assert ev.extras["validation_accuracy"] == ev.fitness
    assert all(len(a) <= 40 for a in ev.extras["answers"])
    checked = ev.checked(dom.descriptor_space, dom.fitness_bounds, descriptors_in_space=True)
    assert checked.status is Status.OK
    # one greedy, short, one-line call per validation item, in split order
    assert [_asked(r) for r in client.requests] == [it.input for it in dom.splits.validation]
    for r in client.requests:
        assert (r.kind, r.temperature, r.stop, r.seed) == (task_model, 0.0, ("\n",), 7)
        assert _request_text(r).startswith("Reply with the antonym.\n\n")


def test_a_failed_call_is_a_failed_evaluation_and_bad_texts_are_invalid() -> None:
    dom = get_domain("prompts", {"task": "sentiment", "validation_size": 10})
    assert isinstance(dom, PromptsDomain)
    client = StandIn(dom, fail_on=dom.splits.validation[3].input)
    ev = _assess(dom, "Label the sentence.", client)
    assert ev.status is Status.ERROR
    assert "item 4 of 10 failed" in (ev.error or "") and "went away" in (ev.error or "")
    assert len(client.requests) == 4

    quiet = StandIn(dom)
    for text in ("   \n", "x" * (MAX_CHARS + 1)):
        ev = _assess(dom, text, quiet)
        assert ev.status is Status.INVALID and ev.error
    assert quiet.requests == []
    words = _assess(dom, "word " * 200, quiet)
    assert words.status is Status.INVALID and str(MAX_CHARS) in (words.error or "")


def test_descriptors_vary_with_the_instruction() -> None:
    dom = get_domain("prompts", {"task": "larger_number", "validation_size": 8})
    assert isinstance(dom, PromptsDomain)
    terse = _assess(dom, "Bigger one.", StandIn(dom))
    wordy = _assess(
        dom, "Read both numbers, compare them and answer with the larger.", StandIn(dom)
    )
    chatty = _assess(dom, "Bigger one.", StandIn(dom, knows=set()))
    assert terse.descriptors is not None and wordy.descriptors is not None
    assert terse.descriptors[0] < wordy.descriptors[0]
    assert (terse.fitness, terse.descriptors[1]) == (1.0, 1.0)
    assert (chatty.fitness, chatty.descriptors) == (0.0, (2.0, 0.0))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_no_leakage_into_fitness_writer_prompts_or_shots(name: str) -> None:
    dom = get_domain("prompts", {"task": name, "validation_size": 15, "test_size": 30, "shots": 2})
    assert isinstance(dom, PromptsDomain)
    train = {it.input for it in dom.splits.train}
    validation = {it.input for it in dom.splits.validation}
    test = {it.input for it in dom.splits.test}

    # everything an operator sees: the context and the seeds
    ctx = dom.context()
    writer = "\n".join([ctx.description, ctx.api, *ctx.optional_api.values(), *dom.seeds()])
    shown = set(re.findall(r"Input: (.*)\n", writer))
    assert len(shown) == 3 and shown <= train
    assert ctx.language == "text" and ctx.function_name == "instruction"

    # everything the task model is sent while a run scores instructions
    client = StandIn(dom)
    for seed_text in dom.seeds():
        assert _assess(dom, seed_text, client).status is Status.OK
    sent = "\n".join(_request_text(r) for r in client.requests)
    in_requests = set(re.findall(r"Input: (.*)\n", sent))
    assert in_requests == validation | {it.input for it in dom.shot_items()}
    assert {it.input for it in dom.shot_items()} <= train
    assert not test & in_requests


def test_test_accuracy_is_kept_apart_from_fitness() -> None:
    dom = get_domain("prompts", {"task": "arithmetic", "validation_size": 10, "test_size": 20})
    assert isinstance(dom, PromptsDomain)
    # a task model that knows the validation items only: fitness 1, test accuracy 0
    client = StandIn(dom, knows={it.input for it in dom.splits.validation})
    ev = _assess(dom, "Give the number.", client)
    assert ev.fitness == 1.0
    before = len(client.requests)
    test = asyncio.run(dom.test_accuracy("Give the number.", client))
    assert test == 0.0
    assert [_asked(r) for r in client.requests[before:]] == [it.input for it in dom.splits.test]
    everything = StandIn(dom)
    assert asyncio.run(dom.test_accuracy("Give the number.", everything)) == 1.0


def _prompts_run(path: Path, rows: list[tuple[str, Evaluation]]) -> None:
    cfg = RunConfig.model_validate(
        {"domain": {"name": "prompts", "params": {"task": "antonyms", "test_size": 10}}}
    )
    with RunStore(path) as store:
        store.create_run(seed=0, domain="prompts", config=cfg.model_dump(), versions={})
        store.add_programs([Program(id=i, code=text) for i, (text, _) in enumerate(rows)])
        store.add_evaluations([(i, ev, None) for i, (_, ev) in enumerate(rows)])


def _ok(fitness: float) -> Evaluation:
    return Evaluation(Status.OK, fitness=fitness, descriptors=(3.0, 1.0))


def test_prompt_test_shows_validation_next_to_test_accuracy(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    rows = [
        ("Say the opposite word.", _ok(0.6)),
        ("Memorised the validation set.", _ok(0.95)),  # the best on validation, no use on test
        ("Say the opposite word.", _ok(0.6)),  # a duplicate text is tested once
        ("Answer.", _ok(0.1)),
        ("Crashed.", Evaluation.failure(Status.ERROR, "boom")),
    ]
    _prompts_run(db, rows)
    assert [b[0] for b in best_instructions(db, 5)] == [1, 0, 3]
    assert [b[0] for b in best_instructions(db, 2)] == [1, 0]

    proc = subprocess.run(
        [
            sys.executable, "-c", "from evolm.cli import app; app()", "prompt-test", str(db),
            "--top", "2", "--llm", "tests.domains.test_prompts:OracleLLM",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows_out = [ln.split() for ln in proc.stdout.splitlines() if re.match(r"\s*\d+\s", ln)]
    lines = {r[0]: r for r in rows_out}
    assert len(rows_out) == 2 and set(lines) == {"0", "1"}
    assert lines["1"][1:5] == ["0.95", "(20)", "0.00", "(10)"]
    assert lines["0"][1:5] == ["0.60", "(20)", "1.00", "(10)"]


def test_prompt_test_refuses_other_domains_and_empty_runs(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    _prompts_run(db, [("Crashed.", Evaluation.failure(Status.ERROR, "boom"))])
    cmd = [sys.executable, "-c", "from evolm.cli import app; app()", "prompt-test", str(db)]
    proc = subprocess.run([*cmd, "--llm", "fake"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "holds no instruction scored ok" in proc.stderr
    proc = subprocess.run([*cmd, "--top", "0"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "--top must be at least 1" in proc.stderr

    other = tmp_path / "parity.db"
    with RunStore(other) as store:
        cfg = RunConfig.model_validate({"domain": {"name": "parity"}})
        store.create_run(seed=0, domain="parity", config=cfg.model_dump(), versions={})
    proc = subprocess.run(
        [*cmd[:-1], str(other)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "run of the parity domain" in proc.stderr


def test_the_fake_task_model_answers_by_the_instruction_and_nothing_else() -> None:
    from evolm.domains.prompts.fake import fake_task_answer
    from evolm.llm.fake import mutating_responder

    dom = get_domain("prompts", {"task": "antonyms", "validation_size": 20})
    assert isinstance(dom, PromptsDomain)
    targets = _targets("antonyms")

    def answers(instruction: str) -> list[bool]:
        got = []
        for item in dom.splits.validation:
            request = dom.task_request(instruction, item)
            text = mutating_responder(request)
            assert text == fake_task_answer(_request_text(request))
            got.append(text.strip() == targets[item.input])
        return got

    # no task word: the input echoed, never right; a task word: right on a share of the items
    assert not any(answers("Reply to this."))
    rights = {s: answers(s) for s in get_task("antonyms").seeds}
    assert all(any(r) for r in rights.values())
    assert len({tuple(r) for r in rights.values()}) > 1  # the share depends on the instruction
    # a more skilled instruction is right on a superset of the items
    ordered = sorted(rights.values(), key=sum)
    pairs = itertools.pairwise(ordered)
    assert all(a <= b for lo, hi in pairs for a, b in zip(lo, hi, strict=True))
    assert fake_task_answer("Write a poem about the sea.") is None
    assert fake_task_answer("Reply.\n\nInput: hot\nOutput: cold\n\nInput: big\nOutput:") == " big"
