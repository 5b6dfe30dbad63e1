"""``evolm.report.domain_views``: one program's result as an HTML fragment, for every domain.

Every view is checked on programs of a real run database (small runs with the fake LLM, made
once per module) or a real re-evaluation through the sandbox: the fragment parses as HTML with
balanced tags, refers to nothing outside itself, and shows the right thing. One example of each
view is saved under ``$EVOLM_SCREENSHOTS`` (default: a temporary folder) for looking at.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import evolm
from evolm.report.domain_views import animations, renders, view
from evolm.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "examples" / "circle_packing"
_VOID = {"img", "br", "hr", "meta", "link", "input", "source", "wbr", "col", "area"}
_SVG_EMPTY = {"rect", "circle", "line", "path", "polygon", "animate", "animatetransform"}


# -- helpers ---------------------------------------------------------------------------------
class _Checker(HTMLParser):
    """Collects tags and attributes; fails on unbalanced tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check(fragment: str | None, name: str | None = None) -> _Checker:
    """Parse ``fragment``: balanced tags, no script, no reference outside the fragment; save
    it as ``<name>.html`` under $EVOLM_SCREENSHOTS when a name is given."""
    assert isinstance(fragment, str) and fragment
    parser = _Checker()
    parser.feed(fragment)
    parser.close()
    assert parser.stack == [], f"unclosed tags {parser.stack}"
    assert "<script" not in fragment.lower()
    for tag, attrs in parser.tags:
        for key in ("src", "href", "xlink:href"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith("data:"), f"<{tag} {key}={value[:60]!r}> is not inline"
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", fragment, re.I), "a URL"
    if name is not None:
        out = Path(os.environ.get("EVOLM_SCREENSHOTS") or _shots())
        out.mkdir(parents=True, exist_ok=True)
        (out / f"view-{name}.html").write_text(
            '<!doctype html><html><head><meta charset="utf-8"><title>'
            f"{name}</title></head><body>{fragment}</body></html>",
            encoding="utf-8",
        )
    return parser


_SHOTS: list[str] = []


def _shots() -> str:
    if not _SHOTS:
        import tempfile

        _SHOTS.append(tempfile.mkdtemp(prefix="evolm-views-"))
    return _SHOTS[0]


def count(parser: _Checker, tag: str, cls: str | None = None) -> int:
    return sum(
        1
        for t, attrs in parser.tags
        if t == tag and (cls is None or cls in (attrs.get("class") or "").split())
    )


def assert_animated_walker(parser: _Checker, joints: list[Any], muscles: list[Any]) -> None:
    """The gait animation draws every bone and muscle (one segment each, in paths grouped by
    look), every joint, and animates each path and the camera."""
    paths = [a for t, a in parser.tags if t == "path" and a.get("class") in ("bone", "muscle")]
    bones = sum(1 for m in muscles if m[2] == 0.0)
    drawn = {"bone": 0, "muscle": 0}
    for a in paths:
        segments = str(a["d"]).count("M")
        assert segments == int(str(a["data-n"]))
        drawn[str(a["class"])] += segments
    assert drawn == {"bone": bones, "muscle": len(muscles) - bones}
    dots = next(a for t, a in parser.tags if t == "path" and a.get("class") == "joints")
    assert str(dots["d"]).count("h0") == len(joints)
    assert count(parser, "animate") == len(paths) + 2  # + the joints' outline and fill
    assert count(parser, "animatetransform") == 1


def make_run(tmp: Path, preset: str | None, **overrides: Any) -> Path:
    db = tmp / f"{preset or 'user'}.db"
    config: dict[str, Any] = {
        "llm": {"backend": "fake"},
        "budget": {"evaluations": 8},
        "engine": {"workers": 1, "batch_size": 4},
    }
    config.update(overrides)
    result = evolm.run(config, preset=preset, out=db)
    assert result.status == "completed", result.error
    return db


def programs(db: Path) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """The run's domain name and parameters, and its evaluated programs as the report reads
    them."""
    with RunStore(db, readonly=True) as store:
        domain = store.run_info()["config"]["domain"]
        out = [
            {
                "id": ind.program.id,
                "code": ind.program.code,
                "status": ind.evaluation.status.value,
                "fitness": ind.evaluation.fitness,
                "descriptors": ind.evaluation.descriptors,
                "extras": ind.evaluation.extras,
            }
            for ind in store.evaluated()
        ]
    return domain["name"], domain.get("params") or {}, out


def decode_png(uri: str) -> tuple[int, int, bytes]:
    """Width, height and RGB bytes of an 8-bit truecolour PNG data URI (no filters)."""
    assert uri.startswith("data:image/png;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows = [raw[y * (3 * w + 1) + 1 : (y + 1) * (3 * w + 1)] for y in range(h)]
    return w, h, b"".join(rows)


# -- runs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small real runs of every built-in domain (and a user domain), made once."""
    tmp = tmp_path_factory.mktemp("views")
    return {
        "sodarace": make_run(tmp, "sodarace", domain={"params": {"sim_seconds": 3.0}}),
        "image": make_run(tmp, "image"),
        "parity": make_run(tmp, "parity"),
        "puzzles": make_run(tmp, "puzzles"),
        "coevolve": make_run(tmp, "puzzles-coevolve"),
        "poetry": make_run(tmp, "poetry"),
        "prompts": make_run(tmp, "prompts"),
        "task": make_run(
            tmp,
            "task",
            domain={"name": "task", "params": {"path": str(TASK)}},
            budget={"llm_calls": 4},
        ),
        "user": make_run(
            tmp,
            None,
            domain={"name": "tests.report.viewed_domain:ViewedDomain"},
            archive={"kind": "grid", "bins": [4, 4]},
        ),
    }


# -- per domain ------------------------------------------------------------------------------
def test_sodarace_shows_one_line_per_bone_and_muscle_of_the_stored_walker(runs):
    name, params, progs = programs(runs["sodarace"])
    ok = [p for p in progs if p["status"] == "ok"]
    assert ok
    for i, p in enumerate(ok):
        walker = p["extras"]["walker"]
        assert len(walker["joints"]) == p["extras"]["joints"]
        parser = check(view(name, params, p), "sodarace" if i == 0 else None)
        muscles = walker["muscles"]
        bones = sum(1 for m in muscles if m[2] == 0.0)
        assert count(parser, "line", "bone") == bones
        assert count(parser, "line", "muscle") == len(muscles) - bones
        assert count(parser, "line") == len(muscles) == p["extras"]["muscles"]
        assert count(parser, "circle", "joint") == len(walker["joints"])
    failed = [p for p in progs if p["status"] != "ok"]
    for p in failed:  # no body stored: a note, not a picture
        parser = check(view(name, params, p))
        assert count(parser, "svg") == 0 and "evolm-note" in view(name, params, p)


def test_sodarace_gait_animation_of_the_best_elite(runs):
    _, _, progs = programs(runs["sodarace"])
    best = max((p for p in progs if p["status"] == "ok"), key=lambda p: p["fitness"])
    missing = max(p["id"] for p in progs) + 100
    frags = animations(runs["sodarace"], [best["id"], missing])
    assert list(frags) == [best["id"], missing]
    anim = frags[best["id"]]
    parser = check(anim, "sodarace-gait")
    assert len(anim.encode()) < 300_000
    walker = best["extras"]["walker"]
    assert_animated_walker(parser, walker["joints"], walker["muscles"])
    # the re-run reproduces the stored result: the caption gives the stored fitness
    assert f"fitness {best['fitness']:.4g} units" in html.unescape(anim)
    assert f"no program with id {missing}" in frags[missing]
    # another domain's run has no gait to animate: a note per program
    other = animations(runs["parity"], [0])
    assert "no animation for 'parity'" in html.unescape(other[0]) and "<svg" not in other[0]


def test_image_view_shows_the_target_and_renders_redraw_the_picture(runs):
    name, params, progs = programs(runs["image"])
    ok = [p for p in progs if p["status"] == "ok"][:3]
    parser = check(view(name, params, ok[0]), "image")
    imgs = [attrs["src"] for tag, attrs in parser.tags if tag == "img"]
    w, h, _ = decode_png(str(imgs[0]))
    assert (w, h) == (params.get("size", 32),) * 2
    frags = renders(runs["image"], [p["id"] for p in ok])
    for i, p in enumerate(ok):
        parser = check(frags[p["id"]], "image-render" if i == 0 else None)
        src = next(str(a["src"]) for t, a in parser.tags if t == "img")
        w, h, rgb = decode_png(src)
        # the re-drawn picture's mean colour is the one stored as the program's descriptors
        means = [sum(rgb[c::3]) / (w * h) / 255 for c in range(3)]
        for got, want in zip(means, p["descriptors"], strict=True):
            assert got == pytest.approx(want, abs=1 / 255)
    failed = next(p for p in progs if p["status"] != "ok")
    note = renders(runs["image"], [failed["id"]])[failed["id"]]
    assert "re-running it failed" in note and "<img" not in note


def test_parity_truth_table(runs):
    name, params, progs = programs(runs["parity"])
    for i, p in enumerate(progs):
        parser = check(view(name, params, p), "parity" if i == 0 else None)
        if p["status"] == "ok":
            assert count(parser, "td", "ok") == p["extras"]["correct"]
            assert count(parser, "td", "ok") + count(parser, "td", "wrong") == 16


def test_puzzle_and_solution_side_by_side(runs):
    from evolm.domains.puzzles import PuzzleDomain

    name, params, progs = programs(runs["puzzles"])
    f_source = PuzzleDomain(**params).puzzle.f
    for i, p in enumerate(progs):
        frag = view(name, params, p)
        check(frag, "puzzles" if i == 0 else None)
        text = html.unescape(frag)
        assert f_source.strip() in text and p["code"].strip() in text
        if p["status"] == "ok":
            assert ("not solved" in text) == (p["extras"]["solved"] is False)


def test_coevolved_puzzles_show_difficulty_and_skill_tags(runs):
    name, params, progs = programs(runs["coevolve"])
    puzzles = [p for p in progs if p["extras"].get("population") == "puzzles"]
    solutions = [p for p in progs if p["extras"].get("population") == "solutions"]
    assert puzzles and solutions
    for p in puzzles:
        text = html.unescape(view(name, params, p) or "")
        check(view(name, params, p), "coevolve-puzzle" if p is puzzles[0] else None)
        tags = p["extras"].get("tags")
        if tags:
            on = [k for k, v in tags.items() if v]
            assert f"skill tags{', '.join(on) or 'none'}" in re.sub(r"<[^>]+>", "", text)
        if p["status"] == "ok":
            assert "difficulty" in text
    s = solutions[0]
    text = html.unescape(view(name, params, s) or "")
    check(view(name, params, s), "coevolve-solution")
    assert s["code"].strip() in text and f"solves puzzle{s['extras']['puzzle']}" in re.sub(
        r"<[^>]+>", "", text
    )


def test_poetry_text_with_judge_scores(runs):
    name, params, progs = programs(runs["poetry"])
    p = next(p for p in progs if p["status"] == "ok")
    frag = view(name, params, p)
    parser = check(frag, "poetry")
    text = html.unescape(frag)
    assert p["code"].strip() in text
    for axis, prob in p["extras"]["probs"].items():
        assert f"{axis}" in text and f"{prob:.4g}" in text
    assert f"{p['extras']['quality']:.4g}" in text
    assert count(parser, "table", "evolm-judge") == 1


def test_prompts_instruction_with_accuracy(runs):
    name, params, progs = programs(runs["prompts"])
    p = next(p for p in progs if p["status"] == "ok")
    frag = view(name, params, p)
    parser = check(frag, "prompts")
    text = html.unescape(frag)
    assert p["code"].strip() in text
    assert f"{p['extras']['validation_accuracy']:.4g}" in text
    assert count(parser, "table", "evolm-answers") == 1
    from evolm.domains.prompts import PromptsDomain

    items = PromptsDomain(**params).splits.validation
    cells = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", frag)
    assert len(cells) == len(items)
    for (_, given, target, answer), item, shown in zip(
        cells, items, p["extras"]["answers"], strict=True
    ):
        assert html.unescape(given) == item.input[:200] and html.unescape(target) == item.target
        assert html.unescape(answer) == shown


def test_circle_packing_one_circle_per_circle(runs):
    name, params, progs = programs(runs["task"])
    seed = progs[0]
    metrics = seed["extras"]["metrics"]
    assert seed["status"] == "ok" and len(metrics["centers"]) == len(metrics["radii"]) == 26
    assert math.fsum(metrics["radii"]) == pytest.approx(seed["fitness"], abs=1e-12)
    frag = view(name, params, seed)
    parser = check(frag, "circle-packing")
    discs = [a for t, a in parser.tags if t == "circle" and a.get("class") == "disc"]
    assert len(discs) == 26
    side = 320 - 16
    for (x, y), r, d in zip(metrics["centers"], metrics["radii"], discs, strict=True):
        assert float(str(d["cx"])) == pytest.approx(8 + x * side, abs=0.01)
        assert float(str(d["cy"])) == pytest.approx(8 + (1 - y) * side, abs=0.01)
        assert float(str(d["r"])) == pytest.approx(r * side, abs=0.01)
    assert "sum_radii" in frag and "centers" not in re.sub(r"<[^>]+>", "", frag.split("<pre")[0])


def test_user_domain_report_view_is_used_first_with_the_generic_fallback(runs):
    name, params, progs = programs(runs["user"])
    even = next(p for p in progs if p["id"] % 2 == 0)
    odd = next(p for p in progs if p["id"] % 2 == 1)
    own = view(name, params, even)
    parser = check(own, "user-report-view")
    assert count(parser, "p", "viewed") == 1 and f"program {even['id']} by ViewedDomain" in own
    generic = view(name, params, odd)
    check(generic, "generic")
    assert "by ViewedDomain" not in generic and html.escape(odd["code"].strip()) in generic
    broken = view(name, params, dict(even, code="raise in report_view"))
    check(broken)
    assert "report_view failed: RuntimeError: this view is broken" in broken


def test_generic_view_tables_scalar_extras():
    frag = view(
        "my_pkg.mod:Thing",
        {},
        {
            "id": 3,
            "code": "x = '<b>'",
            "status": "ok",
            "fitness": 1.5,
            "descriptors": [0.1, 0.2],
            "extras": {"score": 0.25, "label": "<i>", "nested": {"a": 1}, "xs": [1, 2, 3]},
        },
    )
    parser = check(frag)
    text = "".join(parser.text)
    assert "score0.25" in text and "label<i>" in text and "nested.a1" in text
    assert "xs[3 values]" in text and "x = '<b>'" in text
    assert "<i>" not in frag and "<b>" not in frag  # escaped


# -- odd extras ------------------------------------------------------------------------------
ODD_EXTRAS: list[Any] = [
    None,
    {},
    "not a map",
    {"truncated": 70_000, "keys": ["walker", "metrics"]},
    {"truncated": 12},
    {"walker": "garbage", "metrics": {"centers": [[0.5, "x"]], "radii": [float("nan")]}},
    {"walker": {"joints": [[0, 0], [1, float("nan")]], "muscles": [[0, 5, 0.1, 0.0]]}},
    {"answers": [1] * 15, "probs": {"form": float("nan")}, "quality": "high", "tags": [1, 2]},
    {"metrics": {"centers": [[0.5, 0.5]] * 3, "radii": [0.1, 0.2]}, "population": "puzzles"},
    {"metrics": "broken", "correct": 3, "answers": None, "judge": {"q": "x"}},
    {"population": "solutions", "solved_by": "all"},
    {"frames": [[1, 2]], "terrain_geometry": None, "walker": {"joints": [], "muscles": []}},
]


@pytest.mark.parametrize(
    "domain",
    ["sodarace", "image", "parity", "puzzles", "poetry", "prompts", "task", "nonesuch"],
)
@pytest.mark.parametrize("extras", ODD_EXTRAS, ids=[f"odd{i}" for i in range(len(ODD_EXTRAS))])
def test_odd_extras_give_a_fragment_never_an_exception(domain: str, extras: Any) -> None:
    program = {
        "id": 1,
        "code": "def g():\n    return 1\n",
        "status": "ok",
        "fitness": float("nan"),
        "descriptors": [float("inf"), "x"],
        "extras": extras,
    }
    frag = view(domain, {"puzzle": "no_such_puzzle", "size": "big"}, program)
    check(frag)
    if isinstance(extras, dict) and "truncated" in extras:
        assert "too large to store" in str(frag)


def test_a_truncated_sodarace_program_gets_a_note(runs):
    name, params, progs = programs(runs["sodarace"])
    p = dict(progs[0], extras={"truncated": 80_000, "keys": ["walker"]})
    frag = view(name, params, p)
    check(frag, "sodarace-truncated")
    assert "too large to store (80000 characters)" in str(frag)
    assert "no walker body stored" in str(frag)


def test_animations_of_a_path_that_is_not_a_run(tmp_path: Path):
    bogus = tmp_path / "nothing.db"
    bogus.write_text("not a database")
    out = animations(bogus, [1, 2])
    assert set(out) == {1, 2} and all("cannot re-run" in v for v in out.values())
    assert renders(bogus, []) == {}


def test_packing_of_an_invalid_program_is_still_drawn():
    """An overlapping packing is invalid, but its circles are in the metrics: the view draws
    them with the evaluator's reason."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cp_eval", TASK / "evaluator.py")
    assert spec is not None and spec.loader is not None
    evaluator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluator)
    centers = [[0.1 + 0.15 * (i % 6), 0.1 + 0.15 * (i // 6)] for i in range(26)]
    radii = [0.01] * 26
    radii[7] = 0.2  # overlaps its neighbours
    metrics = evaluator.score({"centers": centers, "radii": radii, "reported_sum": None})
    assert "overlap" in metrics["error"]
    from evolm.domains.task.worker import _plain

    stored = {k: _plain(v) for k, v in metrics.items()}
    assert stored["centers"] == centers and stored["radii"] == radii
    frag = view(
        "task",
        {},
        {"id": 9, "code": "", "status": "invalid", "fitness": None, "descriptors": None,
         "extras": {"failure": "program", "metrics": stored}, "error": metrics["error"]},
    )  # fmt: skip
    parser = check(frag, "circle-packing-invalid")
    assert count(parser, "circle", "disc") == 26 and "overlap" in str(frag)


def test_task_metrics_keep_lists_of_numbers_only():
    from evolm.domains.task.worker import MAX_METRIC_NUMBERS, _plain

    np = pytest.importorskip("numpy")
    assert _plain([[1, 2.5], [3, 4]]) == [[1.0, 2.5], [3.0, 4.0]]
    assert _plain(np.arange(4).reshape(2, 2)) == [[0.0, 1.0], [2.0, 3.0]]
    assert _plain((1, 2)) == [1.0, 2.0]
    for bad in ([1, float("nan")], [1, "a"], [True, 1], [[[[[1.0]]]]], {"a": 1}):
        assert isinstance(_plain(bad), str)
    assert isinstance(_plain(list(range(MAX_METRIC_NUMBERS + 1))), str)
    assert _plain(list(range(MAX_METRIC_NUMBERS))) == [float(i) for i in range(MAX_METRIC_NUMBERS)]
    # the budget is shared by all the metrics of one evaluation: the store keeps them all
    from evolm.domains.base import get_domain
    from evolm.domains.task.worker import check_metrics
    from evolm.store import MAX_EXTRAS_CHARS, _eval_extras

    dom = get_domain("task", {"path": str(TASK)})
    metrics = {"sum_radii": 1.0, "radius_spread": 0.0, "on_border": 0.0}
    metrics |= {f"list{i}": [0.123456789012345] * 1000 for i in range(32)}
    ev = check_metrics(dom, metrics, [])
    kept = [k for k, v in ev.extras["metrics"].items() if isinstance(v, list)]
    assert kept == ["list0"] and ev.extras["metrics"]["sum_radii"] == 1.0
    assert len(_eval_extras(ev.extras)) < MAX_EXTRAS_CHARS


def test_a_large_walker_animation_stays_small():
    """A walker at the builder's limits (200 joints, 1000 muscles) over 150 frames: frames are
    dropped so the animation stays under ~300 KB, and every muscle is still drawn."""
    from evolm.report.views.pictures import gait_svg

    joints = [[float(i % 20), float(i // 20)] for i in range(200)]
    muscles = [[i % 200, (i * 7 + 1) % 200, 0.2 if i % 3 else 0.0, 0.01 * i] for i in range(1000)]
    muscles = [m for m in muscles if m[0] != m[1]]
    frames = [[[x + 0.1 * k, y] for x, y in joints] for k in range(150)]
    extras = {
        "walker": {"joints": joints, "muscles": muscles},
        "frames": frames,
        "times": [k / 15 - 1.0 for k in range(150)],
        "terrain_geometry": {"ground": [[-100.0, 0.0], [100.0, 0.0]], "blocks": []},
    }
    svg = gait_svg(extras)
    parser = check(svg)
    assert len(svg.encode()) < 300_000
    assert_animated_walker(parser, joints, muscles)
    values = re.search(r'class="joints"[^>]*><animate attributeName="d" values="([^"]*)"', svg)
    assert values is not None and 2 <= len(values.group(1).split(";")) < 150
