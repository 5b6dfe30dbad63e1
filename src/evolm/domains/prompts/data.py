"""The bundled tasks of the ``prompts`` domain, their splits, and their scorers.

Every dataset is made here, by code: word lists written for evolm and template generators driven
by a fixed seeded :class:`random.Random`, so nothing is downloaded and the same items come out on
every machine and Python version. A task's items are unique by input.

Splits (:func:`split_items`): the task's items are shuffled with a seed derived from the task's
name only, then the first ``test_size`` items are the **test** split, the next
``validation_size`` the **validation** split, and the rest the **train** split. The test split
depends on ``test_size`` alone, so changing the validation size never moves a test item into
another split; the three are disjoint by construction (inputs are unique).

Scoring is exact match after normalisation (:func:`normalise`): the model's first line, lower
case, whitespace collapsed, surrounding quotes, brackets and trailing punctuation removed, and a
leading ``answer:`` / ``output:`` label dropped; numeric tasks also drop thousands separators.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "TASKS",
    "Item",
    "Splits",
    "Task",
    "get_task",
    "normalise",
    "split_items",
]


@dataclass(frozen=True)
class Item:
    """One example of a task: the ``input`` shown to the task model and the ``target`` answer."""

    input: str
    target: str


@dataclass(frozen=True)
class Task:
    """A bundled task.

    Attributes:
        name: the task's name (``domain.params.task``).
        summary: one sentence on what the task model must do, for the writer model's prompt.
        items: every item, unique by input, in generation order.
        numeric: answers are integers (scoring ignores thousands separators).
        expected_format: regular expression a well-formed normalised answer matches in full
            (the ``format_share`` descriptor counts the answers that do).
        seeds: plain seed instructions, written for evolm.
    """

    name: str
    summary: str
    items: tuple[Item, ...]
    numeric: bool
    expected_format: str
    seeds: tuple[str, ...]

    def correct(self, answer: str, target: str) -> bool:
        """Whether ``answer`` (raw model output) matches ``target`` after normalisation."""
        return normalise(answer, numeric=self.numeric) == normalise(target, numeric=self.numeric)

    def well_formed(self, answer: str) -> bool:
        """Whether the normalised ``answer`` has the form this task's answers have."""
        return (
            re.fullmatch(self.expected_format, normalise(answer, numeric=self.numeric)) is not None
        )


@dataclass(frozen=True)
class Splits:
    """A task's disjoint train, validation and test items."""

    train: tuple[Item, ...]
    validation: tuple[Item, ...]
    test: tuple[Item, ...]


_LABEL = re.compile(r"^(?:the\s+)?(?:answer|output|result)(?:\s+is\b|\s*[:=])\s*:?\s*")
_EDGES = "\"'`“”‘’()[]{}<>*"
_TRAILING = ".,;:!?"


def normalise(text: str, *, numeric: bool = False) -> str:
    """``text`` as the scorer compares it (see the module docstring): the first non-empty line,
    lower case, one space between words, no label, no surrounding quotes or trailing
    punctuation; with ``numeric``, no thousands separators or leading ``+``."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    out = " ".join(line.lower().split())
    for _ in range(3):
        before = out
        out = _LABEL.sub("", out).strip().strip(_EDGES).strip().rstrip(_TRAILING).strip()
        if out == before:
            break
    if numeric:
        out = out.replace(",", "").lstrip("+")
    return out


# Antonym pairs written for evolm; no word appears twice, so a pair lies in one split only.
_ANTONYMS = """
hot cold|big small|fast slow|happy sad|light dark|open closed|early late|full empty|hard soft
high low|long short|rich poor|strong weak|young old|wet dry|clean dirty|loud quiet|thick thin
heavy weightless|wide narrow|deep shallow|sharp blunt|smooth rough|sweet sour|brave cowardly
polite rude|cheap expensive|safe dangerous|easy difficult|true false|inside outside|up down
left right|above below|before after|push pull|buy sell|give take|win lose|arrive depart
begin end|accept refuse|remember forget|laugh cry|love hate|friend enemy|day night|north south
east west|summer winter|question answer|victory defeat|success failure|entrance exit
maximum minimum|ancient modern|asleep awake|absent present|alive dead|increase decrease
include exclude|import export|inhale exhale|major minor|positive negative|private public
wise foolish|generous stingy|humble proud|calm anxious|tidy messy|fresh stale|tight loose
sober drunk|bold timid|sturdy fragile|visible invisible|legal illegal|possible impossible
patient impatient|honest dishonest|noisy silent|bitter mellow|fierce gentle|guilty innocent
hollow solid|shiny dull|lazy diligent|crooked straight|vertical horizontal|rural urban
frequent rare|temporary permanent|optimist pessimist|attack defend|borrow lend|float sink
freeze melt|hire fire|lead follow|rise fall|save spend|shout whisper|teach learn|throw catch
wake sleep|build destroy|create ruin|join separate|enter leave|ascend descend
expand shrink|gain waste|obey disobey|praise blame|reward punish|simple complex|vague precise
artificial natural|majority minority|internal external|ally rival|hero villain|master servant
pleasure pain|peace war|order chaos|wealth poverty|strength weakness|beginning ending
top bottom|front back|floor ceiling|sunrise sunset|arrival departure|birth death
comedy tragedy|feast famine|joy sorrow|courage fear|fiction fact|profit loss|liquid gas
asset liability|credit debit|dawn dusk|flood drought|heaven hell|husband wife|king queen
boy girl|brother sister|uncle aunt|nephew niece|male female|predator prey|teacher student
"""


def _antonym_items() -> tuple[Item, ...]:
    pairs = [p.split() for p in _ANTONYMS.replace("\n", "|").split("|") if p.strip()]
    return tuple(Item(a, b) for a, b in pairs)


def _first_letter_items() -> tuple[Item, ...]:
    words = sorted({w for item in _antonym_items() for w in (item.input, item.target)})
    return tuple(Item(w, w[0]) for w in words)


_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jia", "Kofi", "Lea")
_THINGS = ("apples", "marbles", "stickers", "pencils", "shells", "cards", "coins", "books")


def _arithmetic_items() -> tuple[Item, ...]:
    """One-step word problems with integer answers (addition, subtraction, multiplication,
    division), 240 unique ones from a fixed seed."""
    rng = random.Random(20240515)
    templates: tuple[Callable[[str, str], tuple[str, int]], ...] = (
        lambda n, t: (
            f"{n} has {(a := rng.randint(2, 40))} {t} and gets {(b := rng.randint(2, 40))} more. "
            f"How many {t} does {n} have now?",
            a + b,
        ),
        lambda n, t: (
            f"{n} had {(a := rng.randint(10, 60))} {t} and gave away {(b := rng.randint(1, 9))}. "
            f"How many {t} are left?",
            a - b,
        ),
        lambda n, t: (
            f"{n} fills {(a := rng.randint(2, 9))} bags with {(b := rng.randint(2, 9))} {t} "
            f"each. How many {t} is that in all?",
            a * b,
        ),
        lambda n, t: (
            f"{n} shares {(b := rng.randint(2, 9)) * (a := rng.randint(2, 9))} {t} equally "
            f"among {b} friends. How many {t} does each friend get?",
            a,
        ),
    )
    seen: dict[str, Item] = {}
    while len(seen) < 240:
        question, answer = rng.choice(templates)(rng.choice(_NAMES), rng.choice(_THINGS))
        seen.setdefault(question, Item(question, str(answer)))
    return tuple(seen.values())


def _larger_number_items() -> tuple[Item, ...]:
    """Two different integers below 1000; the target is the larger. 200 from a fixed seed."""
    rng = random.Random(31337)
    seen: dict[str, Item] = {}
    while len(seen) < 200:
        a, b = rng.sample(range(1, 1000), 2)
        seen.setdefault(f"{a}, {b}", Item(f"{a}, {b}", str(max(a, b))))
    return tuple(seen.values())


# Sentiment: sentences composed from subjects and judgements written for evolm.
_SUBJECTS = (
    "the soup", "this phone", "the hotel room", "the concert", "our new neighbour", "the bus ride",
    "the museum tour", "this jacket", "the customer service", "the film", "the garden",
    "my new laptop", "the coffee", "the lecture", "the train station", "the novel",
)  # fmt: skip
_POSITIVE = (
    "was wonderful", "made my day", "was a real delight", "exceeded every hope I had",
    "was worth every penny", "left me smiling", "felt warm and welcoming", "was superb",
    "was a pleasure from start to finish", "impressed everyone",
)  # fmt: skip
_NEGATIVE = (
    "was awful", "ruined my day", "was a total letdown", "fell far short of what was promised",
    "was a waste of money", "left me annoyed", "felt cold and unfriendly", "was dreadful",
    "was a chore from start to finish", "disappointed everyone",
)  # fmt: skip


def _sentiment_items() -> tuple[Item, ...]:
    """160 sentences: 16 subjects, each with 5 positive and 5 negative judgements drawn by a fixed
    seed, so both labels are equally common."""
    rng = random.Random(4242)
    items: list[Item] = []
    for subject in _SUBJECTS:
        for label, judgements in (("positive", _POSITIVE), ("negative", _NEGATIVE)):
            for judgement in rng.sample(judgements, 5):
                items.append(Item(f"{subject[0].upper()}{subject[1:]} {judgement}.", label))
    return tuple(items)


def _build_tasks() -> dict[str, Task]:
    return {
        "antonyms": Task(
            "antonyms",
            "given a word, answer with its antonym (the word of opposite meaning)",
            _antonym_items(),
            numeric=False,
            expected_format=r"[a-z]+",
            seeds=(
                "Answer with the antonym of the word.",
                "Write the opposite of the given word.",
                "Give one word that means the opposite.",
            ),
        ),
        "arithmetic": Task(
            "arithmetic",
            "given a short word problem, answer with the resulting whole number",
            _arithmetic_items(),
            numeric=True,
            expected_format=r"-?\d+",
            seeds=(
                "Solve the word problem and answer with the number only.",
                "Work out the answer to the question. Reply with a number.",
                "Read the problem and give the final count as digits.",
            ),
        ),
        "sentiment": Task(
            "sentiment",
            "given a sentence, answer whether its opinion is positive or negative",
            _sentiment_items(),
            numeric=False,
            expected_format=r"positive|negative",
            seeds=(
                "Say whether the sentence is positive or negative.",
                "Classify the sentiment of the review as positive or negative.",
                "Is the writer pleased? Answer positive or negative.",
            ),
        ),
        "first_letter": Task(
            "first_letter",
            "given a word, answer with its first letter",
            _first_letter_items(),
            numeric=False,
            expected_format=r"[a-z]",
            seeds=(
                "Write the first letter of the word.",
                "Answer with the letter the word starts with.",
                "Give the initial letter of the given word.",
            ),
        ),
        "larger_number": Task(
            "larger_number",
            "given two numbers, answer with the larger one",
            _larger_number_items(),
            numeric=True,
            expected_format=r"\d+",
            seeds=(
                "Answer with the larger of the two numbers.",
                "Which number is bigger? Write it.",
                "Compare the numbers and give the greater one.",
            ),
        ),
    }


TASKS: dict[str, Task] = _build_tasks()
"""The bundled tasks by name."""


def get_task(name: str) -> Task:
    """The bundled task ``name``.

    Raises:
        ValueError: no task has that name (the message lists them).
    """
    if name not in TASKS:
        raise ValueError(
            f"the prompts domain has no task {name!r}; set domain.params.task to one of "
            f"{', '.join(sorted(TASKS))}"
        )
    return TASKS[name]


def split_items(task: Task, validation_size: int, test_size: int) -> Splits:
    """``task``'s train / validation / test splits (see the module docstring).

    Raises:
        ValueError: a size is not an int >= 1, or the two leave fewer than 3 train items.
    """
    for key, value in (("validation_size", validation_size), ("test_size", test_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"prompts {key} must be an int >= 1, got {value!r}")
    n = len(task.items)
    if validation_size + test_size > n - 3:
        raise ValueError(
            f"the {task.name} task has {n} items: validation_size {validation_size} and "
            f"test_size {test_size} leave fewer than 3 for training; lower them so that they add "
            f"up to at most {n - 3}"
        )
    order = list(task.items)
    random.Random(f"evolm-prompts-{task.name}").shuffle(order)
    cut = test_size + validation_size
    return Splits(
        train=tuple(order[cut:]),
        validation=tuple(order[test_size:cut]),
        test=tuple(order[:test_size]),
    )
