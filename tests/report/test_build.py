"""`evolm report` on recorded runs of every domain, a failed run, a killed and a resumed run,
and several runs side by side: the page parses, loads nothing from the network, holds plotly
once, and shows what the run database holds (checked against an independent rebuild)."""

from __future__ import annotations

import json
import os
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from plotly.offline import get_plotlyjs

from evolm.config import RunConfig
from evolm.domains.base import get_domain
from evolm.scheduler.rebuild import build_archive, rebuild_archive
from evolm.store import RunStore

from .conftest import DOMAIN_RUNS, evolm


class _Page(HTMLParser):
    """The page's elements: external references, scripts, and the report's data block."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts = 0
        self.script_srcs: list[str] = []
        self.data_text: str | None = None
        self._in_data = False
        self._chunks: list[str] = []
        self.tags: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        a = dict(attrs)
        for key in ("src", "href", "action", "data"):
            if a.get(key):
                self.refs.append(str(a[key]))
        if tag == "script":
            self.scripts += 1
            if a.get("src"):
                self.script_srcs.append(str(a["src"]))
            self._in_data = a.get("id") == "evolm-data"
        if tag == "link":
            self.refs.append(str(a.get("href")))

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self._chunks.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_data:
            self._in_data = False
            self.data_text = "".join(self._chunks)


def report(dbs: list[Path], out: Path, *extra: str) -> tuple[str, dict[str, Any], Any]:
    proc = evolm("report", *dbs, "--out", out, *extra)
    assert f"wrote {out}" in proc.stderr and "MiB" in proc.stderr
    html = out.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    page.close()
    assert page.data_text is not None
    return html, json.loads(page.data_text), page


def check_page(html: str, page: _Page) -> None:
    assert not [r for r in page.refs if r.lower().startswith(("http:", "https:", "//"))]
    assert page.script_srcs == []  # every script inline
    assert page.scripts == 3  # the data, plotly.js, the page's script
    banner = get_plotlyjs()[:300]
    assert html.count(banner) == 1  # plotly.js once


def rebuilt(db: Path) -> tuple[Any, list[Any], dict[str, int]]:
    """The final archive, rebuilt here as `evolm status` does, with the step count."""
    with RunStore(db, readonly=True) as store:
        cfg = RunConfig.model_validate(store.run_info()["config"])
        archive = build_archive(cfg, get_domain(cfg.domain.name, cfg.domain.params))
        rebuild_archive(archive, store)
        steps = store.steps()
        counts = store.counts()
    return archive, steps, counts


def stored_code(db: Path, pid: int) -> str:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT code FROM programs WHERE id = ?", (pid,)).fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("name", sorted(DOMAIN_RUNS))
def test_report_of_every_domain(name: str, domain_runs: dict[str, Path], tmp_path: Path) -> None:
    db = domain_runs[name]
    html, data, page = report([db], tmp_path / "r.html", "--no-animations")
    check_page(html, page)
    assert data["compare"] is None
    run = data["runs"][0]
    archive, steps, counts = rebuilt(db)
    export = archive.export()
    # the archive as the page draws it: one cell per elite, the same ids and cells
    final = run["archive"]["snapshots"][-1]
    assert sorted(final["ids"]) == sorted(e["id"] for e in export)
    if run["archive"]["mode"] != "points":
        assert sorted(final["cell"]) == sorted(e["cell"] for e in export)
    assert run["totals"]["elites"] == len(export)
    expected_mode = {"image-cvt": "cvt", "image-ga": "points"}.get(name, "grid")
    assert run["archive"]["mode"] == expected_mode
    # the best elite first, with its code as stored
    best = max(export, key=lambda e: (e["fitness"], -e["id"]))
    assert run["best"][0] == best["id"]
    shown = run["elites"][str(best["id"])]
    assert shown["code"] == stored_code(db, best["id"])
    assert json.dumps(shown["code"])[1:40] in html  # the code is in the page
    # series: one point per step here (small runs), ending at the last step
    assert run["series"]["batch"] == [s.batch for s in steps]
    assert run["series"]["qd_score"][-1] == pytest.approx(steps[-1].qd_score, rel=1e-5)
    assert run["series"]["mean_fitness"][-1] == pytest.approx(archive.stats.mean_fitness, rel=1e-5)
    # failures add up to the non-ok programs
    assert run["failures"]["total"] == sum(v for k, v in counts.items() if k != "ok")
    # every shown elite has its lineage, down to seeds
    for pid in run["elites"]:
        node = run["lineage"][pid]
        assert node["id"] == int(pid)
        for parent in node["parents"]:
            assert str(parent) in run["lineage"]
    assert run["info"]["state"] == "completed"
    # the domain's own view of the best elite (walker, picture, packing, puzzle, text, ...)
    assert "<" in shown.get("view", "") and "<script" not in shown["view"].lower()


def test_sodarace_gait_animations(domain_runs: dict[str, Path], tmp_path: Path) -> None:
    html, data, page = report([domain_runs["sodarace"]], tmp_path / "r.html")
    check_page(html, page)
    run = data["runs"][0]
    best = run["elites"][str(run["best"][0])]
    assert "<svg" in best["view"] and "<svg" in best["animation"]  # re-run in the sandbox
    assert not [n for n in run["notes"] if "failed" in n]


def test_report_with_three_descriptors_and_snapshots(
    domain_runs: dict[str, Path], tmp_path
) -> None:
    _, data, _ = report([domain_runs["image"]], tmp_path / "r.html", "--no-animations")
    run = data["runs"][0]
    assert run["archive"]["names"] == ["mean_r", "mean_g", "mean_b"]
    snaps = run["archive"]["snapshots"]
    assert len(snaps) >= 2
    assert [s["batch"] for s in snaps] == sorted(s["batch"] for s in snaps)
    assert len(snaps[0]["ids"]) <= len(snaps[-1]["ids"])  # the grid archive only fills up


def test_max_elites_caps_code_but_not_cells(domain_runs: dict[str, Path], tmp_path) -> None:
    _, data, _ = report([domain_runs["poetry"]], tmp_path / "r.html", "--max-elites", "2",
                        "--no-animations")  # fmt: skip
    run = data["runs"][0]
    assert len(run["elites"]) == 2
    assert len(run["archive"]["snapshots"][-1]["ids"]) == run["totals"]["elites"] > 2
    assert any("--max-elites" in n for n in run["notes"])


def test_every_program_fails(all_fail_run: Path, tmp_path: Path) -> None:
    html, data, page = report([all_fail_run], tmp_path / "r.html")
    check_page(html, page)
    run = data["runs"][0]
    assert run["archive"]["snapshots"][-1]["ids"] == [] and run["best"] == []
    groups = run["failures"]["groups"]
    # twelve errors on different lines are one reason
    assert [(g["status"], g["reason"], g["count"]) for g in groups] == [
        ("error", "ZeroDivisionError: division by zero (line N)", 12)]  # fmt: skip
    assert groups[0]["example"].startswith("ZeroDivisionError: division by zero (line ")


def test_failed_run(failed_run: Path, tmp_path: Path) -> None:
    html, data, page = report([failed_run], tmp_path / "r.html")
    check_page(html, page)
    run = data["runs"][0]
    assert run["info"]["state"] == "failed"
    assert run["end"]["status"] == "failed" and "every LLM call failed" in run["end"]["reason"]
    assert run["totals"]["llm"]["errors"] == run["totals"]["llm"]["calls"] > 0


def test_killed_run_is_read_untouched_and_resumed_run_marks_the_resume(
    killed_and_resumed: tuple[Path, Path], tmp_path: Path
) -> None:
    killed, resumed = killed_and_resumed
    # the database and its write-ahead log (readers may update the -shm index, by design)
    files = [killed, Path(f"{killed}-wal")]
    before = [p.read_bytes() if p.exists() else None for p in files]
    _, data, _ = report([killed], tmp_path / "k.html")
    assert [p.read_bytes() if p.exists() else None for p in files] == before
    run = data["runs"][0]
    assert run["info"]["state"] == "interrupted" and run["end"] is None
    assert run["totals"]["batches"] >= 4

    _, data, _ = report([resumed], tmp_path / "r.html")
    run = data["runs"][0]
    assert run["info"]["state"] == "completed"
    with RunStore(resumed, readonly=True) as store:
        resumes = store.resumes()
    assert [m["from_batch"] for m in run["resumes"]] == [r.from_batch for r in resumes]
    mark = run["resumes"][0]
    i = run["series"]["batch"].index(mark["from_batch"])  # the resume point is plotted
    assert mark["evaluations"] == run["series"]["evaluations"][i]


def test_runs_side_by_side(domain_runs: dict[str, Path], runs_dir: Path, tmp_path) -> None:
    second = runs_dir / "image-seed2.db"
    if not second.exists():
        evolm("run", "image", "--llm", "fake", "--budget-evals", 24, "--seed", 2, "--out",
              second, "-q")  # fmt: skip
    dbs = [domain_runs["image"], second, domain_runs["image-cvt"]]
    html, data, page = report(dbs, tmp_path / "r.html", "--no-animations")
    check_page(html, page)
    assert len(data["runs"]) == 3
    groups = data["compare"]["groups"]
    assert [g["members"] for g in groups] == [[0, 1], [2]]
    assert [g["seeds"] for g in groups] == [[1, 2], [1]]
    finals = [r["series"]["qd_score"][-1] for r in data["runs"][:2]]
    from evolm.stats import t_interval

    mean, half = t_interval(finals)
    assert groups[0]["final"]["qd_score"]["mean"] == pytest.approx(mean, rel=1e-5)
    assert groups[0]["final"]["qd_score"]["half"] == pytest.approx(half, rel=1e-5)
    assert groups[0]["label"] != groups[1]["label"]
    # every run measured on one reference grid (the first grid run's bins), as `evolm compare`
    # measures its runs: the CVT run's figures agree with evolm.comparison's
    from evolm.comparison import ReferenceGrid, measure_run

    assert data["compare"]["reference_bins"] == [6, 6, 6]
    cvt = data["runs"][2]["reference"]["series"]
    measured = measure_run(dbs[2], ReferenceGrid(bins=(6, 6, 6)))
    assert cvt["qd_score"][-1] == pytest.approx(measured["qd_score"], rel=1e-5)
    assert cvt["coverage"][-1] == pytest.approx(measured["coverage"], rel=1e-5)
    assert groups[1]["final"]["qd_score"]["mean"] == pytest.approx(measured["qd_score"], rel=1e-5)
    assert len(cvt["qd_score"]) == len(data["runs"][2]["series"]["batch"])


def test_finetune_rounds_and_experiment_label(domain_runs: dict[str, Path], tmp_path: Path) -> None:
    """A copy of a real run given a fine-tuning round and the label `evolm compare` records,
    both written through the store's public methods as the engine writes them."""
    from evolm.events import FinetuneRoundEvent

    db = tmp_path / "ft.db"
    db.write_bytes(domain_runs["image"].read_bytes())
    with RunStore(db) as store:
        last = store.last_step()
        assert last is not None
        store.record(
            FinetuneRoundEvent(
                batch=1, round=1, status="ok", accepted=5, examples={"train": 4, "val": 1},
                metrics={"val_loss_before": 2.5, "val_loss_after": 1.25}, seconds=3.0,
                adapter="a.gguf", applied=("fake",),
            )
        )  # fmt: skip
        store.add_event("experiment", {"label": "arm-a", "seed": 1})
    _, data, _ = report([db], tmp_path / "r.html", "--no-animations")
    run = data["runs"][0]
    assert run["info"]["label"] == "arm-a"
    (only,) = run["finetune"]["rounds"]
    assert only["round"] == 1 and only["metrics"]["val_loss_after"] == 1.25
    periods = run["finetune"]["periods"]
    assert [p["period"] for p in periods] == ["before round 1", "after round 1"]
    assert sum(p["candidates"] for p in periods) == sum(
        int(a["chosen"]) for a in run["arm_totals"].values()
    )


def test_a_run_being_written_reads_as_running(domain_runs: dict[str, Path], tmp_path: Path) -> None:
    from evolm.report.data import load_run
    from evolm.runlock import RunLock

    db = tmp_path / "live.db"
    db.write_bytes(domain_runs["parity"].read_bytes())
    with RunStore(db) as store:
        store.set_status("running")
    with RunLock(db, command="a test holding the writer's lock"):
        assert load_run(db, animations=False)["info"]["state"] == "running"
    assert load_run(db, animations=False)["info"]["state"] == "interrupted"  # writer gone


def test_clear_errors(domain_runs: dict[str, Path], tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a database\n" * 100)
    p = evolm("report", text, "--out", tmp_path / "r.html", check=False)
    assert p.returncode == 2 and "is not an evolm run database" in p.stderr

    p = evolm("report", tmp_path / "missing.db", "--out", tmp_path / "r.html", check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr

    empty = tmp_path / "empty.db"
    with RunStore(empty) as store:
        store.create_run(seed=0, domain="image", config={"domain": {"name": "image"}}, versions={})
    p = evolm("report", empty, "--out", tmp_path / "r.html", check=False)
    assert p.returncode == 2 and "no programs yet" in p.stderr

    p = evolm("report", domain_runs["image"], "--out", tmp_path / "no" / "dir" / "r.html",
              check=False)  # fmt: skip
    assert p.returncode == 2 and "does not exist" in p.stderr and "mkdir -p" in p.stderr
    assert not (tmp_path / "r.html").exists()

    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.db"
        locked.write_bytes(domain_runs["image"].read_bytes())
        locked.chmod(0)
        p = evolm("report", locked, "--out", tmp_path / "r.html", check=False)
        assert p.returncode == 2 and str(locked) in p.stderr


_IMPORTS_CHILD = """
import json, sys
from typer.testing import CliRunner
from evolm.cli import app
result = CliRunner().invoke(app, ["report", sys.argv[1], "--out", sys.argv[2], "--no-animations"])
assert result.exit_code == 0, result.output
print(json.dumps(sorted(sys.modules)))
"""


def test_report_imports_no_runner_sandbox_or_llm_client(
    domain_runs: dict[str, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    from .conftest import ROOT

    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS_CHILD, str(domain_runs["image"]), str(tmp_path / "r.html")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "evolm.scheduler.rebuild" in modules and "evolm.report.domain_views" in modules
    heavy = ("evolm.runner", "evolm.engine", "evolm.sandbox.pool", "llama_cpp", "openai")
    assert [m for m in heavy if m in modules] == []


def test_status_and_show_still_work(domain_runs: dict[str, Path]) -> None:
    st = evolm("status", domain_runs["image"])
    assert "QD score" in st.stdout and "best program" in st.stdout
