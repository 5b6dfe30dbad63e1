"""`evolm distill` and `evolm rl`, driven as a user would, on a tiny random Llama."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from evolm.cli import app

pytest.importorskip("trl")


def evolm(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*map(str, args)])
    return result.exit_code, " ".join(result.output.split())  # undo rich's line wrapping


def test_distill_trains_and_compares_with_the_base_model_and_the_archive(
    tmp_path, soda_db, peaked_base
):
    out = tmp_path / "s2"
    code, text = evolm(
        "distill", soda_db, "--out", out, "--cut", "0.8", "--conditioned", "--base",
        peaked_base, "--max-steps", "1", "--max-len", "4096", "--batch-size", "2",
        "--samples", "2", "--eval-llm", "hf", "--max-tokens", "8", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, text
    assert "dataset (cut 0.8, conditioned)" in text and "niches" in text
    assert "Stage 2: samples against the archive" in text and "niche hits" in text
    record = json.loads((out / "stage2.json").read_text())
    assert record["cut"] == 0.8 and record["conditioned"] is True
    assert record["evaluation"]["stage2"]["samples"] == 2


def test_distill_names_bad_input(tmp_path, soda_db):
    code, text = evolm("distill", tmp_path / "nope.db", "--out", tmp_path / "o")
    assert code == 2 and f"run database {tmp_path / 'nope.db'} does not exist" in text
    code, text = evolm("distill", soda_db, "--out", tmp_path / "o", "--cut", "1.5")
    assert code == 2 and "cut must be in [0, 1)" in text
    assert "Traceback" not in text


def test_rl_rewards_walkers_in_the_sandbox_and_prints_the_elm6_table(tmp_path, stage2_dir):
    out = tmp_path / "s3"
    code, text = evolm(
        "rl", stage2_dir, "--out", out, "--terrains", "flat,tunnel", "--steps", "1",
        "--generations", "2", "--prompts-per-step", "2", "--max-completion-length", "8",
        "--samples", "2",
        "--eval-llm", "hf", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, text
    # 8 characters are no walker: the invalid reward, on both terrains the step prompted
    assert "step 1: reward -1.00 (flat -1.00, tunnel -1.00)" in text, text
    assert json.loads((out / "rl.json").read_text())["config"]["prompts_per_step"] == 2
    assert "Stage 3: mean distance per terrain" in text and "tunnel" in text
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["valid_share"] == 0.0 and metrics[0]["reward"] == -1.0
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert set(evaluation["terrains"]) == {"flat", "tunnel"}
    for row in evaluation["terrains"].values():
        assert row["oracle"] >= row["single_best"] >= 0
        for model in ("stage3", "stage2"):  # each sample's distance, their mean and interval
            s = row[model]
            assert len(s["distances"]) == s["samples"] == 2
            assert s["mean"] == pytest.approx(sum(s["distances"]) / 2)
            assert s["ci95"] is not None and s["ci95"] >= 0


def test_rl_names_bad_input(tmp_path, stage2_dir):
    code, text = evolm("rl", stage2_dir)
    assert code == 2 and "give --out DIR for a new Stage-3 run, or --resume DIR" in text
    code, text = evolm("rl", stage2_dir, "--out", tmp_path / "o", "--beta", "0")
    assert code == 2 and "KL coefficient" in text
    code, text = evolm("rl", stage2_dir, "--out", tmp_path / "o", "--prompts-per-step", "0")
    assert code == 2 and "prompts_per_step" in text
    code, text = evolm("rl", "--resume", tmp_path / "none")
    assert code == 2 and "nothing to resume" in text
