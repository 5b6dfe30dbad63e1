"""``evolm run sodarace`` end to end: the CLI in a subprocess, the fake LLM, worker processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evolm.config import list_presets, load_config
from evolm.domains.base import get_domain
from evolm.scheduler.rebuild import build_archive
from evolm.store import RunStore

ROOT = Path(__file__).resolve().parents[2]


def test_presets_build() -> None:
    assert {"sodarace", "sodarace-elm", "sodarace-cvt", "sodarace-embedded"} <= set(list_presets())
    elm = load_config(preset="sodarace-elm")
    assert elm.domain.name == "sodarace" and elm.archive.bins == [12, 12, 12]
    cvt = load_config(preset="sodarace-cvt")
    assert cvt.archive.kind == "cvt"
    embedded = load_config(preset="sodarace-embedded")
    assert [o.kind for o in embedded.operator_list()] == ["line_edit"]
    assert embedded.llm.mode == "completion" and embedded.llm.lora == "shipped"
    for cfg in (load_config(preset="sodarace"), elm, embedded):
        domain = get_domain(cfg.domain.name, cfg.domain.params)
        assert build_archive(cfg, domain).stats.num_elites == 0


def test_evolm_run_sodarace(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from evolm.cli import app; app()",
            "run",
            "sodarace",
            "--llm",
            "fake",
            "--budget-evals",
            "20",
            "--out",
            str(db),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run completed" in proc.stderr
    with RunStore(db, readonly=True) as store:
        info = store.run_info()
        assert info["domain"] == "sodarace"
        evaluated = list(store.evaluated())
        counts = store.counts()
    assert len(evaluated) == 20
    seeds = [ind for ind in evaluated if ind.program.batch == 0]
    assert len(seeds) == 4 and all(ind.evaluation.ok for ind in seeds)
    assert counts.get("ok", 0) >= 12
    moved = [ind.fitness for ind in evaluated if ind.evaluation.ok]
    assert max(moved) > 1.0
    assert all(len(ind.descriptors) == 3 for ind in evaluated if ind.evaluation.ok)


def test_sodarace_replay_reproduces_the_fake_run(tmp_path: Path) -> None:
    """`evolm run sodarace` with the fake LLM, then with `--llm replay:` of it: same archive."""
    from evolm.scheduler.rebuild import rebuild_archive

    def cli(*args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-c", "from evolm.cli import app; app()", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr

    def elites(db: Path) -> list[tuple[int, float, int | None]]:
        with RunStore(db, readonly=True) as store:
            cfg = load_config(overrides=store.run_info()["config"])
            archive = build_archive(cfg, get_domain(cfg.domain.name, cfg.domain.params))
            rebuild_archive(archive, store)
            return sorted((e["id"], e["fitness"], e["cell"]) for e in archive.export())

    fake, replay = tmp_path / "fake.db", tmp_path / "replay.db"
    cli(
        "run",
        "sodarace",
        "--llm",
        "fake",
        "--budget-evals",
        "16",
        "--seed",
        "3",
        "--out",
        str(fake),
        "-q",
    )
    cli("run", "sodarace", "--budget-evals", "16", "--seed", "3", "--llm", f"replay:{fake}",
        "--out", str(replay), "-q")  # fmt: skip
    assert elites(replay) == elites(fake) and len(elites(fake)) > 0
