"""Text domains replay from a cassette (issue 15): a ``poetry`` run scored by the judge and a
``prompts`` run, both with the fake model, recorded to a run database and replayed from it
(``--llm replay:RUN.db``), give the same archive and the same stored judge/task calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from evolm.cli import app
from evolm.config import load_config
from evolm.llm.replay import ReplayLLM
from evolm.runner import Runner
from evolm.store import RunStore

POETRY = {"domain": {"params": {"scorer": "judge"}}, "budget": {"llm_calls": 16}}
PROMPTS = {
    "domain": {"params": {"validation_size": 6, "test_size": 6}},
    "llm": {"backend": "fake"},
    "budget": {"llm_calls": 12},
}


def run(preset: str, over: dict[str, Any], path: Path, llm: Any = None) -> tuple[Runner, Any]:
    cfg = load_config(preset=preset, overrides=over)
    store = RunStore(path)
    runner = Runner(cfg, store, llm=llm)
    result = asyncio.run(runner.run())
    store.close()
    return runner, result


def elites(runner: Runner) -> list[tuple[Any, ...]]:
    return sorted(
        (e["id"], e["fitness"], tuple(e["descriptors"]), e.get("cell"))
        for e in runner.archive.export()
    )


def scoring_calls(path: Path) -> list[tuple[str, str, str, Any]]:
    """The stored judge/task calls: role, request, answer and option probabilities."""
    with RunStore(path, readonly=True) as store:
        return [
            (
                c.completion.extras["role"],
                c.request_json,
                c.completion.text,
                c.completion.extras.get("option_probs"),
            )
            for c in store.llm_calls()
            if "role" in c.completion.extras
        ]


def programs(path: Path) -> list[tuple[Any, ...]]:
    with RunStore(path, readonly=True) as store:
        return [
            (r["id"], r["status"], r["fitness"], json.dumps(r.get("descriptors")), r["code"])
            for r in store.export_rows()
        ]


def check_replay(preset: str, over: dict[str, Any], tmp_path: Path, role: str) -> None:
    rec, res = run(preset, over, tmp_path / "rec.db")
    assert res.status == "completed"
    recorded = scoring_calls(tmp_path / "rec.db")
    assert recorded and {r for r, *_ in recorded} == {role}
    assert elites(rec) and len(programs(tmp_path / "rec.db")) > 4
    rep, res2 = run(preset, over, tmp_path / "rep.db", llm=ReplayLLM(tmp_path / "rec.db"))
    assert res2.status == "completed"
    assert elites(rep) == elites(rec)
    assert programs(tmp_path / "rep.db") == programs(tmp_path / "rec.db")
    assert scoring_calls(tmp_path / "rep.db") == recorded


def test_a_judged_poetry_run_replays_to_the_same_archive_and_judge_calls(tmp_path: Path) -> None:
    check_replay("poetry-lexicon", POETRY, tmp_path, "judge")
    with RunStore(tmp_path / "rec.db", readonly=True) as store:
        judged = [c for c in store.llm_calls() if c.completion.extras.get("role") == "judge"]
    # the fake model has no chat template: the judge asks completion prompts, options spaced
    first = json.loads(judged[0].request_json)
    assert first["kind"] == "completion" and first["options"][0].startswith(" ")


def test_a_prompts_run_replays_to_the_same_archive_and_task_calls(tmp_path: Path) -> None:
    check_replay("prompts", PROMPTS, tmp_path, "task")
    # the fake task model answers by the instruction: accuracies differ between instructions
    assert len({fitness for _, _, fitness, _, _ in programs(tmp_path / "rec.db")}) > 1


def test_the_cli_replays_a_judged_poetry_run(tmp_path: Path) -> None:
    cli = CliRunner()
    args = ["run", "poetry", "--preset", "poetry-lexicon", "--llm", "fake"]
    sets = ["--set", "domain.params.scorer=judge", "--set", "budget.llm_calls=8"]
    rec = cli.invoke(app, [*args, *sets, "--out", str(tmp_path / "rec.db")])
    assert rec.exit_code == 0, rec.output
    replay = ["--llm", f"replay:{tmp_path / 'rec.db'}"]
    rep = cli.invoke(app, [*args[:4], *replay, *sets, "--out", str(tmp_path / "rep.db")])
    assert rep.exit_code == 0, rep.output
    assert programs(tmp_path / "rep.db") == programs(tmp_path / "rec.db")
    assert scoring_calls(tmp_path / "rep.db") == scoring_calls(tmp_path / "rec.db")
