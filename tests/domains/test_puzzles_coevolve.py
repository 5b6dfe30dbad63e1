"""Puzzles co-evolution (ACES-like): skill tags, the two populations, the puzzle verdicts
(kept, unsolvable, trivial), the shared budget and determinism, with a real sandbox and a real
run database; the model is the fake one, scripted where a case needs exact solve counts."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from evolm.coevolution import RESUME_UNSUPPORTED, CoevolutionRunner, is_coevolution
from evolm.config import ConfigError, load_config
from evolm.domains.base import get_domain
from evolm.domains.puzzles import PuzzleDomain, puzzle_set
from evolm.domains.puzzles.coevolve import (
    SOLVER_INTRO,
    WRITER_INTRO,
    PuzzleCoevolveDomain,
    PuzzleSolver,
    PuzzleWriter,
    check_job,
    solve_job,
    split_pair,
)
from evolm.domains.puzzles.skills import SKILLS, skill_tags
from evolm.evaluators import EvalJob, Evaluator
from evolm.evaluators.local import SandboxEvaluator
from evolm.llm.base import Request
from evolm.llm.fake import FakeLLM, mutating_responder
from evolm.store import RunStore
from evolm.types import Evaluation, Status

ROOT = Path(__file__).resolve().parents[2]


def _tags(source: str) -> set[str]:
    return {name for name, v in zip(SKILLS, skill_tags(source), strict=True) if v}


def _library(name: str) -> Any:
    return puzzle_set(names=[name])[0]


# -- skill tags -----------------------------------------------------------------------------
def test_skill_tags_of_known_puzzles() -> None:
    assert _tags(_library("concat_words").f) == {"strings"}
    assert _tags(_library("difference").f) == set()
    assert _tags(_library("odd_above").f) == {"arithmetic", "logic"}
    assert _tags(_library("squares_list").f) == {
        "loops", "arithmetic", "collections", "logic", "search",
    }  # fmt: skip
    hanoi = _library("hanoi")
    assert "recursion" not in _tags(hanoi.f)
    assert "recursion" in _tags(hanoi.f + "\n" + hanoi.g)  # its reference solution recurses
    assert _tags("def f(s: str) -> bool:\n    return s.upper() == 'AB'\n") == {"strings"}
    assert _tags("def f(x: int) -> bool:\n    return x in {1, 2}\n") == {"collections", "search"}


def test_skill_tags_never_run_and_tolerate_bad_sources() -> None:
    assert skill_tags("def f(:\n") == (0,) * len(SKILLS)
    assert skill_tags("x = 1\n" * 10_000) == (0,) * len(SKILLS)  # over the size cap
    boom = "import os\nos._exit(3)\ndef f(x: int) -> bool:\n    return not x\n"
    assert _tags(boom) == {"logic"}  # parsed only: the process is still here


def test_split_pair_separates_the_solution() -> None:
    source = (
        "import math\n\ndef f(x: int, a=2) -> bool:\n    return x == a\n\n"
        "def g(a=2):\n    return a\n"
    )
    f, g = split_pair(source)
    assert "def g" not in f and "import math" in f and "def f" in f
    assert g == "def g(a=2):\n    return a\n"
    assert split_pair("def f(x: int) -> bool:\n    return True\n")[1] == ""
    with pytest.raises(ValueError, match="does not parse"):
        split_pair("def f(:")


def test_the_registry_builds_either_mode() -> None:
    assert isinstance(get_domain("puzzles", {}), PuzzleDomain)
    dom = get_domain("puzzles", {"mode": "coevolve", "k": 3})
    assert isinstance(dom, PuzzleCoevolveDomain) and dom.k == 3
    assert {p.grade for p in dom.seed_puzzles} == {1, 2}
    with pytest.raises(ValueError, match="mode must be 'solve' or 'coevolve'"):
        get_domain("puzzles", {"mode": "both"})
    with pytest.raises(ValueError, match=r"k \(solver attempts per puzzle\) must be an int"):
        get_domain("puzzles", {"mode": "coevolve", "k": 0})


@pytest.mark.parametrize("cls", [PuzzleWriter, PuzzleSolver])
@pytest.mark.parametrize(
    ("param", "bad", "message"),
    [
        ("temperature", -1.0, "temperature must be >= 0"),
        ("top_p", 0.0, r"top_p must be in \(0, 1\]"),
        ("max_tokens", 0, "max_tokens must be an int >= 1"),
        ("repeat_penalty", float("nan"), "repeat_penalty must be > 0"),
    ],
)
def test_writer_and_solver_refuse_bad_sampling(
    cls: type[PuzzleWriter] | type[PuzzleSolver], param: str, bad: float, message: str
) -> None:
    context = get_domain("puzzles", {"mode": "coevolve"}).context()
    with pytest.raises(ValueError, match=message):
        cls(context, **{param: bad})


def test_jobs_keep_the_solution_apart_from_its_judge() -> None:
    dom = PuzzleCoevolveDomain(names=["difference"])
    f = _library("difference").f
    solved = dom.evaluate(solve_job("def g():\n    return 2221\n"))
    assert solved.ok and solved.extras["answer"] == 2221
    assert dom.evaluate(check_job(f, 2221)).extras["solved"] is True
    assert dom.evaluate(check_job(f, 5)).extras["solved"] is False
    wrong_type = dom.evaluate(check_job(f, "2221"))
    assert wrong_type.status is Status.INVALID and "expected int" in (wrong_type.error or "")
    raised = dom.evaluate(solve_job("def g():\n    return 1 // 0\n"))
    assert raised.status is Status.ERROR and "ZeroDivisionError" in (raised.error or "")
    assert dom.evaluate("def g():\n    return 1\n").status is Status.INVALID  # not a job


# -- a scripted run -------------------------------------------------------------------------
HALF = "def f(n: int, a=10) -> bool:\n    return n * 2 == a\n\n\ndef g(a=10):\n    return a // 2\n"
UNSOLVABLE = (
    "def f(n: int, a=7) -> bool:\n    return n * n == a and n > 100\n\n\n"
    "def g(a=7):\n    return 3\n"
)
TRIVIAL = (
    'def f(s: str, a="ab") -> bool:\n    return s == a * 2\n\n\ndef g(a="ab"):\n    return a * 2\n'
)
NOT_P3 = "def f(x):\n    return True\n"
WRITTEN = [HALF, UNSOLVABLE, TRIVIAL, NOT_P3]


class Scripted:
    """Writing prompts get the WRITTEN puzzles in turn; solving prompts: HALF is solved by its
    first attempt only, TRIVIAL by every attempt, the rest by none (whatever the order)."""

    def __init__(self) -> None:
        self.written = 0
        self.seen: dict[str, int] = defaultdict(int)

    def __call__(self, request: Request) -> str:
        text = request.messages[-1]["content"]
        if text.startswith(WRITER_INTRO):
            self.written += 1
            return f"```python\n{WRITTEN[(self.written - 1) % len(WRITTEN)]}```"
        assert text.startswith(SOLVER_INTRO)
        puzzle = text.rsplit("Puzzle:\n", 1)[1]
        if "n * 2 == a" in puzzle:
            self.seen["half"] += 1
            body = "return 5" if self.seen["half"] == 1 else "return 4"
        elif "s == a * 2" in puzzle:
            body = "return 'abab'"
        else:
            body = "return 0"
        return f"```python\ndef g():\n    {body}\n```"


def _config(**params: Any) -> Any:
    return load_config(
        overrides={
            "seed": 0,
            "domain": {"name": "puzzles", "params": {"mode": "coevolve", "k": 4, **params}},
            "archive": {"kind": "grid", "bins": 2},
            "llm": {"backend": "fake", "mode": "chat"},
            "engine": {"batch_size": 4, "workers": 2},
            "budget": {"llm_calls": 24},
        }
    )


def _run(tmp_path: Path, llm: FakeLLM, name: str = "r.db", **params: Any) -> tuple[Any, Path]:
    path = tmp_path / name
    with RunStore(path) as store:
        runner = CoevolutionRunner(_config(**params), store, llm=llm)
        result = asyncio.run(runner.run())
    return runner, Path(result.path)


def _rows(path: Path) -> list[dict[str, Any]]:
    with RunStore(path, readonly=True) as store:
        rows = list(store.export_rows())
        extras = {ind.program.id: ind.evaluation.extras for ind in store.evaluated()}
    for r in rows:
        r["extras"] = extras.get(r["id"], {})
    return rows


def test_only_solved_non_trivial_puzzles_are_kept(tmp_path: Path) -> None:
    llm = FakeLLM(responder=Scripted())
    runner, path = _run(tmp_path, llm, names=["difference"])
    rows = _rows(path)
    puzzles = {r["code"]: r for r in rows if r["extras"].get("population") == "puzzles"}
    solutions = [r for r in rows if r["extras"].get("population") == "solutions"]
    assert len(puzzles) + len(solutions) == len(rows)  # every program names its population

    half = puzzles[HALF]  # solved by 1 of 4 attempts: difficulty 1 - 1/4
    assert half["status"] == "ok" and half["fitness"] == pytest.approx(0.75)
    assert half["extras"]["solve_rate"] == 0.25 and half["extras"]["reference"] == "solved"
    assert half["descriptors"] == [float(t) for t in skill_tags(HALF)]
    (winner,) = half["extras"]["solved_by"]
    assert next(r for r in solutions if r["id"] == winner)["code"].endswith("return 5\n")

    unsolvable = puzzles[UNSOLVABLE]
    assert unsolvable["status"] == "invalid" and unsolvable["error"].startswith("unsolvable: ")
    assert "f returned False" in unsolvable["error"]
    trivial = puzzles[TRIVIAL]
    assert (
        trivial["status"] == "rejected" and trivial["error"] == "trivial: solved 4/4 by the solver"
    )
    bad = next(r for code, r in puzzles.items() if code.startswith("def f(x):"))
    assert bad["status"] == "invalid" and "not a P3 puzzle" in bad["error"]
    assert not [s for s in solutions if bad["id"] in s["parent_ids"]]  # no attempts on it

    seed = puzzles[next(c for c in puzzles if "n + b == a" in c)]  # only its g solves it
    assert seed["status"] == "ok" and seed["fitness"] == 1.0 and seed["operator"] == "seed"

    elites = list(runner.archive)
    assert {e.program.code for e in elites} == {HALF, seed["code"]}
    for row in (unsolvable, trivial, bad):
        assert row["add_status"] == 0
    # Attempts: 4 per parsed puzzle; those that solved their puzzle form the second archive.
    assert len(solutions) == 4 * 4
    solved = [s for s in solutions if s["status"] == "ok"]
    assert {s["parent_ids"][0] for s in solved} == {half["id"], trivial["id"]}
    assert len(runner.solutions.archive) >= 1
    assert all(e.evaluation.extras["population"] == "solutions" for e in runner.solutions.archive)


def test_budget_counts_writing_and_solving_calls(tmp_path: Path) -> None:
    llm = FakeLLM(responder=Scripted())
    runner, path = _run(tmp_path, llm, names=["difference"])
    with RunStore(path, readonly=True) as store:
        calls = int(store.llm_totals()["calls"])
        rows = list(store.export_rows())
    # 4 attempts on the seed, then 4 writing calls and 4 attempts on each of the 3 puzzles
    # that parse; the 4 calls left cannot pay for one more puzzle (1 + k = 5).
    assert calls == len(llm.requests) == 20
    assert runner.budget.spent.llm_calls == 20
    assert runner.budget.spent.evaluations == len(rows)
    writing = sum(r["operator"] == "puzzle_writer" for r in rows)
    solving = sum(r["operator"] == "solver" for r in rows)
    assert (writing, solving) == (4, 16)
    assert (
        runner.puzzles.stop_reason is not None
        and "LLM-call budget 24" in runner.puzzles.stop_reason
    )


def test_the_fake_model_keeps_solved_puzzles_and_runs_are_deterministic(tmp_path: Path) -> None:
    names = ["difference", "concat_words", "odd_above"]
    first, a = _run(tmp_path, FakeLLM(responder=mutating_responder), "a.db", names=names)
    second, b = _run(tmp_path, FakeLLM(responder=mutating_responder), "b.db", names=names)
    elites = [(e.program.id, e.program.code, e.fitness) for e in first.archive]
    assert elites and elites == [(e.program.id, e.program.code, e.fitness) for e in second.archive]
    strip = [{k: v for k, v in r.items() if k not in ("created_at", "wall_time")} for r in _rows(a)]
    assert strip == [
        {k: v for k, v in r.items() if k not in ("created_at", "wall_time")} for r in _rows(b)
    ]
    for e in first.archive:  # every kept puzzle was solved, by its g or an attempt
        x = e.evaluation.extras
        assert x["reference"] == "solved" or x["solved"] > 0
        assert 0 < e.fitness <= 1 and x["solved"] < x["k"]


def test_configurations_co_evolution_refuses(tmp_path: Path) -> None:
    cfg = _config().model_dump(mode="json")
    cfg["archive"]["bins"] = 10
    with RunStore(tmp_path / "x.db") as store, pytest.raises(ConfigError, match="bins = 2"):
        CoevolutionRunner(load_config(overrides=cfg), store, llm=FakeLLM())
    assert is_coevolution(_config()) and not is_coevolution(load_config(preset="parity"))


def test_cli_runs_the_preset_and_refuses_to_resume(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    env_cmd = [sys.executable, "-c", "from evolm.cli import app; app()"]
    done = subprocess.run(
        [*env_cmd, "run", "puzzles", "--preset", "puzzles-coevolve", "--llm", "fake",
         "--budget-llm-calls", "62", "--out", str(db), "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = _rows(db)
    kept = [r for r in rows if r["extras"].get("population") == "puzzles" and r["add_status"]]
    assert kept and all(r["status"] == "ok" for r in kept)
    exported = subprocess.run(
        [*env_cmd, "export", str(db)], capture_output=True, text=True, timeout=120
    )
    ops = {json.loads(line)["operator"] for line in exported.stdout.splitlines()}
    assert {"seed", "puzzle_writer", "solver"} <= ops
    again = subprocess.run(
        [*env_cmd, "resume", str(db)], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 2 and RESUME_UNSUPPORTED[:40] in again.stderr.replace("\n", " ")


class Forging(Evaluator):
    """The real sandbox, except that the solve job of any solution returning 5 answers as a
    hostile child could: bytes for an answer, a NaN descriptor."""

    name = "forging"

    def __init__(self, inner: Evaluator) -> None:
        super().__init__()
        self.inner = inner
        self.forged = 0

    async def start(self) -> None:
        await self.inner.start()

    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        out = await self.inner.evaluate(jobs)
        for i, job in enumerate(jobs):
            if job.program.code.startswith(solve_job("")) and "return 5" in job.program.code:
                self.forged += 1
                out[i] = Evaluation(
                    Status.OK, fitness=1.0, descriptors=(math.nan, 1.0), extras={"answer": b"x"}
                )
        return out

    def close(self) -> None:
        self.inner.close()


def test_a_forged_solve_reply_is_refused_not_trusted(tmp_path: Path) -> None:
    cfg = _config(names=["difference"])
    evaluator = Forging(SandboxEvaluator("puzzles", cfg.domain.params, workers=2, timeout=5.0))
    with RunStore(tmp_path / "f.db") as store:
        runner = CoevolutionRunner(
            cfg, store, llm=FakeLLM(responder=Scripted()), evaluator=evaluator
        )
        result = asyncio.run(runner.run())
        evaluator.close()
    assert result.status == "completed" and evaluator.forged == 1
    rows = _rows(Path(result.path))
    (forged,) = [r for r in rows if r["operator"] == "solver" and r["code"].endswith("return 5\n")]
    assert forged["status"] == "invalid" and "the solve job sent back" in forged["error"]
    half = next(r for r in rows if r["code"] == HALF)  # its only solving attempt was refused
    assert half["status"] == "ok" and half["fitness"] == 1.0 and half["extras"]["solved"] == 0


def test_evolm_run_and_resume_choose_the_coevolution_runner(tmp_path: Path) -> None:
    import evolm

    db = tmp_path / "run.db"
    evolm.run(
        {
            "llm": {"backend": "fake"},
            "domain": {"params": {"mode": "coevolve", "k": 2, "names": ["concat_words"]}},
            "budget": {"llm_calls": 8},
        },
        preset="puzzles-coevolve",
        out=db,
    )
    with RunStore(db, readonly=True) as store:
        populations = {ind.evaluation.extras.get("population") for ind in store.evaluated()}
    assert populations == {"puzzles", "solutions"}
    with pytest.raises(ConfigError, match="cannot be resumed"):
        evolm.resume(db, llm=FakeLLM(responder=mutating_responder))
