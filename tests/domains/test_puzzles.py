"""The ``puzzles`` domain: the library, puzzle files, solve-mode scoring through the sandbox,
hacks it must refuse, descriptors, and ``evolm run puzzles`` end to end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evolm.domains.base import get_domain, registered_domains
from evolm.domains.puzzles import LIBRARY, PuzzleDomain, puzzle_set
from evolm.domains.puzzles.puzzle import (
    Puzzle,
    check_answer,
    code_features,
    load_puzzle_file,
    plain_answer,
    solution_header,
)
from evolm.sandbox import SandboxPool
from evolm.store import RunStore
from evolm.types import Evaluation, Status

ROOT = Path(__file__).resolve().parents[2]


def _in_pools(jobs: list[tuple[dict[str, Any], list[str]]], timeout: float = 5.0) -> list:
    """Evaluate each job's programs in a sandbox pool for the job's domain params."""

    async def go() -> list:
        out = []
        for params, programs in jobs:
            async with SandboxPool("puzzles", params, workers=1, timeout=timeout) as pool:
                out.append([await pool.evaluate(code, 3) for code in programs])
        return out

    return asyncio.run(go())


def test_library_is_graded_and_covers_the_skills() -> None:
    assert len(LIBRARY) >= 30
    grades = Counter(p.grade for p in LIBRARY)
    assert all(grades[g] >= 5 for g in range(1, 6)), grades
    assert len({p.name for p in LIBRARY}) == len(LIBRARY)
    tags = {t for p in LIBRARY for t in p.tags}
    wanted = {"strings", "lists", "arithmetic", "number_theory", "search", "combinatorics"}
    assert wanted | {"recursion"} <= tags
    assert all(p.g and p.tags for p in LIBRARY)
    assert "puzzles" in registered_domains()


def test_every_reference_solution_solves_its_puzzle_and_no_seed_does() -> None:
    jobs = []
    for p in LIBRARY:
        dom = PuzzleDomain(puzzle=p.name)
        jobs.append(({"puzzle": p.name}, [p.g, *dom.seeds()]))
    results = _in_pools(jobs)
    for p, (ref, *seeds) in zip(LIBRARY, results, strict=True):
        assert ref.status is Status.OK and ref.fitness == 1.0, (p.name, ref)
        assert ref.extras["solved"] is True and ref.extras["puzzle"] == p.name
        for ev in seeds:
            assert ev.status is Status.OK and ev.fitness == 0.0, (p.name, ev)
            assert ev.extras["solved"] is False


HACK = """
class Yes:
    def __eq__(self, other):
        return True
    def __len__(self):
        return 8
    def __str__(self):
        return "99999500"

def g(s=50, d=8):
    return Yes()
"""
INT_SUBCLASS = """
class Sly(int):
    def __eq__(self, other):
        return True

def g(s=50, d=8):
    return Sly(3)
"""


def test_sandbox_statuses_for_wrong_raising_looping_and_hacking_solutions() -> None:
    programs = {
        "right": "def g(s=50, d=8):\n    return 99999500\n",
        "wrong": "def g(s=50, d=8):\n    return 12345678\n",
        "wrong type": "def g(s=50, d=8):\n    return '99999500'\n",
        "bool for int": "def g(s=50, d=8):\n    return True\n",
        "raises": "def g(s=50, d=8):\n    return 1 // 0\n",
        "hack": HACK,
        "int subclass": INT_SUBCLASS,
        "too big": "def g(s=50, d=8):\n    return 10**40\n",
        "loops forever": "def g(s=50, d=8):\n    while True:\n        pass\n",
    }
    (results,) = _in_pools([({"puzzle": "digit_sum"}, list(programs.values()))], timeout=1.5)
    ev = dict(zip(programs, results, strict=True))
    assert ev["right"].status is Status.OK and ev["right"].fitness == 1.0
    assert ev["wrong"].status is Status.OK and ev["wrong"].fitness == 0.0
    for label in ("wrong type", "bool for int"):
        assert ev[label].status is Status.INVALID and "expected int" in ev[label].error
    assert ev["raises"].status is Status.ERROR and "ZeroDivisionError" in ev["raises"].error
    assert ev["hack"].status is Status.INVALID and "Yes object" in ev["hack"].error
    assert ev["int subclass"].status is Status.INVALID and "Sly object" in ev["int subclass"].error
    assert ev["too big"].status is Status.INVALID and "bits" in ev["too big"].error
    assert ev["loops forever"].status is Status.TIMEOUT


def test_user_puzzle_file_and_faults_inside_f(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    puzzles = [
        {"name": "tenth", "grade": 1, "f": "def f(x: int) -> bool:\n    return 10 // x == 5\n"},
        {
            "name": "slow",
            "f": "def f(x: int) -> bool:\n    while x >= 0:\n        pass\n    return True\n",
        },
        {
            "name": "words",
            "f": "def f(w: list[str], n=3) -> bool:\n    return len(w) == n\n",
            "g": "def g(n=3):\n    return ['a'] * n\n",
            "tags": ["lists"],
        },
    ]
    path.write_text(json.dumps(puzzles))
    loaded = load_puzzle_file(path)
    assert [p.name for p in loaded] == ["tenth", "slow", "words"] and loaded[1].grade == 3
    assert loaded[2].answer_type == ("list", "str") and loaded[2].tags == ("lists",)
    assert PuzzleDomain(file=str(path)).puzzle.name == "tenth"
    assert PuzzleDomain(file=str(path), index=2).puzzle.name == "words"
    # Workers cannot read the file: the engine's domain hands them the chosen puzzle inline.
    inline = PuzzleDomain(file=str(path), index=2).worker_params({"file": str(path), "index": 2})
    assert "file" not in inline and [p["name"] for p in inline["puzzles"]] == ["words"]
    jobs = [
        (
            {"file": str(path), "puzzle": "tenth"},
            ["def g():\n    return 0\n", "def g():\n    return 2\n"],
        ),
        ({"puzzles": puzzles, "puzzle": "slow"}, ["def g():\n    return 1\n"]),
        ({"puzzles": puzzles, "puzzle": "words"}, [puzzles[2]["g"]]),
    ]
    (zero, two), (slow,), (words,) = _in_pools(jobs, timeout=1.5)
    assert zero.status is Status.INVALID
    assert zero.error.startswith("f raised ZeroDivisionError") and "answer 0" in zero.error
    assert two.status is Status.OK and two.fitness == 1.0
    assert slow.status is Status.TIMEOUT
    assert words.status is Status.OK and words.fitness == 1.0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "non-empty list"),
        ('[{"name": "a"}]', '"name" and "f"'),
        ('[{"name": "a", "f": "def f(x: set) -> bool:\\n    return True\\n"}]', "unsupported"),
        ('[{"name": "a", "f": "def f(x) -> bool:\\n    return True\\n"}]', "no type annotation"),
        ('[{"name": "a", "f": "def h(x: int):\\n    return 1\\n"}]', "no function f"),
        ('[{"name": "a", "f": "def f(x: int):\\n    return 1\\n", "grade": 9}]', "grade"),
        ('[{"name": "a", "f": "def f(x: int):\\n  return 1\\n", "oops": 1}]', "unknown keys"),
        (
            '[{"name": "a", "f": "def f(x: int):\\n  return 1\\n"},'
            ' {"name": "a", "f": "def f(x: int):\\n  return 1\\n"}]',
            "duplicate",
        ),
    ],
)
def test_bad_puzzle_files_are_refused_with_a_reason(
    tmp_path: Path, content: str, fragment: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"bad\.json") as info:
        get_domain("puzzles", {"file": str(path)})
    assert fragment in str(info.value)


def test_selection_parameters() -> None:
    assert PuzzleDomain().puzzle.name == "digit_sum"
    assert PuzzleDomain(grade=5, index=1).puzzle == puzzle_set(grade=5)[1]
    assert all(p.grade == 4 for p in puzzle_set(grade=4))
    with pytest.raises(ValueError, match=r"no puzzle named 'nope'.*known: "):
        get_domain("puzzles", {"puzzle": "nope"})
    with pytest.raises(ValueError, match="out of range"):
        PuzzleDomain(grade=1, index=99)
    with pytest.raises(ValueError, match="grade"):
        PuzzleDomain(grade=0)
    with pytest.raises(ValueError, match="not both"):
        PuzzleDomain(file="x.json", puzzles=[])
    inline = [{"name": "one", "f": "def f(x: int) -> bool:\n    return x == 1\n"}]
    assert PuzzleDomain(puzzles=inline).puzzle.name == "one"
    broken = [{"name": "b", "f": "def f(x: int, n=undefined_name) -> bool:\n    return True\n"}]
    ev = PuzzleDomain(puzzles=broken).evaluate("def g():\n    return 1\n")
    assert ev.status is Status.ERROR and "puzzle b's f does not load: NameError" in ev.error
    with pytest.raises(ValueError, match="the puzzles parameter: item 0"):
        PuzzleDomain(puzzles=[{"f": "def f(x: int):\n    return 1\n"}])


def test_context_seeds_and_header() -> None:
    dom = PuzzleDomain(puzzle="hanoi")
    hanoi = dom.puzzle
    assert solution_header(hanoi) == "def g(n=5):"
    assert dom.seeds() == ["def g(n=5):\n    return []\n"]
    ctx = dom.context()
    assert ctx.function_name == "g" and hanoi.f.strip() in ctx.api
    assert "list[list[int]]" in ctx.description
    assert PuzzleDomain(puzzle="concat_words").seeds() == [
        "def g(a='evo', b='lution'):\n    return ''\n"
    ]


def test_descriptors_from_the_syntax_tree() -> None:
    assert code_features("def g():\n    return 1\n") == (0, 5)
    loopy = (
        "def g():\n"
        "    x = [i * j for i in range(3) for j in range(2)]\n"
        "    for k in x:\n"
        "        while k > 0:\n"
        "            k -= 1\n"
        "    return {k for k in x}\n"
    )
    assert code_features(loopy)[0] == 5
    assert code_features("def g(:") is None
    dom = PuzzleDomain()
    ev = dom.evaluate("def g(s=50, d=8):\n    return 99999500\n")
    assert ev.descriptors == (
        0.0,
        float(code_features("def g(s=50, d=8):\n    return 99999500\n")[1]),
    )
    many = "def g(s=50, d=8):\n" + "".join(f"    for a{i} in []: pass\n" for i in range(12))
    many += "    return 1\n"
    clipped = dom.evaluate(many)
    assert clipped.descriptors[0] == 8.0
    assert clipped.checked(dom.descriptor_space, dom.fitness_bounds, descriptors_in_space=True).ok


def test_score_refuses_forged_data() -> None:
    dom = PuzzleDomain()
    good = {"answer": 99999500, "loops": 0, "nodes": 10}
    assert dom.score(good).fitness == 1.0
    for forged in (
        None,
        [99999500],
        {**good, "loops": -1},
        {**good, "nodes": 1.5},
        {**good, "extra": 1},
        {**good, "answer": "99999500"},
        {**good, "answer": [1] * 200_000},
    ):
        ev = dom.score(forged)
        assert isinstance(ev, Evaluation) and ev.status is Status.INVALID, forged


def test_plain_answer_and_type_checks() -> None:
    assert plain_answer((1, [2.5, "x"], {"k": None})) == ([1, [2.5, "x"], {"k": None}], None)
    assert plain_answer({1: 2})[1] == "a dict with a non-str key"
    assert "object" in (plain_answer([object()])[1] or "")
    deep: list[Any] = []
    for _ in range(30):
        deep = [deep]
    assert "nested" in (plain_answer(deep)[1] or "")
    assert check_answer([[1, 2], []], ("list", "list", "int")) is None
    assert check_answer([[1, True]], ("list", "list", "int")) is not None
    assert check_answer(3, ("float",)) is None
    with pytest.raises(ValueError, match="identifier"):
        Puzzle("not a name", 1, "def f(x: int):\n    return True\n")


def test_evolm_run_puzzles_and_status(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    cli = [sys.executable, "-c", "from evolm.cli import app; app()"]
    args = ["run", "puzzles", "--llm", "fake", "--budget-evals", "20", "--out", str(db)]
    proc = subprocess.run(
        [*cli, *args, "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with RunStore(db, readonly=True) as store:
        assert store.run_info()["domain"] == "puzzles"
        evaluated = list(store.evaluated())
    assert len(evaluated) == 20
    seeds = [ind for ind in evaluated if ind.program.batch == 0]
    assert seeds and all(ind.evaluation.ok and ind.fitness == 0.0 for ind in seeds)
    status = subprocess.run(
        [*cli, "status", str(db)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    assert "puzzles" in status.stdout and "completed" in status.stdout
