"""Choosing a LoRA adapter for the embedded backend: ``llm.lora`` values."""

from __future__ import annotations

from importlib import resources

import pytest

from evolm.config import ConfigError
from evolm.llm.build import resolve_adapter


def test_no_adapter_and_a_path() -> None:
    assert resolve_adapter(None, "image") is None
    path = "/tmp/run.rounds/round-1/adapter.gguf"
    assert resolve_adapter(path, "image") == path


def test_shipped_means_the_bundled_models_adapter_for_the_domain_if_any() -> None:
    shipped = {
        f.name for f in resources.files("evolm.adapters").iterdir() if f.name.endswith(".gguf")
    }
    image = resolve_adapter("shipped", "image")
    assert (image is not None) == ("smollm2-image.gguf" in shipped)
    # another model gets no adapter trained for SmolLM2, and a domain without one gets none
    assert resolve_adapter("shipped", "image", model_path="/models/other.gguf") is None
    assert resolve_adapter("shipped", "no-such-domain") is None


def test_an_unknown_shipped_name_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"llm.lora: no adapter named 'nope' ships with evolm"):
        resolve_adapter("package:nope", "image")


def test_shipped_follows_the_runs_operators_to_the_adapter_trained_for_them() -> None:
    root = resources.files("evolm.adapters")
    if not root.joinpath("smollm2-sodarace-line.gguf").is_file():
        pytest.skip("no line adapter ships")
    line = resolve_adapter("shipped", "sodarace", operators=["line_edit", "search_replace"])
    assert line is not None and line.endswith("smollm2-sodarace-line.gguf")
    edits = resolve_adapter("shipped", "sodarace", operators=["prompt_mutation", "search_replace"])
    assert edits is not None and edits.endswith("smollm2-sodarace.gguf")
    assert resolve_adapter("shipped", "sodarace", operators=["prompt_mutation"]) is None
    assert resolve_adapter("shipped", "image", operators=["line_edit"]) is None
    assert resolve_adapter("shipped", "sodarace") == resolve_adapter(
        "shipped", "sodarace", operators=["search_replace"]
    )
