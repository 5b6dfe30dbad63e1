"""Poems and stories with AI feedback: QDAIF (Bradley et al. 2023) at laptop scale.

A candidate is a text (``Program.code`` holds it). Nothing is executed: the domain scores texts
in the engine (``scoring = "llm"``) through :meth:`PoetryDomain.assess`, either by asking a judge
model questions (``scorer = "judge"``, the default) or by reading word lists (``scorer =
"lexicon"``, no model, deterministic, for CI):

- **quality** (the fitness, in [0, 1]): the judge's probability of ``yes`` to "Is this a
  well-written poem about {topic}?" (few-shot examples: a well-written text on the topic and a
  junk text), or :func:`~evolm.domains.poetry.lexicon.lexicon_quality`;
- **diversity axes** (the descriptors): for each axis, the probability of its first option
  against its second. Poems: ``tone`` (``happy`` vs ``sad``) and ``form`` (``rhyming`` vs
  ``free verse``); stories (QDAIF's 2-D Stories): ``genre`` (``horror`` vs ``romance``) and
  ``ending`` (``happy`` vs ``tragic``). The lexicon reads the same axes from word ratios
  (:mod:`evolm.domains.poetry.lexicon`).

Each probability is reported through :func:`~evolm.domains.poetry.bins.warp`, so that the
grid archive's equal bins over [0, 1] are the domain's non-uniform ``edges`` in probability
space (QDAIF's edges by default, dense near 0 and 1); set the grid's ``bins`` to the domain's
``bins``. The raw probabilities are in the evaluation's ``extras``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, cast

from evolm.domains.base import Domain, DomainContext
from evolm.domains.poetry import lexicon
from evolm.domains.poetry.bins import EDGE_NAMES, check_edges, edges_named, unwarp, warp
from evolm.domains.poetry.texts import AXIS_EXAMPLES, BAD_EXAMPLES, GOOD_TEMPLATES, SEED_TEMPLATES
from evolm.judge import STYLES, Judge, Question, Style
from evolm.llm.base import LLMError
from evolm.llm.client import LLMCallFailed
from evolm.types import DescriptorSpace, Evaluation, Status

__all__ = [
    "AXES",
    "KINDS",
    "Axis",
    "PoetryDomain",
    "Question",
    "call_failures",
]

KINDS: tuple[str, ...] = ("poem", "story")
SCORERS: tuple[str, ...] = ("judge", "lexicon")


@dataclass(frozen=True)
class Axis:
    """A diversity axis: the descriptor is the probability of ``options[0]`` against
    ``options[1]``, from the judge (``question``, ``{noun}`` replaced) or from ``lexicon``."""

    name: str
    question: str
    options: tuple[str, str]
    lexicon: Callable[[str], float]


AXES: dict[str, dict[str, Axis]] = {
    "poem": {
        "tone": Axis(
            "tone", "Is the mood of this {noun} happy or sad?", ("happy", "sad"), lexicon.tone
        ),
        "form": Axis(
            "form",
            "Does this {noun} rhyme, or is it free verse?",
            ("rhyming", "free verse"),
            lexicon.rhyme_share,
        ),
    },
    "story": {
        "genre": Axis(
            "genre", "Is this {noun} horror or romance?", ("horror", "romance"), lexicon.genre
        ),
        "ending": Axis(
            "ending",
            "Does this {noun} have a happy ending or a tragic ending?",
            ("happy", "tragic"),
            lexicon.ending,
        ),
    },
}
"""The diversity axes by kind of text, each by name (the ``axes`` parameter)."""


def call_failures() -> tuple[type[Exception], ...]:
    """The exceptions that mean a judge call failed (a failed evaluation, not a crash)."""
    return (LLMCallFailed, LLMError)


class JudgeLike(Protocol):
    """What the judge scorer needs of :class:`evolm.judge.Judge`."""

    async def probs(self, text: str, question: Any, *, seed: int = 0) -> dict[str, float]:
        """The probability of each of ``question``'s options for ``text``."""
        ...


class _Scorer(Protocol):
    async def scores(
        self, text: str, seed: int, client: Any
    ) -> tuple[float, tuple[float, ...], dict[str, Any]]: ...


class _LexiconScorer:
    def __init__(self, topic: str, axes: Sequence[Axis]) -> None:
        self.topic = topic
        self.axes = tuple(axes)

    async def scores(
        self, text: str, seed: int, client: Any
    ) -> tuple[float, tuple[float, ...], dict[str, Any]]:
        return (
            lexicon.lexicon_quality(text, self.topic),
            tuple(axis.lexicon(text) for axis in self.axes),
            {},
        )


def _real_judge(
    client: Any, method: str, samples: int, style: str = "auto", calibrate: bool = False
) -> JudgeLike:
    return Judge(
        client,
        method=cast(Literal["logprobs", "rating"], method),
        samples=samples,
        style=cast(Style, style),
        calibrate=calibrate,
    )


class _JudgeScorer:
    def __init__(
        self,
        quality: Question,
        axes: Sequence[tuple[Axis, Question]],
        make_judge: Callable[[Any], JudgeLike],
    ) -> None:
        self.quality = quality
        self.axes = tuple(axes)
        self.make_judge = make_judge

    async def scores(
        self, text: str, seed: int, client: Any
    ) -> tuple[float, tuple[float, ...], dict[str, Any]]:
        judge = self.make_judge(client)
        asked: dict[str, dict[str, float]] = {}
        quality = await judge.probs(text, self.quality, seed=seed)
        asked["quality"] = dict(quality)
        p_yes = float(quality["yes"])
        descriptors = []
        for axis, question in self.axes:
            probs = await judge.probs(text, question, seed=seed)
            asked[axis.name] = dict(probs)
            descriptors.append(float(probs[axis.options[0]]))
        return p_yes, tuple(descriptors), {"judge": asked}


class PoetryDomain(Domain):
    """Poems or stories on a topic, scored by a judge model or by word lists (QDAIF).

    Args:
        kind: ``"poem"`` or ``"story"``.
        topic: what the texts are about, e.g. ``"the sea"``.
        scorer: ``"judge"`` (the run's judge model answers questions) or ``"lexicon"`` (word
            lists, no model).
        axes: the diversity axes, by name (default: both of the kind's, see :data:`AXES`).
        bins: bins per axis; set the grid archive's ``bins`` to the same number.
        edges: bin edges in probability space: ``"qdaif"`` (10 bins), ``"logit"``,
            ``"uniform"``, or a list of ``bins + 1`` numbers from 0 to 1 (e.g. from
            :func:`~evolm.domains.poetry.bins.fit_edges`). Default: ``"qdaif"`` with 10 bins,
            else ``"logit"``.
        judge_method: ``"logprobs"`` (option probabilities from the model's next-token
            distribution) or ``"rating"`` (averaged 1-10 ratings, for API models without
            log-probabilities).
        judge_samples: ratings per question with ``judge_method = "rating"``.
        judge_style: the judge's prompt style (``"auto"``: the model's chat template when it
            has one, else a completion prompt; ``"chat"``; ``"completion"``), see
            :class:`evolm.judge.Judge`.
        judge_calibrate: divide the judge's probabilities by those of the content-free text
            ``N/A`` (one more call per question and candidate), for a model biased to one
            option; see :class:`evolm.judge.Judge`.
        max_chars: the longest text scored (longer: ``invalid``).
        make_judge: builds the judge from the runner's client (default: :class:`evolm.judge.Judge`
            with ``judge_method`` and ``judge_samples``); for tests and custom judges.

    Raises:
        ValueError: an unknown kind, scorer, axis or edge name, bad edges or bins, an empty
            topic.
    """

    name = "poetry"
    scoring: ClassVar[Literal["separate", "in_process", "llm"]] = "llm"
    fitness_bounds: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    descriptors_in_space: ClassVar[bool] = True

    def __init__(
        self,
        kind: str = "poem",
        topic: str = "the sea",
        scorer: str = "judge",
        axes: Sequence[str] | None = None,
        bins: int = 10,
        edges: str | Sequence[float] | None = None,
        judge_method: str = "logprobs",
        judge_samples: int = 3,
        judge_style: str = "auto",
        judge_calibrate: bool = False,
        max_chars: int = 2000,
        make_judge: Callable[[Any], JudgeLike] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"poetry: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        if scorer not in SCORERS:
            raise ValueError(
                f"poetry: unknown scorer {scorer!r}; choose 'judge' (a judge model answers "
                "questions) or 'lexicon' (word lists, no model)"
            )
        if not isinstance(topic, str) or not topic.strip() or len(topic) > 200:
            raise ValueError(
                f"poetry: topic must be a non-empty phrase, e.g. 'the sea'; got {topic!r}"
            )
        if judge_method not in ("logprobs", "rating"):
            raise ValueError(
                f"poetry: judge_method must be 'logprobs' or 'rating', got {judge_method!r}"
            )
        if judge_style not in STYLES:
            raise ValueError(
                f"poetry: judge_style must be one of {', '.join(STYLES)}, got {judge_style!r}"
            )
        if not isinstance(judge_calibrate, bool):
            raise ValueError(
                f"poetry: judge_calibrate must be true or false, got {judge_calibrate!r}"
            )
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"poetry: max_chars must be an int >= 1, got {max_chars!r}")
        known = AXES[kind]
        names = tuple(known) if axes is None else tuple(axes)
        unknown = [a for a in names if a not in known]
        if isinstance(axes, str) or unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"poetry: axes must be a list of distinct names from {', '.join(known)} for "
                f"kind = {kind!r}, got {axes!r}"
            )
        if edges is None:
            edges = "qdaif" if bins == 10 else "logit"
        if isinstance(edges, str):
            if edges not in EDGE_NAMES:
                raise ValueError(
                    f"poetry: unknown edges {edges!r}; choose one of {', '.join(EDGE_NAMES)} "
                    "or give a list of bins + 1 numbers from 0 to 1"
                )
            self.edges = edges_named(edges, bins)
        else:
            self.edges = check_edges(edges)
            if len(self.edges) != bins + 1:
                raise ValueError(
                    f"poetry: edges has {len(self.edges)} numbers but bins = {bins} needs "
                    f"{bins + 1}; give bins + 1 edges"
                )
        self.kind = kind
        self.topic = " ".join(topic.split())
        self.scorer_name = scorer
        self.axes = tuple(known[a] for a in names)
        self.bins = bins
        self.max_chars = max_chars
        self.judge_method = judge_method
        self.judge_samples = judge_samples
        self.judge_style = judge_style
        self.judge_calibrate = judge_calibrate
        self.quality_question = Question(
            f"Is this a well-written {kind} about {self.topic}?",
            ("yes", "no"),
            ((self._fill(GOOD_TEMPLATES[kind]), "yes"), (BAD_EXAMPLES[kind], "no")),
        )
        self.axis_questions = tuple(
            Question(a.question.format(noun=kind), a.options, AXIS_EXAMPLES[a.name])
            for a in self.axes
        )
        self._scorer: _Scorer
        if scorer == "lexicon":
            self._scorer = _LexiconScorer(self.topic, self.axes)
        else:
            build = make_judge or (
                lambda client: _real_judge(
                    client, judge_method, judge_samples, judge_style, judge_calibrate
                )
            )
            self._scorer = _JudgeScorer(
                self.quality_question,
                tuple(zip(self.axes, self.axis_questions, strict=True)),
                build,
            )

    def _fill(self, template: str) -> str:
        topic = self.topic
        return template.replace("{topic}", topic).replace("{Topic}", topic[:1].upper() + topic[1:])

    @property
    def descriptor_space(self) -> DescriptorSpace:
        """One descriptor per axis, the warped probability of its first option, in [0, 1]."""
        return DescriptorSpace(tuple(a.name for a in self.axes), ((0.0, 1.0),) * len(self.axes))

    def seeds(self) -> list[str]:
        """Four short texts of the kind on the topic, written for this project, of varied tone
        and form (poems) or genre and ending (stories)."""
        return [self._fill(t) for t in SEED_TEMPLATES[self.kind]]

    def context(self) -> DomainContext:
        """The task paragraph; ``function_name`` is the noun (``poem``, ``story``)."""
        length = "4 to 12 lines" if self.kind == "poem" else "3 to 6 sentences"
        return DomainContext(
            description=(
                f"Write a short, original, well-written {self.kind} about {self.topic}, "
                f"{length} long."
            ),
            function_name=self.kind,
            language="text",
            file_name=f"{self.kind}.txt",
        )

    def prepare(self, code: str) -> str:
        """The text, stripped; an empty or over-long text is ``invalid``."""
        text = code.strip()
        if not text:
            raise ValueError(f"empty {self.kind}")
        if len(text) > self.max_chars:
            raise ValueError(
                f"the {self.kind} is {len(text)} characters long, more than "
                f"max_chars={self.max_chars}"
            )
        return text + "\n"

    def probability(self, descriptor: float) -> float:
        """The probability a descriptor value stands for (:func:`~evolm.domains.poetry.bins.unwarp`
        through :attr:`edges`)."""
        return unwarp(descriptor, self.edges)

    async def assess(self, text: str, seed: int, client: Any) -> Evaluation:
        """Score ``text``: fitness = quality, descriptors = the axes' warped probabilities.

        With the judge scorer, every question is one call through ``client`` (the runner's
        :class:`evolm.llm.client.LLMClient`, which records and charges it). A failed call gives
        an ``error`` evaluation naming it; an empty or over-long text is ``invalid``. The raw
        probabilities are in ``extras`` (``quality``, ``probs`` by axis, and with the judge every
        question's answer under ``judge``).
        """
        try:
            text = self.prepare(text)
        except ValueError as exc:
            return Evaluation.failure(Status.INVALID, str(exc))
        try:
            quality, probs, extras = await self._scorer.scores(text, seed, client)
        except call_failures() as exc:
            return Evaluation.failure(Status.ERROR, f"judge call failed: {exc}")
        except KeyError as exc:
            return Evaluation.failure(
                Status.ERROR, f"the judge's answer has no probability for option {exc}"
            )
        return Evaluation(
            Status.OK,
            float(quality),
            tuple(warp(p, self.edges) for p in probs),
            extras={
                "quality": float(quality),
                "probs": {a.name: float(p) for a, p in zip(self.axes, probs, strict=True)},
                **extras,
            },
        )
