"""``evolm.report.show``: pictures of a Sodarace walker from a run database."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import evolm
from evolm.config import load_config
from evolm.domains.base import get_domain
from evolm.report import show
from evolm.scheduler.rebuild import build_archive, rebuild_archive
from evolm.store import RunStore
from evolm.types import Program

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("show") / "sodarace.db"
    result = evolm.run(
        {
            "llm": {"backend": "fake"},
            "budget": {"evaluations": 12},
            "engine": {"workers": 1, "batch_size": 4},
            "domain": {"params": {"sim_seconds": 3.0}},
        },
        preset="sodarace",
        out=db,
    )
    assert result.status == "completed", result
    return db


def with_program(run_db: Path, tmp_path: Path, code: str) -> tuple[Path, int]:
    db = tmp_path / "copy.db"
    shutil.copy(run_db, db)
    with RunStore(db) as store:
        pid = store.max_program_id() + 1
        store.add_programs([Program(id=pid, code=code, batch=999)])
    return db, pid


def test_show_a_program(run_db: Path, tmp_path: Path) -> None:
    png, gif = show(run_db, program=0, out_dir=tmp_path / "out")
    assert (png.name, gif.name) == ("walker-0.png", "walker-0-flat.gif")
    with PIL.open(png) as img:
        assert img.format == "PNG" and img.size == (640, 480)
    with PIL.open(gif) as anim:
        assert anim.format == "GIF" and anim.n_frames > 20
        assert anim.info["duration"] > 0


def test_show_on_another_terrain(run_db: Path, tmp_path: Path) -> None:
    paths = show(run_db, program=1, terrain="RIGHT_WALL", out_dir=tmp_path)
    assert [p.name for p in paths] == ["walker-1.png", "walker-1-right-wall.gif"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_show_an_archive_cell(run_db: Path, tmp_path: Path) -> None:
    with RunStore(run_db, readonly=True) as store:
        cfg = load_config(overrides=store.run_info()["config"])
        archive = build_archive(cfg, get_domain(cfg.domain.name, cfg.domain.params))
        rebuild_archive(archive, store)
    elite = max(archive, key=lambda ind: ind.fitness)
    cell = archive.cell_of(elite)
    assert cell is not None
    png, gif = show(run_db, cell=cell, out_dir=tmp_path)
    assert png.name == f"walker-{elite.id}.png" and gif.exists()
    empty = next(c for c in range(10_000) if c not in {archive.cell_of(i) for i in archive})
    with pytest.raises(ValueError, match=f"cell {empty} holds no elite; filled cells: "):
        show(run_db, cell=empty, out_dir=tmp_path)


def test_untrusted_code_runs_in_another_process(run_db: Path, tmp_path: Path) -> None:
    code = (
        "import os\n\n\n"
        "def make_walker():\n"
        f"    if os.getpid() == {os.getpid()}:\n"
        "        raise RuntimeError('ran in the calling process')\n"
        "    wc = walker_creator()\n"
        "    wc.add_muscle(wc.add_joint(0, 0), wc.add_joint(8, 0), 0.3, 0.0)\n"
        "    return wc.get_walker()\n"
    )
    db, pid = with_program(run_db, tmp_path, code)
    assert len(show(db, program=pid, out_dir=tmp_path)) == 2


@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("def make_walker():\n    return 3\n", "invalid: make_walker\\(\\) returned int"),
        ("def make_walker():\n    raise KeyError('x')\n", "error: KeyError"),
    ],
)
def test_program_that_gives_no_walker(run_db: Path, tmp_path: Path, code: str, match: str) -> None:
    db, pid = with_program(run_db, tmp_path, code)
    with pytest.raises(ValueError, match=f"program {pid} does not give a walker to show: {match}"):
        show(db, program=pid, out_dir=tmp_path)


def test_bad_requests(run_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of program"):
        show(run_db, out_dir=tmp_path)
    with pytest.raises(ValueError, match="exactly one of program"):
        show(run_db, program=0, cell=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="no program with id 4242"):
        show(run_db, program=4242, out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown terrain 'lava'"):
        show(run_db, program=0, terrain="lava", out_dir=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        show(tmp_path / "missing.db", program=0, out_dir=tmp_path)
    assert not list(tmp_path.glob("*.png"))


def test_not_a_sodarace_run(tmp_path: Path) -> None:
    db = tmp_path / "image.db"
    evolm.run(
        {"llm": {"backend": "fake"}, "budget": {"evaluations": 4}, "engine": {"workers": 1}},
        preset="image",
        out=db,
    )
    with pytest.raises(ValueError, match="is a 'image' run; show draws Sodarace walkers only"):
        show(db, program=0, out_dir=tmp_path)
