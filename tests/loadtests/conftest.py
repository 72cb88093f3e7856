"""Fixtures: the small test app (real uvicorn) shared by the load-generator tests; the real service stack."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loadtests.helpers import REPO, Server, clean_env, start_testapp
from tests.service.conftest import FAST_WORK_ENV, ApiProcess, launch_api


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


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[ApiProcess]:
    """The real API (`python -m service.api`) and one real worker (`python -m service.worker`)."""
    api = launch_api(redis_url, tmp_path)
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "service.worker"],
        cwd=REPO,
        env={**clean_env(), **FAST_WORK_ENV, "OFFLOAD_REDIS_URL": redis_url},
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    worker_log.close()
    try:
        yield api
    finally:
        worker.terminate()
        worker.wait(30)
        api.stop()
