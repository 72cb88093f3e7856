"""Fixtures: the small test app (real uvicorn) shared by the load-generator tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loadtests.helpers import Server, start_testapp


@pytest.fixture(scope="module")
def testapp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A fast stand-in API (no delays) for the sample-count tests."""
    server = start_testapp(tmp_path_factory.mktemp("testapp"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """Where servers started by a test write their logs."""
    path = tmp_path / "logs"
    path.mkdir()
    return path
