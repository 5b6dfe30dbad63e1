"""The report's data layer on known numbers: failure grouping, downsampling, lineage with
diffs, and the side-by-side intervals."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from evolm.report.lineage import ProgramReader, build_lineage, unified_diff
from evolm.report.sampling import downsample_indices, even_picks, round_sig, truncate, windows
from evolm.report.sidebyside import compare_runs, group_runs, step_value, summarise
from evolm.report.taxonomy import group_failures, normalise_error
from evolm.store import RunStore
from evolm.types import Program

TRACEBACK = """Traceback (most recent call last):
  File "/tmp/evolm-x1/program.py", line 12, in draw
    return img[idx]
IndexError: index 33 is out of bounds for axis 0 with size 32"""


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TRACEBACK, "IndexError: index N is out of bounds for axis N with size N"),
        ("NameError: name 'foo' is not defined", "NameError: name '…' is not defined"),
        ('KeyError: "colour"', 'KeyError: "…"'),
        ("SyntaxError: invalid syntax (line 7)", "SyntaxError: invalid syntax (line N)"),
        ("object at 0x7f3a2b1c9d00 failed", "object at 0x… failed"),
        ("cannot open /home/u/run/x.py", "cannot open /…"),
        ("", "(no message)"),
        (None, "(no message)"),
        ("timed out after 5.0 s", "timed out after N s"),
    ],
)
def test_normalise_error(error: str | None, reason: str) -> None:
    assert normalise_error(error) == reason


def test_group_failures_merges_by_reason_and_keeps_an_example() -> None:
    rows = [
        ("error", "NameError: name 'a' is not defined", 3, 10),
        ("error", "NameError: name 'b' is not defined", 2, 4),
        ("invalid", "no code block in the completion", 4, 2),
        ("timeout", "timed out after 5 s", 1, 7),
        ("error", "ZeroDivisionError: division by zero (line 3)", 1, 9),
    ]
    out = group_failures(rows, top=2)
    assert out["total"] == 11
    assert out["by_status"] == {"error": 6, "invalid": 4, "timeout": 1}
    first, second = out["groups"]
    assert (first["status"], first["reason"], first["count"]) == (
        "error", "NameError: name '…' is not defined", 5)  # fmt: skip
    assert first["example"] == "NameError: name 'a' is not defined"  # the first row seen
    assert first["example_id"] == 10
    assert (second["status"], second["count"]) == ("invalid", 4)
    # the two smallest groups are summed per status
    assert sorted((o["status"], o["count"], o["groups"]) for o in out["other"]) == [
        ("error", 1, 1), ("timeout", 1, 1)]  # fmt: skip


def test_downsample_indices() -> None:
    assert downsample_indices(0, 10) == []
    assert downsample_indices(5, 10) == [0, 1, 2, 3, 4]
    assert downsample_indices(1000, 5) == [0, 250, 500, 749, 999]
    # resume points are kept even between the picks
    assert downsample_indices(1000, 5, keep=[333, 5000]) == [0, 250, 333, 500, 749, 999]
    picked = downsample_indices(100_000, 500)
    assert len(picked) == 500 and picked[0] == 0 and picked[-1] == 99_999
    with pytest.raises(ValueError, match="max_points"):
        downsample_indices(10, 1)


def test_even_picks_windows_truncate_round() -> None:
    assert even_picks(3, 16) == [0, 1, 2]
    assert even_picks(100, 4) == [25, 50, 74, 99]
    assert windows(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert windows(2, 5) == [(0, 1), (1, 2)]
    assert windows(0, 5) == []
    assert truncate("abcdef", 4) == ("abcd", 2)
    assert truncate("abc", 4) == ("abc", 0)
    assert round_sig(1.23456789, 3) == 1.23
    assert round_sig(float("nan")) is None and round_sig(7) == 7


def test_unified_diff_marks_changed_lines() -> None:
    diff = unified_diff("a = 1\nb = 2\n", "a = 1\nb = 3\n")
    lines = diff.splitlines()
    assert lines[:2] == ["--- parent", "+++ child"]
    assert "-b = 2" in lines and "+b = 3" in lines and " a = 1" in lines
    assert unified_diff("same\n", "same\n") == ""
    long = unified_diff("", "x\n" * 5000, limit=100)
    assert long.startswith("--- parent") and "more characters of diff" in long


def _lineage_db(path: Path) -> Path:
    """Seeds 0 and 1; 2 <- 0; 3 <- 2; 4 <- (3, 1) by crossover; 5 <- 4."""
    codes = {0: "x = 0\n", 1: "y = 1\n", 2: "x = 2\n", 3: "x = 3\nz = 0\n", 4: "x = 4\nz = 0\n",
             5: "x = 5\nz = 0\n"}  # fmt: skip
    parents: dict[int, tuple[int, ...]] = {0: (), 1: (), 2: (0,), 3: (2,), 4: (3, 1), 5: (4,)}
    gen = {0: 0, 1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
    with RunStore(path) as store:
        store.create_run(seed=0, domain="toy", config={}, versions={})
        store.add_programs(
            [
                Program(
                    id=i,
                    code=codes[i],
                    parent_ids=parents[i],
                    operator="seed" if not parents[i] else "mutate",
                    generation=gen[i],
                    batch=gen[i],
                )
                for i in range(6)
            ]
        )
    return path


def test_lineage_walks_all_parents_with_diffs_from_the_first(tmp_path: Path) -> None:
    db = _lineage_db(tmp_path / "l.db")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    nodes = build_lineage(ProgramReader(conn), [5])
    assert sorted(nodes) == [0, 1, 2, 3, 4, 5]
    assert nodes[4]["parents"] == [3, 1]
    assert "-x = 3" in nodes[4]["diff"] and "+x = 4" in nodes[4]["diff"]  # from parent 3
    assert nodes[0]["diff"] is None and nodes[0]["code"] == "x = 0\n"  # a seed shows its code
    assert not any(n["cut"] for n in nodes.values())
    # bounded walk: two generations above the elite, parents beyond are marked cut
    short = build_lineage(ProgramReader(conn), [5], max_depth=2)
    assert sorted(short) == [1, 3, 4, 5] and short[3]["cut"] and not short[5]["cut"]
    # node budget: the first elite's ancestry first
    tiny = build_lineage(ProgramReader(conn), [5, 1], max_nodes=2)
    assert len(tiny) == 2 and 5 in tiny
    conn.close()


def test_summarise_is_the_student_t_interval() -> None:
    s = summarise([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["n"] == 3
    # t(0.975, df=2) = 4.302652729911275; sd = 1; half = t * sd / sqrt(3)
    assert math.isclose(s["half"], 4.302652729911275 / math.sqrt(3), rel_tol=1e-5)
    assert summarise([5.0, None]) == {"mean": 5.0, "half": None, "n": 1}
    assert summarise([]) == {"mean": None, "half": None, "n": 0}


def test_step_value() -> None:
    xs, ys = [0, 10, 20], ["a", "b", "c"]
    assert step_value(xs, ys, -1) is None
    assert [step_value(xs, ys, x) for x in (0, 5, 10, 19, 20, 99)] == ["a", "a", "b", "b", "c", "c"]


def _run(seed: int, archive: str, qd: list[float], evals: list[int]) -> dict:
    cfg = {"seed": seed, "domain": {"name": "image"}, "archive": {"kind": archive}}
    from evolm.report.data import config_label_key

    zeros = [0] * len(qd)
    series = {"qd_score": qd, "coverage": zeros, "max_fitness": zeros, "mean_fitness": zeros,
              "elites": zeros, "evaluations": evals, "llm_calls": evals, "tokens": evals,
              "elapsed": evals}  # fmt: skip
    info = {"seed": seed, "domain": "image", "archive": archive, "state": "completed",
            "label": None, "label_key": config_label_key(cfg)}  # fmt: skip
    return {"name": f"{archive}-{seed}.db", "info": info, "series": series}


def test_runs_group_by_config_minus_seed_and_get_intervals() -> None:
    runs = [
        _run(1, "grid", [0.0, 1.0, 3.0], [0, 10, 20]),
        _run(2, "cvt", [0.0, 5.0], [0, 20]),
        _run(3, "grid", [0.0, 2.0, 4.0], [0, 10, 20]),
        _run(4, "grid", [0.0, 3.0, 5.0], [0, 10, 30]),
    ]
    groups = group_runs(runs)
    assert [g["members"] for g in groups] == [[0, 2, 3], [1]]
    assert [g["label"] for g in groups] == ["archive.kind=grid", "archive.kind=cvt"]
    out = compare_runs(runs, points=3)
    grid = out["groups"][0]
    final = grid["final"]["qd_score"]
    assert final["mean"] == 4.0 and final["n"] == 3
    assert math.isclose(final["half"], 4.302652729911275 / math.sqrt(3), rel_tol=1e-5)
    curve = grid["curves"]["evaluations"]
    assert curve["x"] == [0, 10, 20]  # up to where every seed has data (min of the finals)
    # at 20 evaluations the third seed still holds its value of 10 evaluations: (3 + 4 + 3) / 3
    assert curve["metrics"]["qd_score"]["mean"] == pytest.approx([0.0, 2.0, 10 / 3], rel=1e-5)
    cvt = out["groups"][1]
    assert cvt["final"]["qd_score"] == {"mean": 5.0, "half": None, "n": 1}
    # a label given by `evolm compare` wins over the configuration
    runs[1]["info"]["label"] = runs[0]["info"]["label"] = "arm"
    assert [g["members"] for g in group_runs(runs)] == [[0, 1], [2, 3]]


def test_page_data_cannot_end_its_script_element() -> None:
    from html.parser import HTMLParser

    from evolm.report.html import render_html

    hostile = "x = '</script><script>alert(1)</script><!--'"
    page = render_html([{"name": "r.db", "code": hostile, "nan": float("nan"), "inf": [1e400]}])

    class Scripts(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.n, self.data, self._in = 0, "", False

        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag == "script":
                self.n += 1
                self._in = ("id", "evolm-data") in attrs

        def handle_data(self, data: str) -> None:
            if self._in:
                self.data += data

        def handle_endtag(self, tag: str) -> None:
            self._in = False

    parser = Scripts()
    parser.feed(page)
    assert parser.n == 3  # the data, plotly.js and the page's script: nothing injected
    import json

    (run,) = json.loads(parser.data)["runs"]
    assert run["code"] == hostile and run["nan"] is None and run["inf"] == [None]


def test_reference_bins_come_from_the_first_grid_run() -> None:
    from evolm.report.reference import DEFAULT_BINS, reference_bins

    grid = {"archive": {"kind": "grid", "bins": [6, 6, 6]}}
    cvt = {"archive": {"kind": "cvt", "cells": 64}}
    assert reference_bins([cvt, grid]) == [6, 6, 6]
    assert reference_bins([{"archive": {"kind": "deep_grid", "bins": 4}}]) == 4
    assert reference_bins([cvt, {"archive": {"kind": "best_of_n"}}]) == DEFAULT_BINS
