"""The poetry domain (QDAIF): word-list scores on known texts, fitted bins, assess with a
deterministic stand-in judge, and the presets."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from evolm.archives.gridindex import GridIndex
from evolm.config import list_presets, load_config
from evolm.domains.base import get_domain, registered_domains
from evolm.domains.poetry import PoetryDomain, Question, call_failures
from evolm.domains.poetry.bins import QDAIF_EDGES, edges_named, fit_edges, unwarp, warp
from evolm.domains.poetry.lexicon import (
    ending,
    genre,
    lexicon_quality,
    nonword_share,
    rhyme_share,
    tokens,
    tone,
    topic_words,
)
from evolm.types import Status

# -- word lists --------------------------------------------------------------------------------


def test_tone_counts_happy_and_sad_words() -> None:
    assert tone("Happy joy, and one sad line.") == pytest.approx(2.5 / 4)  # happy 2, sad 1
    assert tone("A table and a chair.") == 0.5  # neither
    assert tone("Tears, tears, grief.") == pytest.approx(0.5 / 4)  # sad 3 (tears = tear + s)


def test_rhyme_share_of_line_endings() -> None:
    poem = "The night is long\nI see the light\nand hear a song\nunder the sea\n"
    assert rhyme_share(poem) == 0.5  # long/song rhyme; light and sea do not
    assert rhyme_share("the day\nthe day\n") == 0.0  # the same word is not a rhyme
    assert rhyme_share("one line only") == 0.0
    assert rhyme_share("by the bay\nfar away\nin the night\nwhite light\n") == 1.0


def test_genre_and_ending() -> None:
    assert genre("The ghost came. Blood, and then a kiss.") == pytest.approx(2.5 / 4)
    # 10 words: the ending is the last 3, "finally smiled together" (2 happy-ending words).
    story = "They fought and cried all day then finally smiled together"
    assert len(tokens(story)) == 10
    assert ending(story) == pytest.approx(2.5 / 3)
    assert ending("At last the old man died alone") == pytest.approx(0.5 / 3)


def test_nonwords_and_topic_words() -> None:
    assert nonword_share(["sea", "brrr", "tkt", "wave"]) == 0.5
    assert nonword_share([]) == 0.0
    words = topic_words("the sea")
    assert {"sea", "wave", "tide"} <= words and "the" not in words
    assert topic_words("my garden") == {"garden"}


def test_lexicon_quality_by_hand() -> None:
    # 12 words, all distinct: imagery silver, light (4 * 2/12); topic sea (8 * 1/12).
    text = "Silver light on the water and a small bird flies to sea"
    assert len(tokens(text)) == 12
    assert lexicon_quality(text, "the sea") == pytest.approx(0.4 * 8 / 12 + 0.3 * 8 / 12 + 0.3)
    short = "Silver waves whisper to the sea"  # 6 words: imagery and topic full, length 6/12
    assert lexicon_quality(short, "the sea") == pytest.approx(0.5)
    # Repetition and non-words cost: 12 words, 2 distinct, half of them non-words.
    junk = "sea xzq " * 6
    assert lexicon_quality(junk, "the sea") == pytest.approx(
        1.0 * 0.5 * (0.4 * 0 + 0.3 * 1 + 0.3 * 2 / 12)
    )
    assert lexicon_quality("", "the sea") == 0.0


# -- bins ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "cell"),
    [(0.0, 0), (0.001, 0), (0.005, 1), (0.01, 1), (0.03, 2), (0.1, 3), (0.3, 4), (0.5, 5),
     (0.6, 5), (0.9, 6), (0.96, 7), (0.99, 8), (0.999, 9), (1.0, 9)],
)  # fmt: skip
def test_qdaif_bins_through_the_grid_index(p: float, cell: int) -> None:
    index = GridIndex([10], [0.0], [1.0])
    assert int(index(np.array([[warp(p, QDAIF_EDGES)]]))[0]) == cell
    assert unwarp(warp(p, QDAIF_EDGES), QDAIF_EDGES) == pytest.approx(p)


def test_named_and_fitted_edges() -> None:
    assert warp(0.01, QDAIF_EDGES) == pytest.approx((1 + 0.005 / 0.015) / 10)
    assert edges_named("logit", 2) == (0.0, 0.5, 1.0)
    logit = edges_named("logit", 4)
    assert logit[1] == pytest.approx(1 / (1 + np.exp(2.5)))
    assert edges_named("uniform", 4) == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert fit_edges([0.1, 0.2, 0.3, 0.4], 2) == (0.0, 0.25, 1.0)
    assert fit_edges([0.0] * 10, 2) == (0.0, 0.5, 1.0)  # ties: spread out, still increasing
    assert fit_edges([0.9, 0.99, 0.999, 1.0], 4)[1:4] == pytest.approx((0.9675, 0.9945, 0.99925))
    with pytest.raises(ValueError, match="10 bins"):
        edges_named("qdaif", 6)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        fit_edges([1.5], 2)


def test_domain_edges_parameter() -> None:
    assert PoetryDomain(scorer="lexicon").edges == QDAIF_EDGES
    assert PoetryDomain(scorer="lexicon", bins=4).edges == edges_named("logit", 4)
    custom = PoetryDomain(scorer="lexicon", bins=2, edges=[0, 0.9, 1])
    assert custom.edges == (0.0, 0.9, 1.0) and custom.probability(0.5) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="bins \\+ 1"):
        PoetryDomain(bins=3, edges=[0, 0.5, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        PoetryDomain(bins=2, edges=[0, 0, 1])


# -- the domain ---------------------------------------------------------------------------------


def test_registered_and_described() -> None:
    assert "poetry" in registered_domains()
    dom = get_domain("poetry", {"kind": "story", "topic": "a lighthouse", "scorer": "lexicon"})
    assert dom.scoring == "llm" and dom.fitness_bounds == (0.0, 1.0) and dom.descriptors_in_space
    assert dom.descriptor_space.names == ("genre", "ending")
    ctx = dom.context()
    assert (ctx.language, ctx.function_name) == ("text", "story")
    assert "a lighthouse" in ctx.description
    seeds = dom.seeds()
    assert len(seeds) == 4 and all("a lighthouse" in s for s in seeds)
    assert get_domain("poetry", {"axes": ["form"]}).descriptor_space.names == ("form",)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"kind": "essay"}, "unknown kind"),
        ({"scorer": "vibes"}, "unknown scorer"),
        ({"axes": ["genre"]}, "axes must be"),
        ({"axes": "tone"}, "axes must be"),
        ({"topic": " "}, "topic"),
        ({"edges": "cubic"}, "unknown edges"),
        ({"judge_method": "guess"}, "judge_method"),
        ({"judge_style": "json"}, "judge_style must be one of auto, chat, completion"),
        ({"judge_calibrate": "yes"}, "judge_calibrate must be true or false"),
    ],
)
def test_bad_parameters(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_domain("poetry", params)


def test_lexicon_assess_on_known_text() -> None:
    dom = PoetryDomain(scorer="lexicon", bins=2, edges="uniform")
    text = "The night is long\nI see the light\nand hear a song\nunder the sea\n"
    ev = asyncio.run(dom.assess(text, 0, client=None))
    assert ev.status is Status.OK
    assert ev.fitness == pytest.approx(lexicon_quality(text, "the sea"))
    assert ev.descriptors == pytest.approx((tone(text), rhyme_share(text)))  # uniform: no warp
    assert ev.extras["probs"] == {"tone": tone(text), "form": 0.5}
    checked = ev.checked(dom.descriptor_space, dom.fitness_bounds, descriptors_in_space=True)
    assert checked.status is Status.OK


def test_seeds_score_ok_and_differ_with_the_lexicon() -> None:
    for kind in ("poem", "story"):
        dom = PoetryDomain(kind=kind, scorer="lexicon")
        evs = [asyncio.run(dom.assess(s, 0, None)) for s in dom.seeds()]
        assert all(ev.ok and 0 < ev.fitness <= 1 for ev in evs)
        assert len({ev.descriptors for ev in evs}) == len(evs)  # spread over the map


def test_empty_and_overlong_texts_are_invalid() -> None:
    dom = PoetryDomain(scorer="lexicon", max_chars=20)
    empty = asyncio.run(dom.assess("  \n", 0, None))
    assert empty.status is Status.INVALID and empty.error == "empty poem"
    long = asyncio.run(dom.assess("x" * 21, 0, None))
    assert long.status is Status.INVALID and "max_chars=20" in (long.error or "")


class StandInClient:
    """The part of LLMClient the judge uses: option probabilities from word counts."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    async def option_probs(self, prompt: str, options: Any, *, seed: int = 0) -> dict[str, float]:
        if self.fail:
            raise call_failures()[0]("server said 500")
        self.calls.append((prompt, tuple(options)))
        text = prompt.split("Text:\n", 1)[1].rsplit("\n", 1)[0].lower()  # not the question
        weights = [1 + text.count(o) for o in options]
        return {o: w / sum(weights) for o, w in zip(options, weights, strict=True)}


class StandInJudge:
    """A logprobs judge: one option_probs call on examples + text + question."""

    def __init__(self, client: StandInClient) -> None:
        self.client = client

    async def probs(self, text: str, question: Question, *, seed: int = 0) -> dict[str, float]:
        shots = "".join(f"{t}{question.text} {a}\n\n" for t, a in question.examples)
        prompt = f"{shots}Text:\n{text}\n{question.text}"
        return await self.client.option_probs(prompt, question.options, seed=seed)


def test_judge_assess_quality_is_p_yes_and_axes_are_option_probs() -> None:
    dom = PoetryDomain(make_judge=StandInJudge)
    client = StandInClient()
    text = "yes yes, happy and rhyming\n"  # yes: 3/4; happy: 2/3; rhyming: 2/3 (vs free verse)
    ev = asyncio.run(dom.assess(text, 5, client))
    assert ev.status is Status.OK
    assert ev.fitness == pytest.approx(3 / 4)
    assert ev.descriptors == pytest.approx((warp(2 / 3, QDAIF_EDGES), warp(2 / 3, QDAIF_EDGES)))
    assert ev.extras["probs"] == pytest.approx({"tone": 2 / 3, "form": 2 / 3})
    assert ev.extras["judge"]["quality"] == pytest.approx({"yes": 0.75, "no": 0.25})
    questions = [options for _, options in client.calls]
    assert questions == [("yes", "no"), ("happy", "sad"), ("rhyming", "free verse")]
    first = client.calls[0][0]
    assert first.startswith(dom.quality_question.examples[0][0])  # few-shot prefix first
    assert "Is this a well-written poem about the sea?" in first


def test_a_failed_judge_call_is_a_failed_evaluation() -> None:
    dom = PoetryDomain(make_judge=StandInJudge)
    ev = asyncio.run(dom.assess("a poem\n", 0, StandInClient(fail=True)))
    assert ev.status is Status.ERROR and "server said 500" in (ev.error or "")


def test_a_judge_answer_without_the_option_is_a_failed_evaluation() -> None:
    class Wrong:
        def __init__(self, client: Any) -> None:
            pass

        async def probs(self, text: str, question: Question, *, seed: int = 0) -> dict:
            return {"maybe": 1.0}

    ev = asyncio.run(PoetryDomain(make_judge=Wrong).assess("a poem\n", 0, None))
    assert ev.status is Status.ERROR and "'yes'" in (ev.error or "")


def test_presets_load() -> None:
    assert {"poetry", "poetry-lexicon"} <= set(list_presets())
    for name, scorer in (("poetry", "judge"), ("poetry-lexicon", "lexicon")):
        cfg = load_config(preset=name)
        dom = get_domain(cfg.domain.name, cfg.domain.params)
        assert isinstance(dom, PoetryDomain) and dom.scorer_name == scorer
        assert cfg.archive.bins == dom.bins  # the grid's equal bins are the domain's edges
        assert [op.kind for op in cfg.operators] == ["text_lmx", "text_rewrite"]


def test_the_real_judge_takes_the_style_and_calibration_parameters() -> None:
    from evolm.llm.client import LLMClient
    from evolm.llm.fake import FakeLLM

    dom = PoetryDomain(judge_style="chat", judge_calibrate=True)
    client = LLMClient(FakeLLM())
    ev = asyncio.run(dom.assess("The tide comes in with silver foam.", 2, client))
    assert ev.status is Status.OK and 0.0 <= ev.fitness <= 1.0
    requests = [r for r, _ in client.calls]
    # three questions, each asked about the text and (calibration) about "N/A", in chat form
    assert len(requests) == 6 and all(r.kind == "chat" for r in requests)
    asked = [r.messages[-1]["content"].split("\n\n", 1)[0] for r in requests]
    assert asked.count("N/A") == 3
    assert requests[0].options == ("yes", "no")
