"""Word-list scores for poems and stories: no model, deterministic, hand-checkable.

The ``lexicon`` scorer of the poetry domain (for CI and offline runs) reads a text through small
word lists this project wrote: sensory and imagery words, topic words, tone, genre and ending
words. It measures surface features, not quality: a text stuffed with the right words scores
well. Use it to test the machinery, not to judge poems.

Tokens are runs of letters (and apostrophes inside words), lower-cased. A token matches a list
when it is in it, or when it ends in ``s`` and is in it without that ``s`` (``waves`` matches
``wave``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "HAPPY",
    "HAPPY_ENDING",
    "HORROR",
    "ROMANCE",
    "SAD",
    "SENSORY",
    "TOPIC_WORDS",
    "TRAGIC_ENDING",
    "count",
    "ending",
    "genre",
    "lexicon_quality",
    "nonword_share",
    "rhyme_share",
    "tokens",
    "tone",
    "topic_words",
]

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Words of sight, sound, touch, taste and smell, and concrete images.
SENSORY = _words(
    """
    bright dark glow gleam glimmer shimmer shine shadow silver gold golden blue grey gray green
    red white black amber crimson pale light flame flicker sparkle mist fog haze dusk dawn
    whisper hum roar murmur echo song sing hush thunder rustle crash ring chime sigh
    cold warm soft rough smooth wet damp salt salty bitter sweet sour smoke scent perfume
    breeze wind rain frost ice stone sand moss feather petal rose bloom leaf bark
    """
)
#: Words of a happy or hopeful tone.
HAPPY = _words(
    """
    happy joy joyful glad delight bright smile smiling laugh laughter cheer sing song dance
    hope hopeful warm sunshine sun golden love kind gentle peace peaceful calm free bloom
    celebrate bliss wonder shine play gift grateful sweet
    """
)
#: Words of a sad or sombre tone.
SAD = _words(
    """
    sad sorrow grief grieve weep weeping tear tears cry mourn lonely alone lost loss empty
    cold dark gloom grey gray pain ache broken dead death die dying fade faded farewell gone
    heavy despair regret shadow bleak silent wound
    """
)
#: Horror story words.
HORROR = _words(
    """
    ghost haunt haunted scream blood bloody corpse grave dread terror horror fear afraid
    monster creature shadow claw fang rot decay curse cursed demon skull bone crypt nightmare
    whisper creak darkness howl victim kill killed knife
    """
)
#: Romance story words.
ROMANCE = _words(
    """
    love loved lover kiss kissed heart hearts embrace tender darling beloved romance wedding
    marry married bride groom rose roses blush longing passion sweetheart hand hold held
    dance dancing smile together date promise
    """
)
#: Words of a happy ending (read in the story's last third).
HAPPY_ENDING = _words(
    """
    happy happily home safe saved together smile smiled laugh laughed joy married wedding
    forever peace healed found won hope hopeful welcome embrace reunited celebrate
    """
)
#: Words of a tragic ending (read in the story's last third).
TRAGIC_ENDING = _words(
    """
    dead death died dies die alone lost gone grave funeral never tears wept weep grief
    ruin ruined broken killed buried forgotten drowned despair farewell last
    """
)
#: Extra words for topics evolm ships examples for; any topic's own words count too.
TOPIC_WORDS: dict[str, frozenset[str]] = {
    "sea": _words(
        "sea ocean wave tide shore beach salt sail ship harbour harbor gull foam deep current "
        "coast sand reef spray surf boat anchor"
    ),
    "forest": _words(
        "forest tree trees wood woods leaf leaves oak pine moss fern bark branch root grove "
        "path owl deer"
    ),
    "city": _words(
        "city street streets tower towers traffic crowd neon bridge subway alley window "
        "windows lamp lamps rooftop"
    ),
}
_STOP = _words("the a an of and or in on at to for with about my your our their its")


def tokens(text: str) -> list[str]:
    """The lower-cased words of ``text`` (letters, and apostrophes inside words)."""
    return _WORD.findall(text.lower())


def _matches(word: str, words: frozenset[str]) -> bool:
    return word in words or (word.endswith("s") and word[:-1] in words)


def count(words: Iterable[str], lexicon: frozenset[str]) -> int:
    """How many of ``words`` match ``lexicon`` (as the module docstring says)."""
    return sum(1 for w in words if _matches(w, lexicon))


def topic_words(topic: str) -> frozenset[str]:
    """The words that mark ``topic``: its own content words (not ``the``, ``of``...) and, for a
    topic with a word in :data:`TOPIC_WORDS`, that entry's words."""
    own = {w for w in tokens(topic) if w not in _STOP}
    extra = set().union(*(TOPIC_WORDS.get(w, frozenset()) for w in own)) if own else set()
    return frozenset(own | extra)


def _ratio(a: int, b: int) -> float:
    """``(a + 0.5) / (a + b + 1)``: the smoothed share of ``a``; 0.5 when both are 0."""
    return (a + 0.5) / (a + b + 1)


def tone(text: str) -> float:
    """The share of happy words among happy and sad words (smoothed, see :func:`_ratio`)."""
    words = tokens(text)
    return _ratio(count(words, HAPPY), count(words, SAD))


def genre(text: str) -> float:
    """The share of horror words among horror and romance words (smoothed)."""
    words = tokens(text)
    return _ratio(count(words, HORROR), count(words, ROMANCE))


def ending(text: str) -> float:
    """The share of happy-ending words among happy- and tragic-ending words in the last third of
    the text's words (at least its last word; smoothed)."""
    words = tokens(text)
    tail = words[len(words) - max(1, len(words) // 3) :] if words else []
    return _ratio(count(tail, HAPPY_ENDING), count(tail, TRAGIC_ENDING))


def _rhyme_key(word: str) -> str:
    m = re.search(r"[aeiouy]+[^aeiouy]*$", word)
    return m.group() if m else word


def rhyme_share(text: str) -> float:
    """The share of the text's lines (those with a word) whose last word rhymes with another
    line's different last word. Two words rhyme when they end in the same last vowel group and
    what follows it (``night``/``light``: ``ight``; ``day``/``away``: ``ay``). 0 for fewer than
    two lines."""
    ends = [ws[-1] for ws in (tokens(line) for line in text.split("\n")) if ws]
    if len(ends) < 2:
        return 0.0
    keys = [_rhyme_key(w) for w in ends]
    rhymed = sum(
        1
        for i, (w, k) in enumerate(zip(ends, keys, strict=True))
        if any(keys[j] == k and ends[j] != w for j in range(len(ends)) if j != i)
    )
    return rhymed / len(ends)


def nonword_share(words: Sequence[str]) -> float:
    """The share of ``words`` that are not words: no vowel (``a e i o u y``), one letter three
    times in a row, or more than 18 letters. 0 for no words."""
    if not words:
        return 0.0
    bad = sum(
        1
        for w in words
        if not re.search(r"[aeiouy]", w) or re.search(r"([a-z])\1\1", w) or len(w) > 18
    )
    return bad / len(words)


def lexicon_quality(text: str, topic: str) -> float:
    """A quality score in [0, 1] from word lists:
    ``length * (1 - nonwords) * (0.4 * imagery + 0.3 * on_topic + 0.3 * variety)``, where

    - ``length = min(1, words / 12)`` (very short texts score less),
    - ``nonwords`` is :func:`nonword_share`,
    - ``imagery = min(1, 4 * sensory words / words)``: full marks when a quarter of the words
      are :data:`SENSORY` words,
    - ``on_topic = min(1, 8 * topic words / words)``: full marks when an eighth of the words are
      :func:`topic_words`,
    - ``variety`` is the share of distinct words (repetition scores less).

    0 for a text with no words.
    """
    words = tokens(text)
    if not words:
        return 0.0
    n = len(words)
    imagery = min(1.0, 4 * count(words, SENSORY) / n)
    on_topic = min(1.0, 8 * count(words, topic_words(topic)) / n)
    variety = len(set(words)) / n
    return (
        min(1.0, n / 12)
        * (1 - nonword_share(words))
        * (0.4 * imagery + 0.3 * on_topic + 0.3 * variety)
    )
