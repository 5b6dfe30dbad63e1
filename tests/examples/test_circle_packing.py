"""The circle packing example (examples/circle_packing/): its strict evaluator, called directly,
and the example through evolm's real sandbox, including the reward hacks it must turn down."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import math
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import evolm
from evolm.domains.base import get_domain
from evolm.domains.task import SeparateTaskDomain
from evolm.domains.task.blocks import split_blocks
from evolm.sandbox import SandboxPool
from evolm.store import RunStore
from evolm.types import Evaluation, Status

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "examples" / "circle_packing"


def _import(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def evaluator() -> ModuleType:
    return _import(TASK / "evaluator.py", "circle_packing_evaluator")


@pytest.fixture(scope="module")
def seed_data(evaluator: ModuleType) -> dict[str, Any]:
    """What ``run`` returns for initial.py: plain centres, radii and the reported sum."""
    data: dict[str, Any] = evaluator.run(str(TASK / "initial.py"))
    return data


def small_grid() -> dict[str, Any]:
    """26 circles of radius 0.01 on a loose grid: valid with a wide margin everywhere."""
    centers = [[0.1 + 0.15 * (i % 6), 0.1 + 0.15 * (i // 6)] for i in range(26)]
    return {"centers": centers, "radii": [0.01] * 26, "reported_sum": None}


# -- the evaluator by itself ----------------------------------------------------------------
def test_the_initial_program_is_valid_with_its_recomputed_sum(
    evaluator: ModuleType, seed_data: dict[str, Any]
) -> None:
    program = _import(TASK / "initial.py", "circle_packing_initial")
    _, radii = program.construct_packing()
    metrics = evaluator.score(seed_data)
    assert "error" not in metrics, metrics
    assert metrics["sum_radii"] == math.fsum(float(r) for r in radii)
    assert metrics["violation"] == 0.0 and metrics["valid_at_1e-6"] == 1.0
    assert 0.0 <= metrics["radius_spread"] <= 0.12 and 0.0 <= metrics["on_border"] <= 1.0
    assert evaluator.integrity_check(metrics, seed_data) is True


def _broken(data: dict[str, Any], change: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    change(out)
    return out


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["centers"][4].__setitem__(0, math.nan), "centre 4 is not two finite"),
        (lambda d: d["centers"].__setitem__(0, [math.nan, math.nan]), "centre 0 is not two"),
        (lambda d: d["radii"].__setitem__(7, math.inf), "radius 7 is not a finite number"),
        (lambda d: d["radii"].__setitem__(2, -0.01), "radius 2 is negative"),
        (lambda d: d["radii"].pop(), "expected 26 radii, got 25"),
        (lambda d: (d["centers"].pop(), d["radii"].pop()), "expected 26 centres, got 25"),
        (lambda d: d["centers"].append([0.5, 0.5]), "expected 26 centres, got 27"),
        (lambda d: d["radii"].__setitem__(3, True), "radius 3 is not a finite number: True"),
        (lambda d: d["radii"].__setitem__(3, "0.1"), "radius 3 is not a finite number"),
        (lambda d: d["centers"][5].__setitem__(1, "0.5"), "centre 5 is not two finite"),
        (lambda d: d["centers"][5].__setitem__(1, False), "centre 5 is not two finite"),
        (lambda d: d.__setitem__("reported_sum", math.nan), "reported sum is not a finite"),
        (lambda d: d.__setitem__("reported_sum", 4.01), "reported sum 4.01 does not match"),
        (lambda d: d.__setitem__("centers", "many"), "expected 26 centres, got 0"),
    ],
)
def test_broken_packings_are_errors_naming_the_rule(
    evaluator: ModuleType, seed_data: dict[str, Any], change: Any, reason: str
) -> None:
    metrics = evaluator.score(_broken(seed_data, change))
    assert reason in metrics.get("error", ""), metrics
    assert "sum_radii" not in metrics  # no fitness for a packing that is not one


def test_a_circle_crossing_a_side_by_1e9_is_invalid_at_tolerance_0_only(
    evaluator: ModuleType,
) -> None:
    data = small_grid()
    data["centers"][0][0] = 0.01 - 1e-9  # radius 0.01: crosses the left side by 1e-9
    metrics = evaluator.score(data)
    assert "circle 0 crosses the left side by 1e-09" in metrics["error"]
    assert "tolerance 0" in metrics["error"]
    assert metrics["violation"] == pytest.approx(1e-9, rel=1e-6)
    assert metrics["valid_at_1e-6"] == 1.0  # a looser rule would have taken it
    assert metrics["sum_radii"] == pytest.approx(0.26)
    assert evaluator.score(small_grid()).get("error") is None


def test_overlapping_circles_are_invalid(evaluator: ModuleType) -> None:
    data = small_grid()
    data["centers"][1] = [data["centers"][0][0] + 0.015, data["centers"][0][1]]
    metrics = evaluator.score(data)
    assert "circles 0 and 1 overlap by 0.005" in metrics["error"]
    assert metrics["valid_at_1e-6"] == 0.0 and metrics["violation"] == pytest.approx(0.005)


def test_integrity_check_catches_a_changed_sum(
    evaluator: ModuleType, seed_data: dict[str, Any]
) -> None:
    metrics = evaluator.score(seed_data)
    forged = dict(metrics, sum_radii=metrics["sum_radii"] + 0.5)
    verdict = evaluator.integrity_check(forged, seed_data)
    assert isinstance(verdict, str) and "is not the circles' sum" in verdict
    assert evaluator.integrity_check(metrics, _broken(seed_data, lambda d: d.pop("radii")))


def test_the_reference_program_is_valid_at_tolerance_0_and_beats_the_seed(
    evaluator: ModuleType, seed_data: dict[str, Any]
) -> None:
    metrics = evaluator.evaluate(str(TASK / "best_known.py"))
    assert "error" not in metrics, metrics
    assert metrics["violation"] == 0.0 and metrics["valid_at_1e-6"] == 1.0
    assert metrics["sum_radii"] > evaluator.score(seed_data)["sum_radii"] + 1.0
    assert metrics["sum_radii"] > 2.6
    # the same interface: only the EVOLVE block differs from initial.py
    initial = (TASK / "initial.py").read_text()
    best = (TASK / "best_known.py").read_text()
    assert split_blocks(best)[0] == split_blocks(initial)[0]


# -- through evolm's sandbox ----------------------------------------------------------------
NAN_CENTRES = '''
# EVOLVE-BLOCK-START
def construct_packing():
    """Hack 1: NaN centres, which an overlap test of the form `d < r1 + r2` lets through."""
    centers = np.full((N, 2), np.nan)
    radii = np.full(N, 0.1)
    return centers, radii
# EVOLVE-BLOCK-END
'''

REPORTS_401 = '''
def run_packing():
    """Hack 2: report a sum the circles do not have."""
    centers, radii = construct_packing()
    return centers, radii, 4.01
'''

PATCHER = '''
# EVOLVE-BLOCK-START
import gc
import sys


def _forged(*args, **kwargs):
    return {"sum_radii": 2.99, "violation": 0.0, "valid_at_1e-6": 1.0,
            "radius_spread": 0.0, "on_border": 0.0}


def _yes(*args, **kwargs):
    return True


def _patch(namespace):
    if isinstance(namespace, dict) and "score" in namespace and "_check" in namespace:
        namespace["score"] = _forged
        namespace["integrity_check"] = _yes
        namespace["_check"] = lambda data: ([(0.5, 0.5)] * N, [0.115] * N, None)
        namespace["TOLERANCE"] = 1.0


def construct_packing():
    """Hack 3: patch the evaluator wherever it can be reached, then claim big circles."""
    for module in list(sys.modules.values()):
        _patch(getattr(module, "__dict__", None))
    for obj in gc.get_objects():
        _patch(obj)
    frame = sys._getframe()
    while frame is not None:
        _patch(frame.f_globals)
        frame = frame.f_back
    centers = np.array([[0.5, 0.5]] * N)
    return centers, np.full(N, 0.115)
# EVOLVE-BLOCK-END
'''


def _program(block: str | None = None, run_packing: str | None = None) -> str:
    """initial.py with its EVOLVE block and/or its run_packing replaced (a whole program)."""
    text = (TASK / "initial.py").read_text()
    if block is not None:
        start = text.index("# EVOLVE-BLOCK-START")
        end = text.index("# EVOLVE-BLOCK-END\n") + len("# EVOLVE-BLOCK-END\n")
        text = text[:start] + block.lstrip("\n") + text[end:]
    if run_packing is not None:
        start = text.index("def run_packing():")
        end = text.index('if __name__ == "__main__":')
        text = text[:start] + run_packing.lstrip("\n") + "\n\n" + text[end:]
    return text


def _evaluate(task: Path, programs: list[str]) -> list[Evaluation]:
    async def go() -> list[Evaluation]:
        async with SandboxPool("task", {"path": str(task)}, workers=1, timeout=30.0) as pool:
            return [await pool.evaluate(code, 0) for code in programs]

    return asyncio.run(go())


def test_reward_hacks_end_invalid_in_the_sandbox(tmp_path: Path) -> None:
    task = Path(shutil.copytree(TASK, tmp_path / "circle_packing"))
    assert isinstance(get_domain("task", {"path": str(task)}), SeparateTaskDomain)
    honest_code = _program()
    programs = [
        honest_code,
        _program(block=NAN_CENTRES),
        _program(run_packing=REPORTS_401),
        _program(block=PATCHER),
    ]
    honest, nan, reported, patcher = _evaluate(task, programs)
    assert honest.status is Status.OK, honest.error
    assert honest.fitness is not None and 1.0 < honest.fitness < 2.0
    assert honest.descriptors is not None and len(honest.descriptors) == 2
    for ev, reason in (
        (nan, "centre 0 is not two finite numbers"),
        (reported, "the reported sum 4.01 does not match the circles' sum"),
        (patcher, "overlap"),  # 26 circles on one spot, the evaluator's score untouched
    ):
        assert ev.status is Status.INVALID, (ev.status, ev.error)
        assert reason in (ev.error or "")
        assert ev.extras["failure"] == "program"
        assert ev.fitness is None

    # an editor's answer cannot change run_packing: the splice keeps the original
    dom = get_domain("task", {"path": str(task)})
    assert dom.prepare(_program(run_packing=REPORTS_401)) == honest_code
    # and so does an answer without the markers, read by its definitions: run_packing is the
    # program's, outside the block, so the answer's copy is dropped
    lines = _program(run_packing=REPORTS_401).splitlines(keepends=True)
    spliced = dom.prepare("".join(line for line in lines if "EVOLVE-BLOCK" not in line))
    assert split_blocks(spliced)[0] == split_blocks(honest_code)[0]
    assert [b.rstrip() for b in split_blocks(spliced)[1]] == [
        b.rstrip() for b in split_blocks(honest_code)[1]
    ]
    assert "4.01" not in spliced


def test_a_run_of_the_example_completes_with_the_seed_valid(
    tmp_path: Path, evaluator: ModuleType, seed_data: dict[str, Any]
) -> None:
    db = tmp_path / "run.db"
    result = evolm.run(
        {
            "domain": {"name": "task", "params": {"path": str(TASK)}},
            "llm": {"backend": "fake"},
            "budget": {"llm_calls": 8},
        },
        preset="task",
        out=db,
    )
    assert result.status == "completed", result.error
    with RunStore(db, readonly=True) as store:
        evaluated = list(store.evaluated())
        exported = {row["id"]: row for row in store.export_rows()}
    seed = evaluated[0]
    metrics = exported[seed.id]["metrics"]  # what `evolm export` shows of the evaluator's view
    assert metrics["sum_radii"] == seed.fitness
    assert (metrics["violation"], metrics["valid_at_1e-6"]) == (0.0, 1.0)
    invalid = [i for i in evaluated if i.evaluation.status is Status.INVALID]
    for ind in invalid:  # the evaluator's reason, kept with the metrics
        if exported[ind.id]["metrics"] is not None:
            assert exported[ind.id]["metrics"]["error"] == ind.evaluation.error
    assert seed.evaluation.status is Status.OK, seed.evaluation.error
    assert seed.fitness == evaluator.score(seed_data)["sum_radii"]
    assert len(evaluated) > 1
    for ind in evaluated:  # every candidate is valid or turned down with a reason
        if ind.evaluation.ok:
            assert ind.fitness is not None and ind.fitness < 2.7
        else:
            assert ind.evaluation.error
