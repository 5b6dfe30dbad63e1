"""A backend for any server that speaks the OpenAI chat / completions HTTP API.

OpenAI itself, vLLM, llama.cpp's server, Ollama, SGLang, LM Studio and most hosted gateways
speak it. The ``openai`` SDK is imported when a backend is built, not when this module is.
The SDK's own retries are off; this backend retries rate limits (429), server errors (5xx),
timeouts and connection failures with seeded, fully jittered exponential backoff, and honours
``Retry-After`` up to ``max_retry_wait``. Two clocks bound a call whatever the server does (a
silent server, one that sends its answer a byte at a time): ``timeout`` is the whole of one
attempt, from connecting to the last byte, and ``deadline`` the whole call, retries and waits
included.

Several servers of one model (``base_url`` a list) share the requests by load, and a failing one
is taken out for a while (:mod:`evolm.llm.endpoints`); a retry after a failure goes at once to
another server that is up.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import math
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from evolm.llm.base import Completion, LLMBackend, LLMError, Request
from evolm.llm.endpoints import Endpoint, EndpointPool

if TYPE_CHECKING:
    import openai

__all__ = ["OpenAICompatLLM"]

NO_KEY_PLACEHOLDER = "sk-no-key-required"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), if any."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


def _status_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else body
    return f"HTTP {exc.status_code}: {str(message or exc.message)[:300]}"


class OpenAICompatLLM(LLMBackend):
    """A backend for an OpenAI-compatible HTTP server.

    Args:
        model: the model name sent to the server and recorded with each completion.
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``; ``None`` uses OpenAI's.
            A list: several servers of the same model, each request sent to the one with the
            fewest in flight; a failing one is out for ``endpoint_backoff`` seconds (doubling
            with each failure in a row), and retries go to the others meanwhile.
        api_key_env: the environment variable holding the API key. Servers all on loopback
            need no key (a placeholder is sent).
        concurrency: the most requests in flight at once.
        timeout: seconds one attempt may take in all: connecting, waiting for and reading
            the whole answer (an answer sent a byte at a time does not extend it).
        max_retries: retries after the first attempt, for 429, 408, 5xx, timeouts and
            connection errors. Other HTTP errors are not retried.
        backoff_base: seconds before the first retry; doubles each retry, capped at
            ``backoff_max``, with full jitter. A ``Retry-After`` header replaces it.
        backoff_max: the longest wait between attempts of evolm's own backoff, in seconds.
        prices: USD per million (input, output) tokens; ``None`` records cost 0.
        seed: seeds the jitter generator.
        deadline: seconds one call may take in all, attempts, retries and waits included.
            The last attempt is cut short at it; no retry starts that would wait past it.
        max_retry_wait: the longest ``Retry-After`` honoured, in seconds. A server asking for
            a longer wait fails the call at once, with a message naming the wait it asked for.
        endpoint_backoff: seconds a failed server of several stays out, at first.

    ``request.kind == "chat"`` calls ``chat.completions.create``, ``"completion"`` calls
    ``completions.create``. Failures come back as completions with ``error`` set, never as
    exceptions. The key is read once and handed to the SDK client; it is not kept on the
    backend or written into errors.

    Raises:
        LLMError: at construction, when the key variable is unset and the server is not on
            loopback.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | Sequence[str] | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        prices: tuple[float, float] | None = None,
        seed: int = 0,
        deadline: float = 300.0,
        max_retry_wait: float = 60.0,
        endpoint_backoff: float = 5.0,
    ) -> None:
        super().__init__(model, concurrency, prices=prices, seed=seed)
        if not model:
            raise ValueError("model must be a non-empty model name")
        for label, value in (("timeout", timeout), ("deadline", deadline)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{label} must be a finite number of seconds > 0, got {value}")
        if not (max_retry_wait >= 0 and math.isfinite(max_retry_wait)):
            raise ValueError(
                f"max_retry_wait must be a finite number of seconds >= 0, got {max_retry_wait}"
            )
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError(
                f"backoff_base and backoff_max must be >= 0, got {backoff_base}, {backoff_max}"
            )
        urls: list[str | None] = (
            [base_url] if base_url is None or isinstance(base_url, str) else list(base_url)
        )
        self.base_url = urls[0] if len(urls) == 1 else ", ".join(str(u) for u in urls)
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.deadline = deadline
        self.max_retry_wait = max_retry_wait

        api_key = os.environ.get(api_key_env)
        if not api_key:
            remote = [u for u in urls if u is None or not _is_loopback(u)]
            if remote:
                where = remote[0] or "the default OpenAI API"
                raise LLMError(
                    f"no API key for {where}: environment variable {api_key_env} is not set. "
                    f"Set it (export {api_key_env}=...) or point llm.api_key_env at the "
                    "variable that holds the key."
                )
            api_key = NO_KEY_PLACEHOLDER

        import openai

        self._sdk = openai
        key = api_key
        self.endpoints: EndpointPool[openai.AsyncOpenAI] = EndpointPool(
            [u or "" for u in urls],
            lambda u: openai.AsyncOpenAI(
                api_key=key, base_url=u or None, max_retries=0, timeout=timeout
            ),
            backoff=endpoint_backoff,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatLLM(model={self.model!r}, base_url={self.base_url!r})"

    def _backoff(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.backoff_max, self.backoff_base * 2**attempt))

    async def _call(self, client: openai.AsyncOpenAI, request: Request) -> Any:
        omit = self._sdk.omit
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "stop": list(request.stop) if request.stop else omit,
            "seed": request.seed if request.seed is not None else omit,
        }
        if request.kind == "chat":
            messages: Any = [dict(m) for m in request.messages]
            return await client.chat.completions.create(messages=messages, **common)
        return await client.completions.create(prompt=request.prompt, **common)

    async def _generate_one(self, request: Request) -> Completion:
        if request.options:
            raise LLMError(
                f"the openai backend ({self.model}) does not score answer options: evolm reads "
                "option probabilities only from local models' logits. Use the judge's "
                'method = "rating" (it asks for 1-10 ratings instead), or a llama_cpp or hf '
                "judge model"
            )
        sdk = self._sdk
        t0 = time.perf_counter()
        end = t0 + self.deadline
        attempts = self.max_retries + 1
        last_error = ""
        pool = self.endpoints
        for attempt in range(attempts):
            retry_after: float | None = None
            limit = min(self.timeout, end - time.perf_counter())
            ep = pool.pick()
            ok = False
            try:
                response = await asyncio.wait_for(self._call(ep.client, request), limit)
                ok = True
            except TimeoutError:  # the attempt's own clock: nothing the server sends extends it
                if limit < self.timeout:
                    ok = True  # cut short by the call's deadline, not the server's fault
                    return self._past_deadline(t0, attempt + 1, last_error)
                last_error = self._timed_out()
            except sdk.APIStatusError as exc:
                last_error = _status_text(exc)
                status = exc.status_code
                if not (status in (408, 429) or status >= 500):
                    ok = True  # the request's fault, not the server's
                    return self._failure(t0, attempt + 1, last_error)
                retry_after = _retry_after(exc.response.headers)
            except sdk.APIConnectionError as exc:  # (APITimeoutError is one)
                if isinstance(exc, sdk.APITimeoutError):
                    last_error = self._timed_out()
                else:
                    last_error = f"cannot connect to {ep.client.base_url}: {exc.__cause__ or exc}"
            else:
                return self._success(request, response, t0, attempt + 1, ep)
            finally:
                pool.done(ep, ok=ok, retry_after=retry_after)
            if len(pool) > 1:
                last_error = f"{ep.url}: {last_error}"
                if attempt + 1 < attempts and pool.any_up(besides=ep):
                    continue  # another server takes the retry at once
            if attempt + 1 < attempts:
                if retry_after is not None and retry_after > self.max_retry_wait:
                    return self._failure(
                        t0,
                        attempt + 1,
                        f"{last_error}; the server asked to retry after {retry_after:g} s "
                        f"(Retry-After), longer than llm.max_retry_wait = "
                        f"{self.max_retry_wait:g} s, so the call gave up. Raise "
                        "llm.max_retry_wait to wait that long, or lower llm.concurrency to "
                        "stay under the server's rate limit.",
                    )
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                if time.perf_counter() + delay >= end:
                    return self._past_deadline(t0, attempt + 1, last_error)
                await asyncio.sleep(delay)
        return self._failure(
            t0, attempts, f"gave up after {_attempts(attempts)}; last error: {last_error}"
        )

    def _timed_out(self) -> str:
        return f"timed out: no complete answer within {self.timeout:g} s (llm.timeout)"

    def _past_deadline(self, t0: float, attempts: int, last_error: str) -> Completion:
        return self._failure(
            t0,
            attempts,
            f"gave up after {_attempts(attempts)}: the call's deadline of {self.deadline:g} s "
            f"(llm.deadline) passed; last error: {last_error or 'no complete answer yet'}",
        )

    def _failure(self, t0: float, attempts: int, error: str) -> Completion:
        return Completion(
            text="",
            model=self.model,
            latency=time.perf_counter() - t0,
            error=error,
            extras={"attempts": attempts},
        )

    def _success(
        self, request: Request, response: Any, t0: float, attempts: int, ep: Endpoint[Any]
    ) -> Completion:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise LLMError(f"server answered without choices: {response!r:.200}")
        choice = choices[0]
        if request.kind == "chat":
            message = getattr(choice, "message", None)
            text = getattr(message, "content", None) or ""
        else:
            text = getattr(choice, "text", None) or ""
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = self.cost(tokens_in, tokens_out)
        return Completion(
            text=text,
            model=getattr(response, "model", None) or self.model,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency=time.perf_counter() - t0,
            finish_reason=getattr(choice, "finish_reason", None),
            cost=cost,
            extras={
                "attempts": attempts,
                **({"server": ep.url} if len(self.endpoints) > 1 else {}),
            },
        )

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        for ep in self.endpoints.endpoints:
            await ep.client.close()
