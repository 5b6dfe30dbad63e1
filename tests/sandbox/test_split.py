"""Scoring outside the program's process: two-phase domains in a real sandbox, on every tier.

A two-phase domain's program runs in one child and only sends data back; the score is computed
by the zygote's scorer, a separate process that never runs a program. The attacks here are the
ones that worked when the program's child scored itself: writing a forged evaluation in evolm's
exact framing on the result pipe and exiting, and patching the scorer (the domain class, the
domain object, the codec) before returning. Neither may choose the score. Also: the decoding
caps against a hostile result, a scorer that hangs, crashes or raises, and that each built-in
domain scores the same through the sandbox as with its one-process ``evaluate``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import numpy as np
import pytest

from evolm.domains.base import get_domain
from evolm.types import DescriptorSpace, Evaluation, Status
from tests.sandbox.harness import (
    TIER_PARAMS,
    Sandbox,
    open_sandbox,
    wait_no_processes,
    zygote_pids,
)

SPLIT = "tests.sandbox.split_domain:SplitDomain"
IMAGE = get_domain("image")
BLACK = "import numpy as np\n\ndef draw():\n    return np.zeros((32, 32, 3))\n"

# A program's helper that writes one frame in evolm's exact framing on the result pipe and exits,
# so that this frame, and nothing else, is what the program's child sends back.
FRAME = """
import os, struct, msgpack

def _send(obj):
    blob = msgpack.packb(obj, use_bin_type=True)
    os.write(3, struct.pack(">I", len(blob)) + blob)
    os._exit(0)
"""
FORGED = {
    "status": "ok",
    "fitness": 1e300,
    "descriptors": [0.5, 0.5, 0.5],
    "extras": {"forged": True},
    "wall_time": 0.0,
    "cpu_time": 0.0,
    "error": None,
}


def _open(request: pytest.FixtureRequest, domain: str) -> Iterator[Sandbox]:
    sb = open_sandbox(request.param, domain=domain, timeout=5.0)
    try:
        yield sb
    finally:
        sb.close()
        assert not wait_no_processes(sb.pool.sandbox_id), "closing the pool left processes"


@pytest.fixture(scope="module", params=TIER_PARAMS)
def image(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    yield from _open(request, "image")


@pytest.fixture(scope="module", params=TIER_PARAMS)
def split(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    yield from _open(request, SPLIT)


def _same(ev: Evaluation, ref: Evaluation) -> None:
    got = (ev.status, ev.fitness, ev.descriptors, ev.extras, ev.error)
    assert got == (ref.status, ref.fitness, ref.descriptors, ref.extras, ref.error)


# --- forged frames -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["in draw()", "at import"])
def test_forged_evaluation_frame_does_not_choose_the_score(image: Sandbox, where: str) -> None:
    send = f"_send({FORGED!r})"
    if where == "in draw()":
        code = FRAME + f"\ndef draw():\n    {send}\n"
    else:
        code = FRAME + f"\n{send}\n\ndef draw():\n    return np.zeros((32, 32, 3))\n"
    ev = image.run(code)
    assert ev.status is Status.ERROR, ev
    assert "evaluation where its data belongs" in ev.error
    assert ev.fitness is None and "forged" not in ev.extras
    _same(image.run(BLACK), IMAGE.evaluate(BLACK))  # the worker is fine afterwards


def test_forged_data_frame_is_scored_like_a_returned_value(image: Sandbox) -> None:
    # Data in place of the program's return value is no more than returning it: validated and
    # scored by the scorer, never taken as a score.
    ev = image.run(FRAME + '\ndef draw():\n    _send({"data": [[1.0]]})\n')
    assert ev.status is Status.INVALID and "draw() returned list" in ev.error
    ev = image.run(
        FRAME + '\ndef draw():\n    _send({"data": 1e300, "fitness": 0.0})\n'
    )  # not exactly {"data": ...}: read as an evaluation, and not an ok one
    assert ev.status is Status.ERROR and ev.fitness is None
    black = "from evolm.sandbox import codec\n" + FRAME.replace(
        "blob = msgpack.packb(obj, use_bin_type=True)", "blob = codec.encode_run_output(obj)"
    )
    ev = image.run(black + "\ndef draw():\n    _send(np.zeros((32, 32, 3)))\n")
    _same(ev, IMAGE.evaluate(BLACK))


def test_forged_deep_or_huge_data_is_refused(image: Sandbox) -> None:
    deep = FRAME.replace(
        "blob = msgpack.packb(obj, use_bin_type=True)",
        'blob = b"\\x81\\xa4data" + b"\\x91" * 3000 + b"\\xc0"',
    )
    ev = image.run(deep + "\ndef draw():\n    _send(None)\n")
    assert ev.status is Status.ERROR and "nested too deeply" in ev.error
    ev = image.run(FRAME + "\ndef draw():\n    _send({'data': [[]] * 3_000_000})\n")
    assert ev.status is Status.ERROR and "too large after decoding" in ev.error
    _same(image.run(BLACK), IMAGE.evaluate(BLACK))


# --- patching the scorer -------------------------------------------------------------------------

PATCH = """
import gc
import evolm.domains.image as image_module
from evolm.sandbox import codec, scorer
from evolm.types import Evaluation, Status

def fake(*args, **kwargs):
    return Evaluation(Status.OK, 0.0, (0.5, 0.5, 0.5), extras={"patched": True})

image_module.ImageDomain.score = fake
image_module.ImageDomain.evaluate = fake
scorer.score_frame = lambda *args: codec.encode_evaluation(fake())
codec.decode_run_output = lambda blob: (None, fake())
np.sqrt = np.mean = lambda *args, **kwargs: 0.0
for obj in gc.get_objects():
    if isinstance(obj, image_module.ImageDomain):
        obj.target_image = np.zeros_like(obj.target_image)
        obj.metric = "patched"

def draw():
    return np.zeros((32, 32, 3))
"""


def test_patching_the_scorer_has_no_effect(image: Sandbox) -> None:
    ev = image.run(PATCH)
    ref = IMAGE.evaluate(BLACK)  # the same picture, from a program that patches nothing
    assert ref.fitness is not None and ref.fitness < -0.1
    _same(ev, ref)
    _same(image.run(BLACK), ref)


# --- the scoring process -------------------------------------------------------------------------


def test_scoring_runs_in_one_long_lived_process_of_its_own(split: Sandbox) -> None:
    assert split.pool.info["scoring"] == "separate"
    first = split.run("def attack():\n    return 'a'\n")
    second = split.run("def attack():\n    return 'b'\n")
    assert first.ok and second.ok
    assert first.extras["value"] == "a" and second.extras["value"] == "b"
    assert first.extras["run_pid"] != first.extras["scorer_pid"]
    assert second.extras["run_pid"] != first.extras["run_pid"]  # a fresh child per program
    assert second.extras["scorer_pid"] == first.extras["scorer_pid"]


@pytest.mark.parametrize(
    ("value", "status", "words"),
    [
        ("hang", Status.TIMEOUT, "while being scored"),
        ("crash", Status.ERROR, "scorer failed"),
        ("raise", Status.ERROR, "scorer raised RuntimeError: scorer bug"),
    ],
)
def test_a_misbehaving_scorer_fails_one_program_only(
    split: Sandbox, value: str, status: Status, words: str
) -> None:
    before = split.run("def attack():\n    return 0\n").extras["scorer_pid"]
    zygotes, replaced = zygote_pids(split.pool.sandbox_id), split.pool.replaced
    ev = split.run(f"def attack():\n    return {value!r}\n", timeout=1.0)
    assert ev.status is status and words in ev.error, ev
    after = split.run("def attack():\n    return 1\n")
    assert after.ok and after.extras["value"] == 1
    assert (after.extras["scorer_pid"] == before) is (value == "raise")  # else a new scorer
    assert zygote_pids(split.pool.sandbox_id) == zygotes and split.pool.replaced == replaced


def test_in_process_domains_say_so() -> None:
    sb = open_sandbox("auto")
    try:
        assert sb.pool.info["scoring"] == "in_process"
    finally:
        sb.close()


# --- decoding caps through a one-process domain ---------------------------------------------


@pytest.fixture(scope="module", params=TIER_PARAMS)
def escape(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    yield from _open(request, "tests.sandbox.escape_domain:EscapeDomain")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("return [[]] * 3_000_000", "too large after decoding"),
        ("v = 0\nfor _ in range(200):\n    v = [v]\nreturn v", "nested too deeply"),
    ],
    ids=["huge after decoding", "deep"],
)
def test_capped_results_are_errors_not_engine_failures(
    escape: Sandbox, body: str, words: str
) -> None:
    code = "def attack():\n" + textwrap.indent(body, "    ") + "\n"
    ev = escape.run(code)
    assert ev.status is Status.ERROR and words in ev.error
    assert escape.run("def attack():\n    return 7\n").extras["value"] == 7


# --- the built-in domains: the same evaluation through the sandbox as in one process -----------

FAILING = {
    "image": ["def draw(:\n", "def draw():\n    return [1, 2]\n", "def draw():\n    1 / 0\n"],
    "parity": ["def parity(:\n", "def parity(a, b, c, d):\n    return 'x'\n"],
    "sodarace": ["def make_walker():\n    return 3\n", "def make_walker():\n    1 / 0\n"],
    "puzzles": [
        "def g():\n    return 99999500\n",
        "def g():\n    return object()\n",
        "def g():\n    return '1'\n",
        "def g():\n    1 / 0\n",
    ],
}


@pytest.mark.parametrize("tier", TIER_PARAMS)
@pytest.mark.parametrize("name", ["image", "parity", "sodarace", "puzzles"])
def test_split_domains_score_as_in_one_process(name: str, tier: str) -> None:
    dom = get_domain(name)
    assert dom.scoring == "separate"
    programs = [(code, seed) for seed, code in enumerate(dom.seeds())]
    programs += [(code, 5) for code in FAILING[name]]
    sb = open_sandbox(tier, domain=name, timeout=dom.eval_timeout)
    try:
        results = [sb.run(code, seed=seed) for code, seed in programs]
    finally:
        sb.close()
    oks = 0
    for (code, seed), ev in zip(programs, results, strict=True):
        ref = dom.evaluate(code, seed)
        _same(ev, ref)
        if ev.ok:
            oks += 1
            checked = ev.checked(
                dom.descriptor_space,
                dom.fitness_bounds,
                descriptors_in_space=dom.descriptors_in_space,
            )
            assert checked.ok, checked.error
    assert oks >= len(dom.seeds())


# --- declared bounds -----------------------------------------------------------------------------


def test_declared_bounds_reject_values_the_domain_cannot_produce() -> None:
    space = DescriptorSpace(("r", "g"), ((0.0, 1.0), (0.0, 1.0)))
    forged = Evaluation(Status.OK, 1e50, (0.5, 0.5))
    assert forged.checked(space).ok  # no bounds declared: only finiteness and FITNESS_LIMIT
    assert "beyond the limit" in (
        Evaluation(Status.OK, 1e300, (0.5, 0.5)).checked(space).error or ""
    )
    rejected = forged.checked(space, (-1.0, 0.0))
    assert rejected.status is Status.REJECTED and "outside the domain's bounds" in rejected.error
    outside = Evaluation(Status.OK, -0.5, (0.5, 1.5))
    assert outside.checked(space, (-1.0, 0.0)).ok
    rejected = outside.checked(space, (-1.0, 0.0), descriptors_in_space=True)
    assert rejected.status is Status.REJECTED and "descriptor g = 1.5" in rejected.error
    edge = Evaluation(Status.OK, -1.0, (0.0, 1.0)).checked(
        space, (-1.0, 0.0), descriptors_in_space=True
    )
    assert edge.ok and edge.fitness == -1.0  # the bounds are closed
    assert IMAGE.fitness_bounds == (-1.0, 0.0) and IMAGE.descriptors_in_space


def test_image_score_validates_forged_pictures() -> None:
    for data, words in [
        ("x", "draw() returned str"),
        (np.zeros((4, 4, 3)), "shape (4, 4, 3)"),
        (np.full((32, 32, 3), 2.0), "values in [2, 2]"),
        (np.full((32, 32, 3), np.nan), "NaN"),
    ]:
        ev = IMAGE.score(data)
        assert ev.status is Status.INVALID and words in ev.error, (data, ev)
