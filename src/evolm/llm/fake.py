"""A scripted, offline backend for tests, demos and benchmarks.

:class:`FakeLLM` answers from a queue of scripted replies, then from a ``responder`` function,
and records every request it was sent. :func:`mutating_responder` is a deterministic stand-in
for a mutation model: it copies the last code block of the prompt with one number changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from evolm.llm.base import Completion, LLMBackend, LLMError, Request, option_completion

__all__ = ["FakeLLM", "hashed_option_weight", "mutating_responder"]


def hashed_option_weight(prompt: str, option: str) -> float:
    """A deterministic stand-in for a judge: a weight in (0, 1] from a hash of the prompt and
    the option (equal inputs, equal weights; unrelated to what the text says)."""
    digest = hashlib.sha256(f"{prompt}\x00{option}".encode()).digest()
    return (int.from_bytes(digest[:4], "big") + 1) / 2**32


_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_NUMBER = re.compile(
    r"(?<![\w.])"
    r"(?:\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)"
    r"(?![\w.])"
)


def _request_text(request: Request) -> str:
    """The text a request carries: the prompt, or every message's content joined by newlines."""
    if request.kind == "completion":
        return request.prompt
    return "\n".join(m.get("content", "") for m in request.messages)


class FakeLLM(LLMBackend):
    """A backend that replays scripted replies, then falls back to ``responder``.

    Args:
        replies: answers returned in order, one per request.
        responder: called with the request once the scripted replies are used up.
        model: the model name recorded with each completion.
        latency: seconds each request waits (``asyncio.sleep``), to exercise overlap.
        concurrency: the most requests answered at once.
        tokens_per_char: token counts are estimated as ``ceil(len(text) * tokens_per_char)``.
        option_weight: answers requests with ``options``: called with the request's text (the
            prompt, or the messages' contents joined by newlines) and each option, it returns
            the option's unnormalised weight; default :func:`hashed_option_weight`. Options
            requests take no scripted reply.

    Attributes:
        requests: every request sent, in the order the backend received them.

    A request that finds no scripted reply and no responder fails with an :class:`LLMError`,
    which :meth:`generate` returns as a :class:`Completion` with ``error`` set.
    """

    name = "fake"

    def __init__(
        self,
        replies: Sequence[str] = (),
        responder: Callable[[Request], str] | None = None,
        model: str = "fake",
        latency: float = 0.0,
        concurrency: int = 64,
        tokens_per_char: float = 0.25,
        option_weight: Callable[[str, str], float] = hashed_option_weight,
    ) -> None:
        super().__init__(model, concurrency)
        if latency < 0:
            raise ValueError(f"latency must be >= 0, got {latency}")
        if tokens_per_char < 0:
            raise ValueError(f"tokens_per_char must be >= 0, got {tokens_per_char}")
        self.responder = responder
        self.latency = latency
        self.tokens_per_char = tokens_per_char
        self.option_weight = option_weight
        self.requests: list[Request] = []
        self._replies: deque[str] = deque(replies)

    def enqueue(self, replies: Iterable[str]) -> None:
        """Append scripted replies to the queue."""
        self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are left."""
        return len(self._replies)

    def _tokens(self, text: str) -> int:
        return math.ceil(len(text) * self.tokens_per_char)

    async def _generate_one(self, request: Request) -> Completion:
        self.requests.append(request)
        if request.options:
            prompt = _request_text(request)
            weights = {o: float(self.option_weight(prompt, o)) for o in request.options}
            return option_completion(
                self.model,
                weights,
                tokens_in=self._tokens(prompt) * len(request.options),
                tokens_out=0,
            )
        if self._replies:
            text = self._replies.popleft()
        elif self.responder is not None:
            text = self.responder(request)
        else:
            raise LLMError(
                f"fake LLM has no scripted replies left ({len(self.requests)} requests so far) "
                "and no responder; pass more replies or a responder"
            )
        if self.latency:
            await asyncio.sleep(self.latency)
        return Completion(
            text=text,
            model=self.model,
            tokens_in=self._tokens(_request_text(request)),
            tokens_out=self._tokens(text),
            latency=self.latency,
            finish_reason="stop",
        )


def _source_text(request: Request) -> str:
    if request.kind == "completion":
        return request.prompt
    for message in reversed(request.messages):
        if message.get("role") == "user":
            return message.get("content", "")
    return ""


def _perturb(literal: str, rng: random.Random) -> str:
    if literal.isdigit():
        n = int(literal)
        step = rng.randint(1, max(1, n // 4))
        return str(n + step if rng.random() < 0.5 or n - step < 0 else n - step)
    x = float(literal)
    y = float(f"{x * rng.uniform(0.5, 1.5) if x else rng.uniform(0.01, 1.0):.4g}")
    return repr(y if y != x else x + 1.0)


def mutating_responder(request: Request) -> str:
    """A deterministic fake mutation: change one number in the prompt's last code block.

    Looks for the last fenced code block in the prompt (chat: the last user message), picks
    one numeric literal with a generator seeded by ``request.seed`` and the request's content,
    and changes it (ints stay non-negative ints, floats stay floats). Returns the code in a
    ```` ```python ```` block after a one-line preface; equal requests give equal answers.
    Without a code block the answer is an empty fenced block. Co-evolution's puzzle-writing
    and solving prompts get :func:`evolm.domains.puzzles.coevolve.fake_answer` instead, and the
    text operators' prompts (poems, stories) :func:`evolm.operators.text.fake_answer`, and the
    prompts domain's task-model requests :func:`evolm.domains.prompts.fake.fake_task_answer`.
    """
    from evolm.domains.puzzles.coevolve import fake_answer
    from evolm.operators.text import fake_answer as text_answer

    text = _source_text(request)
    puzzle_answer = fake_answer(text, request.seed)
    if puzzle_answer is not None:
        return puzzle_answer
    written = text_answer(text, request.seed)
    if written is not None:
        return written
    from evolm.domains.prompts.fake import fake_task_answer

    task_answer = fake_task_answer(text)
    if task_answer is not None:
        return task_answer
    blocks = _FENCE.findall(text)
    if not blocks:
        return "```python\n```"
    code = blocks[-1].rstrip("\n")
    numbers = list(_NUMBER.finditer(code))
    if not numbers:
        return f"No number to change; here is the program unchanged.\n```python\n{code}\n```"
    rng = random.Random(f"{request.seed}:{request.key()}")
    match = rng.choice(numbers)
    new = _perturb(match.group(), rng)
    code = code[: match.start()] + new + code[match.end() :]
    return f"Here is a variant with {match.group()} changed to {new}.\n```python\n{code}\n```"
