"""Replay the LLM calls recorded in an earlier run's database (a "cassette").

A run writes every call to its database's ``llm_calls`` table. :class:`ReplayLLM` reads that
table and answers each request with a recorded answer to the same prompt, so a run can be
repeated offline and for free. A prompt the cassette cannot answer stops the run with
:class:`CassetteMiss`: a replay that silently diverged would not be a replay. For the same
reason a call whose completion was stored cut (longer than
:data:`evolm.store.MAX_COMPLETION_CHARS`) stops the replay with :class:`TruncatedCompletion`
when it is reached, instead of answering with the cut text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from evolm.llm.base import Completion, LLMBackend, LLMError, Request

__all__ = ["CassetteMiss", "ReplayLLM", "TruncatedCompletion"]


class CassetteMiss(LLMError):
    """The cassette holds no unused answer for a request: the replay has diverged."""


class TruncatedCompletion(CassetteMiss):
    """The recorded answer to a request was stored cut (too long to store whole), so the
    replay cannot give the answer the recorded run saw."""


@dataclass
class _Row:
    id: int
    seed: int | None
    completion: Completion
    used: bool = False
    truncated: int | None = None  # the original length of a completion stored cut


def _answer_extras(extras: dict[str, Any]) -> dict[str, Any]:
    """The recorded extras that are part of the answer (an options request's probabilities)."""
    probs = extras.get("option_probs")
    return {"option_probs": dict(probs)} if isinstance(probs, dict) else {}


def _excerpt(request: Request, n: int = 120) -> str:
    if request.kind == "completion":
        text = request.prompt
    else:
        text = request.messages[-1].get("content", "") if request.messages else ""
    return text[:n]


class ReplayLLM(LLMBackend):
    """A backend that answers from the ``llm_calls`` table of an earlier run's database.

    Args:
        path: the recorded run's SQLite database; opened read-only, once, at construction.
        concurrency: passed to :class:`LLMBackend` (answers need no I/O).

    Failed calls replay as the same failure (an error completion), so a replayed run takes
    the same path as the recorded one. Requests match recorded calls by
    :meth:`Request.key` (the prompt and sampling settings, not the seed). Among the unused
    calls with that key, the one recorded with the request's seed is preferred, else the
    earliest; each recorded call answers at most once.

    Completions carry the recorded text, model, token counts, cost and finish reason (cost is
    replayed so budget limits stop a replay where they stopped the recording), latency 0, and
    ``extras`` with ``replayed_id`` and ``recorded_latency`` (and, for a request with
    ``options``, the recorded ``option_probs``).

    Raises:
        LLMError: at construction, when ``path`` is missing or has no ``llm_calls`` table.
        CassetteMiss: from :meth:`generate`, when a request has no unused recorded answer.
    """

    name = "replay"

    def __init__(self, path: str | PathLike[str], concurrency: int = 64) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LLMError(f"replay cassette {self.path} does not exist (or is not a file)")
        # imported here, not at the top: evolm.store imports evolm.llm.base, whose package
        # (evolm.llm) imports this module
        from evolm.store import RunStore, StoreError

        try:
            with RunStore(self.path, readonly=True) as store:
                calls = list(store.llm_calls())
        except StoreError as exc:
            raise LLMError(
                f"replay cassette {self.path} cannot be read as a run database "
                f"with an llm_calls table: {exc}"
            ) from exc
        self._rows: dict[str, list[_Row]] = {}
        for call in calls:
            recorded = call.completion
            completion = dataclasses.replace(
                recorded,
                model=recorded.model or "replay",
                latency=0.0,
                extras={
                    "replayed_id": call.id,
                    "recorded_latency": recorded.latency,
                    **_answer_extras(recorded.extras),
                },
            )
            cut = recorded.extras.get("response_truncated")
            truncated = cut if isinstance(cut, int) and cut > 0 else None
            row = _Row(call.id, call.seed, completion, truncated=truncated)
            self._rows.setdefault(call.request_key, []).append(row)
        first_model = next((c.completion.model for c in calls if c.completion.model), None)
        self._chat_options = any(
            '"options"' in c.request_json and c.request.kind == "chat" and c.request.options
            for c in calls
        )
        super().__init__(first_model or "replay", concurrency)

    @property
    def chat_template(self) -> bool:
        """Whether the recorded model asked options requests in chat form (a judge with
        ``style = "auto"`` then asks in chat form again, so its requests match the cassette)."""
        return self._chat_options

    def __len__(self) -> int:
        """How many recorded calls are still unused."""
        return sum(not r.used for rows in self._rows.values() for r in rows)

    def _take(self, request: Request) -> Completion:
        rows = self._rows.get(request.key(), [])
        unused = [r for r in rows if not r.used]
        if not unused:
            why = (
                f"all {len(rows)} recorded answer(s) to this prompt were already used"
                if rows
                else "this prompt was never recorded"
            )
            raise CassetteMiss(
                f"replay cassette {self.path} cannot answer a request ({why}); "
                f"prompt starts: {_excerpt(request)!r}. A replay must use the same config "
                "and seed as the recorded run."
            )
        row = next((r for r in unused if r.seed == request.seed), unused[0])
        row.used = True
        if row.truncated is not None:
            raise TruncatedCompletion(
                f"replay cassette {self.path} cannot answer a request: its recorded answer "
                f"(call {row.id}) was {row.truncated} characters long and was stored cut to "
                f"{len(row.completion.text)}, so replaying it would not reproduce the recorded "
                "run. Replay a run whose completions were stored whole, or use a live model"
            )
        return row.completion

    async def _generate_one(self, request: Request) -> Completion:
        return self._take(request)

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer a batch from the cassette, in order.

        Raises:
            CassetteMiss: a request has no unused recorded answer (the run must stop).
        """
        return [self._take(r) for r in requests]
