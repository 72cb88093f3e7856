"""Service fixtures: a real uvicorn API subprocess (`python -m service.api`) on a free loopback port.

Usage: `api_url` for the default fast work profile, or `start_api(**env)` for custom settings, e.g.
`start_api(OFFLOAD_PAGES="2", OFFLOAD_INJECT_DELAY_MS="50")`, `start_api(redis_url_override=url)` for another
Redis; `shared_api_url` (module scope) for tests that only look at answers. Every process started here is stopped (SIGTERM,
then SIGKILL) and waited on at teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from bench.launch.redis_server import EmbeddedRedis, free_port

REPO = Path(__file__).resolve().parents[2]

# fast and deterministic: 3 pages of ~5 ms simulated I/O and 1 ms CPU each, no failures
FAST_WORK_ENV: dict[str, str] = {
    "OFFLOAD_PAGES": "3",
    "OFFLOAD_IO_MS": "5",
    "OFFLOAD_IO_SIGMA": "0.3",
    "OFFLOAD_CPU_MS": "1",
    "OFFLOAD_TRANSIENT_RATE": "0",
    "OFFLOAD_POISON_RATE": "0",
    "OFFLOAD_SEED": "7",
}


@dataclass
class ApiProcess:
    """A running `python -m service.api` subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    log_path: Path
    _closed: bool = field(default=False, repr=False)

    def log(self) -> str:
        """Everything the process wrote to stdout/stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if not self._closed:
            self._closed = True
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def launch_api(redis_url: str, log_dir: Path, env_overrides: dict[str, str] | None = None) -> ApiProcess:
    """Start `python -m service.api` against redis_url and wait until it answers /healthz (200 or 503)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_") and k != "REDIS_URL"}
    env.update(FAST_WORK_ENV)
    env.update(
        {
            "OFFLOAD_REDIS_URL": redis_url,
            "OFFLOAD_API_HOST": "127.0.0.1",
            "OFFLOAD_API_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(env_overrides or {})
    log_path = log_dir / f"api-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.api"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    api = ApiProcess(proc=proc, url=f"http://127.0.0.1:{port}", env=env, log_path=log_path)
    deadline = time.monotonic() + 30
    with httpx.Client(timeout=1.0) as client:
        while True:
            if proc.poll() is not None:
                api.stop()
                raise RuntimeError(f"api exited with {proc.returncode} at start:\n{api.log()[-2000:]}")
            try:
                if client.get(f"{api.url}/healthz").status_code in (200, 503):
                    return api
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                api.stop()
                raise RuntimeError(f"api did not answer within 30 s:\n{api.log()[-2000:]}")
            time.sleep(0.05)


@pytest.fixture
def start_api(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., ApiProcess]]:
    """Factory: start_api(**env) -> ApiProcess against the test's Redis; all are stopped at teardown."""
    started: list[ApiProcess] = []

    def _start(redis_url_override: str | None = None, **env: str) -> ApiProcess:
        api = launch_api(redis_url_override or redis_url, tmp_path, env)
        started.append(api)
        return api

    try:
        yield _start
    finally:
        for api in started:
            api.stop()


@pytest.fixture
def api_url(start_api: Callable[..., ApiProcess]) -> str:
    """Base URL of a real API (uvicorn subprocess) with the fast work profile, on the test's Redis."""
    return start_api().url


@pytest.fixture(scope="module")
def shared_api_url(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One API per test module on the session Redis (not flushed between tests): for tests that only check
    answers (validation, 404s), not Redis contents. Saves a uvicorn start per test."""
    api = launch_api(redis_server.url, tmp_path_factory.mktemp("shared-api"))
    try:
        yield api.url
    finally:
        api.stop()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A sync redis-py client on the test's (flushed) Redis; shared by the service tests."""
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()
