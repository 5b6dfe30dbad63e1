"""The task domain (your own program and evaluator), through the real sandbox and the CLI."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evolm.domains.base import get_domain
from evolm.domains.task import SeparateTaskDomain, TaskDomain
from evolm.domains.task.blocks import split_blocks
from evolm.domains.task.spec import parse_task_toml
from evolm.sandbox import SandboxPool
from evolm.types import Status

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """import math

HEADER = 1.0


# EVOLVE-BLOCK-START
def solve():
    return "ok"
# EVOLVE-BLOCK-END


def helper():
    return HEADER


# EVOLVE-BLOCK-START
EXTRA = 2
# EVOLVE-BLOCK-END
"""

# The program's solve() says how the evaluator should misbehave.
EVALUATOR = """import importlib.util
import math


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mode = module.solve()
    if mode == "evaluator bug":
        return {"fitness": 1.0}["missing"]
    if mode == "not a dict":
        return [1.0, 2.0]
    if mode == "no fitness":
        return {"score": 1.0, "spread": 0.5}
    if mode == "nan fitness":
        return {"fitness": float("nan"), "spread": 0.5}
    if mode == "nan descriptor":
        return {"fitness": 1.0, "spread": math.inf}
    if mode == "string fitness":
        return {"fitness": "high", "spread": 0.5}
    if mode == "hack":
        return {"fitness": 2.0, "spread": 0.5, "claimed": 99.0}
    if mode == "breaks a rule":
        return {"error": "circle 3 leaves the square", "fitness": 50.0, "spread": 0.5}
    if mode == "blank error":
        return {"error": "", "fitness": 1.5, "spread": 0.5}
    return {"fitness": float(module.EXTRA), "spread": 0.25, "note": "fine"}


def integrity_check(metrics, program_path):
    if metrics.get("claimed", 0.0) > metrics["fitness"]:
        return "the claimed sum does not match the fitness"
    return True
"""

TOML = """name = "modes"
description = "A test task."
timeout = 10.0
fitness_bounds = [-100.0, 100.0]

[[descriptors]]
name = "spread"
low = 0.0
high = 1.0

[integrity]
reevaluate = 2
"""


def make_task(
    tmp: Path, evaluator: str = EVALUATOR, toml: str | None = TOML, program: str = PROGRAM
) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "initial.py").write_text(program)
    (tmp / "evaluator.py").write_text(evaluator)
    if toml is not None:
        (tmp / "task.toml").write_text(toml)
    return tmp


def with_solve(body: str, extra: str = "EXTRA = 2\n") -> str:
    """A candidate: the task's program with solve's body and the second block replaced."""
    return (
        "# EVOLVE-BLOCK-START\ndef solve():\n" + body + "# EVOLVE-BLOCK-END\n"
        "# EVOLVE-BLOCK-START\n" + extra + "# EVOLVE-BLOCK-END\n"
    )


def evaluate_all(params: dict, programs: list[str], seed: int = 3) -> list:
    async def go() -> list:
        async with SandboxPool("task", params, workers=1, timeout=10.0) as pool:
            return [await pool.evaluate(code, seed) for code in programs]

    return asyncio.run(go())


# -- EVOLVE blocks ------------------------------------------------------------------------
def test_splice_never_changes_code_outside_the_markers(tmp_path: Path) -> None:
    dom = get_domain("task", {"path": str(make_task(tmp_path))})
    outside, original_blocks = split_blocks(PROGRAM)
    candidates = [
        with_solve("    return 'x'\n"),
        # rewrites everything outside: header, helper, and adds a trailer
        "import os\nHEADER = 99\n# EVOLVE-BLOCK-START\ndef solve():\n    return 1\n"
        "# EVOLVE-BLOCK-END\ndef helper():\n    return os.getcwd()\n"
        "# EVOLVE-BLOCK-START\nEXTRA = 5\n# EVOLVE-BLOCK-END\nprint('trailer')\n",
        # marker lines rewritten with other comment text, a block without a final newline
        "#   EVOLVE-BLOCK-START here\nx = 1\n// EVOLVE-BLOCK-END\n-- EVOLVE-BLOCK-START\nEXTRA = 3",
        # empty blocks
        "# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n",
    ]
    candidates[2] += "\n# EVOLVE-BLOCK-END\n"
    for cand in candidates:
        out = dom.prepare(cand)
        got_outside, got_blocks = split_blocks(out)
        assert got_outside == outside  # byte for byte, marker lines included
        assert got_blocks != original_blocks or cand == PROGRAM
        assert [b.rstrip("\n") for b in got_blocks] == [
            b.rstrip("\n") for b in split_blocks(cand)[1]
        ]
    assert dom.prepare(PROGRAM) == PROGRAM


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        ("def other():\n    return 1\n", r"defines none of the names .*\(EXTRA, solve\)"),
        ("def solve(:\n    return 1\n", "no EVOLVE-BLOCK-START .* does not parse as Python"),
        ("# EVOLVE-BLOCK-START\ndef other():\n    return 1\n", "has no EVOLVE-BLOCK-END"),
        ("# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n", "has 1 EVOLVE blocks where"),
        ("# EVOLVE-BLOCK-END\nx = 1\n", "has no EVOLVE-BLOCK-START before it"),
        (
            "# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n",
            "cannot nest",
        ),
    ],
)
def test_bad_markers_make_the_candidate_invalid(
    tmp_path: Path, candidate: str, reason: str
) -> None:
    dom = get_domain("task", {"path": str(make_task(tmp_path))})
    with pytest.raises(ValueError, match=reason):
        dom.prepare(candidate)


# -- answers without markers: spliced by their top-level definitions -----------------------
def _spliced(candidate: str, program: str = PROGRAM) -> list[str]:
    """The blocks of the task's program with ``candidate`` spliced in, after checking that
    everything outside them is the original's, byte for byte."""
    dom = TaskDomain(program_text=program, evaluator_text=EVALUATOR)
    out = dom.prepare(candidate)
    got_outside, got_blocks = split_blocks(out)
    assert got_outside == split_blocks(program)[0]
    return got_blocks


def test_an_answer_with_only_the_function_replaces_it_and_keeps_the_other_block() -> None:
    blocks = _spliced("def solve():\n    return 'new'\n")
    assert blocks == ["def solve():\n    return 'new'\n\n\n", "EXTRA = 2\n"]


def test_the_whole_file_without_markers_changes_only_the_blocks_definitions() -> None:
    candidate = (
        '"""A docstring."""\nimport math\n\nHEADER = 5.0\n\n\n# better\ndef solve():\n'
        '    return "better"\n\n\ndef helper():\n    return -1\n\n\nEXTRA = 7\n'
        "print(solve())\nif __name__ == '__main__':\n    helper()\n"
    )
    blocks = _spliced(candidate)
    assert blocks == [
        '# better\ndef solve():\n    return "better"\n\n\n',
        "EXTRA = 7\n\n\n",
    ]


def test_new_helpers_and_imports_go_to_the_first_block() -> None:
    candidate = (
        "import math\nimport os\nfrom itertools import count as _count\n\n\n"
        "@staticmethod\ndef twice(x):\n    return 2 * x\n\n\nclass Box:\n    size = 3\n\n"
        "LIMIT = 4\n\ndef solve():\n    return twice(os.sep)\n"
    )
    (first, second) = _spliced(candidate)
    assert first == (
        "import os\nfrom itertools import count as _count\n\n\n"
        "@staticmethod\ndef twice(x):\n    return 2 * x\n\n\nclass Box:\n    size = 3\n\n\n"
        "LIMIT = 4\n\n\ndef solve():\n    return twice(os.sep)\n\n\n"
    )
    assert second == "EXTRA = 2\n"


def test_each_definition_goes_to_the_block_that_defines_its_name() -> None:
    program = (
        "import math\n# EVOLVE-BLOCK-START\nSTEP = 1\n\n\ndef grow(x):\n    return x + STEP\n"
        "# EVOLVE-BLOCK-END\n\n\ndef fixed():\n    return 0\n\n\n# EVOLVE-BLOCK-START\n"
        "def solve():\n    return grow(1)\n# EVOLVE-BLOCK-END\nprint('end')\n"
    )
    candidate = "def solve():\n    return grow(2)\n\n\ndef grow(x):\n    return x * STEP\n"
    first, second = _spliced(candidate, program)
    # STEP, which the answer leaves out, stays; grow takes its old place
    assert first == "STEP = 1\n\n\ndef grow(x):\n    return x * STEP\n\n\n"
    assert second == "def solve():\n    return grow(2)\n\n\n"


@pytest.mark.parametrize(
    "candidate",
    [
        # a completion-mode answer: the prompt's head up to the def, then the model's body
        "import math\n\nHEADER = 1.0\n\n\n# EVOLVE-BLOCK-START\ndef solve():\n    return 'cut'\n",
        # one block of two
        "# EVOLVE-BLOCK-START\ndef solve():\n    return 'cut'\n# EVOLVE-BLOCK-END\n",
    ],
)
def test_answers_with_broken_markers_are_read_by_their_definitions(candidate: str) -> None:
    assert _spliced(candidate) == ["def solve():\n    return 'cut'\n\n\n", "EXTRA = 2\n"]


def test_an_assignment_of_names_the_answer_only_partly_redefines_stays() -> None:
    program = (
        "# EVOLVE-BLOCK-START\nA, B = 1, 2\n\n\ndef solve():\n    return A + B\n"
        "# EVOLVE-BLOCK-END\n"
    )
    (block,) = _spliced("A = 5\n", program)
    assert block == "A, B = 1, 2\n\n\nA = 5\n\n\ndef solve():\n    return A + B\n\n\n"


def test_redefinitions_of_names_outside_the_blocks_are_dropped(tmp_path: Path) -> None:
    candidate = (
        "import math as HEADER\nHEADER = 99.0\n\n\ndef helper():\n    return 'forged'\n\n\n"
        "def solve():\n    return helper()\n"
    )
    first, _ = _spliced(candidate)
    assert first == "def solve():\n    return helper()\n\n\n"
    dom = TaskDomain(program_text=PROGRAM, evaluator_text=EVALUATOR)
    path = tmp_path / "spliced.py"
    path.write_text(dom.prepare(candidate))
    # the code outside the blocks keeps its meaning (our own test program, run in a child)
    proc = subprocess.run(
        [sys.executable, "-c", "import runpy, sys; ns = runpy.run_path(sys.argv[1]); "
         "print(ns['solve'](), ns['HEADER'], ns['EXTRA'])", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert proc.stdout.split() == ["1.0", "1.0", "2"]


@pytest.mark.parametrize(
    ("program", "candidate", "reason"),
    [
        # the block lies inside a function: its lines are no top-level definitions
        (
            "def solve():\n    # EVOLVE-BLOCK-START\n    x = 1\n    # EVOLVE-BLOCK-END\n"
            "    return x\n",
            "def solve():\n    return 2\n",
            "lies inside a statement, so its definitions cannot be matched",
        ),
        (
            "# EVOLVE-BLOCK-START\nprint('hi')\n# EVOLVE-BLOCK-END\n",
            "def solve():\n    return 2\n",
            "define no top-level functions",
        ),
        (PROGRAM, "import os\nprint(os.sep)\n", r"none of the names .*\(EXTRA, solve\)"),
    ],
)
def test_answers_without_markers_that_cannot_be_matched_are_invalid(
    program: str, candidate: str, reason: str
) -> None:
    dom = TaskDomain(program_text=program, evaluator_text=EVALUATOR)
    with pytest.raises(ValueError, match=reason):
        dom.prepare(candidate)


def test_other_languages_still_need_the_markers() -> None:
    program = "int x;\n// EVOLVE-BLOCK-START\nint solve() { return 1; }\n// EVOLVE-BLOCK-END\n"
    dom = TaskDomain(program_text=program, evaluator_text=EVALUATOR, program_name="initial.c")
    assert dom.context().language == "c"
    assert "only the new versions" not in dom.context().description
    with pytest.raises(ValueError, match="must keep its EVOLVE-BLOCK-START"):
        dom.prepare("def solve():\n    return 2\n")


def test_a_spliced_answer_runs_in_the_sandbox() -> None:
    dom = TaskDomain(program_text=PROGRAM, evaluator_text=EVALUATOR, task=parse_task_toml(
        TOML, "task.toml").to_plain())  # fmt: skip
    assert "only the new versions of the block's definitions (such as solve())" in (
        dom.context().description
    )
    code = dom.prepare("EXTRA = 6\n\n\ndef solve():\n    return 'fine'\n")
    (ev,) = evaluate_all(dom.worker_params(), [code])
    assert ev.status is Status.OK and ev.fitness == 6.0


def test_other_domains_prepare_is_the_identity() -> None:
    code = "def draw():\n    return 1\n"
    for name in ("image", "parity", "sodarace"):
        assert get_domain(name).prepare(code) is code
        assert get_domain(name).worker_params({"a": 1}) == {"a": 1}
        assert get_domain(name).reevaluate_best == 0


# -- task.toml ----------------------------------------------------------------------------
def test_task_toml_unknown_keys_and_bad_values_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'fitnes'.*known keys are name, "):
        parse_task_toml('fitnes = "x"\n')
    with pytest.raises(ValueError, match=r"unknown key 'retries' in \[integrity\]"):
        parse_task_toml("[integrity]\nretries = 3\n")
    with pytest.raises(ValueError, match="needs low and high"):
        parse_task_toml('[[descriptors]]\nname = "d"\n')
    spec = parse_task_toml(TOML)
    assert (spec.name, spec.reevaluate, spec.descriptors[0].name) == ("modes", 2, "spread")


def test_missing_files_and_evaluator_without_entry_point(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        get_domain("task", {"path": str(tmp_path / "nope")})
    task = make_task(tmp_path, evaluator="def grade(p):\n    return {}\n")
    with pytest.raises(ValueError, match="defines neither evaluate"):
        get_domain("task", {"path": str(task)})


# -- evaluator errors vs program errors, metric guards, integrity_check ----------------------
def test_failures_are_blamed_on_the_program_or_the_evaluator(tmp_path: Path) -> None:
    params = {"path": str(make_task(tmp_path))}
    modes = [
        "fine", "evaluator bug", "not a dict", "no fitness", "nan fitness", "nan descriptor",
        "string fitness", "hack", "breaks a rule", "blank error",
    ]  # fmt: skip
    programs = [with_solve(f"    return {m!r}\n") for m in modes]
    programs.append(with_solve("    raise ValueError('program bug')\n"))
    programs.append(with_solve("    return (\n"))  # a syntax error in the program
    programs.append(with_solve("    import sys\n    sys.exit(3)\n"))
    res = dict(
        zip(
            [*modes, "program raises", "syntax", "exit"],
            evaluate_all(params, programs),
            strict=True,
        )
    )

    fine = res["fine"]
    assert fine.status is Status.OK, fine.error
    assert (fine.fitness, fine.descriptors) == (2.0, (0.25,))
    assert fine.extras["metrics"]["note"] == "fine"
    for mode in ("evaluator bug", "not a dict", "no fitness"):
        ev = res[mode]
        assert ev.status is Status.ERROR, mode
        assert ev.error.startswith("evaluator error: evaluator.py:"), ev.error
        assert ev.extras["failure"] == "evaluator"
    assert "KeyError" in res["evaluator bug"].error
    assert "not a dict" in res["not a dict"].error
    assert "'fitness'" in res["no fitness"].error
    for mode, metric in (
        ("nan fitness", "'fitness' is nan"),
        ("nan descriptor", "'spread' is inf"),
        ("string fitness", "'fitness' is a str"),
    ):
        assert res[mode].status is Status.REJECTED, mode
        assert metric in res[mode].error
    assert res["hack"].status is Status.REJECTED
    assert "claimed sum does not match" in res["hack"].error
    rule = res["breaks a rule"]  # a non-empty "error" metric: the program's output is invalid
    assert rule.status is Status.INVALID and rule.fitness is None
    assert rule.error == "circle 3 leaves the square"
    assert rule.extras["failure"] == "program"
    assert rule.extras["metrics"]["fitness"] == 50.0  # the other metrics are kept
    blank = res["blank error"]  # an empty "error" is just a metric
    assert blank.status is Status.OK and blank.fitness == 1.5
    prog = res["program raises"]
    assert prog.status is Status.ERROR and prog.extras["failure"] == "program"
    assert prog.error.startswith("ValueError: program bug (line 3)"), prog.error
    assert res["syntax"].status is Status.INVALID
    assert res["syntax"].extras["failure"] == "program"
    assert res["exit"].status is Status.ERROR and "exit()" in res["exit"].error


def test_an_evaluator_that_does_not_import_is_an_evaluator_error(tmp_path: Path) -> None:
    bad = "import no_such_module_anywhere\n\ndef evaluate(program_path):\n    return {}\n"
    params = {"path": str(make_task(tmp_path, evaluator=bad, toml=None))}
    (ev,) = evaluate_all(params, [PROGRAM])
    assert ev.status is Status.ERROR and ev.extras["failure"] == "evaluator"
    assert "failed to import" in ev.error and "no_such_module_anywhere" in ev.error


# -- two-phase: the program cannot forge its score -----------------------------------------
TWO_PHASE = """import importlib.util


def run(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"x": float(module.solve())}


def score(data):
    if not isinstance(data, dict) or not isinstance(data.get("x"), float):
        return {"fitness": 0.0}
    return {"fitness": min(data["x"], 5.0)}


def evaluate(program_path):  # never used: run and score take precedence
    raise AssertionError("evaluate() called")
"""

FORGER = """# EVOLVE-BLOCK-START
import sys


def forged(*args, **kwargs):
    return {"fitness": 1e9}


frame = sys._getframe()
while frame is not None:  # patch every caller's module: the evaluator's among them
    if "score" in frame.f_globals:
        frame.f_globals["score"] = forged
    frame = frame.f_back


def solve():
    return 3.0
# EVOLVE-BLOCK-END
"""


def test_run_and_score_keep_the_score_out_of_the_programs_reach(tmp_path: Path) -> None:
    program = "# EVOLVE-BLOCK-START\ndef solve():\n    return 1.0\n# EVOLVE-BLOCK-END\n"
    two = make_task(tmp_path / "two", evaluator=TWO_PHASE, toml=None, program=program)
    assert isinstance(get_domain("task", {"path": str(two)}), SeparateTaskDomain)
    honest, forger = evaluate_all({"path": str(two)}, [program, FORGER])
    assert honest.status is Status.OK and honest.fitness == 1.0
    assert forger.status is Status.OK and forger.fitness == 3.0  # scored apart: not 1e9
    assert len(forger.descriptors) == 2  # the default space: code length, branches

    # The same forger against an evaluate() evaluator does forge its score: which is why the
    # run/score form exists.
    one_phase = TWO_PHASE.split("def evaluate(")[0].replace("def run(", "def _run(") + (
        "def evaluate(program_path):\n    data = _run(program_path)\n    return score(data)\n"
    )
    one = make_task(tmp_path / "one", evaluator=one_phase, toml=None, program=program)
    assert type(get_domain("task", {"path": str(one)})) is TaskDomain
    (forged,) = evaluate_all({"path": str(one)}, [FORGER])
    assert forged.fitness == 1e9


ERROR_METRIC = """import importlib.util


def run(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"x": module.solve()}


def score(data):
    x = data.get("x") if isinstance(data, dict) else None
    if not isinstance(x, float) or x > 4.0:
        return {"error": f"x must be a float of at most 4, got {x!r}", "x_seen": str(x)}
    return {"fitness": x}


def integrity_check(metrics, data):
    assert "error" not in metrics, "integrity_check ran on an invalid program"
    return True
"""


def test_an_error_metric_from_score_makes_the_program_invalid(tmp_path: Path) -> None:
    program = "# EVOLVE-BLOCK-START\ndef solve():\n    return 1.0\n# EVOLVE-BLOCK-END\n"
    task = make_task(tmp_path, evaluator=ERROR_METRIC, toml=None, program=program)
    fine, big, text = evaluate_all(
        {"path": str(task)},
        [program, program.replace("1.0", "4.01"), program.replace("1.0", "'a'")],
    )
    assert fine.status is Status.OK and fine.fitness == 1.0
    for ev, seen in ((big, "4.01"), (text, "'a'")):
        assert ev.status is Status.INVALID, ev.error
        assert ev.error == f"x must be a float of at most 4, got {seen}"
        assert ev.extras["failure"] == "program"  # not an evaluator error: no fitness needed
        assert ev.extras["metrics"]["x_seen"] == seen.strip("'")


# -- the runner: seed failures, the reproduce guard, the CLI --------------------------------
def evolm(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


NUMBER_PROGRAM = """import math

# EVOLVE-BLOCK-START
def solve():
    return 1.0
# EVOLVE-BLOCK-END
"""

NUMBER_EVALUATOR = """import importlib.util


def evaluate(program_path, seed=0):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = float(module.solve())
    return {"fitness": -abs(x - 7.0) + NOISE * (seed % 1000), "x": x}
"""


def _rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT p.id, p.code, e.status, e.fitness, e.error, e.extras, e.add_status "
            "FROM programs p JOIN evaluations e ON e.program_id = p.id ORDER BY p.id"
        ).fetchall()


def test_run_a_task_directory_end_to_end_with_status_and_export(tmp_path: Path) -> None:
    task = make_task(
        tmp_path / "task", NUMBER_EVALUATOR.replace("NOISE", "0.0"), None, NUMBER_PROGRAM
    )
    db = tmp_path / "run.db"
    evolm("run", task, "--llm", "fake", "--budget-evals", 20, "--out", db, "-q")
    rows = _rows(db)
    assert len(rows) == 20
    seed_fitness = rows[0][3]
    ok = [r for r in rows if r[2] == "ok"]
    assert max(r[3] for r in ok) > seed_fitness  # the fake's edits improved on the seed
    inserted = [r for r in rows[1:] if r[6] > 0]
    assert inserted
    for r in ok:  # every stored program keeps the seed's code outside the blocks
        assert split_blocks(r[1])[0] == split_blocks(NUMBER_PROGRAM)[0]
    reevaluated = [json.loads(r[5]) for r in ok if "reevaluations" in json.loads(r[5])]
    assert reevaluated and all(len(x["reevaluations"]) == 2 for x in reevaluated)
    status = evolm("status", db).stdout
    assert "task" in status and "fitness metric" in status
    exported = [
        json.loads(line)
        for line in evolm("export", db, "--format", "jsonl").stdout.splitlines()
        if line.strip()
    ]
    assert len(exported) == 20 and exported[0]["code"] == NUMBER_PROGRAM


def test_a_score_that_changes_with_the_seed_is_caught_by_the_reproduce_guard(
    tmp_path: Path,
) -> None:
    task = make_task(
        tmp_path / "task", NUMBER_EVALUATOR.replace("NOISE", "1e-3"), None, NUMBER_PROGRAM
    )
    db = tmp_path / "run.db"
    evolm(
        "run",
        "--program",
        task / "initial.py",
        "--evaluator",
        task / "evaluator.py",
        "--llm",
        "fake",
        "--budget-evals",
        16,
        "--out",
        db,
        "-q",
    )
    rows = _rows(db)
    rejected = [r for r in rows if r[2] == "rejected"]
    assert rejected, [r[2:5] for r in rows]
    assert all(r[4].startswith("did not reproduce: ") for r in rejected)
    assert all(len(json.loads(r[5])["reevaluations"]) == 2 for r in rejected)
    assert not [r for r in rows[1:] if r[6] > 0]  # nothing beat the seed by luck of the seed


def test_a_seed_the_evaluator_cannot_score_fails_the_run(tmp_path: Path) -> None:
    broken = "def evaluate(program_path):\n    return 1 / 0\n"
    task = make_task(tmp_path / "task", broken, None, NUMBER_PROGRAM)
    proc = evolm(
        "run",
        task,
        "--llm",
        "fake",
        "--budget-evals",
        40,
        "--out",
        tmp_path / "run.db",
        "-q",
        check=False,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "the seed program could not be scored" in out
    assert "evaluator error: evaluator.py: evaluate() raised ZeroDivisionError" in out
    assert _rows(tmp_path / "run.db") == []  # stopped after the seed batch, nothing told
