"""The operator contract, run over every registered operator (``evolm.operators.OPERATORS``), the
built-in domains' contexts and seeds, and both prompt modes of the LLM operators.

Every operator: the same parents and the same seeded generator give the same proposal (and draw
the same numbers); the proposal records its parents; LLM operators ask for a request and
LLM-free ones carry code or an error; garbage never raises but comes back as a failed result;
and ``finish`` gives the same result when the request's prompt text is blanked, so it never reads
the parent back out of the prompt.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import re
from collections.abc import Sequence
from functools import cache

import numpy as np
import pytest

from evolm.domains.base import DomainContext, get_domain
from evolm.operators import OPERATORS, Operator, Proposal, Result
from evolm.operators.textmatch import indent_of
from evolm.types import Evaluation, Individual, Program, Status

DOMAINS = ("image", "sodarace", "parity")
TEXT_DOMAINS = ("poetry",)  # text operators (evolm.operators.text) write texts, not programs
MODES = ("chat", "completion")


def _writes_text(cls: type) -> bool:
    return cls.__module__ == "evolm.operators.text"


def _cases(llm_only: bool = False) -> list[object]:
    cases = []
    for name, cls in OPERATORS.items():
        if llm_only and not cls.uses_llm:
            continue
        # LLM-free operators accept a mode for a uniform signature and ignore it
        for mode in MODES if cls.uses_llm else MODES[:1]:
            for domain in TEXT_DOMAINS if _writes_text(cls) else DOMAINS:
                cases.append(pytest.param(name, mode, domain, id=f"{name}-{mode}-{domain}"))
    return cases


CASES = _cases()
LLM_CASES = _cases(llm_only=True)


@cache
def _domain(name: str) -> tuple[DomainContext, tuple[str, ...]]:
    domain = get_domain(name)
    return domain.context(), tuple(domain.seeds())


def _individual(pid: int, code: str, fitness: float) -> Individual:
    return Individual(
        Program(id=pid, code=code, created_at=0.0),
        Evaluation(Status.OK, fitness=fitness, descriptors=(0.5,)),
    )


def _setup(name: str, mode: str, domain: str) -> tuple[Operator, list[Individual]]:
    """A fresh operator and ``num_parents`` parents made from the domain's seeds."""
    context, seeds = _domain(domain)
    op = OPERATORS[name](context, mode)
    parents = [
        _individual(100 + i, seeds[i % len(seeds)], -float(i)) for i in range(op.num_parents)
    ]
    return op, parents


def _blanked(proposal: Proposal) -> Proposal:
    """``proposal`` with every text of its request blanked: no prompt, no messages."""
    assert proposal.request is not None
    return dataclasses.replace(
        proposal, request=dataclasses.replace(proposal.request, prompt="", messages=())
    )


def _def_line(code: str, function_name: str) -> int:
    lines = code.split("\n")
    pattern = re.compile(rf"^def {re.escape(function_name)}\(.*:\s*$")
    return next(i for i, line in enumerate(lines) if pattern.match(line))


def _good_completion(op: Operator, proposal: Proposal) -> tuple[str, str]:
    """An answer the operator should accept, in the format it asks for, and the program it
    means: the parent with a comment line added after its ``def`` line (in completion mode
    the prompt's head followed by that program's body)."""
    fn = op.context.function_name
    parent = proposal.parents[-1].program.code.rstrip() + "\n"
    if _writes_text(type(op)):
        edited = parent.replace("\n", " again\n", 1)
        return f"Here is a new {fn}:\n\n{edited}\nI hope you like it.\n", edited
    lines = parent.split("\n")
    at = _def_line(parent, fn)
    indent = indent_of(lines[at + 1]) or "    "
    edited_lines = [*lines[: at + 1], f"{indent}# edited", *lines[at + 1 :]]
    edited = "\n".join(edited_lines)
    if op.name == "search_replace":
        answer = f"<<<<<<< SEARCH\n{lines[at]}\n=======\n{lines[at]}\n{indent}# edited\n"
        answer += ">>>>>>> REPLACE\n"
        if op.mode == "completion":  # the prompt ends with the opening marker
            answer = answer.split("\n", 1)[1]
        return answer, edited
    if op.name == "line_edit":  # one line: a rewritten line, or a new one
        keep, resume, start = proposal.detail  # the line's start: indentation, a head of it
        assert isinstance(keep, int) and isinstance(resume, int) and isinstance(start, str)
        indent = indent_of(start)
        new = "_e = 1"
        if resume > keep:  # the line with a no-op added to its code
            old = lines[keep].strip()
            new = old[:-1].rstrip() + " or False:" if old.endswith(":") else old + "; _e = 1"
        edited = "\n".join([*lines[:keep], indent + new, *lines[resume:]])
        if op.mode == "chat":
            return f"```python\n{new}\n```\n", edited
        return new[len(start) - len(indent) :] + "\n", edited
    if op.name == "elm_diff":
        diff = difflib.unified_diff(
            parent.rstrip().split("\n"),
            edited.rstrip().split("\n"),
            "a/x.py",
            "b/x.py",
            lineterm="",
        )
        return "\n".join(diff) + "\n", edited
    if op.mode == "chat":
        return f"Here it is:\n```python\n{edited}```\nDone.\n", edited
    # completion mode: the model continues the head that ends the prompt (imports, for a
    # prompt mutation also the constants and helpers, then the def line) with the body
    assert proposal.prefix.rstrip().endswith(":")
    body = "\n".join(edited_lines[at + 1 :])
    return body, proposal.prefix + body


def _garbage(proposal: Proposal) -> list[str]:
    request = proposal.request
    cap = request.max_tokens if request is not None else 512
    return [
        "",
        " \n\t\n   ",
        bytes(range(256)).decode("latin-1"),
        "\x00\x01\x02\xff\xfe" * 50,
        "lorem ipsum dolor sit amet " * 3800,  # about 100 kB
        "```python\ndef f(:\n    return (\n",
        "```\n```python\n```\n~~~\n",
        "    x = x + 1\n" * cap,
        "function draw() {\n  return [1, 2, 3];\n}\n",
        '#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }\n',
        "<<<<<<< SEARCH\n=======\n>>>>>>> REPLACE\n<<<<<<< SEARCH\nnot there\n=======\n",
        "@@ -1,3 +1,3 @@\n-not in the program\n+x = 1\n@@\n",
        "<think>a long thought</think><|endoftext|>def draw():\n    return 1\n",
    ]


def _check_result(result: object, function_name: str, text: bool = False) -> None:
    """A result is a value: code that parses and defines the function (``text``: a non-blank
    text), or an error reason."""
    assert isinstance(result, Result)
    if result.ok and text:
        assert isinstance(result.code, str) and result.code.strip()
    elif result.ok:
        tree = ast.parse(result.code)
        assert any(
            isinstance(node, ast.FunctionDef) and node.name == function_name for node in tree.body
        )
    else:
        assert result.code == ""
        assert isinstance(result.error, str) and result.error.strip()


@pytest.mark.parametrize(("name", "mode", "domain"), CASES)
def test_same_parents_and_seeded_rng_give_the_same_proposal(
    name: str, mode: str, domain: str
) -> None:
    for seed in range(3):
        proposals, states = [], []
        for _ in range(2):
            op, parents = _setup(name, mode, domain)  # a fresh operator each time
            rng = np.random.default_rng(seed)
            proposals.append(op.propose(parents, rng))
            states.append(rng.bit_generator.state)
        assert proposals[0] == proposals[1]
        assert states[0] == states[1]  # the same draws, in number too


@pytest.mark.parametrize(("name", "mode", "domain"), CASES)
def test_the_proposal_records_its_parents(name: str, mode: str, domain: str) -> None:
    op, parents = _setup(name, mode, domain)
    proposal = op.propose(parents, np.random.default_rng(0))
    assert proposal.parent_ids == tuple(p.id for p in parents)
    assert len(proposal.parents) == len(parents)
    assert all(a is b for a, b in zip(proposal.parents, parents, strict=True))


@pytest.mark.parametrize(("name", "mode", "domain"), CASES)
def test_llm_operators_ask_and_llm_free_ones_carry_code_or_an_error(
    name: str, mode: str, domain: str
) -> None:
    op, parents = _setup(name, mode, domain)
    proposal = op.propose(parents, np.random.default_rng(0))
    if op.uses_llm:
        assert proposal.request is not None and proposal.request.kind == mode
        assert proposal.code is None and proposal.error is None
        return
    assert proposal.request is None
    assert (proposal.code is None) != (proposal.error is None)
    if proposal.code is not None:
        ast.parse(proposal.code)
    with pytest.raises(NotImplementedError, match=f"operator {name!r} does not call an LLM"):
        op.finish(proposal, "def f():\n    return 1\n")


@pytest.mark.parametrize(("name", "mode", "domain"), LLM_CASES)
def test_garbage_completions_come_back_as_results(name: str, mode: str, domain: str) -> None:
    op, parents = _setup(name, mode, domain)
    proposal = op.propose(parents, np.random.default_rng(0))
    fn = op.context.function_name
    for completion in _garbage(proposal):
        _check_result(op.finish(proposal, completion), fn, _writes_text(type(op)))


@pytest.mark.parametrize(("name", "mode", "domain"), CASES)
def test_garbage_parents_give_a_proposal_not_an_exception(
    name: str, mode: str, domain: str
) -> None:
    op, _ = _setup(name, mode, domain)
    rng = np.random.default_rng(0)
    fn = op.context.function_name
    for i, code in enumerate(["", "\x00\xff binary", "function f() { return 1; }", "def ("]):
        parents: Sequence[Individual] = [_individual(i, code, 0.0)] * op.num_parents
        proposal = op.propose(parents, rng)
        if op.uses_llm:
            assert proposal.request is not None
            answer = f"```python\ndef {fn}():\n    return 1\n```"
            _check_result(op.finish(proposal, answer), fn, _writes_text(type(op)))
        elif op.num_parents == 0:  # takes no parents (random search): never reads them
            assert proposal.code is not None and proposal.parent_ids == ()
        else:
            assert proposal.code is None and proposal.error


@pytest.mark.parametrize(("name", "mode", "domain"), LLM_CASES)
def test_finish_never_needs_the_prompt(name: str, mode: str, domain: str) -> None:
    op, parents = _setup(name, mode, domain)
    proposal = op.propose(parents, np.random.default_rng(0))
    blanked = _blanked(proposal)
    answer, meant = _good_completion(op, proposal)
    result = op.finish(proposal, answer)
    assert result.ok, result.error
    if _writes_text(type(op)):
        assert result.code == meant
    else:
        assert ast.dump(ast.parse(result.code)) == ast.dump(ast.parse(meant))
    assert op.finish(blanked, answer) == result
    for completion in [*_garbage(proposal)[:4], answer[: len(answer) // 2]]:
        assert op.finish(blanked, completion) == op.finish(proposal, completion)
