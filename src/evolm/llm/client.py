"""The engine's handle on a model for LLM calls that are not mutations.

An LLM-scored domain (``Domain.scoring == "llm"``) assesses each candidate with LLM calls of
its own: a judge's questions about a text, or a task model's answers to a prompt. The runner
builds one :class:`LLMClient` per candidate around the judge backend; every call made through
it is kept in :attr:`LLMClient.calls`, in order, and the runner stores them with the
candidate (``llm_calls`` rows whose extras carry the client's ``role``) and charges their
tokens and cost to the budget. A replayed run answers them from the cassette like any call.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Literal

from evolm.llm.base import Completion, LLMBackend, Message, Request

__all__ = ["ROLES", "LLMCallFailed", "LLMClient", "Role"]

Role = Literal["judge", "task"]
ROLES: tuple[str, ...] = ("judge", "task")
"""The roles a non-mutation call is stored with (``llm_calls.extras_json["role"]``)."""


class LLMCallFailed(RuntimeError):
    """A call made through an :class:`LLMClient` failed; ``error`` is the backend's error.
    A domain's ``assess`` turns it into a failed evaluation (or lets the runner do so)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class LLMClient:
    """Records and answers the LLM calls of one candidate's assessment.

    Args:
        backend: the model that answers (the run's judge backend).
        role: stored with every call: ``"judge"`` (scoring questions) or ``"task"`` (a task
            model's answers, e.g. prompt evolution).
        deadline: seconds one call may take before it fails (None: no limit).

    Attributes:
        calls: every ``(request, completion)`` made through this client, in order, failed ones
            included; the completions' extras carry ``role``.
    """

    def __init__(self, backend: LLMBackend, *, role: Role = "judge", deadline: float | None = None):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.backend = backend
        self.role = role
        self.deadline = deadline
        self.calls: list[tuple[Request, Completion]] = []

    async def generate(self, request: Request) -> Completion:
        """Answer ``request``; the call is recorded (and later stored and charged).

        Raises:
            LLMCallFailed: the backend answered with an error, or not within the deadline.
        """
        try:
            (completion,) = await asyncio.wait_for(self.backend.generate([request]), self.deadline)
        except TimeoutError:
            completion = Completion(
                text="",
                model=self.backend.model,
                error=f"no answer within the {self.deadline:g} s deadline",
            )
        completion = dataclasses.replace(
            completion, extras={**completion.extras, "role": self.role}
        )
        self.calls.append((request, completion))
        if not completion.ok:
            raise LLMCallFailed(completion.error or "unknown error")
        return completion

    async def option_probs(
        self,
        prompt: str | tuple[Message, ...],
        options: Sequence[str],
        *,
        seed: int = 0,
    ) -> dict[str, float]:
        """The probability of each option as the next tokens after ``prompt`` (a string: a
        completion prompt; messages: a chat whose assistant turn starts next), summing to 1.

        Raises:
            ValueError: fewer than two options, or repeated ones.
            LLMCallFailed: the call failed (e.g. a backend that cannot score options).
        """
        opts = tuple(options)
        if len(opts) < 2 or len(set(opts)) != len(opts):
            raise ValueError(f"options must be two or more distinct strings, got {opts}")
        if isinstance(prompt, str):
            request = Request(
                kind="completion", prompt=prompt, max_tokens=1, temperature=0.0, options=opts,
                seed=seed,
            )  # fmt: skip
        else:
            request = Request(
                kind="chat", messages=tuple(prompt), max_tokens=1, temperature=0.0, options=opts,
                seed=seed,
            )  # fmt: skip
        completion = await self.generate(request)
        probs = completion.extras.get("option_probs")
        if not isinstance(probs, dict) or set(probs) != set(opts):
            raise LLMCallFailed(
                f"{self.backend.name} backend answered an options request without a probability "
                f"for each option (got {probs!r:.200})"
            )
        return {o: float(probs[o]) for o in opts}
