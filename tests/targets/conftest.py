"""The example FastAPI + stock arq app as real processes (uvicorn, `arq worker.WorkerSettings`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = REPO / "examples" / "fastapi_arq"
VENV_BIN = str(Path(sys.executable).parent)


def example_env(redis_url: str, **extra: str) -> dict[str, str]:
    """Environment of the example's processes: its Redis, this venv's commands first on PATH."""
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", WORK_MS="10")
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


class Procs:
    """Processes started by one test; all stopped and waited on at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start args in the example folder with output in log_dir/<name>.log."""
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, cwd=EXAMPLE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def api(self, port: int, env: dict[str, str]) -> str:
        """Start uvicorn on port; return its URL once /health answers."""
        args = [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port)]
        proc = self.start("api", args, env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # a condition: generous costs nothing when it holds
        while time.monotonic() < deadline:
            assert proc.poll() is None, (self.log_dir / "api.log").read_text()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("example API did not start: " + (self.log_dir / "api.log").read_text())

    def worker(self, env: dict[str, str], name: str = "worker") -> subprocess.Popen[bytes]:
        """Start a stock arq worker of the example."""
        return self.start(name, [sys.executable, "-m", "arq", "worker.WorkerSettings"], env)

    def stop_all(self) -> None:
        """SIGTERM, wait, SIGKILL the stubborn."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """A process group for the test, stopped at teardown."""
    group = Procs(tmp_path)
    yield group
    group.stop_all()


WaitFor = Callable[[Callable[[], bool], float], None]


@pytest.fixture
def wait_for() -> WaitFor:
    """Poll a condition until true or a deadline (an assertion error then)."""

    def wait(cond: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.1)

    return wait
