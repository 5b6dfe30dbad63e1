"""Operators for text domains: rewrite one text, or cross several over by few-shot prompting.

Text domains (poems, stories, instructions for a task model) evolve prose, not programs: the
candidate's ``Program.code`` holds the text. The domain's :class:`~evolm.domains.base.DomainContext`
has ``language = "text"``; its ``description`` is the task paragraph and its ``function_name`` is
the *noun* of the thing written (``"poem"``, ``"story"``, ``"instruction"``).

* :class:`TextRewrite` (``"text_rewrite"``): one parent and one instruction drawn from a small
  set. Chat: ``Here is a poem: ... Write a new poem that <instruction>. Reply with the poem
  only.``; completion: ``Poem 1:`` and the parent, then ``Poem 2, a new poem that
  <instruction>:`` which the model continues.
* :class:`TextLMX` (``"text_lmx"``): language-model crossover (LMX, Meyerson et al. 2023) for
  text, as QDAIF (Bradley et al. 2023) uses it: ``k`` parents (2 to 5) as a numbered few-shot
  list, ``Poem 1:`` .. ``Poem k:``, then ``Poem k+1:`` for the model to continue (chat: the same
  list and a request for one more). Parents are chosen as :class:`~evolm.operators.lmx.LMXCrossover`
  chooses them (``selection``), and shown worst first.

:func:`extract_text` turns an answer into the text, or a reason there is none: it strips fences,
a leading label (``Poem 4:``, ``Here is a new poem:``) and surrounding quotes, cuts at the next
``Poem N:`` label or at a trailing paragraph of commentary (``I hope you like it``), and refuses
empty or over-long texts. :func:`fake_answer` is the offline stand-in model for these prompts
(used by :func:`evolm.llm.fake.mutating_responder`).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence

import numpy as np

from evolm.domains.base import DomainContext
from evolm.llm.base import Request
from evolm.operators.base import Proposal, Result, validated_choices
from evolm.operators.lmx import LMXCrossover, _score
from evolm.operators.prompt import _RewriteOperator
from evolm.operators.textmatch import clean_completion
from evolm.types import Individual

__all__ = [
    "DEFAULT_MAX_CHARS",
    "TEXT_INSTRUCTIONS",
    "TEXT_SYSTEM_PROMPT",
    "TextLMX",
    "TextRewrite",
    "extract_text",
    "fake_answer",
    "plural",
]

TEXT_SYSTEM_PROMPT = (
    "You are a writer taking part in an evolutionary search over texts. Reply with the "
    "requested text only: no title, no introduction, no comments."
)
#: What :class:`TextRewrite` asks for, completing "Write a new {noun} that ...".
TEXT_INSTRUCTIONS: tuple[str, ...] = (
    "is better written than this one and keeps to the task",
    "treats the same subject in a different way",
    "changes a few words and lines of this one",
    "is different from this one in mood and style",
)
DEFAULT_MAX_CHARS = 2000
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*$", re.MULTILINE)
_TRAILER = re.compile(
    r"^(?:\(|\[|note\b|notes\b|explanation\b|analysis\b|i hope\b|i've\b|i have\b|feel free\b|"
    r"let me know\b|this (?:new )?\w+ (?:uses|captures|explores|is|has|keeps|combines)\b|"
    r"in this \w+\b|the (?:new )?\w+ above\b|---|\*\*\*|===)",
    re.IGNORECASE,
)
_INTRO = re.compile(
    r"^(?:sure|certainly|okay|ok|of course|here is|here's|here are|below is)\b[^\n]*$",
    re.IGNORECASE,
)


def plural(noun: str) -> str:
    """The English plural of a simple ``noun``: ``story`` -> ``stories``, ``poem`` -> ``poems``."""
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(?:s|x|z|ch|sh)$", noun):
        return noun + "es"
    return noun + "s"


def _title(noun: str) -> str:
    return noun[:1].upper() + noun[1:]


def _label_re(noun: str) -> re.Pattern[str]:
    """A line that starts a numbered entry: ``Poem 3:``, ``**Poem 3:**``, ``Poem 3, a new ...:``."""
    return re.compile(
        rf"^[ \t]*[*#_]*[ \t]*{re.escape(noun)}[ \t]+\d+\b[^\n]*?:[*_]*[ \t]*", re.IGNORECASE
    )


def _strip_fences(text: str) -> str:
    """The body of the first non-empty fenced block (an unclosed one runs to the end), or
    ``text`` itself when it has no fence."""
    marks = list(_FENCE.finditer(text))
    if not marks:
        return text
    for i, mark in enumerate(marks):
        if i % 2:
            continue
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() : end].strip("\n")
        if body.strip():
            return body
    return ""


def _strip_quotes(text: str) -> str:
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        inner = text[1:-1].strip()
        if text[0] in inner:  # "a" said "b": not one quoted text
            break
        text = inner
    return text


def extract_text(completion: str, noun: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> Result:
    """The text in an answer to a text operator's prompt, or the reason there is none.

    Steps: clean the completion (line endings, ``<think>`` sections, end-of-text tokens); take
    the first non-empty fenced block if there is one; drop an introduction line (``Here is a
    new poem:``) and a leading label (``Poem 4:``, ``**Poem 4:**``, ``New poem:``); cut at the
    next ``{Noun} N:`` label line; cut at the first blank-line-separated paragraph after the first
    that reads as commentary (``I hope...``, ``Note:``, ``This poem uses...``, ``---``); strip
    surrounding quotes and whitespace.

    Args:
        completion: the model's answer.
        noun: what is written (the context's ``function_name``), e.g. ``"poem"``.
        max_chars: the longest text accepted.

    Returns:
        A :class:`~evolm.operators.base.Result` with the text as ``code``, or with ``error`` set
        (``empty poem``, ``the poem is N characters long, more than max_chars=M``).
    """
    text = _strip_fences(clean_completion(completion)).strip("\n")
    label = _label_re(noun)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and _INTRO.match(lines[0].strip()) and lines[0].rstrip().endswith(":"):
        lines.pop(0)
    if lines:
        first = label.sub("", lines[0], count=1)
        plain = re.compile(
            rf"^[ \t]*[*#_]*(?:new |improved |revised )?{re.escape(noun)}[*_]*[ \t]*:[*_]*[ \t]*",
            re.IGNORECASE,
        )
        lines[0] = plain.sub("", first, count=1)
    for i, line in enumerate(lines[1:], 1):
        if label.match(line):
            lines = lines[:i]
            break
    paragraphs = "\n".join(lines).strip().split("\n\n")
    for i, para in enumerate(paragraphs[1:], 1):
        if _TRAILER.match(para.strip()):
            paragraphs = paragraphs[:i]
            break
    body = "\n\n".join(p.strip("\n") for p in paragraphs if p.strip())
    body = _strip_quotes(body.strip()).strip()
    if not body:
        return Result("", f"empty {noun}")
    if len(body) > max_chars:
        return Result(
            "", f"the {noun} is {len(body)} characters long, more than max_chars={max_chars}"
        )
    return Result(body + "\n")


def _check_max_chars(max_chars: int) -> int:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be an int >= 1, got {max_chars!r}")
    return max_chars


def _text_request(
    op: _RewriteOperator, body: str, rng: np.random.Generator, parent: str, stop: tuple[str, ...]
) -> Request:
    """A request for ``body`` with the operator's sampling parameters; the seed is one draw
    from ``rng``; chat requests carry :data:`TEXT_SYSTEM_PROMPT`."""
    seed = int(rng.integers(2**31))
    common = {
        "max_tokens": op._max_tokens(parent),
        "temperature": op.temperature,
        "top_p": op.top_p,
        "seed": seed,
        "repeat_penalty": op.repeat_penalty,
    }
    if op.mode == "chat":
        messages = (
            {"role": "system", "content": TEXT_SYSTEM_PROMPT},
            {"role": "user", "content": body},
        )
        return Request(kind="chat", messages=messages, **common)  # type: ignore[arg-type]
    return Request(kind="completion", prompt=body, stop=stop, **common)  # type: ignore[arg-type]


class TextRewrite(_RewriteOperator):
    """Rewrite one text by one instruction drawn from a small set.

    Args:
        context: the domain's prompt context (``function_name`` is the noun).
        mode: ``"chat"`` or ``"completion"`` (see the module docstring).
        instructions: what the new text should do, each completing "Write a new {noun} that
            ..." (default :data:`TEXT_INSTRUCTIONS`).
        weights: relative probability of each instruction (default uniform).
        max_chars: the longest text accepted from the model (longer: ``invalid``).
        max_tokens, temperature, top_p, repeat_penalty, parent_sized: sampling parameters, as
            for :class:`~evolm.operators.prompt.PromptMutation`.

    Raises:
        ValueError: bad mode, instructions, weights, ``max_chars`` or sampling parameters.
    """

    name = "text_rewrite"
    num_parents = 1

    def __init__(
        self,
        context: DomainContext,
        mode: str = "chat",
        instructions: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
        *,
        max_chars: int = DEFAULT_MAX_CHARS,
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
        chosen, self.weights = validated_choices(
            TEXT_INSTRUCTIONS if instructions is None else instructions,
            weights,
            "instructions",
            "instruction",
        )
        self.instructions = tuple(" ".join(ins.split()).rstrip(".") for ins in chosen)
        self.max_chars = _check_max_chars(max_chars)

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Draw an instruction (by ``weights``), then a request seed, both from ``rng``."""
        parent = self._parent(parents)
        instruction = self.instructions[int(rng.choice(len(self.instructions), p=self.weights))]
        text = parent.program.code.strip()
        noun = self.context.function_name
        title = _title(noun)
        task = self.context.description.strip()
        if self.mode == "chat":
            body = (
                f"{task}\n\nHere is a {noun}:\n\n{text}\n\n"
                f"Write a new {noun} that {instruction}. Reply with the {noun} only."
            )
        else:
            body = f"{task}\n\n{title} 1:\n{text}\n\n{title} 2, a new {noun} that {instruction}:\n"
        stop = (f"\n{title} 3", "\n\n\n")
        return self._proposal((parent,), _text_request(self, body, rng, text, stop))

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """The text in ``completion`` (:func:`extract_text`)."""
        return extract_text(completion, self.context.function_name, max_chars=self.max_chars)


class TextLMX(LMXCrossover):
    """Language-model crossover for text: ``k`` parents as a numbered few-shot list.

    Args:
        context: the domain's prompt context (``function_name`` is the noun).
        mode: ``"chat"`` or ``"completion"`` (see the module docstring).
        k: number of parents shown (2 to 5).
        selection: how parents are drawn (as for :class:`~evolm.operators.lmx.LMXCrossover`).
        max_chars: the longest text accepted from the model (longer: ``invalid``).
        max_tokens, temperature, top_p, repeat_penalty, parent_sized: sampling parameters.

    Raises:
        ValueError: ``k`` outside 2..5, an unknown selection, bad ``max_chars`` or sampling
            parameters.
    """

    name = "text_lmx"

    def __init__(
        self,
        context: DomainContext,
        mode: str = "chat",
        *,
        k: int = 3,
        selection: str = "near",
        max_chars: int = DEFAULT_MAX_CHARS,
        max_tokens: int = 512,
        temperature: float = 0.8,
        top_p: float = 0.95,
        repeat_penalty: float = 1.0,
        parent_sized: bool = True,
    ) -> None:
        if isinstance(k, int) and not isinstance(k, bool) and k == 1:
            raise ValueError("text_lmx: k must be an integer from 2 to 5, got 1 (use text_rewrite)")
        super().__init__(
            context,
            mode,
            k=k,
            selection=selection,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            repeat_penalty=repeat_penalty,
            parent_sized=parent_sized,
        )
        self.max_chars = _check_max_chars(max_chars)

    def propose(self, parents: Sequence[Individual], rng: np.random.Generator) -> Proposal:
        """Build the crossover request (parents worst first, best last); its seed is drawn
        from ``rng``.

        Raises:
            ValueError: ``parents`` is not ``k`` long.
        """
        if len(parents) != self.num_parents:
            raise ValueError(f"text_lmx takes {self.num_parents} parents, got {len(parents)}")
        ordered = sorted(parents, key=_score)
        noun = self.context.function_name
        title = _title(noun)
        k = len(ordered)
        shown = "\n\n".join(
            f"{title} {i}:\n{p.program.code.strip()}" for i, p in enumerate(ordered, 1)
        )
        task = self.context.description.strip()
        if self.mode == "chat":
            body = (
                f"{task}\n\nHere are {k} {plural(noun)}:\n\n{shown}\n\n"
                f"Write {title} {k + 1}, one new {noun} in the spirit of the {plural(noun)} "
                f"above. Reply with the {noun} only."
            )
        else:
            body = f"{task}\n\n{shown}\n\n{title} {k + 1}:\n"
        longest = max((p.program.code for p in parents), key=len)
        stop = (f"\n{title} {k + 2}", "\n\n\n")
        return self._proposal(parents, _text_request(self, body, rng, longest, stop))

    def finish(self, proposal: Proposal, completion: str) -> Result:
        """The text in ``completion`` (:func:`extract_text`)."""
        return extract_text(completion, self.context.function_name, max_chars=self.max_chars)


# -- the offline stand-in model -------------------------------------------------------------
_CHAT_END = re.compile(r"Reply with the (?P<noun>\w+) only\.\s*$")
_COMPLETION_END = re.compile(r"\n\n(?P<title>[A-Z]\w*) (?P<n>\d+)(?:, [^\n]*)?:\n$")
_FAKE_WORDS: tuple[str, ...] = (
    "bright", "glad", "joy", "warm", "smile", "gold", "dark", "grief", "cold", "tears", "lost",
    "ghost", "blood", "scream", "grave", "love", "kiss", "heart", "tender", "wedding", "salt",
    "wave", "tide", "shore", "glimmer", "whisper", "silver", "song", "light", "night",
)  # fmt: skip


def _parents_in(prompt: str, noun: str) -> list[str]:
    title = _title(noun)
    head = re.compile(rf"^(?:{title} \d+(?:, [^\n]*)?:|Here is a {re.escape(noun)}:)\n", re.M)
    marks = list(head.finditer(prompt))
    texts = []
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(prompt)
        chunk = prompt[mark.end() : end]
        chunk = re.split(r"\n\n(?:Write |Reply )", chunk)[0]
        if chunk.strip():
            texts.append(chunk.strip())
    return texts


def fake_answer(prompt: str, seed: int | None) -> str | None:
    """A deterministic answer to a :class:`TextRewrite` or :class:`TextLMX` prompt, or None
    for any other prompt (the caller then answers as before).

    The answer takes its lines from the prompt's texts (LMX: each line from a parent drawn at
    random, the first parent's line count), then replaces one word with a word from a small bank
    of evocative words (tone, genre, sea and light words), so the stand-in moves a word-list
    scorer's descriptors. Equal prompts and seeds give equal answers.
    """
    chat = _CHAT_END.search(prompt)
    completion = None if chat else _COMPLETION_END.search(prompt)
    if chat:
        noun = chat.group("noun")
    elif completion:
        noun = completion.group("title").lower()
    else:
        return None
    parents = _parents_in(prompt, noun)
    if not parents:
        return None
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:16]
    rng = random.Random(f"{seed}:{digest}")
    split = [p.split("\n") for p in parents]
    lines = [rng.choice([s for s in split if len(s) > i])[i] for i in range(len(split[0]))]
    words = [(i, m) for i, line in enumerate(lines) for m in re.finditer(r"[A-Za-z]{3,}", line)]
    if words:
        i, m = rng.choice(words)
        lines[i] = lines[i][: m.start()] + rng.choice(_FAKE_WORDS) + lines[i][m.end() :]
    return "\n".join(lines) + "\n"
