"""`evolm report` on large runs: build time, file size and how long headless chromium takes to
draw the page, for runs of 10^3, 10^4 and 10^5 programs.

Run: ``.venv/bin/python benchmarks/report_size.py [--sizes 1000,10000,100000] [--keep DIR]``
(a few minutes on two cores; most of it creating the 10^5 database).

- 10^3: a real run of the trivial domain (benchmarks/trivial_domain.py) with the fake model.
- 10^4, 10^5: a synthetic image-domain run (a 16x16x16 grid, so thousands of elites) written
  through ``RunStore``'s public methods: plausible programs (image-drawing code, parents drawn
  from the current elites, generations counted), 60 % ok / 25 % error / 15 % invalid evaluations
  with varied error texts, batches of 32, and step events from a real grid archive fed the same
  batches (so QD score, coverage and the archive the report rebuilds agree). No LLM call rows
  are stored (the report reads the calls from the step events).

Columns: ``build s`` (reading the database and writing the page, animations off), ``MiB``
(the HTML file), ``DOMContentLoaded`` and ``drawn`` (milliseconds from navigation start until
the DOM is parsed, and until every plot holds an SVG, on the first load in a fresh browser;
then the median drawn time of 3 loads), in headless Debian chromium.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 32


def real_run(db: Path, n: int) -> None:
    """A real run of the trivial domain with the fake model, ``n`` evaluations."""
    cfg = db.with_suffix(".toml")
    cfg.write_text(
        '[domain]\nname = "benchmarks.trivial_domain:TrivialDomain"\n'
        '[archive]\nkind = "grid"\nbins = [20, 20]\n[llm]\nbackend = "fake"\n'
        f"[engine]\nbatch_size = {BATCH}\nworkers = 2\n[budget]\nevaluations = {n}\n"
    )
    subprocess.run(
        [sys.executable, "-m", "evolm", "run", "benchmarks.trivial_domain:TrivialDomain",
         "--config", str(cfg), "--out", str(db), "-q"],
        cwd=ROOT, check=True,
    )  # fmt: skip


_TEMPLATE = """import numpy as np


def draw():
    size = 32
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3))
    img[..., 0] = {r:.3f} * x + {a:.3f}
    img[..., 1] = {g:.3f} * y + {b:.3f}
    img[..., 2] = np.clip({c:.3f} - (x - 0.5) ** 2 - (y - 0.5) ** 2, 0, 1)
    mask = (x - {cx:.2f}) ** 2 + (y - {cy:.2f}) ** 2 < {rad:.3f}
    img[mask] = [{r:.2f}, {g:.2f}, {c:.2f}]
    return np.clip(img, 0, 1)
"""
_ERRORS = [
    'Traceback (most recent call last):\n  File "program.py", line {n}, in draw\n'
    "IndexError: index {n} is out of bounds for axis 0 with size 32",
    "NameError: name 'colour_{n}' is not defined",
    "ValueError: could not broadcast input array from shape ({n},3) into shape (32,32,3)",
    "draw() returned shape ({n}, {n}); expected (N, N, 3) float in [0, 1] or uint8",
]


def _program(rng: random.Random, pid: int, batch: int, parent: Any, t0: float) -> Any:
    from evolm.types import Program

    values = {k: rng.random() for k in ("r", "g", "b", "a", "c", "cx", "cy")}
    values["rad"] = rng.random() * 0.2
    return Program(
        id=pid,
        code=_TEMPLATE.format(**values),
        batch=batch,
        parent_ids=(parent.id,) if parent is not None else (),
        operator="seed" if parent is None else rng.choice(["prompt_mutation", "elm_diff"]),
        model=None if parent is None else "fake",
        generation=0 if parent is None else parent.generation + 1,
        created_at=t0 + pid * 0.01,
        seed=pid,
    )


def _evaluation(rng: random.Random, seeding: bool) -> Any:
    from evolm.types import Evaluation, Status

    u = rng.random()
    if u < 0.6 or seeding:
        desc = (rng.random(), rng.random(), rng.random())
        return Evaluation(Status.OK, -(rng.random() ** 0.3), desc, wall_time=0.01)
    if u < 0.85:
        text = rng.choice(_ERRORS).format(n=rng.randint(1, 40))
        return Evaluation.failure(Status.ERROR, text, wall_time=0.01)
    return Evaluation.failure(Status.INVALID, "no code block in the completion")


def _arms(inds: list[Any], statuses: list[Any]) -> dict[str, dict[str, float]]:
    from evolm.types import AddStatus, Status

    arms: dict[str, dict[str, float]] = {}
    for ind, st in zip(inds, statuses, strict=True):
        if ind.program.operator == "seed":
            continue
        keys = ("chosen", "parsed", "valid", "inserted", "cost")
        a = arms.setdefault(f"{ind.program.operator}@fake", dict.fromkeys(keys, 0.0))
        a["chosen"] += 1
        a["parsed"] += ind.evaluation.status is not Status.INVALID
        a["valid"] += ind.evaluation.ok
        a["inserted"] += st is not AddStatus.NOT_ADDED
        a["cost"] += 600
    return arms


def synthetic_run(db: Path, n: int, seed: int = 0) -> None:
    """A plausible image run of ``n`` programs, written through RunStore's public methods."""
    from evolm.config import load_config
    from evolm.domains.base import get_domain
    from evolm.events import EndEvent, StepEvent
    from evolm.runner import dependency_versions
    from evolm.scheduler.rebuild import apply_batch, build_archive
    from evolm.store import RunStore
    from evolm.types import AddStatus, Individual

    rng = random.Random(seed)
    cfg = load_config(
        preset="image",
        overrides={"seed": seed, "llm": {"backend": "fake"}, "archive": {"bins": [16, 16, 16]}},
    )
    archive = build_archive(cfg, get_domain(cfg.domain.name, cfg.domain.params))
    elites: list[Any] = []
    t0 = time.time()
    calls = evals = pid = batch = 0
    with RunStore(db) as store:
        config = cfg.model_dump(mode="json")
        store.create_run(
            seed=seed, domain=cfg.domain.name, config=config, versions=dependency_versions()
        )
        for batch in range((n + BATCH - 1) // BATCH):
            inds = []
            for _ in range(min(BATCH, n - pid)):
                parent = rng.choice(elites) if elites and batch else None
                prog = _program(rng, pid, batch, parent, t0)
                inds.append(Individual(prog, _evaluation(rng, batch == 0)))
                pid += 1
            statuses = apply_batch(archive, inds)
            calls += 0 if batch == 0 else len(inds)
            evals += len(inds)
            counts: dict[str, int] = {}
            for ind in inds:
                key = ind.evaluation.status.value
                counts[key] = counts.get(key, 0) + 1
            st = archive.stats
            step = StepEvent(
                batch=batch,
                llm_calls=calls,
                tokens=calls * 600,
                cost=0.0,
                evaluations=evals,
                elites=st.num_elites,
                max_fitness=st.max_fitness,
                qd_score=st.qd_score,
                coverage=st.coverage,
                elapsed=batch * 0.5,
                statuses=counts,
                inserted=tuple(
                    (i.program.id, s.name)
                    for i, s in zip(inds, statuses, strict=True)
                    if s is not AddStatus.NOT_ADDED
                ),
                num_elites=st.num_elites,
                arms=_arms(inds, statuses),
            )
            with store.transaction():
                store.add_programs([i.program for i in inds])
                store.add_evaluations(
                    [
                        (i.program.id, i.evaluation, int(s))
                        for i, s in zip(inds, statuses, strict=True)
                    ]
                )
                store.record(step)
            elites = [e.program for e in archive]
        store.record(EndEvent(status="completed", reason="synthetic run", elapsed=batch * 0.5))
        store.set_status("completed")


_DRAWN = (
    "var p = document.querySelectorAll('div.plot');"
    "return document.body.getAttribute('data-ready') === '1' && p.length > 0 &&"
    " Array.prototype.every.call(p, function (x) { return x.querySelector('svg'); });"
)


def browser_times(html: Path, repeats: int = 3) -> tuple[float, float, float]:
    """Milliseconds from navigation start to DOMContentLoaded and to every plot drawn on the
    first load of the page in a fresh headless chromium, and to every plot drawn as the median
    over ``repeats`` loads (later loads reuse the browser's compiled-code cache)."""
    import statistics

    from selenium.webdriver.support.ui import WebDriverWait
    from tests.report.browser import chromium

    dcls, drawns = [], []
    with chromium() as driver:
        for _ in range(repeats):
            driver.get("about:blank")
            driver.get(html.resolve().as_uri())
            WebDriverWait(driver, 120, poll_frequency=0.02).until(
                lambda d: d.execute_script(_DRAWN)
            )
            drawns.append(float(driver.execute_script("return performance.now();")))
            dcls.append(
                float(
                    driver.execute_script(
                        "return performance.getEntriesByType('navigation')[0]"
                        ".domContentLoadedEventEnd;"
                    )
                )
            )
    return dcls[0], drawns[0], statistics.median(drawns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--keep", type=Path, help="folder to keep the databases and pages in")
    args = ap.parse_args()
    from evolm.report.data import ReportLimits
    from evolm.report.html import build_report

    work = args.keep or Path(tempfile.mkdtemp(prefix="evolm-report-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# evolm report size and load time ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()})")  # fmt: skip
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    header = ["programs", "create s", "build s", "MiB", "DOMContentLoaded ms", "drawn ms",
              "drawn, median"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            db = work / f"run-{n}.db"
            t = time.perf_counter()
            if not db.exists():
                (real_run if n <= 1000 else synthetic_run)(db, n)
            created = time.perf_counter() - t
            out = work / f"report-{n}.html"
            t = time.perf_counter()
            build_report([db], out, limits=ReportLimits(), animations=False)
            built = time.perf_counter() - t
            dcl, drawn, median = browser_times(out)
            mib = out.stat().st_size / 2**20
            cells = [f"{n:,}", f"{created:.1f}", f"{built:.1f}", f"{mib:.1f}", f"{dcl:.0f}",
                     f"{drawn:.0f}", f"{median:.0f}"]  # fmt: skip
            print("| " + " | ".join(cells) + " |", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
