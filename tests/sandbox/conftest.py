"""Fixtures for the sandbox tests (helpers live in tests/sandbox/harness.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.sandbox.harness import TIER_PARAMS, Host, Sandbox, open_sandbox, wait_no_processes


@pytest.fixture(scope="session")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    h = Host(tmp_path_factory.mktemp("sandbox-host"))
    old = os.environ.get("EVOLM_TEST_SECRET")
    os.environ["EVOLM_TEST_SECRET"] = h.secret  # in the engine's environment, never the workers'
    try:
        yield h
    finally:
        if old is None:
            os.environ.pop("EVOLM_TEST_SECRET", None)
        else:
            os.environ["EVOLM_TEST_SECRET"] = old
        h.close()


@pytest.fixture(scope="module", params=TIER_PARAMS)
def sandbox(request: pytest.FixtureRequest, host: Host) -> Iterator[Sandbox]:
    """A one-worker pool of the escape domain with a scratch directory, on each tier."""
    sb = open_sandbox(request.param, secret=host.secret, scratch=True)
    try:
        yield sb
    finally:
        sb.close()
        assert not wait_no_processes(sb.pool.sandbox_id), "closing the pool left processes"
