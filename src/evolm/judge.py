"""AI feedback: a judge model's probability for each answer to a question about a text.

:class:`Judge` asks a :class:`Question` ("Is this text a poem about the sea?", options
``("yes", "no")``) about a text and returns the probability of each option:

- ``method = "logprobs"`` (local models): one options request (:attr:`Request.options`) on a
  prompt made of a fixed few-shot prefix (the question's examples), the text and the question;
  the option probabilities come from the model's next-token logits. The prefix is the same for
  every text, so llama.cpp's prompt cache evaluates it once. ``style = "chat"`` asks in the
  model's chat template (each example a user turn answered by an assistant turn, then the text
  and the question as the last user turn; the options are scored as the start of the assistant's
  answer); ``style = "completion"`` writes ``Text: ... Question: ... Answer:`` blocks (options
  scored with a leading space). ``"auto"`` (the default) picks chat when the backend's model has a
  chat template: measured on SmolLM2-135M-Instruct with ``sea_poems``, chat scored AUC 0.79
  zero-shot against 0.15 for the completion prompt (docs/backends.md has the table).
  ``calibrate = True`` divides the probabilities by those the same prompt gives the content-free
  text ``N/A`` and renormalises ("calibrate before use", Zhao et al. 2021): one more call per
  question, which moves a model biased to one option back towards 0.5 (ranking, hence AUC, is
  unchanged for yes/no questions).
- ``method = "rating"`` (API models that give no log-probabilities): ``samples`` chat requests
  ask for a 1-10 rating of how well each option applies (of "yes" alone for a yes/no question);
  the parsed ratings are averaged and turned into probabilities. Unparseable answers are dropped;
  when every answer is unparseable the call fails.

:func:`audit` scores a labelled file (what ``evolm judge-audit`` prints): accuracy, AUC, the
mean probability of the true label and a calibration table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from evolm.llm.base import LLMBackend, LLMError, Message, Request
from evolm.llm.client import LLMCallFailed, LLMClient

__all__ = [
    "STYLES",
    "AuditResult",
    "Judge",
    "Question",
    "Style",
    "auc",
    "audit",
    "load_labelled",
    "parse_rating",
]


@dataclass(frozen=True)
class Question:
    """A question about a text with its answer options.

    Attributes:
        text: the question, e.g. ``"Is this text a poem about the sea?"``.
        options: two or more distinct answers, e.g. ``("yes", "no")`` or
            ``("horror", "romance")``.
        examples: few-shot ``(text, correct option)`` pairs, put in the prompt's fixed prefix.
    """

    text: str
    options: tuple[str, ...]
    examples: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        opts = self.options
        if len(opts) < 2 or len(set(opts)) != len(opts) or not all(o.strip() for o in opts):
            raise ValueError(
                f"a question needs two or more distinct, non-empty options, got {opts}"
            )
        for text, label in self.examples:
            if label not in opts:
                raise ValueError(
                    f"example label {label!r} is not one of the options {opts} (example text "
                    f"starts {text[:60]!r}); label each example with one of the options"
                )

    @property
    def binary(self) -> bool:
        """A yes/no question (the options are ``yes`` and ``no``, in either order or case)."""
        return {o.strip().lower() for o in self.options} == {"yes", "no"}


Style = Literal["auto", "chat", "completion"]
STYLES: tuple[str, ...] = ("auto", "chat", "completion")
CONTENT_FREE = "N/A"
"""The text whose option probabilities ``calibrate = True`` divides by."""

_RATING = re.compile(r"(?<![\d.])(10|[1-9])(?:\s*/\s*10)?(?!\.?\d)")


def parse_rating(text: str) -> float | None:
    """The first 1-10 rating in ``text`` (``"7"``, ``"Rating: 7/10"``), or None."""
    m = _RATING.search(text)
    return float(m.group(1)) if m else None


class Judge:
    """Asks questions about texts through an :class:`LLMClient` (so its calls are stored,
    charged and replayable).

    Args:
        client: the client the calls go through.
        method: ``"logprobs"`` (one options request per question) or ``"rating"`` (``samples``
            1-10 ratings, for models without log-probabilities).
        samples: ratings per question with ``method = "rating"``.
        style: the ``logprobs`` prompt: ``"chat"`` (the model's chat template), ``"completion"``
            (plain text, for base models) or ``"auto"``: chat when the client's backend has a
            chat template (``backend.chat_template``; a replay: when the cassette holds chat
            options requests), else completion.
        calibrate: divide the ``logprobs`` probabilities by those of the content-free text
            ``N/A`` (asked once per question and judge) and renormalise.

    Raises:
        ValueError: an unknown method or style, or ``samples < 1``.
    """

    def __init__(
        self,
        client: LLMClient,
        *,
        method: Literal["logprobs", "rating"] = "logprobs",
        samples: int = 3,
        style: Style = "auto",
        calibrate: bool = False,
    ) -> None:
        if method not in ("logprobs", "rating"):
            raise ValueError(f"method must be 'logprobs' or 'rating', got {method!r}")
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
        self.client = client
        self.method = method
        self.samples = samples
        if style == "auto":
            style = (
                "chat" if bool(getattr(client.backend, "chat_template", False)) else "completion"
            )
        self.style: Literal["chat", "completion"] = style
        self.calibrate = calibrate
        self._baseline: dict[Question, dict[str, float]] = {}

    # -- prompts --------------------------------------------------------------------------
    @staticmethod
    def _block(text: str, question: Question) -> str:
        choices = ", ".join(question.options)
        return f"Text:\n{text.strip()}\n\nQuestion: {question.text} Answer {choices}.\nAnswer:"

    @staticmethod
    def _user(text: str, question: Question) -> str:
        *head, last = question.options
        choices = f"{', '.join(head)} or {last}"
        return f"{text.strip()}\n\n{question.text} Answer {choices}."

    def prefix(self, question: Question) -> str | tuple[Message, ...]:
        """The few-shot prefix: the same for every text, so a prompt cache can reuse it (chat
        style: the examples' user and assistant turns)."""
        if self.style == "chat":
            turns: list[Message] = []
            for t, label in question.examples:
                turns.append({"role": "user", "content": self._user(t, question)})
                turns.append({"role": "assistant", "content": label})
            return tuple(turns)
        return "".join(f"{self._block(t, question)} {label}\n\n" for t, label in question.examples)

    def prompt(self, text: str, question: Question) -> str | tuple[Message, ...]:
        """The whole ``logprobs`` prompt for ``text``: the prefix, then the text and the
        question (completion style: a string ending ``Answer:``; chat style: messages ending
        with the user's turn)."""
        prefix = self.prefix(question)
        if isinstance(prefix, tuple):
            return (*prefix, {"role": "user", "content": self._user(text, question)})
        return prefix + self._block(text, question)

    def _scored(self, question: Question) -> tuple[str, ...]:
        """The options as scored: verbatim at the start of a chat answer, else after a space."""
        if self.style == "chat":
            return question.options
        return tuple(" " + o for o in question.options)

    async def probs(self, text: str, question: Question, *, seed: int = 0) -> dict[str, float]:
        """The probability of each of ``question``'s options for ``text`` (summing to 1).

        Raises:
            LLMCallFailed: a call failed, or (rating) no answer held a rating.
        """
        if self.method != "logprobs":
            return await self._rated(text, question, seed)
        probs = await self._option_probs(text, question, seed)
        if not self.calibrate:
            return probs
        base = self._baseline.get(question)
        if base is None:
            base = self._baseline[question] = await self._option_probs(CONTENT_FREE, question, 0)
        ratio = {o: probs[o] / max(base[o], 1e-12) for o in question.options}
        total = sum(ratio.values())
        if total <= 0.0:
            return probs
        return {o: r / total for o, r in ratio.items()}

    async def _option_probs(self, text: str, question: Question, seed: int) -> dict[str, float]:
        scored = self._scored(question)
        got = await self.client.option_probs(self.prompt(text, question), scored, seed=seed)
        return {o: got[s] for o, s in zip(question.options, scored, strict=True)}

    def _rating_request(self, text: str, question: Question, option: str, seed: int) -> Request:
        ask = (
            f"Here is a text:\n\n{text.strip()}\n\nQuestion: {question.text}\n"
            f"On a scale from 1 to 10, how well does the answer {option!r} apply? "
            "Reply with the number only."
        )
        return Request(
            kind="chat",
            messages=({"role": "user", "content": ask},),
            max_tokens=8,
            temperature=0.7,
            seed=seed,
        )

    async def _rated(self, text: str, question: Question, seed: int) -> dict[str, float]:
        rated = question.options[:1] if question.binary else question.options
        means: dict[str, float] = {}
        for j, option in enumerate(rated):
            values = []
            for i in range(self.samples):
                request = self._rating_request(text, question, option, seed * 1000 + j * 100 + i)
                value = parse_rating((await self.client.generate(request)).text)
                if value is not None:
                    values.append(value)
            if not values:
                raise LLMCallFailed(
                    f"none of the {self.samples} answers rating {option!r} held a 1-10 number"
                )
            means[option] = sum(values) / len(values)
        if question.binary:
            (first,) = rated
            p = (means[first] - 1.0) / 9.0
            other = next(o for o in question.options if o != first)
            return {first: p, other: 1.0 - p}
        total = sum(means.values())
        return {o: means[o] / total for o in question.options}


# -- audit --------------------------------------------------------------------------------
def auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """The area under the ROC curve of ``scores`` for the ``positive`` items (ties count a
    half), or None when either class is empty."""
    pos = [s for s, y in zip(scores, positive, strict=True) if y]
    neg = [s for s, y in zip(scores, positive, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@dataclass(frozen=True)
class AuditResult:
    """How well a judge's probabilities match a labelled set.

    Attributes:
        n: items scored.
        accuracy: share of items whose most probable option is the label.
        auc: binary: of P(first option) against label == first option; more options: the mean
            one-vs-rest AUC over the options with both classes present. None if undefined.
        mean_true: mean probability given to the true label.
        calibration: ``(low, high, count, mean predicted, observed share)`` per bin of
            P(first option) (binary) or of the top option's probability (more options).
        probs: each item's probabilities, in file order.
    """

    n: int
    accuracy: float
    auc: float | None
    mean_true: float
    calibration: tuple[tuple[float, float, int, float, float], ...]
    probs: tuple[dict[str, float], ...] = field(default=(), repr=False)


def score_audit(
    probs: Sequence[dict[str, float]], labels: Sequence[str], options: Sequence[str], bins: int = 5
) -> AuditResult:
    """The :class:`AuditResult` of per-item probabilities against their labels."""
    n = len(labels)
    if n == 0:
        raise ValueError("no items to score")
    top = [max(options, key=p.__getitem__) for p in probs]
    accuracy = sum(t == y for t, y in zip(top, labels, strict=True)) / n
    mean_true = sum(p[y] for p, y in zip(probs, labels, strict=True)) / n
    if len(options) == 2:
        value = auc([p[options[0]] for p in probs], [y == options[0] for y in labels])
        conf = [p[options[0]] for p in probs]
        hit = [y == options[0] for y in labels]
    else:
        each = [auc([p[o] for p in probs], [y == o for y in labels]) for o in options]
        defined = [a for a in each if a is not None]
        value = sum(defined) / len(defined) if defined else None
        conf = [p[t] for p, t in zip(probs, top, strict=True)]
        hit = [t == y for t, y in zip(top, labels, strict=True)]
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [
            (c, h)
            for c, h in zip(conf, hit, strict=True)
            if lo <= c < hi or (b == bins - 1 and c == hi)
        ]
        if inside:
            table.append(
                (
                    lo,
                    hi,
                    len(inside),
                    sum(c for c, _ in inside) / len(inside),
                    sum(h for _, h in inside) / len(inside),
                )
            )
    return AuditResult(n, accuracy, value, mean_true, tuple(table), tuple(probs))


def load_labelled(path: str | Path, options: Sequence[str]) -> list[tuple[str, str]]:
    """``(text, label)`` pairs of a JSONL file of ``{"text": ..., "label": ...}`` lines.

    Raises:
        ValueError: a line that is not such an object, or a label not among ``options``
            (the message names the line and the fix).
    """
    items = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{i} is not JSON ({exc}); write one object per line") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(
                f'{path}:{i} must be an object {{"text": "...", "label": "..."}} with a string text'
            )
        label = row.get("label")
        if label not in options:
            raise ValueError(
                f"{path}:{i} has label {label!r}, not one of the options {list(options)}; "
                "give --options the labels the file uses"
            )
        items.append((row["text"], str(label)))
    if not items:
        raise ValueError(f"{path} holds no labelled items")
    return items


async def audit(
    judge: Judge, question: Question, items: Sequence[tuple[str, str]], *, bins: int = 5
) -> AuditResult:
    """Ask ``question`` about every item's text and score the answers against its label
    (items are asked one after another, seed = the item's index)."""
    probs = [await judge.probs(text, question, seed=i) for i, (text, _) in enumerate(items)]
    return score_audit(probs, [y for _, y in items], question.options, bins)


def resolve_labelled(path: str | Path) -> Path:
    """``path``, or the labelled file evolm ships under that name (``sea_poems``: 40 short
    texts, poems about the sea labelled ``yes``, others ``no``) when no such file exists."""
    p = Path(path)
    if p.exists():
        return p
    from importlib import resources

    shipped = resources.files("evolm") / "data" / "judge" / f"{p.name.removesuffix('.jsonl')}.jsonl"
    return Path(str(shipped)) if shipped.is_file() else p


def run_audit(
    path: str | Path,
    question: str,
    options: Sequence[str],
    *,
    examples: int = 0,
    examples_file: str | Path | None = None,
    llm: str = "llama_cpp",
    method: str = "logprobs",
    samples: int = 3,
    style: str = "auto",
    calibrate: bool = False,
    backend: LLMBackend | None = None,
) -> AuditResult:
    """``evolm judge-audit``: ask ``question`` about every text of a labelled JSONL file.

    Args:
        path: the labelled file (see :func:`load_labelled`), or a shipped one's name (see
            :func:`resolve_labelled`).
        question: the question; ``options`` its answers (the file's labels).
        examples: the file's first ``examples`` items become few-shot examples and are not
            scored; ignored when ``examples_file`` is given (all its items are examples).
        llm: an ``--llm`` spec of the judge model, used when ``backend`` is None.
        method: ``"logprobs"`` or ``"rating"``; ``samples``: ratings per text.
        style, calibrate: the judge's prompt style and calibration (see :class:`Judge`).

    Raises:
        ValueError: a bad file, option list, method or example count (the message says which).
        evolm.llm.LLMError: the model cannot be loaded, or a call failed.
    """
    import asyncio

    from evolm.llm.build import make_backend

    path = resolve_labelled(path)
    opts = tuple(options)
    if method not in ("logprobs", "rating"):
        raise ValueError(f"--method must be logprobs or rating, got {method!r}")
    if style not in STYLES:
        raise ValueError(f"--style must be one of {', '.join(STYLES)}, got {style!r}")
    items = load_labelled(path, opts)
    if examples_file is not None:
        shots = load_labelled(examples_file, opts)
    else:
        if not 0 <= examples < len(items):
            raise ValueError(
                f"--examples {examples} leaves nothing to score in {path} ({len(items)} items); "
                "take fewer examples or give --examples-file"
            )
        shots, items = items[:examples], items[examples:]
    q = Question(question, opts, tuple(shots))
    owned = backend is None
    model = backend if backend is not None else make_backend(llm)

    async def main() -> AuditResult:
        try:
            judge = Judge(
                LLMClient(model),
                method=method,  # type: ignore[arg-type]
                samples=samples,
                style=style,  # type: ignore[arg-type]
                calibrate=calibrate,
            )
            return await audit(judge, q, items)
        finally:
            if owned:
                await model.aclose()

    try:
        return asyncio.run(main())
    except LLMCallFailed as exc:
        raise LLMError(f"a judge call failed: {exc.error}") from exc


def format_audit(result: AuditResult) -> list[str]:
    """The lines ``evolm judge-audit`` prints for ``result``."""
    auc_text = "undefined (one class only)" if result.auc is None else f"{result.auc:.3f}"
    lines = [
        f"n {result.n}",
        f"accuracy {result.accuracy:.3f}",
        f"AUC {auc_text}",
        f"mean P(true label) {result.mean_true:.3f}",
        "calibration (bin: count, mean predicted, observed):",
    ]
    for lo, hi, count, predicted, observed in result.calibration:
        lines.append(f"  {lo:.1f}-{hi:.1f}: {count}, {predicted:.3f}, {observed:.3f}")
    return lines
