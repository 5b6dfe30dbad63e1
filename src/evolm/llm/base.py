"""The LLM backend protocol.

A backend implements one coroutine, :meth:`LLMBackend._generate_one`; the base class runs a batch
of requests concurrently under the backend's concurrency limit and never raises for a failed
request: failures come back as a :class:`Completion` with ``error`` set, so the run goes on.
The engine, not the backend, writes every call to the run database's ``llm_calls`` table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Completion",
    "LLMBackend",
    "LLMError",
    "Message",
    "Request",
    "cut_at_stop",
    "log_softmax_probs",
    "option_completion",
    "price",
    "validate_prices",
]

Message = dict[str, str]


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` as a backend returns it: up to its first stop string (removed), and whether one
    was found."""
    at = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:at], True) if at >= 0 else (text, False)


def validate_prices(prices: tuple[float, float] | None) -> tuple[float, float] | None:
    """``prices`` as (input, output) USD per million tokens, or None.

    Raises:
        ValueError: not two numbers >= 0.
    """
    if prices is None:
        return None
    if len(prices) != 2 or min(prices) < 0:
        raise ValueError(f"prices must be (input, output) USD per 1M tokens >= 0, got {prices}")
    return (float(prices[0]), float(prices[1]))


def price(prices: tuple[float, float] | None, tokens_in: int, tokens_out: int) -> float:
    """USD for one call at ``prices`` (input, output) per million tokens; 0 without a table."""
    if prices is None:
        return 0.0
    return (tokens_in * prices[0] + tokens_out * prices[1]) / 1e6


class LLMError(RuntimeError):
    """A backend could not be set up, or a request failed in a way the caller must see."""


def option_completion(model: str, probs: dict[str, float], **fields: Any) -> Completion:
    """The answer to an options request: ``probs`` (any non-negative weights, one per option)
    renormalised to sum to 1 in ``extras["option_probs"]``, the most probable option (the first
    one on ties) as ``text``.

    Raises:
        LLMError: no option has a positive, finite weight.
    """
    total = sum(p for p in probs.values() if math.isfinite(p) and p > 0)
    if not total:
        raise LLMError(f"no option has a positive probability: {probs}")
    norm = {o: (p / total if math.isfinite(p) and p > 0 else 0.0) for o, p in probs.items()}
    best = max(norm, key=lambda o: norm[o])
    extras = {**fields.pop("extras", {}), "option_probs": norm}
    return Completion(text=best, model=model, finish_reason="options", extras=extras, **fields)


def log_softmax_probs(logps: dict[str, float]) -> dict[str, float]:
    """Probabilities from per-option log-probabilities, renormalised over the options."""
    top = max(logps.values())
    weights = {o: math.exp(lp - top) for o, lp in logps.items()}
    total = sum(weights.values())
    return {o: w / total for o, w in weights.items()}


@dataclass(frozen=True)
class Request:
    """One generation request.

    ``kind`` is ``"chat"`` (``messages`` is used) or ``"completion"`` (``prompt`` is used).
    ``seed`` is a per-request sampling seed; backends that support seeding must honour it.
    ``repeat_penalty`` divides the logits of tokens already in the prompt or the answer
    (llama.cpp's repetition penalty; 1.0 is off). Backends without it (openai, vllm) ignore it.

    ``options``, when not empty, asks for no generated text but for the probability of each
    option as the next tokens after the prompt (chat: after the assistant turn starts): the
    answer's ``text`` is the most probable option and ``extras["option_probs"]`` maps every
    option to its probability (renormalised over the options, summing to 1).

    ``avoid``, when not empty, is a text the answer must not begin like: its first token may
    not be a prefix of ``avoid`` nor start with it (spaces at the front of either ignored).
    :class:`~evolm.operators.line_edit.LineEdit` uses it so the model cannot copy the line it
    is rewriting. The ``llama_cpp`` backend honours it; others ignore it (the operator still
    rejects a copy).
    """

    kind: Literal["chat", "completion"] = "chat"
    messages: tuple[Message, ...] = ()
    prompt: str = ""
    max_tokens: int = 512
    temperature: float = 0.8
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None
    repeat_penalty: float = 1.0
    options: tuple[str, ...] = ()
    avoid: str = ""

    def payload(self) -> dict[str, Any]:
        """The parts that determine the answer, minus the seed (the replay key's content).
        ``repeat_penalty`` appears only when it is on, so requests recorded before it existed
        keep their keys; so do ``options`` and ``avoid``, present only when not empty."""
        extra: dict[str, Any] = (
            {} if self.repeat_penalty == 1.0 else {"repeat_penalty": self.repeat_penalty}
        )
        if self.options:
            extra["options"] = list(self.options)
        if self.avoid:
            extra["avoid"] = self.avoid
        return {
            **extra,
            "kind": self.kind,
            "messages": [dict(m) for m in self.messages],
            "prompt": self.prompt,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": list(self.stop),
        }

    def key(self) -> str:
        """sha256 of :meth:`payload` as canonical JSON: equal prompts give equal keys."""
        cached: str | None = self.__dict__.get("_key")
        if cached is None:
            blob = json.dumps(self.payload(), sort_keys=True, separators=(",", ":"))
            cached = hashlib.sha256(blob.encode()).hexdigest()
            object.__setattr__(self, "_key", cached)
        return cached

    def to_json(self) -> str:
        d = self.payload()
        d["seed"] = self.seed
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Request:
        d = json.loads(text)
        return cls(
            kind=d["kind"],
            messages=tuple(dict(m) for m in d.get("messages", ())),
            prompt=d.get("prompt", ""),
            max_tokens=int(d["max_tokens"]),
            temperature=float(d["temperature"]),
            top_p=float(d["top_p"]),
            stop=tuple(d.get("stop", ())),
            seed=d.get("seed"),
            repeat_penalty=float(d.get("repeat_penalty", 1.0)),
            options=tuple(d.get("options", ())),
        )


@dataclass(frozen=True)
class Completion:
    """A backend's answer to one request. ``error`` is set (and ``text`` empty) on failure."""

    text: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency: float = 0.0
    error: str | None = None
    finish_reason: str | None = None
    cost: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class LLMBackend(ABC):
    """Base class of every backend.

    Args:
        model: the model name recorded with each completion.
        concurrency: the most requests this backend runs at once.
        prices: USD per million input and output tokens (:meth:`cost` of a call), or None.
        seed: seeds :attr:`rng`, the backend's own random stream: the seeds of requests that
            carry none (:meth:`request_seed`), retry jitter.

    Raises:
        ValueError: ``concurrency < 1`` or bad ``prices``.
    """

    name: str = "base"

    def __init__(
        self,
        model: str,
        concurrency: int = 4,
        *,
        prices: tuple[float, float] | None = None,
        seed: int = 0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model = model
        self.concurrency = concurrency
        self.prices = validate_prices(prices)
        self.rng = random.Random(seed)
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: asyncio.AbstractEventLoop | None = None

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """USD for a call of these token counts at :attr:`prices` (0 without prices)."""
        return price(self.prices, tokens_in, tokens_out)

    def request_seed(self, request: Request) -> int:
        """The request's seed, or the next draw of :attr:`rng` for a request without one."""
        return request.seed if request.seed is not None else self.rng.randrange(2**31)

    @abstractmethod
    async def _generate_one(self, request: Request) -> Completion:
        """Answer one request. May raise; the base class turns exceptions into errors."""

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer a batch of requests, in order, at most ``concurrency`` at a time."""
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:
            # a semaphore belongs to one event loop; a backend may serve several asyncio.run calls
            self._sem, self._sem_loop = asyncio.Semaphore(self.concurrency), loop
        sem = self._sem

        async def one(req: Request) -> Completion:
            async with sem:
                t0 = time.perf_counter()
                try:
                    return await self._generate_one(req)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a failed request is a value, not a crash
                    return Completion(
                        text="",
                        model=self.model,
                        latency=time.perf_counter() - t0,
                        error=f"{type(exc).__name__}: {exc}",
                    )

        return list(await asyncio.gather(*(one(r) for r in requests)))

    async def aclose(self) -> None:  # noqa: B027
        """Release resources (HTTP clients, model handles)."""
