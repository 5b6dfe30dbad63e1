"""`evolm finetune`, driven as a user would."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evolm.cli import app

from .conftest import make_db

SEED = "import numpy as np\n\n\ndef draw():\n    return np.zeros((32, 32, 3))\n"


def finetune(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["finetune", *map(str, args)])
    return result.exit_code, " ".join(result.output.split())  # undo rich's line wrapping


def test_a_missing_database_is_named(tmp_path):
    pytest.importorskip("peft")  # the training packages are checked first
    code, out = finetune(tmp_path / "nope.db", "--out", tmp_path / "o")
    assert code == 2 and f"run database {tmp_path / 'nope.db'} does not exist" in out
    assert "Traceback" not in out


def test_no_qualifying_example_says_what_was_seen_and_what_to_try(tmp_path):
    pytest.importorskip("peft")  # the training packages are checked first
    db = make_db(
        tmp_path / "seeds.db",
        [
            {"id": i, "code": SEED, "parents": [], "status": "ok", "fitness": -1.0, "add": 2}
            for i in range(3)
        ],
    )
    code, out = finetune(db, "--out", tmp_path / "o")
    assert code == 2
    assert "no example to train on: 3 programs seen in 1 run database(s), 0 qualify" in out
    assert "--accept valid" in out and "--operator gp" in out
    assert not (tmp_path / "o").exists()


def test_missing_training_packages_name_the_extra(tmp_path, gp_db, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a)
    )
    code, out = finetune(gp_db, "--out", tmp_path / "o")
    assert code == 2 and "evolm finetune needs" in out and "peft" in out
    assert "pip install 'evolm[train]'" in out


def test_bad_options_fail_without_a_traceback(tmp_path, gp_db):
    pytest.importorskip("peft")  # the training packages are checked first
    code, out = finetune(gp_db, "--out", tmp_path / "o", "--format", "chat")
    assert code == 2 and "format must be one of full, elm_diff, search_replace, line, stored" in out
    pytest.importorskip("peft")
    code, out = finetune(gp_db, "--out", tmp_path / "o", "--format", "elm_diff", "--rank", "0")
    assert code == 2 and "rank must be an int >= 1" in out


def _check_outputs(out_dir: Path, output: str) -> dict:
    assert (out_dir / "adapter" / "adapter_config.json").exists()
    assert (out_dir / "adapter.gguf").stat().st_size > 0
    card = json.loads((out_dir / "card.json").read_text())
    assert card["metrics"]["steps"] == 2 and card["format"] == "elm_diff"
    assert f"llama.cpp adapter: {out_dir / 'adapter.gguf'}" in output
    assert "validation loss" in output and " -> " in output
    assert "dataset (elm_diff, accept valid):" in output
    return card


def test_finetune_on_a_gp_run_with_a_tiny_base(tmp_path, gp_db, tiny_base):
    out_dir = tmp_path / "ft"
    code, out = finetune(
        gp_db, "--out", out_dir, "--base", tiny_base, "--accept", "valid", "--format", "elm_diff",
        "--max-steps", 2, "--max-len", 400, "--batch-size", 2, "--rank", 4,
    )  # fmt: skip
    assert code == 0, out
    card = _check_outputs(out_dir, out)
    assert card["hyperparameters"]["rank"] == 4 and card["accept"] == "valid"


@pytest.mark.slow
def test_finetune_the_bundled_model_on_a_gp_run(tmp_path, gp_db):
    pytest.importorskip("peft")
    pytest.importorskip("llama_cpp")
    from evolm.llm.llama_cpp import new_llama
    from evolm.llm.models import default_gguf

    out_dir = tmp_path / "ft"
    code, out = finetune(
        gp_db, "--out", out_dir, "--accept", "valid", "--format", "elm_diff",
        "--max-steps", 2, "--max-len", 256, "--batch-size", 1,
    )  # fmt: skip
    assert code == 0, out
    card = _check_outputs(out_dir, out)
    assert card["base_model"]["path"] == str(default_gguf().resolve())
    llm = new_llama(
        default_gguf(),
        lora_path=str(out_dir / "adapter.gguf"),
        n_ctx=64,
        verbose=False,
    )
    assert llm.create_completion("def draw():", max_tokens=4, temperature=0.0)["choices"]
