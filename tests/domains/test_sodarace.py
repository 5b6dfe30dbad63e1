"""Sodarace: the walker API, validation with reasons, seeds and examples, prompts, parameters.

Physics (golden numbers, muscles, terrains, determinism) is in test_sodarace_physics.py.
"""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
from importlib import import_module, resources
from typing import Any

import numpy as np
import pytest

from evolm.domains.base import get_domain, registered_domains
from evolm.domains.sodarace import (
    DESCRIPTOR_BOUNDS,
    EXAMPLES,
    SEEDS,
    SodaraceDomain,
    Walker,
    WalkerError,
    example_code,
    helper_code,
    query_cppn,
    seed_code,
    walker_creator,
)
from evolm.domains.sodarace.walker import (
    MAX_AMPLITUDE,
    MAX_JOINTS,
    MAX_MUSCLES,
    MAX_MUSCLES_PER_JOINT,
    MIN_JOINT_DISTANCE,
)
from evolm.operators.prompt import FullRewrite, PromptMutation
from evolm.types import Evaluation, Individual, Program, Status

# Facts from the ELM paper: joint and muscle counts of the four seeds.
SEED_SIZES = {
    "square": (5, 8),
    "radial": (9, 16),
    "cppn_fixed": (24, 96),
    "cppn_mutable": (24, 96),
}


def program(body: str) -> str:
    return "def make_walker():\n" + "".join(f"    {line}\n" for line in body.split("\n"))


@pytest.fixture(scope="module")
def domain() -> SodaraceDomain:
    return SodaraceDomain(sim_seconds=1.0, settle_seconds=0.2)


# -- registration and parameters -----------------------------------------------------------
def test_registered_and_built_by_name() -> None:
    assert "sodarace" in registered_domains()
    d = get_domain("sodarace", {"terrain": "LEFT_WALL", "sim_seconds": 5.0})
    assert isinstance(d, SodaraceDomain)
    assert d.terrain.name == "left-wall"
    assert d.terrain.direction == "right"
    assert d.sim_config.sim_seconds == 5.0
    assert d.qd_offset == 0.0
    assert d.descriptor_space.names == ("height", "width", "mass")
    assert d.descriptor_space.bounds == tuple(DESCRIPTOR_BOUNDS.values())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"terrain": "lava"}, "unknown terrain 'lava'; known terrains: flat, left-wall"),
        ({"terrain": "tunnel", "terrain_params": {"hieght": 3}}, "takes gap, height, length"),
        ({"terrain": "flat", "terrain_params": {"gap": 3}}, "takes no parameters"),
        ({"terrain": "bumpy", "terrain_params": {"height": -1}}, "positive number"),
        ({"direction": "up"}, "direction must be one of any, right, left"),
        ({"sim_seconds": 0}, "sim_seconds must be in"),
        ({"sim_seconds": float("nan")}, "sim_seconds must be a finite number"),
        ({"muscle_hz": 5.0}, "muscle_hz must be in"),
        ({"settle_seconds": -1}, "settle_seconds must be in"),
        ({"descriptor_bounds": {"speed": [0, 1]}}, "unknown descriptor 'speed'"),
        ({"descriptor_bounds": {"mass": [5, 1]}}, "finite low < high"),
        ({"record_fps": 100}, "record_fps must be in \\[0, 60\\]"),
        ({"colour": "red"}, "bad parameters"),
    ],
)
def test_bad_parameters_are_value_errors(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_domain("sodarace", params)


def test_descriptor_bounds_override() -> None:
    d = SodaraceDomain(descriptor_bounds={"mass": [0, 400]})
    assert d.descriptor_space.bounds[2] == (0.0, 400.0)
    assert d.descriptor_space.bounds[0] == DESCRIPTOR_BOUNDS["height"]


def test_import_is_cheap_and_ignores_argv() -> None:
    # OpenELM's simulator imports pygame and parses sys.argv at import time. Here importing
    # loads neither Box2D nor Pillow; building the domain loads Box2D (so that a fork server's
    # children inherit it), never pygame.
    code = (
        "import sys; sys.argv = ['prog', '--no-such-flag', '-x']\n"
        "import evolm.domains.sodarace\n"
        "print('Box2D' in sys.modules, 'PIL' in sys.modules)\n"
        "from evolm.domains.base import get_domain\n"
        "get_domain('sodarace')\n"
        "print('pygame' in sys.modules, 'Box2D' in sys.modules, 'PIL' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False", "False", "True", "False"]


# -- the builder ----------------------------------------------------------------------------
def test_joints_are_handles_not_coordinates() -> None:
    # OpenELM identifies joints by their coordinate tuple, so equal coordinates alias.
    wc = walker_creator()
    a = wc.add_joint(1.0, 2.0)
    b = wc.add_joint(1.0, 2.0)
    c = wc.add_joint(5.0, 2.0)
    assert a != b and a is not b
    assert (a.index, b.index, c.index) == (0, 1, 2)
    assert tuple(a) == (1.0, 2.0) and a[1] == 2.0
    wc.add_muscle(b, c)
    walker = wc.get_walker()
    assert (walker.muscles[0].j0, walker.muscles[0].j1) == (1, 2)
    problems = walker.problems()
    assert len(problems) == 1
    assert "joints 0 and 1 are 0 units apart" in problems[0]


def test_add_muscle_forms() -> None:
    wc = walker_creator()
    a, b = wc.add_joint(0, 0), wc.add_joint(3, 4)
    forms = [
        wc.add_muscle(a, b),
        wc.add_muscle(a, b, 0.3),
        wc.add_muscle(a, b, 0.3, 1.5),  # amplitude, then phase (OpenELM swaps them)
        wc.add_muscle(a, b, amplitude=0.3, phase=1.5),
        wc.add_muscle(a, b, 0.3, phase=1.5),
        wc.add_muscle(a, b, False, 0.3, 1.5),  # the ELM paper's form with is_distance
        wc.add_muscle(a, b, True, 0.3, 1.5),  # is_distance=True: a bone
        wc.add_muscle(a, b, 0.0, 0.3, 1.5),  # ELM form with a falsy number for the flag
        wc.add_muscle(a, b, is_distance=True, amplitude=0.3),
        wc.add_muscle(0, 1, 0.2, 0.5),  # joint indices work too
    ]
    got = [(m.amplitude, m.phase, m.is_bone) for m in forms]
    assert got == [
        (0.0, 0.0, True),
        (0.3, 0.0, False),
        (0.3, 1.5, False),
        (0.3, 1.5, False),
        (0.3, 1.5, False),
        (0.3, 1.5, False),
        (0.0, 1.5, True),
        (0.3, 1.5, False),
        (0.0, 0.0, True),
        (0.2, 0.5, False),
    ]


def test_amplitude_is_clipped_when_simulated() -> None:
    wc = walker_creator()
    a, b = wc.add_joint(0, 0), wc.add_joint(3, 4)
    m = wc.add_muscle(a, b, 4.0, 0.0)
    n = wc.add_muscle(a, b, -0.7, 0.0)
    assert m.amplitude == 4.0 and m.effective_amplitude == MAX_AMPLITUDE
    assert n.effective_amplitude == -MAX_AMPLITUDE


def test_descriptors_of_a_known_walker() -> None:
    wc = walker_creator()
    a, b, c = wc.add_joint(0, 0), wc.add_joint(3, 0), wc.add_joint(3, 4)
    wc.add_muscle(a, b)
    wc.add_muscle(b, c, 0.2, 0.0)
    wc.add_muscle(a, c)
    w = wc.get_walker()
    assert (w.height, w.width) == (4.0, 3.0)
    assert w.total_length == pytest.approx(12.0)
    assert w.mass == pytest.approx(3 + 12.0 / 2)
    assert w.active_muscles == 1
    assert Walker.from_dict(w.to_dict()) == w


def other_creator_joint() -> str:
    return program(
        "wc, other = walker_creator(), walker_creator()\n"
        "a = wc.add_joint(0, 0)\n"
        "b = other.add_joint(5, 0)\n"
        "wc.add_muscle(a, b)\n"
        "return wc.get_walker()"
    )


INVALID = {
    "no joints": (program("return walker_creator().get_walker()"), "has no joints"),
    "no muscles": (
        program(
            "wc = walker_creator()\nwc.add_joint(0, 0)\nwc.add_joint(5, 0)\nreturn wc.get_walker()"
        ),
        "2 joints but no muscles",
    ),
    "joints too close": (
        program(
            "wc = walker_creator()\n"
            "a, b = wc.add_joint(0, 0), wc.add_joint(0.05, 0)\n"
            "wc.add_muscle(a, b)\n"
            "return wc.get_walker()"
        ),
        f"joints 0 and 1 are 0.05 units apart; joints must be at least {MIN_JOINT_DISTANCE:g}",
    ),
    "nan coordinate": (
        program("wc = walker_creator()\nwc.add_joint(float('nan'), 0)"),
        "WalkerError: x must be finite, got nan (line 3)",
    ),
    "string coordinate": (
        program("wc = walker_creator()\nwc.add_joint('1', 0)"),
        "x must be a number, got str",
    ),
    "too many joints": (
        program("wc = walker_creator()\nfor i in range(1000):\n    wc.add_joint(i, 0)"),
        f"too many joints: at most {MAX_JOINTS}",
    ),
    "too many muscles": (
        program(
            "wc = walker_creator()\n"
            "a, b = wc.add_joint(0, 0), wc.add_joint(1, 0)\n"
            "for i in range(2000):\n"
            "    wc.add_muscle(a, b)"
        ),
        f"too many muscles: at most {MAX_MUSCLES}",
    ),
    "too many muscles on a joint": (
        program(
            "wc = walker_creator()\n"
            "hub = wc.add_joint(0, 0)\n"
            "for i in range(60):\n"
            "    x, y = math.cos(i / 10) * 20, 30 + math.sin(i / 10) * 20\n"
            "    wc.add_muscle(hub, wc.add_joint(x, y))\n"
            "return wc.get_walker()"
        ),
        f"joint 0 has 60 muscles attached; at most {MAX_MUSCLES_PER_JOINT}",
    ),
    "too wide": (
        program(
            "wc = walker_creator()\n"
            "wc.add_muscle(wc.add_joint(0, 0), wc.add_joint(500, 0))\n"
            "return wc.get_walker()"
        ),
        "the walker's width is 500 units; at most 200",
    ),
    "coordinate tuple as joint": (
        program("wc = walker_creator()\nwc.add_joint(0, 0)\nwc.add_muscle((0, 0), (1, 1))"),
        "j0 must be a joint returned by add_joint, got tuple",
    ),
    "joint of another walker": (other_creator_joint(), "j1 is a joint of another walker_creator"),
    "joint index out of range": (
        program("wc = walker_creator()\nwc.add_joint(0, 0)\nwc.add_muscle(0, 7)"),
        "j1 is joint index 7, but there are only 1 joints",
    ),
    "muscle to itself": (
        program("wc = walker_creator()\na = wc.add_joint(0, 0)\nwc.add_muscle(a, a)"),
        "add_muscle connects joint 0 to itself",
    ),
    "amplitude out of range": (
        program("wc = walker_creator()\nwc.add_muscle(wc.add_joint(0, 0), wc.add_joint(5, 0), 30)"),
        "amplitude 30 is out of range",
    ),
    "infinite phase": (
        program(
            "wc = walker_creator()\n"
            "wc.add_muscle(wc.add_joint(0, 0), wc.add_joint(5, 0), 0.2, float('inf'))"
        ),
        "phase must be finite",
    ),
    "too many arguments": (
        program(
            "wc = walker_creator()\n"
            "wc.add_muscle(wc.add_joint(0, 0), wc.add_joint(5, 0), 0.2, 0.1, 0.3, 0.4)"
        ),
        "got 6 positional arguments",
    ),
    "unknown keyword": (
        program(
            "wc = walker_creator()\n"
            "wc.add_muscle(wc.add_joint(0, 0), wc.add_joint(5, 0), strength=2)"
        ),
        "unexpected keyword 'strength'",
    ),
    "wrong return type": (program("return [(0, 0), (1, 1)]"), "make_walker() returned list"),
    "no make_walker": ("def build():\n    return None\n", "defines no function make_walker()"),
    "make_walker not callable": ("make_walker = 3\n", "make_walker is a int, not a function"),
    "syntax error": ("def make_walker(:\n", "SyntaxError at line 1"),
    "null byte": ("def make_walker():\n    return 1\x00\n", "null bytes"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_walkers_give_reasons(domain: SodaraceDomain, case: str) -> None:
    code, reason = INVALID[case]
    ev = domain.evaluate(code)
    assert ev.status is Status.INVALID, (ev.status, ev.error)
    assert reason in (ev.error or ""), ev.error
    assert ev.fitness is None and ev.descriptors is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (program("raise RuntimeError('boom')"), "RuntimeError: boom (line 2)"),
        (program("return 1 / 0"), "ZeroDivisionError: division by zero (line 2)"),
        (program("import sys\nsys.exit(3)"), "program called exit() (line 3)"),
        ("import no_such_module_xyz\n", "ModuleNotFoundError"),
    ],
)
def test_program_errors_are_values(domain: SodaraceDomain, code: str, reason: str) -> None:
    ev = domain.evaluate(code)
    assert ev.status is Status.ERROR
    assert reason in (ev.error or ""), ev.error


def test_returning_the_creator_is_accepted(domain: SodaraceDomain) -> None:
    code = program(
        "wc = walker_creator()\nwc.add_muscle(wc.add_joint(0, 0), wc.add_joint(5, 0))\nreturn wc"
    )
    assert domain.evaluate(code).status is Status.OK


def test_programs_see_numpy_math_and_helpers_without_imports(domain: SodaraceDomain) -> None:
    code = program(
        "wc = walker_creator()\n"
        "a = wc.add_joint(10, 0)\n"
        "b = wc.add_joint(float(np.float64(14.0)), math.sqrt(9.0))\n"
        "wc.add_muscle(a, b, np.float32(0.2), np.pi)\n"
        "query_cppn(wc, 2, 2, 1.5, lambda *p: True, lambda *p: 0.0, lambda *p: 0.0)\n"
        "return wc.get_walker()"
    )
    ev = domain.evaluate(code)
    assert ev.status is Status.OK, ev.error
    assert ev.extras["joints"] == 6 and ev.extras["muscles"] == 1 + 5


def test_random_programs_are_reseeded(domain: SodaraceDomain) -> None:
    code = "import random\n" + program(
        "wc = walker_creator()\n"
        "a = wc.add_joint(0, 0)\n"
        "b = wc.add_joint(5 + random.random() * 5, 0)\n"
        "wc.add_muscle(a, b, 0.3, 0.0)\n"
        "return wc.get_walker()"
    )
    first, again, other = (
        domain.evaluate(code, 1),
        domain.evaluate(code, 1),
        domain.evaluate(code, 2),
    )
    assert first.descriptors == again.descriptors != other.descriptors


# -- seeds, examples, helpers and prompts ---------------------------------------------------
@pytest.mark.parametrize("name", SEEDS)
def test_seed_text_is_its_module_and_runs(name: str) -> None:
    text = seed_code(name)
    module = import_module(f"evolm.domains.sodarace.seeds.{name}")
    assert text == inspect.getsource(module)
    assert (
        text == resources.files("evolm.domains.sodarace.seeds").joinpath(f"{name}.py").read_text()
    )
    walker = module.make_walker()
    assert isinstance(walker, Walker)
    assert walker.problems() == []
    assert (len(walker.joints), len(walker.muscles)) == SEED_SIZES[name]
    assert walker.active_muscles > 0


def test_seeds_are_the_domains_seeds_in_order() -> None:
    d = SodaraceDomain()
    assert d.seeds() == [seed_code(n) for n in SEEDS]
    assert len(SEEDS) == 4


@pytest.mark.parametrize("name", SEEDS)
def test_every_seed_is_ok_through_evaluate(domain: SodaraceDomain, name: str) -> None:
    ev = domain.evaluate(seed_code(name))
    assert ev.status is Status.OK, ev.error
    assert ev.checked(domain.descriptor_space).ok
    assert (ev.extras["joints"], ev.extras["muscles"]) == SEED_SIZES[name]


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_run_and_are_valid(domain: SodaraceDomain, name: str) -> None:
    text = example_code(name)
    module = import_module(f"evolm.domains.sodarace.examples.{name}")
    assert text == inspect.getsource(module)
    ev = domain.evaluate(text)
    assert ev.status is Status.OK, ev.error


def test_cppn_mutable_carries_the_helper_cppn_fixed_imports_it() -> None:
    helper = helper_code()
    assert helper in seed_code("cppn_mutable")  # the mutable copy is the helper, verbatim
    assert "def query_cppn" not in seed_code("cppn_fixed")
    assert "query_cppn(" in seed_code("cppn_fixed")
    assert helper == inspect.getsource(import_module("evolm.domains.sodarace.helpers"))
    assert query_cppn.__module__ == "evolm.domains.sodarace.helpers"


def test_context_holds_the_api_and_helper_code() -> None:
    ctx = SodaraceDomain(terrain="right-wall", sim_seconds=8).context()
    assert ctx.function_name == "make_walker"
    assert ctx.file_name == "walker.py"
    for fact in ("add_joint(x, y)", "add_muscle(j0, j1, amplitude=0.0, phase=0.0)", "[-0.5, 0.5]"):
        assert fact in ctx.api
    assert "8 seconds" in ctx.description
    assert "to the left" in ctx.description  # a right wall: the walker must move left
    # query_cppn's listing is shown only with a parent that calls it
    assert "def query_cppn" not in ctx.api
    assert ctx.optional_api == {"query_cppn": helper_code()}
    assert "def query_cppn" not in ctx.api_for(seed_code("square"))
    with_cppn = ctx.api_for(seed_code("cppn_fixed"))
    assert with_cppn.startswith(ctx.api.rstrip()) and with_cppn.endswith(helper_code())
    compile(with_cppn, "<api>", "exec")  # the helper block is valid Python


@pytest.mark.parametrize("operator", [PromptMutation, FullRewrite])
@pytest.mark.parametrize("mode", ["chat", "completion"])
@pytest.mark.parametrize("name", SEEDS)
def test_prompts_quote_the_seed_exactly(operator: type, mode: str, name: str) -> None:
    d = SodaraceDomain()
    op = operator(d.context(), mode)
    ev = Evaluation(Status.OK, 1.0, (1.0, 1.0, 1.0))
    parent = Individual(Program(id=0, code=seed_code(name)), ev)
    req = op.propose([parent], np.random.default_rng(0)).request
    text = req.prompt if mode == "completion" else req.messages[-1]["content"]
    assert seed_code(name).rstrip() in text
    # query_cppn's listing only where the parent calls it (the CPPN seeds), not for Square
    assert (helper_code().rstrip() in text) == ("query_cppn" in seed_code(name))


def test_seeds_do_not_share_one_corner_cell() -> None:
    # OpenELM's default bounds put every seed in height bin 0 and width bin 0.
    d = SodaraceDomain()
    space = d.descriptor_space
    bins = []
    for name in SEEDS:
        walker = d.build(seed_code(name))
        assert isinstance(walker, Walker)
        x = space.normalise([walker.height, walker.width, walker.mass])
        assert np.all(x < 1.0), (name, x)  # inside the bounds, not clipped
        bins.append(tuple(np.minimum((x * 12).astype(int), 11)))
    heights = {b[0] for b in bins}
    widths = {b[1] for b in bins}
    assert heights != {0} and widths != {0}
    assert len(set(bins)) >= 2


def test_fake_llm_mutations_of_the_seeds_never_raise() -> None:
    # OpenELM's Sodarace crashed on mutation; here every mutant is a value with a status.
    from evolm.llm.fake import mutating_responder

    d = SodaraceDomain(sim_seconds=0.5, settle_seconds=0.1)
    op = PromptMutation(d.context(), "chat")
    rng = np.random.default_rng(3)
    statuses = []
    for k in range(24):
        name = SEEDS[k % len(SEEDS)]
        parent = Individual(
            Program(id=k, code=seed_code(name)), Evaluation(Status.OK, 0.0, (0, 0, 0))
        )
        proposal = op.propose([parent], rng)
        assert proposal.request is not None
        result = op.finish(proposal, mutating_responder(proposal.request))
        ev = d.evaluate(result.code, k)
        assert isinstance(ev, Evaluation)
        statuses.append(ev.status)
        if ev.ok:
            assert math.isfinite(ev.fitness or 0.0)
    assert statuses.count(Status.OK) >= 18


def test_walker_error_is_a_value_error() -> None:
    assert issubclass(WalkerError, ValueError)


# --- two-phase scoring: score() validates the walker description run() sent back ---------------


def test_run_sends_a_plain_walker_that_scores_as_evaluate(domain: SodaraceDomain) -> None:
    code = seed_code("square")
    data = domain.run(code)
    assert isinstance(data, dict) and set(data) == {"walker"}
    ev, ref = domain.score(data), domain.evaluate(code)
    assert ev.ok and (ev.fitness, ev.descriptors, ev.extras) == (
        ref.fitness,
        ref.descriptors,
        ref.extras,
    )


@pytest.mark.parametrize(
    ("walker", "words"),
    [
        ("not a map", "expected"),
        ({"joints": [[0.0, 0.0]]}, "exactly a list of joints and a list of muscles"),
        ({"joints": [[0.0, 0.0]] * 201, "muscles": []}, "at most 200 joints"),
        ({"joints": [[0.0, float("nan")]], "muscles": []}, "finite numbers"),
        ({"joints": [[0.0, 0.0], [5.0, 0.0]], "muscles": [[0, 2, 0.0, 0.0]]}, "two joints"),
        ({"joints": [[0.0, 0.0], [5.0, 0.0]], "muscles": [[0, 0, 0.0, 0.0]]}, "two joints"),
        ({"joints": [[0.0, 0.0], [5.0, 0.0]], "muscles": [[0, 1, 99.0, 0.0]]}, "amplitude"),
        ({"joints": [[0.0, 0.0], [5.0, 0.0]], "muscles": [[0, 1, 0.0]]}, "[j0, j1, amplitude"),
        ({"joints": [[0.0, 0.0], [0.1, 0.0]], "muscles": [[0, 1, 0.0, 0.0]]}, "invalid walker:"),
    ],
)
def test_score_rejects_forged_walkers(domain: SodaraceDomain, walker: Any, words: str) -> None:
    ev = domain.score({"walker": walker})
    assert ev.status is Status.INVALID and words in ev.error, ev
