"""Fixtures for the LLM backend tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .openai_server import OpenAIServer

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    """A running :class:`OpenAIServer`; no proxy, no ambient OpenAI settings."""
    for var in (*_PROXY_VARS, "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    srv = OpenAIServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
