"""The ELM diff operator: mutate a parent by asking for a code change written as a diff.

ELM (Lehman et al. 2022) mutated programs with a language model trained on GitHub commits. Each
training example was one commit laid out as::

    <NME> walker.py
    <BEF> {the file before the commit}
    <MSG> {the commit message}
    <DFF> {the commit as a unified diff}

so a mutation is a prompt that stops right after ``<DFF>``, with the parent as the file before
and a generic commit message; the model writes the diff and the diff is applied to the parent.
ELM drew the message from three, weighted 40/30/30: "Changed {fn} function.", "Changed
parameters in {fn} function." and "Small change to {fn} function." (:data:`DEFAULT_MESSAGES`,
:data:`DEFAULT_MESSAGE_WEIGHTS`; ``{fn}`` becomes the domain's function name).

Two prompt modes:

* ``"completion"`` (base or diff-trained models): exactly the layout above, ending with
  ``<DFF>``, the file name taken from :attr:`DomainContext.file_name
  <evolm.domains.base.DomainContext>`. The parent is written without trailing whitespace and the
  message on one line. Stop sequences (:data:`DIFF_STOP`) end the answer where the model would
  start the next commit (``<NME>``, ``<BEF>``, ``<MSG>``) or at an end-of-text token.
* ``"chat"`` (instruction-tuned models): a system message and one user message with the task
  (description and API, as :class:`~evolm.operators.prompt.PromptMutation` shows them), the
  parent in a fenced block (the **last** fenced block of the message), the commit message as the
  requested change, and a request for a unified diff with ``---``/``+++`` headers and ``@@``
  hunks in one fenced ``diff`` block.

:meth:`ElmDiff.finish` takes the parent from the proposal (its code without trailing whitespace,
as the prompt shows it), reads the hunks
(:func:`~evolm.operators.diff.parse_hunks`, lenient about prose, fences, headers and
whitespace) and applies them (:func:`~evolm.operators.diff.apply_hunks`); failures are recorded
as ``"diff did not apply: <reason>"``. If the answer holds no hunk at all, a chat-mode answer
that contains a whole program defining the function is accepted as it is (models often ignore
the requested format). The result must parse and define the function at top level. If the
answer ends without a newline or end-of-text token (``max_tokens`` ran out) and fails, it is
tried once more without its last, possibly cut, line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from evolm.domains.base import DomainContext
from evolm.llm.base import Request
from evolm.operators.base import Proposal, Result, validated_choices
from evolm.operators.diff import DiffError, apply_hunks, parse_hunks
from evolm.operators.extract import extract_code
from evolm.operators.prompt import _RewriteOperator
from evolm.operators.textmatch import (
    END_TOKENS,
    PARSE_ERRORS,
    defines_function,
    describe_parse_error,
    fenced,
    one_line,
)
from evolm.types import Individual

__all__ = [
    "DEFAULT_MESSAGES",
    "DEFAULT_MESSAGE_WEIGHTS",
    "DIFF_STOP",
    "DIFF_SYSTEM_PROMPT",
    "ElmDiff",
]

DEFAULT_MESSAGES: tuple[str, ...] = (
    "Changed {fn} function.",
    "Changed parameters in {fn} function.",
    "Small change to {fn} function.",
)
DEFAULT_MESSAGE_WEIGHTS: tuple[float, ...] = (0.4, 0.3, 0.3)
# Four at most: some OpenAI-compatible servers refuse more stop sequences.
DIFF_STOP: tuple[str, ...] = ("<NME>", "<BEF>", "<MSG>", "<|endoftext|>")
DIFF_SYSTEM_PROMPT = (
    "You are an expert programmer taking part in an evolutionary search over programs. "
    "You change programs by writing unified diffs: reply with one diff in a single fenced "
    "diff code block."
)
_BEF = "<BEF> "
_MSG = "\n<MSG> "


def _maybe_cut(completion: str) -> str | None:
    """The completion without its last line, if that line may have been cut by ``max_tokens``
    (no newline after it, no end-of-text token anywhere); None otherwise."""
    if completion.endswith("\n") or any(t in completion for t in END_TOKENS):
        return None
    at = completion.rfind("\n")
    if at < 0 or not completion[at + 1 :].strip():
        return None
    return completion[: at + 1]


class ElmDiff(_RewriteOperator):
    """Mutate one parent by asking for a diff under a commit message (ELM's diff mutation).

    Args:
        context: the domain's prompt context (``file_name`` names the file in the prompt).
        mode: ``"chat"`` or ``"completion"`` (see the module docstring for both prompts).
        messages: commit messages to draw from; ``{fn}`` (or ``{function}``) in them becomes
            the function name, and each is put on one line. Default :data:`DEFAULT_MESSAGES`.
        weights: relative probability of each message (non-negative, not all zero); default
            :data:`DEFAULT_MESSAGE_WEIGHTS` for the default messages, else uniform.
        max_tokens, temperature, top_p: sampling parameters of every request.

    Raises:
        ValueError: bad mode, empty or non-string messages, weights of the wrong length,
            negative, non-finite or all zero, or bad sampling parameters.
    """

    name = "elm_diff"
    num_parents = 1
    uses_llm = True

    def __init__(
        self,
        context: DomainContext,
        mode: str = "chat",
        *,
        messages: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
        max_tokens: int = 512,
        temperature: float = 0.8,
        top_p: float = 0.95,
        repeat_penalty: float = 1.0,
        parent_sized: bool = True,
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
        if messages is None:
            messages = DEFAULT_MESSAGES
            weights = DEFAULT_MESSAGE_WEIGHTS if weights is None else weights
        chosen, self.weights = validated_choices(messages, weights, "messages")
        fn = context.function_name
        self.messages = tuple(
            one_line(m.replace("{fn}", fn).replace("{function}", fn)) for m in chosen
        )

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Draw a commit message (by ``weights``), then a request seed, both from ``rng``."""
        parent = self._parent(parents)
        message = self.messages[int(rng.choice(len(self.messages), p=self.weights))]
        code = parent.program.code.rstrip()
        ctx = self.context
        if self.mode == "chat":
            body = (
                f"{self._task(code)}\n\n"
                f"Here is the current program, `{ctx.file_name}`:\n"
                f"{fenced(code, ctx.language)}\n\n"
                f"Make this change to it: {message}\n"
                f"Reply with the change as a unified diff against the program above, with "
                f"`--- a/{ctx.file_name}` and `+++ b/{ctx.file_name}` header lines and `@@` "
                "hunks whose context lines are copied exactly from the program, in one fenced "
                "diff code block. Do not repeat the whole program."
            )
        else:
            body = f"<NME> {ctx.file_name}\n{_BEF}{code}{_MSG}{message}\n<DFF>"
        return self._proposal((parent,), self._request(body, rng, code))

    def _request(self, body: str, rng: np.random.Generator, parent_code: str = "") -> Request:
        request = super()._request(body, rng, parent_code)
        if self.mode == "chat":
            system = {"role": "system", "content": DIFF_SYSTEM_PROMPT}
            return replace(request, messages=(system, *request.messages[1:]))
        return replace(request, stop=DIFF_STOP)

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """Apply the diff in ``completion`` to the proposal's parent (its code without trailing
        whitespace, as the prompt shows it).

        Returns:
            ``Result(code)`` with the edited program (it parses and defines the function at
            top level), or ``Result("", error)``: "diff did not apply: <reason>", "the proposal
            carries no parent program" (one not made by :meth:`propose`), or "diff applied but
            the program does not parse: SyntaxError at line N: ..." / "... no longer defines
            draw() at top level".
        """
        if not proposal.parents:
            return Result(code="", error="the proposal carries no parent program")
        parent = proposal.parents[0].program.code.rstrip()
        result = self._apply(parent, completion)
        if not result.ok:
            shorter = _maybe_cut(completion)
            if shorter is not None:
                retry = self._apply(parent, shorter)
                if retry.ok:
                    return retry
        return result

    def _apply(self, parent: str, completion: str) -> Result:
        fn = self.context.function_name
        hunks = parse_hunks(completion)
        if not hunks and self.mode == "chat":
            whole = extract_code(completion, fn)
            if whole.ok:
                return whole
        try:
            code = apply_hunks(parent, hunks)
        except DiffError as exc:
            return Result(code="", error=f"diff did not apply: {exc.reason}")
        code = code.strip("\n").rstrip() + "\n"
        try:
            if defines_function(code, fn):
                return Result(code=code)
        except PARSE_ERRORS as exc:
            return Result(
                code="",
                error=f"diff applied but the program does not parse: {describe_parse_error(exc)}",
            )
        return Result(
            code="", error=f"diff applied but the program no longer defines {fn}() at top level"
        )
