"""LLM operators that rewrite one parent: prompt mutation (ELM's mutation by instruction) and
full rewrite.

:class:`PromptMutation` is the mutation operator of ELM (Lehman et al. 2022) as OpenELM
(CarperAI 2023) prompts it: show the parent program, add one instruction drawn from a small set
(improve it, fix bugs, make a small change, make it different), and ask for the new program.
:class:`FullRewrite` shows the parent only as a reference and asks for a new program from
scratch, a larger jump in program space.

Two prompt modes:

* ``"chat"`` (instruction-tuned models): a system message and one user message holding the
  domain description, its API text in a fenced block (if any), the parent in a fenced block
  (always the **last** fenced block of the message), and the instruction. The answer is extracted
  by :func:`~evolm.operators.extract.extract_code`.
* ``"completion"`` (base models): a Python file the model continues. It holds the API text, the
  task as comments, the parent under ``# Previous version of draw()``, then a line starting
  ``# New version of draw()`` that carries the instruction, then the new program's head: the
  parent's lines up to and including its ``def draw(...):`` line (its imports, constants and
  helpers; for a rewrite only its imports). The model writes the body. Stop sequences
  (:data:`COMPLETION_STOP`): ``"\\n```"`` (a closing fence), ``"\\nif __name__"`` (a main
  block) and ``"\\n# "`` (a column-0 comment, which is how a base model starts the next
  "version" or its commentary); comments inside the function are indented and do not stop it.
  The proposal carries the head (:attr:`Proposal.prefix <evolm.operators.base.Proposal>`), and
  :meth:`finish` passes it to ``extract_code`` as ``prefix``.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence

import numpy as np

from evolm.domains.base import DomainContext
from evolm.llm.base import Request
from evolm.operators.base import Operator, Proposal, Result, check_sampling, validated_choices
from evolm.operators.extract import extract_code
from evolm.operators.textmatch import comment_block, fenced
from evolm.types import Individual

__all__ = [
    "COMPLETION_STOP",
    "DEFAULT_INSTRUCTIONS",
    "INSTRUCTION_SETS",
    "SYSTEM_PROMPT",
    "FullRewrite",
    "PromptMutation",
    "completion_prefix",
    "parent_token_budget",
]

DEFAULT_INSTRUCTIONS: tuple[str, ...] = (
    "Improve the program so that it scores better on the task.",
    "Fix any bugs or weaknesses in the program.",
    "Make one small change to the program.",
    "Change the program to make it more interesting and different from the current one.",
)
#: Named instruction sets for :class:`PromptMutation` (its ``instruction_set`` parameter).
#: ``{function}`` in an instruction is replaced by the domain's function name.
INSTRUCTION_SETS: dict[str, tuple[str, ...]] = {
    # The four kinds of change OpenELM's prompt mutation asks for: improve, fix, perturb, diverge.
    "default": DEFAULT_INSTRUCTIONS,
    # Exploitation: small, score-seeking edits.
    "exploit": (
        "Improve the program so that it scores better on the task.",
        "Tune the numeric parameters of {function}() to score better.",
        "Fix any bugs or weaknesses in the program.",
        "Make one small change to {function}() that should raise its score.",
    ),
    # Exploration: changes that move the program's behaviour somewhere new.
    "explore": (
        "Change the program to make it more interesting and different from the current one.",
        "Rewrite {function}() around a different idea while keeping it valid for the task.",
        "Add a new feature to {function}() that changes what it produces.",
        "Change the structure of {function}(): reorder, split or merge its steps.",
    ),
}
SYSTEM_PROMPT = (
    "You are an expert Python programmer taking part in an evolutionary search over programs. "
    "Reply with one complete, runnable program in a single fenced code block."
)
COMPLETION_STOP: tuple[str, ...] = ("\n```", "\nif __name__", "\n# ")
_IMPORT_LINE = re.compile(r"^(?:import[ \t]+\S|from[ \t]+\S+[ \t]+import[ \t]+[^(]*$)")


def parent_token_budget(code: str) -> int:
    """Tokens enough for a program a good deal longer than ``code`` (or a diff of it): 64 plus
    one token per two characters. Code tokenizes at about 3 to 4 characters per token, so this
    is 1.5 to 2 times the parent's own length."""
    return 64 + math.ceil(len(code) / 2)


def _marker(function_name: str) -> str:
    return f"# New version of {function_name}()"


def completion_prefix(prompt: str, function_name: str) -> str:
    """The head of the new program at the end of a completion-mode prompt built here: the text
    after the last ``# New version of <function>()`` line ("" if the prompt has none).

    For reading stored prompts; :meth:`PromptMutation.finish` takes the head from the proposal
    (:attr:`Proposal.prefix <evolm.operators.base.Proposal>`)."""
    at = prompt.rfind("\n" + _marker(function_name))
    if at < 0:
        return ""
    end = prompt.find("\n", at + 1)
    return "" if end < 0 else prompt[end + 1 :]


def _function(tree: ast.Module, function_name: str) -> ast.FunctionDef | None:
    defs = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == function_name
    ]
    return defs[-1] if defs else None


def _returns(fn: ast.FunctionDef) -> bool:
    """Whether ``fn`` has a ``return`` of its own (not one of a nested function or class)."""
    todo: list[ast.AST] = list(fn.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Return):
            return True
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            todo.extend(ast.iter_child_nodes(node))
    return False


def restore_return(code: str, parent: str, function_name: str) -> str:
    """``code`` with the parent's closing ``return`` statement appended to ``function_name``
    when the function has no ``return`` of its own and the parent's ends with one.

    Small models writing a long body often stop, or are cut off by the token limit, before the
    function's last line (measured on Sodarace: 5 to 11 of 16 SmolLM2 programs per run lacked
    ``return wc.get_walker()``). The closing statement is the parent's, copied, not invented;
    the program still runs in the sandbox and is scored like any other. ``code`` is returned
    unchanged when it has a return, the parent's function does not end in one, or the result
    would not parse.
    """
    try:
        child_fn = _function(ast.parse(code), function_name)
        parent_fn = _function(ast.parse(parent), function_name)
    except (SyntaxError, ValueError, RecursionError):
        return code
    if child_fn is None or parent_fn is None or _returns(child_fn):
        return code
    last = parent_fn.body[-1]
    if not isinstance(last, ast.Return):
        return code
    text = ast.get_source_segment(parent, last)
    if text is None or child_fn.end_lineno is None:
        return code
    indent = " " * child_fn.body[0].col_offset
    lines = code.rstrip("\n").split("\n")
    added = [indent + line.strip() if i == 0 else line for i, line in enumerate(text.split("\n"))]
    made = "\n".join(lines[: child_fn.end_lineno] + added + lines[child_fn.end_lineno :]) + "\n"
    try:
        ast.parse(made)
    except (SyntaxError, ValueError, RecursionError):
        return code
    return made


def _imports(code: str) -> list[str]:
    return [line.rstrip() for line in code.split("\n") if _IMPORT_LINE.match(line)]


def _def_line_index(lines: list[str], function_name: str) -> int | None:
    pattern = re.compile(rf"^(?:async[ \t]+)?def[ \t]+{re.escape(function_name)}[ \t]*\(.*:$")
    return next((i for i, line in enumerate(lines) if pattern.match(line.rstrip())), None)


def _head(code: str, function_name: str, *, keep_setup: bool) -> str:
    """The new program's first lines: the parent's imports (and, with ``keep_setup``, everything
    else before its ``def``), then its ``def`` line (``def <function>():`` if it has none on one
    line)."""
    lines = code.rstrip().split("\n")
    i = _def_line_index(lines, function_name)
    if i is not None and keep_setup:
        return "\n".join(lines[: i + 1]) + "\n"
    def_line = lines[i].rstrip() if i is not None else f"def {function_name}():"
    imports = _imports(code)
    return ("\n".join(imports) + "\n\n\n" if imports else "") + def_line + "\n"


def _score_note(parent: Individual) -> str:
    ev = parent.evaluation
    if ev.fitness is not None and ev.ok:
        return f"it scored {ev.fitness:.6g}; higher is better"
    return f"it was not scored: {ev.status.value}"


class _RewriteOperator(Operator):
    """Shared parts: sampling parameters, request building, and extraction in :meth:`finish`."""

    def __init__(
        self,
        context: DomainContext,
        mode: str = "chat",
        *,
        max_tokens: int = 512,
        temperature: float = 0.8,
        top_p: float = 0.95,
        repeat_penalty: float = 1.0,
        parent_sized: bool = True,
    ) -> None:
        super().__init__(context, mode)
        check_sampling(max_tokens, temperature, top_p, repeat_penalty)
        self.max_tokens = max_tokens
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.repeat_penalty = float(repeat_penalty)
        self.parent_sized = bool(parent_sized)

    def _parent(self, parents: Sequence[Individual]) -> Individual:
        if len(parents) != self.num_parents:
            raise ValueError(
                f"operator {self.name!r} takes {self.num_parents} parent, got {len(parents)}"
            )
        return parents[0]

    def _task(self, *codes: str) -> str:
        """The task for chat prompts: the description and the API that ``codes`` (the programs
        the prompt shows) need."""
        ctx = self.context
        text = ctx.description.strip()
        api = ctx.api_for(*codes)
        if api.strip():
            text += "\n\nHelper code and conventions:\n" + fenced(api, ctx.language)
        return text

    def _max_tokens(self, parent_code: str) -> int:
        """The answer's token limit: ``max_tokens``, or with ``parent_sized`` at most
        :func:`parent_token_budget` of the (longest) parent, so a model that starts repeating
        itself stops soon after a program the parent's size would have ended."""
        if not self.parent_sized or not parent_code:
            return self.max_tokens
        return min(self.max_tokens, parent_token_budget(parent_code))

    def _request(self, body: str, rng: np.random.Generator, parent_code: str = "") -> Request:
        seed = int(rng.integers(2**31))
        max_tokens = self._max_tokens(parent_code)
        if self.mode == "chat":
            return Request(
                kind="chat",
                messages=(
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": body},
                ),
                max_tokens=max_tokens,
                temperature=self.temperature,
                top_p=self.top_p,
                seed=seed,
                repeat_penalty=self.repeat_penalty,
            )
        return Request(
            kind="completion",
            prompt=body,
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=COMPLETION_STOP,
            seed=seed,
            repeat_penalty=self.repeat_penalty,
        )

    def _completion_top(self, *codes: str) -> str:
        ctx = self.context
        api = ctx.api_for(*codes)
        top = api.rstrip() + "\n\n" if api.strip() else ""
        return top + comment_block("Task: " + ctx.description) + "\n\n"

    def _reply_format(self) -> str:
        return (
            f"Reply with the complete new program, defining `{self.context.function_name}()`, "
            f"in one fenced {self.context.language} code block."
        )

    def _proposal(
        self, parents: Sequence[Individual], request: Request, prefix: str = ""
    ) -> Proposal:
        """The proposal of ``request``, carrying ``parents`` and, in completion mode, the head
        ``prefix`` the model continues (ignored in chat mode)."""
        return Proposal(
            tuple(p.id for p in parents),
            request,
            parents=tuple(parents),
            prefix=prefix if self.mode == "completion" else "",
        )

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """Extract the program from ``completion`` (:func:`~evolm.operators.extract.extract_code`),
        the proposal's :attr:`~evolm.operators.base.Proposal.prefix` prepended to unfenced text."""
        return extract_code(completion, self.context.function_name, prefix=proposal.prefix)


class PromptMutation(_RewriteOperator):
    """Mutate one parent by asking the LLM to apply one instruction to it (ELM's mutation).

    Args:
        context: the domain's prompt context.
        mode: ``"chat"`` or ``"completion"`` (see the module docstring for both prompts).
        instructions: the instructions to draw from (user-defined); default: the set named by
            ``instruction_set``. ``{function}`` is replaced by the domain's function name.
        weights: relative probability of each instruction (non-negative, not all zero);
            default uniform.
        instruction_set: a named set of :data:`INSTRUCTION_SETS` (``default``, ``exploit``,
            ``explore``), used when ``instructions`` is not given.
        max_tokens, temperature, top_p, repeat_penalty: sampling parameters of every request
            (``max_tokens`` is a cap; see ``parent_sized``).
        parent_sized: limit each answer to :func:`parent_token_budget` of the parent's code
            (never above ``max_tokens``), so a degenerate answer stops early.
        restore_return: in completion mode, give a program whose function has no ``return``
            the parent's closing ``return`` statement (:func:`restore_return`).

    Raises:
        ValueError: bad mode, empty or non-string instructions, weights of the wrong length,
            negative, non-finite or all zero, an unknown instruction set, or bad sampling
            parameters.
    """

    name = "prompt_mutation"
    num_parents = 1

    def __init__(
        self,
        context: DomainContext,
        mode: str = "chat",
        instructions: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
        *,
        instruction_set: str = "default",
        max_tokens: int = 512,
        temperature: float = 0.8,
        top_p: float = 0.95,
        repeat_penalty: float = 1.0,
        parent_sized: bool = True,
        restore_return: bool = True,
    ) -> None:
        super().__init__(
            context,
            mode,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            repeat_penalty=repeat_penalty,
            parent_sized=parent_sized,
        )
        self.restore_return = bool(restore_return)
        if instruction_set not in INSTRUCTION_SETS:
            raise ValueError(
                f"unknown instruction_set {instruction_set!r}; choose one of "
                f"{', '.join(INSTRUCTION_SETS)} or give your own `instructions` list"
            )
        if instructions is None:
            instructions = INSTRUCTION_SETS[instruction_set]
        chosen, self.weights = validated_choices(
            instructions, weights, "instructions", "instruction"
        )
        self.instructions = tuple(
            ins.replace("{function}", context.function_name) for ins in chosen
        )

    def _draw_instruction(self, rng: np.random.Generator) -> str:
        """One of :attr:`instructions`, drawn by ``weights`` (one draw from ``rng``)."""
        return self.instructions[int(rng.choice(len(self.instructions), p=self.weights))]

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Draw an instruction (by ``weights``), then a request seed, both from ``rng``."""
        parent = self._parent(parents)
        instruction = self._draw_instruction(rng)
        code = parent.program.code
        ctx = self.context
        head = _head(code, ctx.function_name, keep_setup=True)
        if self.mode == "chat":
            body = (
                f"{self._task(code)}\n\n"
                f"Here is the current program:\n{fenced(code, ctx.language)}\n\n"
                f"{instruction.strip()}\n{self._reply_format()}"
            )
        else:
            body = (
                f"{self._completion_top(code)}"
                f"# Previous version of {ctx.function_name}()\n{code.rstrip()}\n\n\n"
                f"{_marker(ctx.function_name)}. {' '.join(instruction.split())}\n"
                f"{head}"
            )
        return self._proposal((parent,), self._request(body, rng, code), head)

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """Extract the program as :class:`FullRewrite` does; in completion mode with
        ``restore_return``, then give it the parent's closing ``return`` if it has none
        (:func:`restore_return`; the parent is the proposal's)."""
        result = super().finish(proposal, completion)
        if not (result.ok and self.restore_return and self.mode == "completion"):
            return result
        if not proposal.parents:
            return result
        parent = proposal.parents[0].program.code.rstrip() + "\n"
        return Result(code=restore_return(result.code, parent, self.context.function_name))


class FullRewrite(_RewriteOperator):
    """Ask for a new program written from scratch, showing one parent (and its score) only as a
    reference.

    Args:
        context, mode, max_tokens, temperature, top_p: as for :class:`PromptMutation`.
    """

    name = "rewrite"
    num_parents = 1

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Build the rewrite request; its seed is drawn from ``rng``."""
        parent = self._parent(parents)
        code = parent.program.code
        ctx = self.context
        note = _score_note(parent)
        head = _head(code, ctx.function_name, keep_setup=False)
        if self.mode == "chat":
            body = (
                f"{self._task(code)}\n\n"
                f"For reference, here is a previous attempt ({note}):\n"
                f"{fenced(code, ctx.language)}\n\n"
                "Write a new program for this task from scratch, taking a different approach "
                "rather than editing the attempt above.\n"
                f"{self._reply_format()}"
            )
        else:
            body = (
                f"{self._completion_top(code)}"
                f"# Previous attempt at {ctx.function_name}() ({note})\n{code.rstrip()}\n\n\n"
                f"{_marker(ctx.function_name)}, rewritten from scratch with a different "
                "approach\n"
                f"{head}"
            )
        return self._proposal((parent,), self._request(body, rng, code), head)
